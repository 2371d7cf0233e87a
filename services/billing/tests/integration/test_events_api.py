"""The service as it runs (in-process app: HTTP, consumers, outbox relay) against the
real broker and database."""

from __future__ import annotations

import asyncio
import json
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from qlp.common.v1 import money_pb2
from qlp.generation.v1 import events_pb2 as gen
from qlp.identity.v1 import events_pb2 as ident
from qlp.marketplace.v1 import events_pb2 as mkt
from qlp.scheduling.v1 import events_pb2 as sched
from qlp.scheduling.v1 import types_pb2 as stypes
from qlp.usage.v1 import events_pb2 as usage
from qlp_billing import webhooks
from qlp_contracts import topics
from qlp_kit.producer import Producer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def _ts(when: datetime) -> Timestamp:
    t = Timestamp()
    t.FromDatetime(when)
    return t


async def test_org_created_opens_free_subscription_with_quotas(
    app_url: str, producer: Producer, h: Any, unique: str, app_db: Any
) -> None:
    org = f"org_n{unique}"
    msg = ident.OrgCreated(org_id=org, name="Acme", slug=f"acme-{unique}", owner_user_id="usr_1")
    rec = h.record(msg, org_id=org, key=org, topic=topics.IDENTITY.name)
    await producer.send_many([rec, rec])  # redelivered
    await h.eventually(lambda: app_db["subscriptions"].find_one({"_id": org}))
    r = await h.api(app_url, "GET", "/v1/billing/subscription", org)
    assert r.status_code == 200, r.text
    assert r.json()["plan"] == "free" and r.json()["status"] == "active"
    r = await h.api(app_url, "GET", "/v1/billing/quotas", org)
    gens = next(q for q in r.json()["items"] if q["meter"] == "generations")
    assert (gens["limit"], gens["used"], gens["remaining"]) == (10, 0, 10)

    # SubscriptionActivated went out once, carrying org and plan (the gateway uses it)
    async def activated() -> list[dict[str, str]]:
        hs = await h.read_topic(producer_bootstrap(app_url, app_db), topics.BILLING.name, org)
        return [x for x in hs if x["ce_type"] == "qlp.billing.v1.SubscriptionActivated"]

    got = await h.eventually(activated, timeout=20)
    assert len(got) == 1


def producer_bootstrap(_url: str, _db: Any) -> str:
    import os

    return os.environ["QLP_TEST_KAFKA"]


async def test_metering_is_exact_with_duplicates_replays_and_disorder(
    app_url: str, producer: Producer, h: Any, unique: str
) -> None:
    org = f"org_m{unique}"
    now = datetime.now(UTC)
    this_month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    last_month = this_month - timedelta(days=1)  # within the test's 40-day grace
    too_old = this_month - timedelta(days=70)  # beyond it: rejected, visibly
    rng = random.Random(7)
    recs = []
    expected: dict[str, dict[str, int]] = {}
    meters = ["api_calls", "generations.t1", "compute_minutes"]
    for i in range(600):
        meter = meters[i % 3]
        when = rng.choice([now - timedelta(minutes=rng.randint(0, 300)), last_month, too_old])
        qty = rng.randint(1, 9)
        msg = usage.UsageRecorded(org_id=org, meter=meter, quantity=qty, occurred_at=_ts(when))
        source = f"qlp/{rng.choice(['gateway', 'generation'])}"
        rec = h.record(
            msg, org_id=org, key=org, topic=topics.USAGE.name, source=source, event_id=f"evt_{i}"
        )
        recs.append(rec)
        if when == too_old:
            continue
        period = f"{when.year:04d}-{when.month:02d}"
        agg = expected.setdefault(f"{period}|{meter}", {"sum": 0, "count": 0})
        agg["sum"] += qty
        agg["count"] += 1
    # the same id from another source is another event
    other = usage.UsageRecorded(org_id=org, meter="api_calls", quantity=1000, occurred_at=_ts(now))
    recs.append(
        h.record(
            other,
            org_id=org,
            key=org,
            topic=topics.USAGE.name,
            source="qlp/other",
            event_id="evt_0",
        )
    )
    key = f"{now.year:04d}-{now.month:02d}|api_calls"
    expected.setdefault(key, {"sum": 0, "count": 0})
    expected[key]["sum"] += 1000
    expected[key]["count"] += 1
    shuffled = recs[:]
    rng.shuffle(shuffled)
    dupes = rng.sample(recs, 150)
    await producer.send_many(shuffled + dupes)
    await producer.send_many(recs[:200])  # a replay

    async def totals(period: str) -> dict[str, dict[str, int]]:
        r = await h.api(app_url, "GET", "/v1/billing/usage", org, params={"period": period})
        assert r.status_code == 200, r.text
        return {
            f"{period}|{m['meter']}": {"sum": m["sum"], "count": m["count"]}
            for m in r.json()["meters"]
            if m["count"]
        }

    async def done() -> bool:
        got = {}
        for p in {k.split("|")[0] for k in expected}:
            got.update(await totals(p))
        return got == expected

    await h.eventually(done, timeout=60, interval=0.3)
    await asyncio.sleep(1.5)  # late redeliveries must not change anything
    assert await done()
    r = await h.api(app_url, "GET", "/v1/billing/usage/rejected", org, params={"limit": 500})
    rejected = r.json()["items"]
    assert rejected and all(x["reason"] == "late" for x in rejected)
    n_old = sum(1 for x in recs[:600] if x) - sum(v["count"] for v in expected.values()) + 1
    assert len(rejected) == n_old


