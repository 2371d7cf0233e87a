"""The detector against the real broker and database: verdicts and failover decisions
are written once whoever decides them, and the consumer group hands providers over."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from qlp.failover.v1 import events_pb2 as ev
from qlp.failover.v1 import types_pb2 as t
from qlp_contracts import topics
from qlp_failover.handlers import run_detector
from qlp_failover.liveness import Lease, State, Transition
from qlp_failover.repository import Store
from qlp_failover.service import Failover
from qlp_failover.settings import FailoverSettings
from qlp_infra.topics import provision
from qlp_kit.events import build_headers
from qlp_kit.producer import Producer, Record

pytestmark = pytest.mark.integration


def settings(infra: Any, db: str, **kw: Any) -> FailoverSettings:
    base: dict[str, Any] = {
        "kafka_bootstrap_servers": infra.kafka,
        "mongodb_url": infra.mongodb_url,
        "mongodb_database": db,
        "heartbeat_interval_s": 0.2,
        "tick_s": 0.05,
        "persist_every_s": 0.5,
    }
    return FailoverSettings(**{**base, **kw})


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > end:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


def outbox_types(doc: dict[str, Any]) -> list[str]:
    return sorted(e["headers"]["ce_type"] for e in (doc.get("_outbox") or {}).values())


async def test_two_replicas_declare_a_death_once_and_decide_each_lease_once(
    qlp_infra: Any, mongo_db: Any
) -> None:
    s = settings(qlp_infra, mongo_db.name)
    a, b = Failover(Store(mongo_db), s), Failover(Store(mongo_db), s)
    leases = [Lease("job_1", 3, "primary"), Lease("job_2", 1, "standby")]
    for svc in (a, b):  # both think they own it (a rebalance in flight)
        await svc.heartbeat("prv_1", "org_p", leases, 1_000, partition=0)
    lost_a = await a.tick(10_000)
    lost_b = await b.tick(10_500)
    assert [x.state for x in lost_a] == [State.LOST] == [x.state for x in lost_b]
    # and a redelivered decision (a restart that saw the verdict) changes nothing
    again = await a.decide(
        Transition("prv_1", "org_p", State.ALIVE, State.LOST, 1_000, 11_000, tuple(leases))
    )
    assert again == []
    doc = await mongo_db["liveness"].find_one({"_id": "prv_1"})
    assert doc["state"] == "lost" and doc["losses"] == 1
    assert outbox_types(doc).count("qlp.failover.v1.ProviderDead") == 1
    recs = await mongo_db["failovers"].find({}).sort("_id", 1).to_list(None)
    assert [(r["_id"], r["reason"]) for r in recs] == [
        ("job_1:3", "primary_lost"),
        ("job_2:1:standby:prv_1", "standby_lost"),
    ]
    assert all(outbox_types(r) == ["qlp.failover.v1.FailoverStarted"] for r in recs)


async def test_recovery_after_loss_is_written_once_and_the_next_death_is_a_new_verdict(
    qlp_infra: Any, mongo_db: Any
) -> None:
    a = Failover(Store(mongo_db), settings(qlp_infra, mongo_db.name))
    await a.heartbeat("prv_2", "org_p", [Lease("job_3", 1, "primary")], 0)
    await a.tick(5_000)
    back = await a.heartbeat("prv_2", "org_p", [Lease("job_3", 1, "primary")], 6_000)
    assert back is not None and back.previous is State.LOST
    doc = await mongo_db["liveness"].find_one({"_id": "prv_2"})
    assert doc["state"] == "alive"
    assert "qlp.failover.v1.ProviderRecovered" in outbox_types(doc)
    await a.tick(20_000)
    doc = await mongo_db["liveness"].find_one({"_id": "prv_2"})
    assert doc["state"] == "lost" and doc["losses"] == 2
    # the same (job, epoch) is not failed over a second time
    assert await mongo_db["failovers"].count_documents({"job_id": "job_3"}) == 1


async def test_a_new_owner_finishes_the_decisions_of_a_verdict_its_predecessor_wrote(
    qlp_infra: Any, mongo_db: Any
) -> None:
    # the previous owner wrote "lost" and died before inserting the failover record
    await mongo_db["liveness"].insert_one(
        {
            "_id": "prv_9",
            "org_id": "org_p",
            "state": "lost",
            "lost_ms": 9_000,
            "last_seen_ms": 5_000,
            "partition": 4,
            "losses": 1,
            "leases": [{"job_id": "job_9", "epoch": 2, "role": "primary", "status": "running"}],
        }
    )
    heir = Failover(Store(mongo_db), settings(qlp_infra, mongo_db.name))
    assert await heir.assigned({4}, 20_000) == 1
    recs = await mongo_db["failovers"].find({}).to_list(None)
    assert [(r["_id"], r["failed_provider_id"]) for r in recs] == [("job_9:2", "prv_9")]
    await heir.assigned({4}, 21_000)  # adopted again (another rebalance): still one
    assert await mongo_db["failovers"].count_documents({}) == 1
    assert await heir.tick(60_000) == []  # and it is not declared a second time
    doc = await mongo_db["liveness"].find_one({"_id": "prv_9"})
    assert doc["losses"] == 1


def alive(provider: str, leases: list[tuple[str, int]]) -> Record:
    msg = ev.ProviderAlive(
        org_id="org_p",
        provider_id=provider,
        leases=[
            t.HeldLease(job_id=j, epoch=e, role="primary", status="running") for j, e in leases
        ],
    )
    headers = build_headers(msg, org_id="org_p", source="scheduler", subject=provider)
    return Record(topics.HEARTBEATS.name, provider, msg.SerializeToString(), headers)


async def test_through_the_broker_a_silent_provider_fails_over_and_a_restarted_replica_takes_over(
    qlp_infra: Any, mongo_db: Any
) -> None:
    await provision(qlp_infra.kafka)
    group = f"failover.liveness.it-{uuid.uuid4().hex[:6]}"
    s = settings(qlp_infra, mongo_db.name)
    producer = Producer(qlp_infra.kafka, client_id="it-heartbeats")
    await producer.start()
    beating = {"prv_a": [("job_a", 1)], "prv_b": [("job_b", 2)], "prv_c": [("job_c", 1)]}

    async def beat() -> None:
        while True:
            await producer.send_many(alive(p, ls) for p, ls in list(beating.items()))
            await asyncio.sleep(0.2)

    beats = asyncio.create_task(beat())
    first = Failover(Store(mongo_db), s)
    det1 = asyncio.create_task(run_detector(first, qlp_infra.kafka, group))
    try:

        async def watching_all() -> bool:
            return await mongo_db["liveness"].count_documents({}) == 3

        await until(watching_all)
        del beating["prv_a"]  # kill -9 of prv_a's agent

        async def decided_a() -> bool:
            return await mongo_db["failovers"].count_documents({"_id": "job_a:1"}) == 1

        await until(decided_a)
        # the only replica dies; a new one joins the group and rebuilds from the database
        det1.cancel()
        await asyncio.gather(det1, return_exceptions=True)
        second = Failover(Store(mongo_db), s)
        det2 = asyncio.create_task(run_detector(second, qlp_infra.kafka, group))
        try:

            async def adopted() -> bool:
                return len(second.detector.watches) == 3

            await until(adopted)
            del beating["prv_b"]  # dies after the handover: still declared

            async def decided_b() -> bool:
                return await mongo_db["failovers"].count_documents({"_id": "job_b:2"}) == 1

            await until(decided_b)
            await asyncio.sleep(1.0)  # a few more ticks: nothing is decided twice
            docs = {d["_id"]: d async for d in mongo_db["liveness"].find({})}
            assert {p: d["state"] for p, d in docs.items()} == {
                "prv_a": "lost",
                "prv_b": "lost",
                "prv_c": "alive",
            }
            assert docs["prv_a"]["losses"] == 1 and docs["prv_b"]["losses"] == 1
            assert await mongo_db["failovers"].count_documents({}) == 2
        finally:
            det2.cancel()
            await asyncio.gather(det2, return_exceptions=True)
    finally:
        beats.cancel()
        await asyncio.gather(beats, return_exceptions=True)
        await producer.stop()
