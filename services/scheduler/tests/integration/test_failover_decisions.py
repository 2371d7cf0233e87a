"""The scheduler's side of failover against the real broker and database: one
liveness event per heartbeat (coalesced or not), and a failover decision promotes the
standby once (epoch + 1 in one conditional write), fencing the old primary."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from prometheus_client import REGISTRY
from scheduler_testlib import (
    App,
    agent_principal,
    client,
    consumer_principal,
    job_body,
    provider_body,
)

from qlp.failover.v1 import events_pb2 as fev
from qlp_contracts import topics
from qlp_infra.topics import provision
from qlp_kit.events import build_headers, decode_record
from qlp_kit.ids import new_id
from qlp_kit.producer import Producer, Record
from qlp_scheduler.engine import Scheduler
from qlp_scheduler.failover import on_failover_started
from qlp_scheduler.repository import Repository

pytestmark = pytest.mark.integration


async def _register(url: str, fp: str, price: int) -> tuple[httpx.AsyncClient, str]:
    c = client(url, agent_principal(new_id("org")))
    r = await c.post("/v1/providers", json=provider_body(fp, price=price))
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    r = await c.post(f"/v1/providers/{pid}/heartbeat", json={"gpus": [], "running": []})
    assert r.status_code == 200, r.text
    return c, pid


async def _alive_events(kafka: str, provider_id: str, want: int) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topics.HEARTBEATS.name,
        bootstrap_servers=kafka,
        group_id=f"it-alive-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    got: list[Any] = []
    try:
        end = time.monotonic() + 60
        while len(got) < want and time.monotonic() < end:
            batches = await consumer.getmany(timeout_ms=500)
            for tp, recs in batches.items():
                for r in recs:
                    e = decode_record(r.topic, tp.partition, r.offset, r.key, r.value, r.headers)
                    if e.message.provider_id == provider_id:
                        assert e.key == provider_id
                        got.append(e.message)
    finally:
        await consumer.stop()
    return got


async def test_every_heartbeat_is_a_liveness_event_even_when_coalesced(
    sched_app: App, qlp_infra: Any
) -> None:
    await provision(qlp_infra.kafka)
    c, pid = await _register(sched_app.url, f"fp-{uuid.uuid4().hex[:6]}", 150)
    for _ in range(4):  # unchanged: the provider document is not rewritten
        r = await c.post(f"/v1/providers/{pid}/heartbeat", json={"gpus": [], "running": []})
        assert r.status_code == 200
    running = [{"job_id": "job_x", "epoch": 3, "status": "running"}]
    await c.post(f"/v1/providers/{pid}/heartbeat", json={"gpus": [], "running": running})
    got = await _alive_events(qlp_infra.kafka, pid, 6)
    assert len(got) == 6  # the registration heartbeat, four coalesced ones, one with a lease
    assert [(x.job_id, x.epoch, x.status) for x in got[-1].leases] == [("job_x", 3, "running")]
    await c.aclose()


def _stale_total() -> float:
    return REGISTRY.get_sample_value("qlp_scheduler_stale_epoch_total") or 0.0


async def test_a_failover_decision_promotes_once_and_fences_the_old_primary(
    sched_app: App, qlp_infra: Any
) -> None:
    await provision(qlp_infra.kafka)
    a, pa = await _register(sched_app.url, f"fp-{uuid.uuid4().hex[:6]}", 150)
    b, pb = await _register(sched_app.url, f"fp-{uuid.uuid4().hex[:6]}", 180)
    agents = {pa: a, pb: b}
    await asyncio.sleep(sched_app.settings.offer_refresh_s * 2)
    cons = client(sched_app.url, consumer_principal(new_id("org")))
    r = await cons.post("/v1/gpu/jobs", json=job_body(redundancy="hot_standby"))
    assert r.status_code == 202, r.text
    job = r.json()
    jid, primary, standby = job["id"], job["provider_id"], job["standby_provider_id"]
    pc = agents[primary]
    base = f"/v1/providers/{primary}/jobs/{jid}"
    r = await pc.post(f"{base}/status", json={"epoch": 1, "status": "running", "step": 2})
    assert r.status_code == 200, r.text

    # the decision arrives through the broker, twice (two replicas, or a redelivery)
    producer = Producer(qlp_infra.kafka, client_id="it-failover")
    await producer.start()
    try:
        msg = fev.FailoverStarted(
            org_id="org_p",
            job_id=jid,
            failover_id=f"{jid}:1",
            failed_provider_id=primary,
            old_epoch=1,
            reason="primary_lost",
        )
        rec = Record(
            topics.FAILOVER.name,
            jid,
            msg.SerializeToString(),
            build_headers(msg, org_id="org_p", source="failover", subject=jid),
        )
        await producer.send_many([rec, rec])
    finally:
        await producer.stop()
    end = time.monotonic() + 60
    while (view := (await cons.get(f"/v1/gpu/jobs/{jid}")).json())["epoch"] < 2:
        assert time.monotonic() < end, view
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)  # the duplicate has had its chance
    view = (await cons.get(f"/v1/gpu/jobs/{jid}")).json()
    assert view["epoch"] == 2 and view["provider_id"] == standby
    assert view["standby_provider_id"] is None  # never the lost machine; no third one
    fo = (await cons.get(f"/v1/gpu/jobs/{jid}/failovers")).json()
    assert [
        (x["failover_id"], x["outcome"], x["failed_provider_id"], x["provider_id"], x["epoch"])
        for x in fo["items"]
    ] == [(f"{jid}:1", "promoted", primary, standby, 2)]
    assert fo["items"][0]["steps_redone"] == 2  # step 2 reported, no checkpoint yet
    # the loss lowers the lost provider's reliability
    lost = (await pc.get(f"/v1/providers/{primary}")).json()
    assert 0 < lost["reliability"] < 1
    # another org sees neither the job nor its failovers
    other = client(sched_app.url, consumer_principal(new_id("org")))
    assert (await other.get(f"/v1/gpu/jobs/{jid}/failovers")).status_code == 404
    await other.aclose()

    # a later duplicate is a no-op, whatever path it takes
    sched = Scheduler(Repository(sched_app.db), sched_app.settings)
    assert await on_failover_started(sched, jid, 1, primary) == "already_done"
    assert (await sched.promote_standby(jid, expected_epoch=1))["epoch"] == 2

    # the old primary's late reports are refused and counted
    before = _stale_total()
    late = await pc.post(f"{base}/status", json={"epoch": 1, "status": "completed"})
    assert late.status_code == 409 and late.json()["type"].endswith("/stale-epoch")
    assert _stale_total() == before + 1
    assert (await cons.get(f"/v1/gpu/jobs/{jid}")).json()["status"] != "completed"
    for x in (a, b, cons):
        await x.aclose()


async def _running_job(
    sched_app: App, cons: httpx.AsyncClient, agents: dict[str, httpx.AsyncClient], **over: Any
) -> dict[str, Any]:
    r = await cons.post("/v1/gpu/jobs", json=job_body(**over))
    assert r.status_code == 202, r.text
    job = r.json()
    base = f"/v1/providers/{job['provider_id']}/jobs/{job['id']}"
    pc = agents[job["provider_id"]]
    r = await pc.post(f"{base}/status", json={"epoch": 1, "status": "running", "step": 7})
    assert r.status_code == 200, r.text
    r = await pc.post(f"{base}/checkpoints", params={"epoch": 1, "step": 5}, content=b"ck-5")
    assert r.status_code == 201, r.text
    return job


async def test_a_lost_primary_with_a_standby_gets_a_new_standby_on_a_third_machine(
    sched_app: App, qlp_infra: Any
) -> None:
    await provision(qlp_infra.kafka)
    regs = [
        await _register(sched_app.url, f"fp-{uuid.uuid4().hex[:6]}", p) for p in (150, 180, 200)
    ]
    agents = {pid: c for c, pid in regs}
    await asyncio.sleep(sched_app.settings.offer_refresh_s * 2)
    cons = client(sched_app.url, consumer_principal(new_id("org")))
    job = await _running_job(sched_app, cons, agents, redundancy="hot_standby")
    jid, primary, standby = job["id"], job["provider_id"], job["standby_provider_id"]
    (third,) = set(agents) - {primary, standby}
    # the checkpoint is staged on the standby as it lands (delivered once)
    sb = agents[standby]
    items = (await sb.get(f"/v1/providers/{standby}/assignments")).json()["items"]
    staged = [x for x in items if x["action"] == "stage"]
    latest = (await cons.get(f"/v1/gpu/jobs/{jid}")).json()["latest_checkpoint"]
    assert [(x["checkpoint_id"], x["step"], x["epoch"]) for x in staged] == [
        (latest["checkpoint_id"], 5, 1)
    ]
    hb = {"gpus": [], "running": [{"job_id": jid, "epoch": 1, "status": "standby"}]}
    assert (await sb.post(f"/v1/providers/{standby}/heartbeat", json=hb)).status_code == 200
    again = (await sb.get(f"/v1/providers/{standby}/assignments")).json()["items"]
    assert [x for x in again if x["action"] == "stage"] == []
    sched = Scheduler(Repository(sched_app.db), sched_app.settings)
    assert await on_failover_started(sched, jid, 1, primary, f"{jid}:1") == "promoted"
    start = [
        x
        for x in (await sb.get(f"/v1/providers/{standby}/assignments")).json()["items"]
        if x["action"] == "start"
    ]
    assert [(x["epoch"], x["resume"], x["checkpoint_id"]) for x in start] == [
        (2, True, latest["checkpoint_id"])
    ]
    view = (await cons.get(f"/v1/gpu/jobs/{jid}")).json()
    assert (view["epoch"], view["provider_id"], view["standby_provider_id"]) == (2, standby, third)
    (fo,) = (await cons.get(f"/v1/gpu/jobs/{jid}/failovers")).json()["items"]
    assert (fo["checkpoint_step"], fo["steps_redone"], fo["standby_provider_id"]) == (5, 2, third)
    items = (await agents[third].get(f"/v1/providers/{third}/assignments")).json()["items"]
    assert [(x["action"], x["epoch"]) for x in items] == [("prepare", 2)]
    # a second decision for the same epoch changes nothing
    assert await on_failover_started(sched, jid, 1, primary, f"{jid}:1") == "already_done"
    for x in (*agents.values(), cons):
        await x.aclose()


async def test_a_lost_primary_without_standby_is_placed_again_from_its_checkpoint(
    sched_app: App, qlp_infra: Any
) -> None:
    await provision(qlp_infra.kafka)
    regs = [await _register(sched_app.url, f"fp-{uuid.uuid4().hex[:6]}", p) for p in (150, 180)]
    agents = {pid: c for c, pid in regs}
    await asyncio.sleep(sched_app.settings.offer_refresh_s * 2)
    cons = client(sched_app.url, consumer_principal(new_id("org")))
    job = await _running_job(sched_app, cons, agents)
    jid, lost = job["id"], job["provider_id"]
    (other,) = set(agents) - {lost}
    sched = Scheduler(Repository(sched_app.db), sched_app.settings)
    assert await on_failover_started(sched, jid, 1, lost, f"{jid}:1") == "requeued"
    view = (await cons.get(f"/v1/gpu/jobs/{jid}")).json()
    assert view["status"] == "placed" and view["provider_id"] == other and view["epoch"] == 2
    (fo,) = (await cons.get(f"/v1/gpu/jobs/{jid}/failovers")).json()["items"]
    assert (fo["outcome"], fo["failed_provider_id"], fo["checkpoint_step"]) == ("requeued", lost, 5)
    starts = (await agents[other].get(f"/v1/providers/{other}/assignments")).json()["items"]
    assert [(x["action"], x["epoch"], x["resume"]) for x in starts] == [("start", 2, True)]
    r = await agents[other].get(
        f"/v1/providers/{other}/jobs/{jid}/checkpoints/latest", params={"epoch": 2}
    )
    assert r.status_code == 200 and r.content == b"ck-5"
    # the lost one is told to stop and its late reports are refused
    old = (await agents[lost].get(f"/v1/providers/{lost}/assignments")).json()["items"]
    assert [(x["action"], x["epoch"]) for x in old] == [("cancel", 1)]
    late = await agents[lost].post(
        f"/v1/providers/{lost}/jobs/{jid}/status", json={"epoch": 1, "status": "completed"}
    )
    assert late.status_code == 409 and late.json()["type"].endswith("/stale-epoch")
    assert await on_failover_started(sched, jid, 1, lost, f"{jid}:1") == "already_done"
    for x in (*agents.values(), cons):
        await x.aclose()


async def test_a_lost_standby_is_replaced_and_the_primary_keeps_its_epoch(
    sched_app: App, qlp_infra: Any
) -> None:
    await provision(qlp_infra.kafka)
    regs = [
        await _register(sched_app.url, f"fp-{uuid.uuid4().hex[:6]}", p) for p in (150, 180, 200)
    ]
    agents = {pid: c for c, pid in regs}
    await asyncio.sleep(sched_app.settings.offer_refresh_s * 2)
    cons = client(sched_app.url, consumer_principal(new_id("org")))
    job = await _running_job(sched_app, cons, agents, redundancy="hot_standby")
    jid, primary, standby = job["id"], job["provider_id"], job["standby_provider_id"]
    (third,) = set(agents) - {primary, standby}
    sched = Scheduler(Repository(sched_app.db), sched_app.settings)
    assert await on_failover_started(sched, jid, 1, standby, f"{jid}:1") == "standby_replaced"
    view = (await cons.get(f"/v1/gpu/jobs/{jid}")).json()
    assert (view["epoch"], view["provider_id"], view["standby_provider_id"]) == (1, primary, third)
    assert view["status"] == "running"
    (fo,) = (await cons.get(f"/v1/gpu/jobs/{jid}/failovers")).json()["items"]
    assert (fo["outcome"], fo["failed_role"], fo["steps_redone"]) == (
        "standby_replaced",
        "standby",
        0,
    )
    items = (await agents[third].get(f"/v1/providers/{third}/assignments")).json()["items"]
    assert [(x["action"], x["epoch"]) for x in items] == [("prepare", 1)]
    old = (await agents[standby].get(f"/v1/providers/{standby}/assignments")).json()["items"]
    assert [x["action"] for x in old] == ["cancel"]  # its pending prepare is never delivered
    for x in (*agents.values(), cons):
        await x.aclose()


async def test_a_decision_for_an_unknown_job_or_provider_changes_nothing(
    sched_app: App, qlp_infra: Any
) -> None:
    await provision(qlp_infra.kafka)
    a, pa = await _register(sched_app.url, f"fp-{uuid.uuid4().hex[:6]}", 150)
    await asyncio.sleep(sched_app.settings.offer_refresh_s * 2)
    cons = client(sched_app.url, consumer_principal(new_id("org")))
    job = (await cons.post("/v1/gpu/jobs", json=job_body())).json()
    sched = Scheduler(Repository(sched_app.db), sched_app.settings)
    assert await on_failover_started(sched, job["id"], 1, "prv_other") == "not_placed"
    assert await on_failover_started(sched, job["id"], 2, pa) == "already_done"
    assert await on_failover_started(sched, "job_nope", 1, pa) == "unknown_job"
    view = (await cons.get(f"/v1/gpu/jobs/{job['id']}")).json()
    assert (view["epoch"], view["provider_id"]) == (1, pa)
    assert (await cons.get(f"/v1/gpu/jobs/{job['id']}/failovers")).json()["items"] == []
    for x in (a, cons):
        await x.aclose()


async def test_a_provider_declared_lost_gets_no_new_work_until_it_recovers(
    sched_app: App, qlp_infra: Any
) -> None:
    await provision(qlp_infra.kafka)
    a, pa = await _register(sched_app.url, f"fp-{uuid.uuid4().hex[:6]}", 150)
    b, pb = await _register(sched_app.url, f"fp-{uuid.uuid4().hex[:6]}", 180)
    await asyncio.sleep(sched_app.settings.offer_refresh_s * 2)
    producer = Producer(qlp_infra.kafka, client_id="it-verdicts")
    await producer.start()

    async def verdict(msg: Any) -> None:
        rec = Record(
            topics.FAILOVER.name,
            pa,
            msg.SerializeToString(),
            build_headers(msg, org_id="org_p", source="failover", subject=pa),
        )
        await producer.send_many([rec])

    try:
        now_ms = int(time.time() * 1000)
        dead = fev.ProviderDead(org_id="org_p", provider_id=pa)
        dead.declared_at.FromMilliseconds(now_ms)
        await verdict(dead)
        end = time.monotonic() + 60
        while (await a.get(f"/v1/providers/{pa}")).json()["liveness"] != "lost":
            assert time.monotonic() < end
            await asyncio.sleep(0.1)
        cons = client(sched_app.url, consumer_principal(new_id("org")))
        job = (await cons.post("/v1/gpu/jobs", json=job_body())).json()
        assert job["provider_id"] == pb  # the cheaper one is lost
        # a redelivered older verdict does not undo a newer one
        back = fev.ProviderRecovered(org_id="org_p", provider_id=pa)
        back.recovered_at.FromMilliseconds(now_ms + 1000)
        await verdict(back)
        await verdict(dead)
        end = time.monotonic() + 60
        while (await a.get(f"/v1/providers/{pa}")).json()["liveness"] != "alive":
            assert time.monotonic() < end
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        assert (await a.get(f"/v1/providers/{pa}")).json()["liveness"] == "alive"
        job2 = (await cons.post("/v1/gpu/jobs", json=job_body())).json()
        assert job2["provider_id"] == pa
        await cons.aclose()
    finally:
        await producer.stop()
        for x in (a, b):
            await x.aclose()