async def test_quota_saga_over_kafka(
    app_url: str, producer: Producer, h: Any, unique: str, app_db: Any
) -> None:
    org = f"org_g{unique}"
    r = await h.api(app_url, "GET", "/v1/billing/subscription", org)  # opens Free lazily
    assert r.json()["plan"] == "free"
    reqs = [
        gen.QuotaReservationRequested(
            org_id=org,
            generation_id=f"gen_{i}",
            reservation_id=f"res_{i}",
            meter="generations.t2",
            quantity=3,
        )
        for i in range(4)
    ]
    recs = [
        h.record(m, org_id=org, key=m.generation_id, topic=topics.GENERATION.name) for m in reqs
    ]
    await producer.send_many(recs + recs[:2])
    bootstrap = producer_bootstrap(app_url, app_db)

    async def answers() -> list[str] | None:
        hs = await h.read_topic(bootstrap, topics.BILLING.name, org, idle_s=0.5)
        types = [
            x["ce_type"].rsplit(".", 1)[1]
            for x in hs
            if x["ce_type"].endswith(("QuotaReserved", "QuotaRejected"))
        ]
        return types if len(types) >= 4 else None

    types = await h.eventually(answers, timeout=30)
    assert sorted(types) == ["QuotaRejected", "QuotaReserved", "QuotaReserved", "QuotaReserved"]
    done = gen.GenerationCompleted(org_id=org, generation_id="gen_0", reservation_id="res_0")
    failed = gen.GenerationFailed(org_id=org, generation_id="gen_1", reservation_id="res_1")
    await producer.send_many(
        [
            h.record(done, org_id=org, key="gen_0", topic=topics.GENERATION.name),
            h.record(failed, org_id=org, key="gen_1", topic=topics.GENERATION.name),
        ]
    )

    async def settled() -> bool:
        r = await h.api(app_url, "GET", "/v1/billing/quotas", org)
        g = next(q for q in r.json()["items"] if q["meter"] == "generations")
        return (g["used"], g["reserved"], g["remaining"]) == (3, 3, 4)

    await h.eventually(settled, timeout=30)


def _money(amount: int) -> money_pb2.Money:
    return money_pb2.Money(amount=amount, currency="USD")


