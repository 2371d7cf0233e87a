"""Submit-time answers, against the real broker and database: a job the prepaid
balance (as billing's events tell it) cannot cover is refused with 402 and the
shortfall; a job no registered offer could hold is refused with 422 naming the
requirement unless it asks to wait for capacity; ``POST /v1/gpu/jobs/quote`` says
the estimate, the matching offers and the balance first."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from scheduler_testlib import agent_principal, client, consumer_principal, job_body, provider_body

from qlp.billing.v1 import events_pb2 as billing
from qlp.common.v1 import money_pb2
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


async def _publish(bootstrap: str, msgs: list[Any], org_id: str) -> None:
    """Publish billing events; the same message twice is one event delivered twice."""
    producer = Producer(bootstrap, client_id="test-billing")
    await producer.start()
    try:
        seen: dict[int, Any] = {}
        for msg in msgs:
            headers = seen.setdefault(
                id(msg), build_headers(msg, org_id=org_id, source="qlp/billing", subject=org_id)
            )
            value = msg.SerializeToString()
            await producer.send(Record(topics.BILLING.name, org_id, value, headers))
    finally:
        await producer.stop()


def _usd(amount: int) -> money_pb2.Money:
    return money_pb2.Money(amount=amount, currency="USD")


async def _quote_until(c: Any, body: dict[str, Any], pred: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    q: dict[str, Any] = {}
    while time.monotonic() < deadline:
        r = await c.post("/v1/gpu/jobs/quote", json=body)
        assert r.status_code == 200, r.text
        q = r.json()
        if pred(q):
            return q
        await asyncio.sleep(0.3)
    raise AssertionError(f"quote never matched: {q}")


async def test_balance_read_model_refuses_what_it_cannot_cover(
    escrow_app: str, qlp_infra: Any
) -> None:
    url, kafka = escrow_app, qlp_infra.kafka
    agent = client(url, agent_principal(new_id("org")))
    pid = (await agent.post("/v1/providers", json=provider_body("bal-1", price=120))).json()["id"]
    await agent.post(f"/v1/providers/{pid}/heartbeat", json={})
    org = new_id("org")
    cons = client(url, consumer_principal(org))
    body = job_body(max_duration_s=3600)  # 300 minor units per GPU-hour x 1 h
    need = S.escrow_estimate(1, 300, 3600)

    # billing never told about this org: nothing is checked, the quote says unknown
    q = (await cons.post("/v1/gpu/jobs/quote", json=body)).json()
    assert q["escrow_estimate"] == {"amount": need, "currency": "USD"}
    assert q["matching_offers"] == 1 and q["satisfiable"] is True
    assert q["available_balance"] is None and q["balance_covers"] is None

    # the org is opened (balance 0) and tops up 100: not enough
    sub = billing.SubscriptionActivated(org_id=org, subscription_id=new_id("sub"), plan_id="free")
    top = billing.PaymentSucceeded(
        org_id=org, payment_id=new_id("pay"), amount=_usd(100), provider="prepaid"
    )
    await _publish(kafka, [sub, top, top], org)  # the top-up delivered twice counts once
    q = await _quote_until(cons, body, lambda q: q["available_balance"] is not None)
    await asyncio.sleep(2)  # the redelivered top-up has surely arrived too by now
    q = (await cons.post("/v1/gpu/jobs/quote", json=body)).json()
    assert q["available_balance"] == {"amount": 100, "currency": "USD"}, q
    assert q["balance_covers"] is False
    assert q["shortfall"] == {"amount": need - 100, "currency": "USD"}

    r = await cons.post("/v1/gpu/jobs", json=body)
    assert r.status_code == 402, r.text
    p = r.json()
    assert p["shortfall"] == {"amount": need - 100, "currency": "USD"}
    assert p["required"]["amount"] == need and p["available"]["amount"] == 100
    assert "POST /v1/billing/credits" in p["detail"]
    assert (await cons.get("/v1/gpu/jobs")).json()["items"] == []  # nothing was accepted

    # a second top-up covers it: accepted, and the hold it waits for counts against
    # the balance at once (a second job of the same size is refused)
    more = billing.PaymentSucceeded(
        org_id=org, payment_id=new_id("pay"), amount=_usd(need), provider="prepaid"
    )
    await _publish(kafka, [more], org)
    await _quote_until(cons, body, lambda q: q["balance_covers"] is True)
    r = await cons.post("/v1/gpu/jobs", json=body)
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "submitted"
    r2 = await cons.post("/v1/gpu/jobs", json=body)
    assert r2.status_code == 402, r2.text
    assert r2.json()["available"]["amount"] == 100

    # another tenant's balance is its own
    other = client(url, consumer_principal(new_id("org")))
    assert (await other.post("/v1/gpu/jobs/quote", json=body)).json()["available_balance"] is None
    for c in (agent, cons, other):
        await c.aclose()


async def test_unsatisfiable_job_is_422_unless_it_waits(escrow_app: str) -> None:
    url = escrow_app
    agent = client(url, agent_principal(new_id("org")))
    pid = (await agent.post("/v1/providers", json=provider_body("uns-1", gpus=8))).json()["id"]
    await agent.post(f"/v1/providers/{pid}/heartbeat", json={})
    cons = client(url, consumer_principal(new_id("org")))

    r = await cons.post("/v1/gpu/jobs", json=job_body(gpu_count=64))
    assert r.status_code == 422, r.text
    p = r.json()
    assert p["requirement"] == "no registered machine has 64 GPUs (largest: 8)"
    assert "wait_for_capacity" in p["detail"]
    r = await cons.post("/v1/gpu/jobs", json=job_body(gpu_model="A100"))
    assert r.status_code == 422 and "GPU model 'A100'" in r.json()["detail"], r.text

    q = (await cons.post("/v1/gpu/jobs/quote", json=job_body(gpu_count=64))).json()
    assert q["satisfiable"] is False and q["matching_offers"] == 0
    assert q["unsatisfied_requirement"] == "no registered machine has 64 GPUs (largest: 8)"

    waiting = await cons.post("/v1/gpu/jobs", json=job_body(gpu_count=64, wait_for_capacity=True))
    assert waiting.status_code == 202, waiting.text
    assert waiting.json()["status"] == "submitted"
    for c in (agent, cons):
        await c.aclose()
