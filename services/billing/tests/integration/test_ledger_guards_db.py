"""The real store guards every account the ledger cannot let go negative: a
reversal cannot take back a payable that was paid out (creator, provider), nor race
a payout past zero; voiding an invoice and paying it are mutually exclusive."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qlp_billing import ledger as L
from qlp_billing.service import Billing, BillingError, PaymentRequired
from qlp_kit.ids import new_id
from qlp_kit.money import Money
from qlp_kit.mongo import utcnow

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


async def _payable(billing: Billing, org: str, kind: str) -> int:
    return -await billing.store.account_balance(L.account(kind, org))


async def test_sale_reversal_after_the_creator_was_paid_out_is_refused(
    billing: Billing, unique: str
) -> None:
    buyer, seller = f"org_gb{unique}", f"org_gs{unique}"
    await billing.top_up(buyer, Money(1_500), f"pay_{unique}")
    assert await billing.purchase(buyer, "pur_1", seller, Money(1_000), 3_000) == "paid"
    po = await billing.payout(seller, L.CREATOR_PAYABLE)
    assert po is not None and po["amount"] == 700
    with pytest.raises(PaymentRequired):
        await billing.reverse("sale-pur_1", "refund")
    assert await _payable(billing, seller, L.CREATOR_PAYABLE) == 0  # not -700
    assert (await billing.balance(buyer))["balance"]["amount"] == 500
    report = await billing.ledger_check()
    assert report.ok, report.to_dict()
    # a later sale can be reversed: the refused one left no hold behind
    assert await billing.purchase(buyer, "pur_2", seller, Money(500), 3_000) == "paid"
    assert await billing.reverse("sale-pur_2", "refund") == "reversal-sale-pur_2"
    assert await billing.reverse("sale-pur_2", "refund") == "reversal-sale-pur_2"  # once
    assert await _payable(billing, seller, L.CREATOR_PAYABLE) == 0
    assert await billing.payout(seller, L.CREATOR_PAYABLE) is None
    assert (await billing.ledger_check()).ok


async def test_settlement_reversal_after_a_provider_payout_is_refused(
    billing: Billing, unique: str
) -> None:
    org, prov = f"org_gc{unique}", f"org_gp{unique}"
    await billing.top_up(org, Money(10_000), f"pay_{unique}")
    assert await billing.escrow_hold(org, "esc_1", "job_1", Money(6_000), 500) == "held"
    use = [L.ProviderUse("prv_1", prov, 60, 6_000)]
    assert await billing.escrow_settle(org, "esc_1", "job_1", use) == "settled"
    assert await _payable(billing, prov, L.PROVIDER_PAYABLE) == 5_700
    assert (await billing.payout(prov, L.PROVIDER_PAYABLE)) is not None
    with pytest.raises(PaymentRequired):
        await billing.reverse("escrow-settle-esc_1", "disputed")
    assert await _payable(billing, prov, L.PROVIDER_PAYABLE) == 0
    assert (await billing.ledger_check()).ok


async def test_payout_racing_a_reversal_never_goes_negative(billing: Billing, unique: str) -> None:
    buyer, seller = f"org_rb{unique}", f"org_rs{unique}"
    await billing.top_up(buyer, Money(100_000), f"pay_{unique}")
    for i in range(8):
        pid = f"pur_{i}"
        assert await billing.purchase(buyer, pid, seller, Money(1_000), 3_000) == "paid"
        await billing.flush_ledger()
        results = await asyncio.gather(
            billing.payout(seller, L.CREATOR_PAYABLE),
            billing.reverse(f"sale-{pid}", "refund"),
            return_exceptions=True,
        )
        for r in results:
            assert not isinstance(r, Exception) or isinstance(r, BillingError), r
        await billing.flush_ledger()
        assert await _payable(billing, seller, L.CREATOR_PAYABLE) >= 0
        # drain what is left so each round starts from zero
        with contextlib.suppress(BillingError):
            await billing.payout(seller, L.CREATOR_PAYABLE)
        assert await _payable(billing, seller, L.CREATOR_PAYABLE) == 0
    report = await billing.ledger_check()
    assert report.ok, report.to_dict()


async def _booked_invoice(billing: Billing, org: str, due: int) -> dict[str, Any]:
    inv = {
        "_id": new_id("inv"),
        "org_id": org,
        "subscription_id": "sub_x",
        "period": "2026-01",
        "period_start": utcnow(),
        "period_end": utcnow(),
        "status": "finalized",
        "amount_due": {"amount": due, "currency": "USD"},
        "booked": 0,
        "payment_attempts": 0,
    }
    assert await billing.store.insert_invoice(inv)
    assert await billing._book(inv)
    doc = await billing.store.get_invoice(org, inv["_id"])
    assert doc is not None
    return doc


async def test_void_after_a_payment_moved_the_money_is_refused(
    billing: Billing, unique: str
) -> None:
    """The payment's money moved but its status write has not happened yet: the void
    must not also win (its reversal finds no receivable)."""
    org = f"org_vp{unique}"
    inv = await _booked_invoice(billing, org, 2_500)
    await billing.top_up(org, Money(10_000), f"pay_{unique}")  # pays it: top-up pays
    await billing.store.update_invoice(  # ... rewind to "money moved, status not yet"
        org, inv["_id"], {}, {"$set": {"status": "finalized"}}
    )
    with pytest.raises(BillingError):
        await billing.void_invoice(org, inv["_id"])
    assert await billing.pay_open_invoices(org) == 1  # the payment finishes
    doc = await billing.store.get_invoice(org, inv["_id"])
    assert doc is not None and doc["status"] == "paid"
    bal = await billing.balance(org)
    assert (bal["balance"]["amount"], bal["receivable"]["amount"]) == (7_500, 0)
    assert (await billing.ledger_check()).ok


async def test_void_and_pay_racing_exactly_one_wins(billing: Billing, unique: str) -> None:
    for i in range(6):
        org = f"org_vr{i}{unique}"
        inv = await _booked_invoice(billing, org, 2_500)
        await billing.store.ensure_wallet(org)
        await billing._commit(L.topup(org, f"pay_{i}{unique}", Money(10_000)))  # no auto-pay
        results = await asyncio.gather(
            billing.void_invoice(org, inv["_id"]),
            billing.pay_open_invoices(org),
            return_exceptions=True,
        )
        for r in results:
            assert not isinstance(r, Exception) or isinstance(r, BillingError), r
        await billing.resume_claims()
        doc = await billing.store.get_invoice(org, inv["_id"])
        assert doc is not None
        bal = await billing.balance(org)
        assert doc["status"] in ("paid", "void", "finalized"), doc["status"]
        if doc["status"] == "paid":
            assert (bal["balance"]["amount"], bal["receivable"]["amount"]) == (7_500, 0)
        elif doc["status"] == "void":
            assert (bal["balance"]["amount"], bal["receivable"]["amount"]) == (10_000, 0)
        else:  # both backed off: nothing moved
            assert (bal["balance"]["amount"], bal["receivable"]["amount"]) == (10_000, 2_500)
    assert (await billing.ledger_check()).ok


# ---- random sequences against the real store ----------------------------------------

_ORGS = ["a", "b"]
_op = st.one_of(
    st.tuples(st.just("topup"), st.sampled_from(_ORGS), st.integers(1, 5_000)),
    st.tuples(
        st.just("sale"), st.sampled_from(_ORGS), st.sampled_from(_ORGS), st.integers(1, 3_000)
    ),
    st.tuples(st.just("payout"), st.sampled_from(_ORGS)),
    st.tuples(st.just("reverse"), st.integers(0, 20)),
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(_op, min_size=1, max_size=14))
async def test_random_sequences_never_take_an_account_below_zero(
    billing: Billing, ops: list[tuple[Any, ...]]
) -> None:
    run = new_id("run")[-8:].lower()
    org = {o: f"org_h{o}{run}" for o in _ORGS}
    txns: list[str] = []
    for n, o in enumerate(ops):
        try:
            if o[0] == "topup":
                await billing.top_up(org[o[1]], Money(o[2]), f"pay_{run}_{n}")
                txns.append(f"topup-pay_{run}_{n}")
            elif o[0] == "sale":  # topped up first, so the sale goes through
                pid = f"pur_{run}_{n}"
                await billing.top_up(org[o[1]], Money(o[3]), f"pay_{run}_{n}")
                await billing.purchase(org[o[1]], pid, org[o[2]], Money(o[3]), 3_000)
                txns.append(f"sale-{pid}")
            elif o[0] == "payout":
                await billing.payout(org[o[1]], L.CREATOR_PAYABLE)
            elif o[0] == "reverse" and txns:
                await billing.reverse(txns[o[1] % len(txns)], "random")
        except BillingError:
            pass  # a refusal is an answer; the invariants below must hold either way
    report = await billing.ledger_check()
    assert report.ok, (ops, report.to_dict())
    for o in _ORGS:
        for kind in (L.CREATOR_PAYABLE, L.CUSTOMER_BALANCE):
            assert -await billing.store.account_balance(L.account(kind, org[o])) >= 0


async def test_a_claim_in_progress_shows_as_its_origin(billing: Billing, unique: str) -> None:
    org = f"org_vs{unique}"
    inv = await _booked_invoice(billing, org, 1_000)
    await billing.store.update_invoice(org, inv["_id"], {}, {"$set": {"status": "paying"}})
    items, _ = await billing.invoices(org, 10, None)
    assert [i["status"] for i in items] == ["finalized"]
    assert (await billing.invoice(org, inv["_id"]))["status"] == "finalized"
    with pytest.raises(BillingError):  # a payment in progress cannot be voided
        await billing.void_invoice(org, inv["_id"])