async def test_escrow_hold_settle_95_5_refund_over_kafka(
    app_url: str, producer: Producer, h: Any, unique: str
) -> None:
    org, p1, p2 = f"org_e{unique}", f"org_pa{unique}", f"org_pb{unique}"
    r = await h.api(
        app_url,
        "POST",
        "/v1/billing/credits",
        org,
        json={"amount": {"amount": 50_000, "currency": "USD"}},
    )
    assert r.status_code == 201, r.text
    assert r.json()["balance"]["amount"] == 50_000
    hold = sched.EscrowHoldRequested(
        org_id=org, job_id="job_1", escrow_id="esc_1", amount=_money(20_000), platform_fee_bps=500
    )
    big = sched.EscrowHoldRequested(
        org_id=org, job_id="job_2", escrow_id="esc_2", amount=_money(60_000), platform_fee_bps=500
    )
    await producer.send_many(
        [
            h.record(hold, org_id=org, key="job_1", topic=topics.SCHEDULING.name),
            h.record(big, org_id=org, key="job_2", topic=topics.SCHEDULING.name),
        ]
    )

    async def bal() -> dict[str, Any]:
        return (await h.api(app_url, "GET", "/v1/billing/balance", org)).json()

    await h.eventually(lambda: _eq(bal, "escrow", 20_000))
    completed = sched.JobCompleted(
        org_id=org,
        job_id="job_1",
        escrow_id="esc_1",
        usage=[
            stypes.ProviderUsage(
                provider_id="prv_a",
                provider_org_id=p1,
                gpu_minutes=60,
                price_per_gpu_hour=_money(6_000),
            ),
            stypes.ProviderUsage(
                provider_id="prv_b",
                provider_org_id=p2,
                gpu_minutes=30,
                price_per_gpu_hour=_money(4_000),
            ),
        ],
        total_gpu_minutes=90,
    )
    rec = h.record(completed, org_id=org, key="job_1", topic=topics.SCHEDULING.name)
    await producer.send_many([rec, rec])
    await h.eventually(lambda: _eq(bal, "escrow", 0))
    b = await bal()
    # gross 6,000 + 2,000 = 8,000; refund 12,000; esc_2 (60,000) rejected
    assert b["balance"]["amount"] == 30_000 + 12_000
    for payee, net in ((p1, 5_700), (p2, 1_900)):
        pb = (await h.api(app_url, "GET", "/v1/billing/balance", payee)).json()
        assert pb["provider_payable"]["amount"] == net
    r = await h.api(
        app_url, "GET", "/v1/billing/admin/ledger/check", org, auth={"roles": ("platform_admin",)}
    )
    assert r.status_code == 200 and r.json()["ok"], r.text
    bootstrap = producer_bootstrap(app_url, None)
    hs = await h.read_topic(bootstrap, topics.BILLING.name, org, idle_s=0.5)
    types = [x["ce_type"].rsplit(".", 1)[1] for x in hs]
    assert types.count("EscrowHeld") == 1 and types.count("EscrowRejected") == 1
    assert types.count("EscrowSettled") == 1


async def _eq(probe: Any, field: str, amount: int) -> bool:
    return bool((await probe())[field]["amount"] == amount)


async def test_marketplace_purchase_over_kafka(
    app_url: str, producer: Producer, h: Any, unique: str
) -> None:
    buyer, seller = f"org_bu{unique}", f"org_se{unique}"
    await h.api(app_url, "POST", "/v1/billing/credits", buyer, json={"amount": {"amount": 2_000}})
    buy = mkt.PurchaseRequested(
        org_id=buyer,
        purchase_id="pur_1",
        listing_id="lst_1",
        seller_org_id=seller,
        price=_money(1_500),
        creator_share_bps=7_000,
        platform_fee_bps=3_000,
    )
    await producer.send_many(
        [h.record(buy, org_id=buyer, key="pur_1", topic=topics.MARKETPLACE.name)]
    )

    async def paid() -> bool:
        b = (await h.api(app_url, "GET", "/v1/billing/balance", seller)).json()
        return bool(b["creator_payable"]["amount"] == 1_050)

    await h.eventually(paid)
    b = (await h.api(app_url, "GET", "/v1/billing/balance", buyer)).json()
    assert b["balance"]["amount"] == 500
    r = await h.api(app_url, "POST", "/v1/billing/payouts", seller, json={"kind": "creator"})
    assert r.status_code == 201 and r.json()["amount"]["amount"] == 1_050
    r = await h.api(app_url, "GET", "/v1/billing/payouts", seller)
    assert [p["amount"]["amount"] for p in r.json()["items"]] == [1_050]


