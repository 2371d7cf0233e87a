"""Escrow round trip over the real broker: submit -> EscrowHoldRequested on the
scheduling topic; billing's EscrowHeld (published here, twice: redelivery) -> the job
is placed once; EscrowRejected -> failed with the reason; completion -> JobCompleted
with GPU minutes per provider and UsageRecorded (meter gpu_minutes)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from google.protobuf.timestamp_pb2 import Timestamp
from pymongo import AsyncMongoClient
from scheduler_testlib import agent_principal, client, consumer_principal, job_body, provider_body

from qlp.billing.v1 import events_pb2 as billing
from qlp.billing.v1 import types_pb2 as billing_types
from qlp.common.v1 import money_pb2
from qlp.scheduling.v1 import events_pb2 as sched_ev
from qlp.usage.v1 import events_pb2 as usage_ev
from qlp_contracts import topics
from qlp_infra.topics import provision
from qlp_kit.events import build_headers
from qlp_kit.ids import new_id
from qlp_kit.producer import Producer, Record
from qlp_scheduler import service as S
from qlp_scheduler.main import service
from qlp_testing.services import running_app

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.fixture
async def escrow_app(scheduler_settings: Any, qlp_infra: Any) -> AsyncIterator[str]:
    await provision(qlp_infra.kafka)
    settings = scheduler_settings.model_copy(update={"escrow_required": True})
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(qlp_infra.mongodb_url)
    try:
        async with running_app(service, settings) as url:
            yield url
        await mongo.drop_database(settings.mongodb_database)
    finally:
        await mongo.close()


async def _find_event(
    bootstrap: str, topic: str, ce_type: str, pred: Callable[[Any], bool], timeout: float = 30
) -> list[Any]:
    """Messages of ``ce_type`` on ``topic`` that satisfy ``pred`` (read from the start)."""
    cls = {
        "qlp.scheduling.v1.EscrowHoldRequested": sched_ev.EscrowHoldRequested,
        "qlp.scheduling.v1.JobPlaced": sched_ev.JobPlaced,
        "qlp.scheduling.v1.JobCompleted": sched_ev.JobCompleted,
        "qlp.scheduling.v1.JobFailed": sched_ev.JobFailed,
        "qlp.usage.v1.UsageRecorded": usage_ev.UsageRecorded,
    }[ce_type]
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    found: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500, max_records=2000)
            for recs in batch.values():
                for r in recs:
                    headers = {k: v.decode() for k, v in r.headers}
                    if headers.get("ce_type") != ce_type:
                        continue
                    msg = cls()
                    msg.ParseFromString(r.value)
                    if pred(msg):
                        found.append(msg)
            if found and not batch:
                return found
    finally:
        await consumer.stop()
    return found


async def _publish(bootstrap: str, msg: Any, org_id: str, key: str) -> None:
    producer = Producer(bootstrap, client_id="test-billing")
    await producer.start()
    try:
        headers = build_headers(msg, org_id=org_id, source="qlp/billing", subject=key)
        await producer.send(Record(topics.BILLING.name, key, msg.SerializeToString(), headers))
    finally:
        await producer.stop()


async def _wait_status(c: Any, job_id: str, status: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        job = (await c.get(f"/v1/gpu/jobs/{job_id}")).json()
        if job["status"] == status:
            return job
        await asyncio.sleep(0.2)
    raise AssertionError(f"job never reached {status}: {job}")


async def test_escrow_round_trip_places_settles_and_rejects(
    escrow_app: str, qlp_infra: Any
) -> None:
    url, kafka = escrow_app, qlp_infra.kafka
    prov_org = new_id("org")
    agent = client(url, agent_principal(prov_org))
    pid = (await agent.post("/v1/providers", json=provider_body("esc-1", price=120))).json()["id"]
    await agent.post(f"/v1/providers/{pid}/heartbeat", json={})
    org = new_id("org")
    cons = client(url, consumer_principal(org))

    job = (await cons.post("/v1/gpu/jobs", json=job_body(max_duration_s=1800))).json()
    assert job["status"] == "submitted" and job["provider_id"] is None
    expected = S.escrow_estimate(1, 300, 1800)
    assert job["escrow_amount"] == {"amount": expected, "currency": "USD"}
    holds = await _find_event(
        kafka,
        topics.SCHEDULING.name,
        "qlp.scheduling.v1.EscrowHoldRequested",
        lambda m: m.job_id == job["id"],
    )
    assert len(holds) == 1
    hold = holds[0]
    assert hold.escrow_id == job["escrow_id"] and hold.amount.amount == expected
    assert hold.platform_fee_bps == 500 and hold.org_id == org

    held = billing.EscrowHeld(
        org_id=org,
        escrow_id=hold.escrow_id,
        job_id=job["id"],
        amount=money_pb2.Money(amount=expected, currency="USD"),
        platform_fee_bps=500,
        held_at=Timestamp(seconds=int(time.time())),
    )
    await _publish(kafka, held, org, job["id"])
    await _publish(kafka, held, org, job["id"])  # redelivered: changes nothing
    placed = await _wait_status(cons, job["id"], "placed")
    assert placed["provider_id"] == pid and placed["epoch"] == 1

    # run to completion through the agent API
    base = f"/v1/providers/{pid}/jobs/{job['id']}"
    assert (
        await agent.post(f"{base}/status", json={"epoch": 1, "status": "running"})
    ).status_code == 200
    r = await agent.post(f"{base}/status", json={"epoch": 1, "status": "completed", "exit_code": 0})
    assert r.status_code == 200
    done = await _wait_status(cons, job["id"], "completed")
    assert done["gpu_minutes"] == 1 and done["cost"]["amount"] == S.cost_minor(1, 120)

    placed_evs = await _find_event(
        kafka,
        topics.SCHEDULING.name,
        "qlp.scheduling.v1.JobPlaced",
        lambda m: m.job_id == job["id"],
    )
    assert len(placed_evs) == 1 and placed_evs[0].escrow_id == hold.escrow_id
    (completed,) = await _find_event(
        kafka,
        topics.SCHEDULING.name,
        "qlp.scheduling.v1.JobCompleted",
        lambda m: m.job_id == job["id"],
    )
    assert completed.escrow_id == hold.escrow_id and completed.total_gpu_minutes == 1
    assert [(u.provider_id, u.provider_org_id, u.gpu_minutes) for u in completed.usage] == [
        (pid, prov_org, 1)
    ]
    assert completed.usage[0].price_per_gpu_hour.amount == 120
    (used,) = await _find_event(
        kafka,
        topics.USAGE.name,
        "qlp.usage.v1.UsageRecorded",
        lambda m: m.subject_id == job["id"],
    )
    assert used.meter == "gpu_minutes" and used.quantity == 1 and used.org_id == org

    # rejected escrow -> failed with the reason, never placed
    job2 = (await cons.post("/v1/gpu/jobs", json=job_body())).json()
    (hold2,) = await _find_event(
        kafka,
        topics.SCHEDULING.name,
        "qlp.scheduling.v1.EscrowHoldRequested",
        lambda m: m.job_id == job2["id"],
    )
    rejected = billing.EscrowRejected(
        org_id=org,
        escrow_id=hold2.escrow_id,
        job_id=job2["id"],
        amount=hold2.amount,
        reason=billing_types.ESCROW_REJECTION_REASON_INSUFFICIENT_FUNDS,
        message="balance too low",
    )
    await _publish(kafka, rejected, org, job2["id"])
    failed = await _wait_status(cons, job2["id"], "failed")
    assert failed["provider_id"] is None
    assert failed["failure"]["reason"] == "escrow_rejected"
    assert "insufficient_funds" in failed["failure"]["message"]
    # an EscrowHeld arriving after the rejection changes nothing
    late = billing.EscrowHeld(org_id=org, escrow_id=hold2.escrow_id, job_id=job2["id"])
    await _publish(kafka, late, org, job2["id"])
    await asyncio.sleep(1.0)
    assert (await cons.get(f"/v1/gpu/jobs/{job2['id']}")).json()["status"] == "failed"
    await agent.aclose()
    await cons.aclose()
