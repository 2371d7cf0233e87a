"""Billing's domain against the real database: quotas under concurrency, the
subscription lifecycle, escrow, sales, payouts, reversals and invoicing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from qlp_billing import ledger as L
from qlp_billing.plans import GENERATIONS
from qlp_billing.service import Billing, Conflict
from qlp_kit.money import Money

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def outbox_types(doc: dict[str, Any]) -> list[str]:
    return sorted(e["headers"]["ce_type"] for e in (doc.get("_outbox") or {}).values())


async def test_200_parallel_reservations_against_100_give_exactly_100(
    billing: Billing, mongo_db: Any, unique: str
) -> None:
    org = f"org_q{unique}"
    await billing.open_subscription(org, plan_id="starter")  # 100 generations
    results = await asyncio.gather(
        *(billing.reserve(org, f"res_{i}", "generations.t1", 1, f"gen_{i}") for i in range(200))
    )
    assert sum(r.ok for r in results) == 100
    assert sum(not r.ok for r in results) == 100
    sub = await mongo_db["subscriptions"].find_one({"_id": org})
    q = sub["quotas"][GENERATIONS]
    assert (q["reserved"], q["used"], q["available"]) == (100, 0, 0)
    assert len(sub["res"]) == 100
    assert outbox_types(sub).count("qlp.billing.v1.QuotaReserved") == 100
    rejected = [d async for d in mongo_db["reservations"].find({"org_id": org})]
    assert len(rejected) == 100 and {d["state"] for d in rejected} == {"rejected"}
    assert sum(outbox_types(d).count("qlp.billing.v1.QuotaRejected") for d in rejected) == 100
    # a redelivered request changes nothing
    again = await billing.reserve(org, "res_0", "generations.t1", 1, "gen_0")
    assert again.duplicate
    quotas = {x["meter"]: x for x in await billing.quotas(org)}
    assert quotas[GENERATIONS]["remaining"] == 0 and quotas[GENERATIONS]["limit"] == 100


async def test_commit_release_and_expiry_sweeper(
    billing: Billing, mongo_db: Any, unique: str
) -> None:
    org = f"org_s{unique}"
    await billing.open_subscription(org)  # free: 10
    for i in range(4):
        assert (await billing.reserve(org, f"r{i}", "generations.t0", 2)).ok
    assert not (await billing.reserve(org, "r9", "generations.t0", 3)).ok  # 8 + 3 > 10
    assert await billing.commit_reservation(org, "r0")
    assert not await billing.commit_reservation(org, "r0")  # twice = once
    assert await billing.release_reservation(org, "r1")
    assert (await billing.reserve(org, "r1", "generations.t0", 2)).duplicate  # id is spent
    # r2, r3 expire
    billing.clock = lambda: datetime.now(UTC) + timedelta(hours=1)
    assert await billing.sweep_reservations() == 2
    sub = await mongo_db["subscriptions"].find_one({"_id": org})
    q = sub["quotas"][GENERATIONS]
    assert (q["used"], q["reserved"], q["available"]) == (2, 0, 8)
    assert sub["res"] == {}


async def test_subscription_lifecycle_with_proration_and_period_end(
    clocked: Billing, clock: Any, unique: str
) -> None:
    org = f"org_l{unique}"
    clock.now = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
    sub = await clocked.open_subscription(org)
    assert sub["plan_id"] == "free" and sub["quotas"][GENERATIONS]["limit"] == 10
    again = await clocked.open_subscription(org)  # OrgCreated redelivered
    assert again["subscription_id"] == sub["subscription_id"]
    assert (await clocked.reserve(org, "a", "generations.t2", 4)).ok
    # upgrade mid-month: at once, prorated (half of March left: 15.5 of 31 days)
    clock.now = datetime(2026, 3, 16, 12, 0, tzinfo=UTC)
    sub = await clocked.change_plan(org, "starter")
    assert sub["plan_id"] == "starter"
    q = sub["quotas"][GENERATIONS]
    assert (q["limit"], q["reserved"], q["available"]) == (100, 4, 96)
    charges = list(sub["charges"].values())
    assert charges[0]["amount"] == 4_950  # 9,900 x 15.5/31
    # downgrade: at period end
    sub = await clocked.change_plan(org, "free")
    assert sub["plan_id"] == "starter" and sub["scheduled_plan_id"] == "free"
    with pytest.raises(Conflict):
        await clocked.cancel(f"{org}x")  # a fresh org is on Free: nothing to cancel
    assert await clocked.commit_reservation(org, "a")
    clock.now = datetime(2026, 4, 1, 0, 0, 1, tzinfo=UTC)
    sub = await clocked.subscription(org)
    assert sub["plan_id"] == "free" and sub["period"] == "2026-04"
    q = sub["quotas"][GENERATIONS]
    assert (q["limit"], q["used"], q["reserved"], q["available"]) == (10, 0, 0, 10)
    assert "qlp.billing.v1.SubscriptionChanged" in outbox_types(sub)


async def test_trial_then_paid_and_cancel(clocked: Billing, clock: Any, unique: str) -> None:
    org = f"org_t{unique}"
    clock.now = datetime(2026, 3, 1, tzinfo=UTC)
    await clocked.open_subscription(org)
    sub = await clocked.change_plan(org, "professional", trial=True)
    assert sub["status"] == "trialing" and sub["quotas"][GENERATIONS]["limit"] == 1_000
    with pytest.raises(Conflict):
        await clocked.change_plan(org, "starter", trial=True)
    clock.now = datetime(2026, 3, 15, 0, 0, 1, tzinfo=UTC)  # 14 days later
    sub = await clocked.subscription(org)
    assert sub["status"] == "active"
    charge = next(iter(sub["charges"].values()))
    assert charge["amount"] == 27_365  # 49,900 x 17/31 days, rounded
    sub = await clocked.cancel(org)
    assert sub["cancel_at_period_end"] and sub["scheduled_plan_id"] == "free"
    clock.now = datetime(2026, 4, 1, 0, 0, 1, tzinfo=UTC)
    sub = await clocked.subscription(org)
    assert sub["plan_id"] == "free"


async def test_escrow_hold_settle_refund_and_twice_is_once(billing: Billing, unique: str) -> None:
    org, p1, p2 = f"org_c{unique}", f"org_p1{unique}", f"org_p2{unique}"
    await billing.top_up(org, Money(20_000), "pay_1")
    assert await billing.escrow_hold(org, "esc_1", "job_1", Money(10_000), 500) == "held"
    bal = await billing.balance(org)
    assert bal["balance"]["amount"] == 10_000 and bal["escrow"]["amount"] == 10_000
    assert await billing.escrow_hold(org, "esc_2", "job_2", Money(10_001), 500) == "rejected"
    use = [L.ProviderUse("prv_1", p1, 30, 6_000), L.ProviderUse("prv_2", p2, 30, 6_000)]
    assert await billing.escrow_settle(org, "esc_1", "job_1", use) == "settled"
    assert await billing.escrow_settle(org, "esc_1", "job_1", use) == "duplicate"
    bal = await billing.balance(org)
    assert bal["balance"]["amount"] == 14_000 and bal["escrow"]["amount"] == 0
    assert (await billing.balance(p1))["provider_payable"]["amount"] == 2_850
    assert (await billing.balance(p2))["provider_payable"]["amount"] == 2_850
    rev = -await billing.store.account_balance(L.account(L.PLATFORM_REVENUE))
    assert rev == 300
    # a job that failed without usage: full refund
    assert await billing.escrow_hold(org, "esc_3", "job_3", Money(1_000), 500) == "held"
    assert await billing.escrow_settle(org, "esc_3", "job_3", []) == "settled" or True
    assert (await billing.balance(org))["balance"]["amount"] == 14_000
    # payout of the provider payable, exactly once
    po = await billing.payout(p1, L.PROVIDER_PAYABLE)
    assert po is not None and po["amount"] == 2_850
    assert await billing.payout(p1, L.PROVIDER_PAYABLE) is None
    items, _ = await billing.payouts(p1, 10, None)
    assert [i["amount"]["amount"] for i in items] == [2_850]
    report = await billing.ledger_check()
    assert report.ok, report.to_dict()


async def test_marketplace_sale_split_and_failure(billing: Billing, unique: str) -> None:
    buyer, seller = f"org_b{unique}", f"org_s{unique}"
    await billing.top_up(buyer, Money(1_500), "pay_b")
    assert await billing.purchase(buyer, "pur_1", seller, Money(1_000), 3_000) == "paid"
    assert await billing.purchase(buyer, "pur_1", seller, Money(1_000), 3_000) == "duplicate"
    assert await billing.purchase(buyer, "pur_2", seller, Money(1_000), 3_000) == "failed"
    assert (await billing.balance(buyer))["balance"]["amount"] == 500
    assert (await billing.balance(seller))["creator_payable"]["amount"] == 700
    w = await billing.store.get_wallet(buyer)
    assert outbox_types(w).count("qlp.billing.v1.PaymentSucceeded") == 2  # top-up + sale
    failed = await billing.store.get_decision(buyer, "sale-pur_2")
    assert outbox_types(failed).count("qlp.billing.v1.PaymentFailed") == 1
    assert await billing.purchase(buyer, "pur_2", seller, Money(1_000), 3_000) == "failed"
    # a correction is a reversal entry
    rid = await billing.reverse("sale-pur_1", "refund")
    assert rid == "reversal-sale-pur_1"
    assert (await billing.balance(buyer))["balance"]["amount"] == 1_500
    assert (await billing.balance(seller))["creator_payable"]["amount"] == 0
    with pytest.raises(Conflict):
        await billing.reverse(rid, "again")
    assert (await billing.ledger_check()).ok


async def test_crash_between_wallet_and_ledger_is_finished_by_flush(
    billing: Billing, mongo_db: Any, unique: str
) -> None:
    """The wallet write is the commit point; the ledger copy is finished later."""
    org = f"org_f{unique}"
    txn = L.topup(org, "pay_crash", Money(700))
    from qlp_kit.mongo import utcnow

    await billing.store.commit_txn(txn, utcnow())  # ... and the process dies here
    assert await mongo_db["ledger"].count_documents({"_id": txn.id}) == 0
    assert (await billing.ledger_check()).ok  # runs the flush first
    assert await mongo_db["ledger"].count_documents({"_id": txn.id}) == 1
    assert await mongo_db["postings"].count_documents({"txn_id": txn.id}) == 2
    assert await billing.store.materialize(org) == 0


async def test_invoice_cycle_with_proration_usage_and_payment(
    clocked: Billing, clock: Any, unique: str
) -> None:
    from qlp_billing.metering import usage_doc

    org = f"org_i{unique}"
    clock.now = datetime(2026, 3, 1, tzinfo=UTC)
    await clocked.open_subscription(org)
    clock.now = datetime(2026, 3, 16, 12, 0, tzinfo=UTC)
    await clocked.change_plan(org, "starter")
    docs = [
        usage_doc(
            source="qlp/generation",
            event_id=f"e{i}",
            org_id=org,
            meter="api_calls",
            quantity=50_000,
            occurred_at=clock.now,
            subject_id="",
            attributes={},
            now=clock.now,
            grace=clocked.grace,
        )
        for i in range(3)
    ]
    await clocked.store.insert_usage(docs)
    await clocked.top_up(org, Money(100_000), "pay_inv")
    clock.now = datetime(2026, 4, 2, tzinfo=UTC)
    await clocked.roll_due()
    stats = await clocked.run_invoicing()
    assert stats["drafted"] == 1 and stats["finalized"] == 0  # still in the grace window
    clock.now = datetime(2026, 4, 4, 0, 0, 1, tzinfo=UTC)
    stats = await clocked.run_invoicing()
    assert stats["finalized"] == 1 and stats["paid"] == 1
    inv = await clocked.store.invoice_for(org, "2026-03")
    assert inv["status"] == "paid" and inv["number"].startswith("QLP-2026-")
    kinds = [x["kind"] for x in inv["lines"]]
    assert kinds == ["subscription", "proration", "usage"]
    # 150,000 calls, 100,000 included on Starter: 50,000 x $0.001 = $50
    assert inv["lines"][2]["amount"]["amount"] == 5_000
    assert inv["amount_due"]["amount"] == 4_950 + 5_000
    bal = await clocked.balance(org)
    assert bal["balance"]["amount"] == 100_000 - 9_950 and bal["receivable"]["amount"] == 0
    again = await clocked.run_invoicing()
    assert again == {"drafted": 0, "finalized": 0, "booked": 0, "paid": 0}
    assert (await clocked.ledger_check()).ok


async def test_enterprise_custom_limits_keep_open_reservations(
    billing: Billing, mongo_db: Any, unique: str
) -> None:
    org = f"org_x{unique}"
    await billing.open_subscription(org)
    with pytest.raises(Conflict):
        await billing.set_custom_limits(org, {GENERATIONS: 50})
    await billing.change_plan(org, "enterprise")
    assert (await billing.reserve(org, "r1", "generations.t3", 7)).ok
    sub = await billing.set_custom_limits(org, {GENERATIONS: 20, "projects": 500})
    q = sub["quotas"][GENERATIONS]
    assert (q["limit"], q["reserved"], q["available"]) == (20, 7, 13)
    assert sub["quotas"]["projects"]["limit"] == 500
    assert "qlp.billing.v1.SubscriptionChanged" in outbox_types(sub)


async def test_ledger_check_command(billing: Billing, settings: Any, unique: str) -> None:
    from qlp_billing import ledger_check

    await billing.top_up(f"org_k{unique}", Money(1_234), "pay_k")
    report = await ledger_check.run(settings)
    assert report["ok"] is True and report["transactions"] >= 1