async def test_stripe_webhook_valid_tampered_stale_replayed(
    app_url: str, h: Any, unique: str
) -> None:
    import httpx

    org = f"org_w{unique}"
    body = json.dumps(
        {
            "id": f"evt_{unique}",
            "type": "payment_intent.succeeded",
            "data": {
                "object": {
                    "id": f"pi_{unique}",
                    "amount_received": 4_200,
                    "currency": "usd",
                    "metadata": {"org_id": org},
                }
            },
        }
    ).encode()
    now = int(time.time())
    async with httpx.AsyncClient(base_url=app_url) as c:
        url = "/v1/billing/webhooks/stripe"
        sig = webhooks.signature_header(body, ["whsec_test_new"], now)
        r = await c.post(url, content=body, headers={"stripe-signature": sig})
        assert r.status_code == 200 and r.json()["duplicate"] is False
        r = await c.post(url, content=body, headers={"stripe-signature": sig})  # replayed
        assert r.status_code == 200 and r.json()["duplicate"] is True
        tampered = body.replace(b"4200", b"9999")
        r = await c.post(url, content=tampered, headers={"stripe-signature": sig})
        assert r.status_code == 400 and r.json()["type"].endswith("bad-webhook-signature")
        stale = webhooks.signature_header(body, ["whsec_test_new"], now - 600)
        r = await c.post(url, content=body, headers={"stripe-signature": stale})
        assert r.status_code == 400
    b = (await h.api(app_url, "GET", "/v1/billing/balance", org)).json()
    assert b["balance"]["amount"] == 4_200


async def test_api_auth_scopes_roles_and_tenancy(app_url: str, h: Any, unique: str) -> None:
    org = f"org_a{unique}"
    r = await h.api(app_url, "GET", "/v1/billing/plans", org)
    plans = {p["id"]: p for p in r.json()["items"]}
    assert set(plans) == {"free", "starter", "professional", "enterprise"}
    assert plans["starter"]["price"] == {"amount": 9_900, "currency": "USD"}
    r = await h.api(
        app_url,
        "PUT",
        "/v1/billing/subscription",
        org,
        json={"plan": "starter"},
        auth={"roles": ("member",)},
    )
    assert r.status_code == 403
    r = await h.api(
        app_url,
        "GET",
        "/v1/billing/subscription",
        org,
        auth={"kind": "api_key", "roles": (), "scopes": ("generation:write",)},
    )
    assert r.status_code == 403
    r = await h.api(
        app_url,
        "PUT",
        "/v1/billing/subscription",
        org,
        json={"plan": "starter"},
        auth={"kind": "api_key", "roles": (), "scopes": ("billing:read",)},
    )
    assert r.status_code == 403
    # an upgrade is paid for: prepaid credits first
    r = await h.api(
        app_url, "POST", "/v1/billing/credits", org, json={"amount": {"amount": 10_000}}
    )
    assert r.status_code == 201, r.text
    r = await h.api(
        app_url,
        "PUT",
        "/v1/billing/subscription",
        org,
        json={"plan": "starter"},
        auth={"kind": "api_key", "roles": (), "scopes": ("billing:write",)},
    )
    assert r.status_code == 200 and r.json()["plan"] == "starter"
    r = await h.api(app_url, "PUT", "/v1/billing/subscription", org, json={"plan": "gold"})
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
    r = await h.api(app_url, "GET", "/v1/billing/admin/metrics", org)
    assert r.status_code == 403
    r = await h.api(
        app_url, "GET", "/v1/billing/admin/metrics", org, auth={"roles": ("platform_admin",)}
    )
    assert r.status_code == 200 and r.json()["mrr"]["amount"] >= 9_900
    r = await h.api(app_url, "GET", "/v1/billing/invoices/inv_unknown", org)
    assert r.status_code == 404
    r = await h.api(app_url, "GET", "/v1/billing/invoices/upcoming", org)
    assert r.status_code == 200 and r.json()["lines"][0]["kind"] == "subscription"
    r = await h.api(app_url, "GET", "/v1/billing/usage", org, params={"period": "2026-13"})
    assert r.status_code == 422 and r.json()["detail"].startswith("query parameter period: ")
    r = await h.api(app_url, "POST", "/v1/billing/credits", org, json={"amount": {"amount": -5}})
    assert r.status_code == 422
    async with __import__("httpx").AsyncClient(base_url=app_url) as c:
        assert (await c.get("/v1/billing/subscription")).status_code == 401


async def test_zz_no_query_crossed_a_tenant(app_url: str, app_db: Any) -> None:
    """Every query the app made during these tests named the tenant (or is a declared
    cross-tenant background job or report)."""
    import httpx

    from qlp_testing.flows import tenant_guard_violations

    async with httpx.AsyncClient(base_url=app_url) as c:
        text = (await c.get("/metrics")).text
    hits = tenant_guard_violations(text, app_db.name)
    assert not hits, hits
