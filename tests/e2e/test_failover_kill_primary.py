"""Failover end to end with real processes: every service (failover included) as
``make up`` runs them, two provider agents as OS processes. The primary agent is
killed with SIGKILL mid-job; the failover service declares its provider lost from the
missing heartbeat events, records one decision, the scheduler promotes the hot
standby under epoch 2, and the standby resumes from the latest checkpoint. The
deterministic sample workload (pure Python, no torch) ends with the same result as an
uninterrupted run, bit for bit; the steps after the checkpoint are redone, none before.
In the ``replica`` case a second failover replica runs, and the one that watches the
primary's provider is killed with SIGKILL at the same moment as the agent.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka.partitioner import murmur2
from pymongo import AsyncMongoClient

from qlp_contracts import topics
from qlp_testing.agents import kill_workloads, spawn_agent, stop_agents
from qlp_testing.flows import eventually, signup

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

STEPS = 60
CHECKPOINT_EVERY = 10


def workload(sleep: float) -> list[str]:
    return [
        sys.executable,
        "-m",
        "qlp_agent.workloads.train",
        "--backend",
        "pure",
        "--steps",
        str(STEPS),
        "--checkpoint-every",
        str(CHECKPOINT_EVERY),
        "--step-sleep",
        str(sleep),
    ]


async def _stale_reports(http: httpx.AsyncClient, scheduler_url: str) -> float:
    text = (await http.get(f"{scheduler_url}/metrics")).text
    for line in text.splitlines():
        if line.startswith("qlp_scheduler_stale_epoch_total "):
            return float(line.split()[1])
    return 0.0


def _assigned(log: Path) -> set[int]:
    """The heartbeat partitions a failover replica was last assigned (from its log)."""
    last: set[int] = set()
    for line in log.read_text().splitlines():
        if "liveness partitions assigned" in line:
            with contextlib.suppress(ValueError, KeyError):
                last = set(json.loads(line)["partitions"])
    return last


def _partition(provider_id: str) -> int:
    """The heartbeat partition of a provider (the producer's default partitioner)."""
    return int(murmur2(provider_id.encode()) & 0x7FFFFFFF) % topics.HEARTBEATS.partitions


@pytest.mark.parametrize("fault", ["kill", "partition", "replica"])
async def test_a_lost_primary_agent_fails_over_to_the_standby(
    qlp_platform: Any, qlp_infra: Any, tmp_path: Path, fault: str
) -> None:
    """``kill``: SIGKILL of the primary agent. ``partition``: SIGSTOP past the loss
    threshold, SIGCONT after the failover: the returning agent is fenced (its late
    reports are refused and counted), told to stop, the job completes once and the
    consumer is charged once. ``replica``: as ``kill``, and the failover replica that
    watches the primary's provider is killed with SIGKILL at the same moment; the other
    one takes its partitions over and fails the job over exactly once."""
    gateway = qlp_platform.state.gateway_url
    agents: dict[str, subprocess.Popen[bytes]] = {}
    replica: str | None = None  # the extra failover replica's key in the platform
    killed_replica: str | None = None
    async with httpx.AsyncClient(base_url=gateway, timeout=30) as http:
        provider = await signup(http, "Failover Provider")
        prov_auth = {"Authorization": f"Bearer {provider['access_token']}"}
        made = await http.post(
            "/v1/api-keys",
            json={"name": "agents", "scopes": ["provider:agent"]},
            headers={**prov_auth, "Idempotency-Key": uuid.uuid4().hex},
        )
        assert made.status_code == 201, made.text
        agent_key = made.json()["key"]
        key_auth = {"Authorization": f"Bearer {agent_key}"}
        try:
            for name, price in (("a", "60.00"), ("b", "65.00")):
                agents[name] = spawn_agent(
                    gateway, agent_key, tmp_path / name, tmp_path / f"agent-{name}.log", price
                )

            async def providers() -> list[dict[str, Any]]:
                r = await http.get("/v1/providers", headers=key_auth)
                return list(r.json().get("items", [])) if r.status_code == 200 else []

            regs = await eventually(
                providers,
                lambda items: len(items) == 2 and all(p["last_heartbeat_at"] for p in items),
                60,
                "two registered providers",
            )
            cheap = next(p for p in regs if p["price_per_gpu_hour"]["amount"] == 6000)
            if fault == "replica":
                replica = await qlp_platform.add_replica("failover")
                logs = {
                    k: Path(str(qlp_platform.state.services[k]["log"]))
                    for k in ("failover", replica)
                }

                async def assignments() -> dict[str, set[int]]:
                    return {k: _assigned(log) for k, log in logs.items()}

                # the group has settled: both replicas hold partitions, none twice
                await eventually(
                    assignments,
                    lambda a: (
                        all(a.values())
                        and not (a["failover"] & a[str(replica)])
                        and len(a["failover"] | a[str(replica)]) == topics.HEARTBEATS.partitions
                    ),
                    90,
                    "the heartbeat partitions split between two failover replicas",
                )

            consumer = await signup(http, "Failover Consumer")
            cons_auth = {"Authorization": f"Bearer {consumer['access_token']}"}
            top = await http.post(
                "/v1/billing/credits",
                json={"amount": {"amount": 5000, "currency": "USD"}},
                headers={**cons_auth, "Idempotency-Key": uuid.uuid4().hex},
            )
            assert top.status_code == 201, top.text

            async def quote() -> dict[str, Any]:
                spec = {
                    "gpu_count": 1,
                    "max_price_per_gpu_hour": {"amount": 7000, "currency": "USD"},
                    "command": ["true"],
                    "max_duration_s": 600,
                }
                q = await http.post("/v1/gpu/jobs/quote", json=spec, headers=cons_auth)
                return dict(q.json()) if q.status_code == 200 else {}

            # the scheduler refuses what its view of the balance cannot cover (402)
            await eventually(quote, lambda q: q.get("balance_covers") is True, 60, "top-up seen")
            submitted = await http.post(
                "/v1/gpu/jobs",
                json={
                    "gpu_count": 1,
                    "max_price_per_gpu_hour": {"amount": 7000, "currency": "USD"},
                    "region": "eu-west",
                    "command": workload(0.25),
                    "checkpoint_interval_s": 1,
                    "redundancy": "hot_standby",
                    "max_duration_s": 600,
                },
                headers={**cons_auth, "Idempotency-Key": uuid.uuid4().hex},
            )
            assert submitted.status_code == 202, submitted.text
            jid = submitted.json()["id"]

            async def get_job() -> dict[str, Any]:
                out: dict[str, Any] = (
                    await http.get(f"/v1/gpu/jobs/{jid}", headers=cons_auth)
                ).json()
                return out

            running = await eventually(
                get_job,
                lambda j: (j.get("latest_checkpoint") or {}).get("step", 0) >= CHECKPOINT_EVERY,
                120,
                "a first checkpoint",
            )
            assert running["epoch"] == 1 and running["provider_id"] == cheap["id"]
            standby_id = running["standby_provider_id"]
            primary = agents["a"]  # the cheaper machine is the primary
            scheduler_url = qlp_platform.url("scheduler")
            stale_before = await _stale_reports(http, scheduler_url)
            if fault == "replica":
                owned = await assignments()
                killed_replica = next(
                    k for k, parts in owned.items() if _partition(cheap["id"]) in parts
                )
                qlp_platform.procs[killed_replica].send_signal(signal.SIGKILL)
            if fault in ("kill", "replica"):
                primary.send_signal(signal.SIGKILL)
                primary.wait(10)
                kill_workloads(tmp_path / "a")  # its workload can report nothing anyway
            else:
                primary.send_signal(signal.SIGSTOP)  # the agent only: its workload runs on
            killed_at = time.monotonic()

            promoted = await eventually(
                get_job, lambda j: j["epoch"] >= 2, 60, "promotion of the standby"
            )
            assert promoted["provider_id"] == standby_id
            detected_and_promoted_s = time.monotonic() - killed_at
            if killed_replica == "failover":
                # a supervisor restarts it (the gateway routes failover reads to it)
                await qlp_platform.restart("failover")
            if fault == "partition":
                primary.send_signal(signal.SIGCONT)  # healed: it reports under epoch 1
                await eventually(
                    lambda: _stale_reports(http, scheduler_url),
                    lambda n: n > stale_before,
                    60,
                    "the returning primary's stale reports refused",
                )
            done = await eventually(
                get_job,
                lambda j: j["status"] in ("completed", "failed", "canceled"),
                150,
                "completion on the standby",
            )
            assert done["status"] == "completed", done
            assert done["epoch"] == 2 and done["provider_id"] == standby_id

            items: list[dict[str, Any]] = []
            cursor = None
            while True:
                params: dict[str, Any] = {"limit": 500, **({"cursor": cursor} if cursor else {})}
                page = (
                    await http.get(f"/v1/gpu/jobs/{jid}/logs", params=params, headers=cons_auth)
                ).json()
                items += page["items"]
                if not (cursor := page.get("next_cursor")):
                    break
            resumed = [
                int(x["line"].split("=")[1])
                for x in items
                if x["epoch"] == 2 and x["line"].startswith("resumed_from=")
            ]
            assert resumed and resumed[0] >= CHECKPOINT_EVERY
            assert resumed[0] % CHECKPOINT_EVERY == 0  # from a checkpoint, none before redone
            reference = subprocess.run(
                workload(0.0),
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, "QLP_CHECKPOINT_DIR": ""},
            ).stdout.splitlines()[-1]
            finals = [x["line"] for x in items if x["line"].startswith("final_loss=")]
            assert finals == [reference]  # bit for bit, and reported once
            # the standby had fetched the checkpoint before the loss: no download at promotion
            staged_log = (tmp_path / "agent-b.log").read_text()
            assert "job.checkpoint_staged" in staged_log
            assert "job.checkpoint_prestaged" in staged_log
            assert {x["epoch"] for x in items if x["line"].startswith("final_loss=")} == {2}

            fo = (await http.get(f"/v1/gpu/jobs/{jid}/failovers", headers=cons_auth)).json()
            assert [
                (x["outcome"], x["failed_provider_id"], x["provider_id"]) for x in fo["items"]
            ] == [("promoted", cheap["id"], standby_id)]
            assert fo["items"][0]["checkpoint_step"] == resumed[0]
            # never the lost machine (another test's provider may be the third one)
            assert fo["items"][0]["standby_provider_id"] != cheap["id"]

            # charged once: the top-up minus the job's cost, nothing left held
            cost = int(done["cost"]["amount"])
            assert cost > 0

            async def balance() -> dict[str, Any]:
                out: dict[str, Any] = (
                    await http.get("/v1/billing/balance", headers=cons_auth)
                ).json()
                return out

            bal = await eventually(
                balance,
                lambda b: int((b.get("escrow") or {}).get("amount", 1)) == 0,
                60,
                "the escrow settled",
            )
            assert int(bal["balance"]["amount"]) == 5000 - cost, (bal, cost)

        finally:
            stop_agents(list(agents.values()))
            for name in agents:
                kill_workloads(tmp_path / name)
            # leave the session's platform as it was: one failover replica, running
            if replica is not None:
                qlp_platform.remove(replica)
            if qlp_platform.procs["failover"].poll() is not None:
                await qlp_platform.restart("failover")

    # exactly one failover decision for the job, decided by the failover service
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(qlp_infra.mongodb_url)
    try:
        db = mongo["qlp_failover"]
        recs = await db["failovers"].find({"job_id": jid}).to_list(None)
        assert [(r["epoch"], r["failed_provider_id"]) for r in recs] == [(1, cheap["id"])]

        async def record() -> dict[str, Any]:
            return dict(await db["failovers"].find_one({"_id": f"{jid}:1"}) or {})

        closed = await eventually(
            record, lambda r: r.get("status") == "completed", 30, "the failover record completed"
        )
        assert closed["epoch_after"] == 2 and closed["recovery_ms"] > 0
        lost = await db["liveness"].find_one({"_id": cheap["id"]})
        assert lost is not None and lost["losses"] == 1
        # killed: still lost; partitioned and healed: heard from again (recovered)
        assert lost["state"] == ("alive" if fault == "partition" else "lost")
    finally:
        await mongo.close()
    print(
        f"{fault} -> promoted in {detected_and_promoted_s:.1f}s (killed replica: {killed_replica})"
    )
