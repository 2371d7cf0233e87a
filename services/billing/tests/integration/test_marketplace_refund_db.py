"""Marketplace refunds in billing: the sale's reversal (buyer credited, creator payable
and platform fee taken back) with PurchaseRefunded in the same commit; once per
purchase; a refund the creator's payable no longer covers moves nothing and answers
PurchaseRefundFailed; the ledger balances after each."""

from __future__ import annotations

import base64
from typing import Any

from qlp.marketplace.v1 import events_pb2 as mev
from qlp_billing import ledger as L
from qlp_billing.service import Billing
from qlp_kit.money import Money


def _outbox(doc: dict[str, Any] | None, ce_type: str) -> list[Any]:
    out = []
    for e in ((doc or {}).get("_outbox") or {}).values():
        if e["headers"]["ce_type"] == ce_type:
            out.append(base64.b64decode(e["data"]))
    return out


async def test_refund_reverses_the_split_once(billing: Billing, unique: str) -> None:
    buyer, seller = f"org_rb{unique}", f"org_rs{unique}"
    await billing.top_up(buyer, Money(5_000), f"pay_{unique}")
    assert await billing.purchase(buyer, f"pur_a{unique}", seller, Money(1_000), 3_000) == "paid"
    # a model: 98 % to the creator
    assert await billing.purchase(buyer, f"pur_m{unique}", seller, Money(1_000), 200) == "paid"
    assert (await billing.balance(seller))["creator_payable"]["amount"] == 700 + 980
    assert (await billing.balance(buyer))["balance"]["amount"] == 3_000

    got = await billing.refund_purchase(buyer, f"pur_a{unique}", "lst_1", "evt_1", "changed mind")
    assert got == "refunded"
    assert (await billing.balance(buyer))["balance"]["amount"] == 4_000
    assert (await billing.balance(seller))["creator_payable"]["amount"] == 980
    assert (await billing.ledger_check()).ok
    rev = await billing.store.get_txn(f"reversal-sale-pur_a{unique}")
    assert rev is not None and rev["reverses"] == f"sale-pur_a{unique}"

    # the event rode with the reversal's commit on the buyer's wallet
    wallet = await billing.store.get_wallet(buyer)
    raw = _outbox(wallet, "qlp.marketplace.v1.PurchaseRefunded")
    # (the relay is not running in this test, so the staged event is still there)
    assert len(raw) == 1
    ev = mev.PurchaseRefunded.FromString(raw[0])
    assert (ev.amount.amount, ev.creator_amount.amount, ev.platform_fee.amount) == (1_000, 700, 300)
    assert ev.seller_org_id == seller and ev.reversal_id == f"reversal-sale-pur_a{unique}"

    # redelivered, or asked again: nothing moves a second time
    assert await billing.refund_purchase(buyer, f"pur_a{unique}", "lst_1", "evt_1") == "refunded"
    assert await billing.refund_purchase(buyer, f"pur_a{unique}", "lst_1", "evt_2") == "refunded"
    assert (await billing.balance(buyer))["balance"]["amount"] == 4_000
    wallet = await billing.store.get_wallet(buyer)
    assert len(_outbox(wallet, "qlp.marketplace.v1.PurchaseRefunded")) == 1
    assert (await billing.ledger_check()).ok


async def test_refund_after_the_payout_fails_and_moves_nothing(
    billing: Billing, unique: str
) -> None:
    buyer, seller = f"org_pb{unique}", f"org_ps{unique}"
    await billing.top_up(buyer, Money(2_000), f"pay_{unique}")
    assert await billing.purchase(buyer, f"pur_p{unique}", seller, Money(1_000), 3_000) == "paid"
    assert await billing.payout(seller, L.CREATOR_PAYABLE) is not None

    got = await billing.refund_purchase(buyer, f"pur_p{unique}", "lst_2", "evt_9")
    assert got == "failed"
    assert (await billing.balance(buyer))["balance"]["amount"] == 1_000
    decision = await billing.store.get_decision(buyer, f"refund-pur_p{unique}-evt_9")
    raw = _outbox(decision, "qlp.marketplace.v1.PurchaseRefundFailed")
    assert len(raw) == 1 and "below zero" in mev.PurchaseRefundFailed.FromString(raw[0]).message
    # the same request again: failed once, not twice
    assert await billing.refund_purchase(buyer, f"pur_p{unique}", "lst_2", "evt_9") == "failed"
    assert (await billing.ledger_check()).ok


async def test_refund_of_an_unknown_or_foreign_purchase_fails(
    billing: Billing, unique: str
) -> None:
    buyer, other, seller = f"org_ub{unique}", f"org_uo{unique}", f"org_us{unique}"
    await billing.top_up(buyer, Money(2_000), f"pay_{unique}")
    assert await billing.purchase(buyer, f"pur_u{unique}", seller, Money(500), 3_000) == "paid"
    assert await billing.refund_purchase(other, f"pur_u{unique}", "lst", "evt_a") == "failed"
    assert await billing.refund_purchase(buyer, f"pur_none{unique}", "lst", "evt_b") == "failed"
    assert (await billing.balance(buyer))["balance"]["amount"] == 1_500
