"""Two failover replicas as OS processes against the real broker and database: one is
killed with SIGKILL while a provider dies; the survivor takes its partitions over and
the death is still declared once, with one failover decision per lease."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from qlp.failover.v1 import events_pb2 as ev
from qlp.failover.v1 import types_pb2 as t
from qlp_contracts import topics
from qlp_infra.topics import provision
from qlp_kit.events import build_headers
from qlp_kit.producer import Producer, Record
from qlp_testing.services import ServiceProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

PROVIDERS = [f"prv_{i}" for i in range(12)]  # enough keys to land on every partition


def alive(provider: str, job: str) -> Record:
    msg = ev.ProviderAlive(
        org_id="org_p",
        provider_id=provider,
        leases=[t.HeldLease(job_id=job, epoch=1, status="running", role="primary")],
    )
    return Record(
        topics.HEARTBEATS.name,
        provider,
        msg.SerializeToString(),
        build_headers(msg, org_id="org_p", source="scheduler", subject=provider),
    )


async def _owners(replicas: list[ServiceProcess]) -> dict[str, float]:
    """Providers watched per replica, from each one's own metrics."""
    out: dict[str, float] = {}
    async with httpx.AsyncClient(timeout=5) as http:
        for r in replicas:
            if r.proc is None or r.proc.poll() is not None:
                continue
            text = (await http.get(f"{r.url}/metrics")).text
            out[r.name] = sum(
                float(line.split()[-1])
                for line in text.splitlines()
                if line.startswith("qlp_failover_providers{")
            )
    return out


async def test_killing_one_replica_while_a_provider_dies_still_fails_over_once(
    qlp_infra: Any, mongo_db: Any, service_env: dict[str, str], tmp_path: Path
) -> None:
    await provision(qlp_infra.kafka)
    env = {
        **service_env,
        "QLP_FAILOVER_MONGODB_DATABASE": mongo_db.name,
        "QLP_FAILOVER_CONSUMER_GROUP_PREFIX": f"fo-kill-{uuid.uuid4().hex[:6]}",
        "QLP_FAILOVER_HEARTBEAT_INTERVAL_S": "0.3",
        "QLP_FAILOVER_TICK_S": "0.05",
        "QLP_FAILOVER_PERSIST_EVERY_S": "0.5",
    }
    replicas = [ServiceProcess("failover", env, tmp_path, name=f"failover-{n}") for n in "ab"]
    producer = Producer(qlp_infra.kafka, client_id="it-replica-kill")
    await producer.start()
    beating = {p: f"job_{p}" for p in PROVIDERS}

    async def beat() -> None:
        while True:
            await producer.send_many(alive(p, j) for p, j in list(beating.items()))
            await asyncio.sleep(0.3)

    beats = asyncio.create_task(beat())
    try:
        for r in replicas:
            await r.start(extra_env={"QLP_FAILOVER_REPLICA": r.name}, timeout=120)
        # both replicas watch a share of the providers
        deadline = time.monotonic() + 90
        while True:
            owners = await _owners(replicas)
            if len(owners) == 2 and all(n > 0 for n in owners.values()):
                if sum(owners.values()) == len(PROVIDERS):
                    break
            assert time.monotonic() < deadline, owners
            await asyncio.sleep(0.3)
        # kill -9 replica a and, at the same moment, provider prv_0 and prv_1 die
        replicas[0].kill9()
        for p in ("prv_0", "prv_1"):
            del beating[p]

        async def decided() -> int:
            return int(
                await mongo_db["failovers"].count_documents(
                    {"_id": {"$in": ["job_prv_0:1", "job_prv_1:1"]}}
                )
            )

        deadline = time.monotonic() + 90
        while await decided() < 2:
            assert time.monotonic() < deadline, "the survivor did not fail the dead over"
            await asyncio.sleep(0.2)
        await asyncio.sleep(2.0)  # more ticks and a possible late rebalance: nothing twice
        docs = {d["_id"]: d async for d in mongo_db["liveness"].find({})}
        assert {p for p, d in docs.items() if d["state"] == "lost"} == {"prv_0", "prv_1"}
        assert all(docs[p]["losses"] == 1 for p in ("prv_0", "prv_1"))
        recs = await mongo_db["failovers"].find({}).to_list(None)
        assert sorted(r["_id"] for r in recs) == ["job_prv_0:1", "job_prv_1:1"]
        assert {r["decided_by"] for r in recs} <= {"failover-a", "failover-b"}
        assert (await _owners(replicas)) == {"failover-b": float(len(PROVIDERS))}
    finally:
        beats.cancel()
        await asyncio.gather(beats, return_exceptions=True)
        await producer.stop()
        for r in replicas:
            r.stop()
