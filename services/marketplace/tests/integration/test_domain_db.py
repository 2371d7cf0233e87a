"""The marketplace's domain layer against the real database (no broker: events are
handed to the handlers directly, as the consumers would): the refund window, a refund
billing refuses, redelivered payments, failed payments, reviews, the idempotency key."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from qlp_kit.auth import Principal
from qlp_kit.mongo import Mongo
from qlp_marketplace.repository import INDEXES, Store
from qlp_marketplace.service import Conflict, Forbidden, Marketplace, NotFound
from qlp_marketplace.settings import MarketplaceSettings
from qlp_testing.infra import TestInfra
from qlp_testing.templates import tiny_pack

pytestmark = pytest.mark.integration


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 12, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def env(qlp_infra: TestInfra, mongo_db: Any) -> AsyncIterator[tuple[Marketplace, Clock]]:
    mongo = Mongo(qlp_infra.mongodb_url, mongo_db.name)
    await mongo.ensure_indexes(INDEXES)
    # no billing answers here: a purchase answers at once (pending)
    settings = MarketplaceSettings(
        kafka_bootstrap_servers="127.0.0.1:9", mongodb_url=qlp_infra.mongodb_url, payment_wait_s=0
    )
    clock = Clock()
    try:
        yield Marketplace(Store(mongo), settings, None, clock), clock
    finally:
        await mongo.close()


def who(org: str) -> Principal:
    return Principal(org_id=org, subject=f"usr_{org}", roles=["owner"], user_id=f"usr_{org}")


async def published(m: Marketplace, seller: Principal, price: int, kind: str = "template") -> str:
    doc = await m.create_listing(
        seller,
        {
            "kind": kind,
            "title": "Domain test listing",
            "summary": "a listing for the domain tests",
            "description": "Long enough to pass the automatic review.",
            "category": "api",
            "license": "MIT",
            "tags": ["python"],
            "price": {"amount": price, "currency": "USD"},
        },
    )
    # a template's artifact is a pattern pack
    data = tiny_pack() if kind == "template" else b"zip"
    await m.add_version(
        seller, doc["_id"], "1.0.0", "first", data=data, content_type="application/zip"
    )
    await m.publish(seller, doc["_id"])
    return str(doc["_id"])


async def test_payment_redelivered_grants_and_counts_once(
    env: tuple[Marketplace, Clock], unique: str
) -> None:
    m, _ = env
    seller, buyer = who(f"org_s{unique}"), who(f"org_b{unique}")
    lid = await published(m, seller, 2000, kind="model")
    p, created = await m.purchase(buyer, lid, "k1")
    assert created and p["status"] == "pending" and p["platform_fee_bps"] == 200
    again, created = await m.purchase(buyer, lid, "k1")
    assert not created and again["_id"] == p["_id"]
    with pytest.raises(Conflict):
        await m.purchase(buyer, lid, None)  # in flight
    for _ in range(3):
        await m.on_payment_succeeded(buyer.org_id, p["_id"], "pay_1")
    got = await m.purchase_of(buyer.org_id, p["_id"])
    assert got["status"] == "paid" and got["entitlement_id"]
    e = await m.earnings(seller.org_id)
    assert (e["sales"], e["earnings"], e["platform_fees"]) == (1, 1960, 40)
    assert (await m.own_listing(seller.org_id, lid))["sales"] == 1
    with pytest.raises(Conflict):
        await m.purchase(buyer, lid, "k2")  # held


async def test_failed_payment_grants_nothing_and_frees_the_listing(
    env: tuple[Marketplace, Clock], unique: str
) -> None:
    m, _ = env
    seller, buyer = who(f"org_s{unique}"), who(f"org_b{unique}")
    lid = await published(m, seller, 900)
    p, _ = await m.purchase(buyer, lid, None)
    await m.on_payment_failed(buyer.org_id, p["_id"], "pay_x", "insufficient_funds", "")
    got = await m.purchase_of(buyer.org_id, p["_id"])
    assert got["status"] == "failed" and got["failure_reason"].startswith("insufficient_funds")
    with pytest.raises(Forbidden):
        await m.download(buyer.org_id, lid, None)
    # a late success for a failed purchase changes nothing
    await m.on_payment_succeeded(buyer.org_id, p["_id"], "pay_late")
    assert (await m.purchase_of(buyer.org_id, p["_id"]))["status"] == "failed"
    retry, created = await m.purchase(buyer, lid, None)
    assert created and retry["_id"] != p["_id"]


async def test_refund_window_and_a_refused_refund(
    env: tuple[Marketplace, Clock], unique: str
) -> None:
    m, clock = env
    seller, buyer = who(f"org_s{unique}"), who(f"org_b{unique}")
    lid = await published(m, seller, 1000)
    p, _ = await m.purchase(buyer, lid, None)
    await m.on_payment_succeeded(buyer.org_id, p["_id"], "pay_1")
    # billing refuses (the creator was paid out): the entitlement comes back
    r = await m.refund(buyer, p["_id"], "")
    assert r["status"] == "refund_pending"
    with pytest.raises(Forbidden):
        await m.download(buyer.org_id, lid, None)
    await m.on_refund_failed(buyer.org_id, p["_id"], "paid out")
    got = await m.purchase_of(buyer.org_id, p["_id"])
    assert got["status"] == "paid" and got["refund_error"] == "paid out"
    assert (await m.download(buyer.org_id, lid, None)).data == tiny_pack()  # type: ignore[union-attr]
    # past 14 days: refused
    clock.now += timedelta(days=14, minutes=1)
    with pytest.raises(Conflict, match="window"):
        await m.refund(buyer, p["_id"], "")
    e = await m.earnings(seller.org_id)
    assert (e["earnings"], e["refunds"]) == (700, 0)


async def test_reviews_buyers_only_one_per_org(env: tuple[Marketplace, Clock], unique: str) -> None:
    m, _ = env
    seller, buyer, other = who(f"org_s{unique}"), who(f"org_b{unique}"), who(f"org_o{unique}")
    lid = await published(m, seller, 0)  # free: a purchase is the claim
    with pytest.raises(Forbidden):
        await m.post_review(other, lid, 5, "", "")
    with pytest.raises(Forbidden):
        await m.post_review(seller, lid, 5, "", "")
    p, _ = await m.purchase(buyer, lid, None)
    assert p["status"] == "paid"  # free: granted at once
    r1, created = await m.post_review(buyer, lid, 5, "great", "")
    r2, created2 = await m.post_review(buyer, lid, 3, "ok", "")
    assert created and not created2 and r1["_id"] == r2["_id"]
    listing, items, _ = await m.reviews(other.org_id, lid, 10, None)
    assert len(items) == 1 and listing["rating_count"] == 1 and listing["rating_sum"] == 3
    reply = await m.reply(seller, lid, r1["_id"], "thanks")
    assert reply["reply"]["body"] == "thanks"
    with pytest.raises(NotFound):
        await m.reply(other, lid, r1["_id"], "not mine")
    with pytest.raises(Conflict):
        await m.refund(buyer, p["_id"], "")  # nothing to refund on a free listing
