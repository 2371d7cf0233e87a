"""The wallet-committed ledger: top-ups, escrow, marketplace sales, reversals (with
payables guarded in the payee's wallet), payouts and the ledger check."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import structlog

from qlp.marketplace.v1 import events_pb2 as mev
from qlp_billing import ledger as L
from qlp_billing.base import (
    BillingBase,
    BillingError,
    CommitResult,
    Conflict,
    NotFound,
    PaymentRequired,
)
from qlp_billing.events import bev, bt, money, out, ts
from qlp_billing.repository import safe_key
from qlp_billing.timeutil import ms
from qlp_kit.ids import new_id
from qlp_kit.money import Money

log = structlog.get_logger("qlp.billing")

Doc = dict[str, Any]


class Wallet(BillingBase):
    """Money moves, each one committed on one org's wallet."""

    async def _commit(
        self,
        txn: L.Txn,
        events: Sequence[Any] = (),
        *,
        guard: Doc | None = None,
        guard_ok: Callable[[Doc], bool] | None = None,
        extra_set: Doc | None = None,
        extra_inc: Doc | None = None,
    ) -> CommitResult:
        if await self.store.txn_exists(txn.id):
            return CommitResult("duplicate")
        now = self.clock()
        for _ in range(5):
            w = await self.store.commit_txn(
                txn, now, events, guard=guard, extra_set=extra_set, extra_inc=extra_inc
            )
            if w is not None:
                try:
                    await self.store.materialize(txn.org_id, [txn.id])
                except Exception as exc:  # the background flush finishes it
                    log.warning("ledger materialize deferred", txn=txn.id, error=str(exc))
                return CommitResult("applied", w)
            w = await self.store.get_wallet(txn.org_id) or {}
            if txn.id in (w.get("_applied") or []) or txn.id in (w.get("pending") or {}):
                return CommitResult("duplicate", w)
            if guard_ok is not None and not guard_ok(w):
                return CommitResult("guard", w)
            if L.guard_violations(w.get("bal") or {}, txn) is not None:
                return CommitResult("insufficient", w)
        raise RuntimeError(f"wallet {txn.org_id} contended; retry later")

    async def flush_ledger(self) -> int:
        n = 0
        for org in await self.store.wallets_with_pending():
            n += await self.store.materialize(org)
        return n

    async def balance(self, org_id: str) -> Doc:
        await self.store.ensure_wallet(org_id)
        w = await self.store.get_wallet(org_id) or {}
        bal = w.get("bal") or {}
        prov = -await self.store.account_balance(L.account(L.PROVIDER_PAYABLE, org_id))
        cre = -await self.store.account_balance(L.account(L.CREATOR_PAYABLE, org_id))
        return {
            "balance": {"amount": int(bal.get(L.CUSTOMER_BALANCE, 0)), "currency": "USD"},
            "escrow": {"amount": int(bal.get(L.ESCROW, 0)), "currency": "USD"},
            "receivable": {"amount": int(bal.get(L.RECEIVABLE, 0)), "currency": "USD"},
            "provider_payable": {"amount": prov, "currency": "USD"},
            "creator_payable": {"amount": cre, "currency": "USD"},
        }

    async def top_up(
        self, org_id: str, amount: Money, payment_id: str | None = None, provider: str = "prepaid"
    ) -> tuple[str, bool]:
        if amount.amount <= 0:
            raise BillingError("a top-up must be positive")
        if amount.amount > self.settings.max_topup and provider == "prepaid":
            raise BillingError("the top-up is above the limit")
        if amount.currency != "USD":
            raise BillingError("only USD is supported")
        payment_id = payment_id or new_id("pay")
        txn = L.topup(org_id, payment_id, amount, provider)
        now = self.clock()
        ev = bev.PaymentSucceeded(
            org_id=org_id,
            payment_id=payment_id,
            amount=money(amount),
            provider=provider,
            provider_payment_id=payment_id,
            succeeded_at=ts(now),
        )
        res = await self._commit(txn, [out(ev, org_id, payment_id)])
        # also on a duplicate: a retry after a failure past the commit finishes the job
        await self.pay_open_invoices(org_id)
        return payment_id, res.status == "applied"

    async def escrow_hold(
        self, org_id: str, escrow_id: str, job_id: str, amount: Money, fee_bps: int
    ) -> str:
        now = self.clock()
        key = f"escrow-hold-{safe_key(escrow_id)}"
        fee_bps = fee_bps or self.settings.gpu_platform_fee_bps

        def rejected(reason: Any, message: str) -> Any:
            return out(
                bev.EscrowRejected(
                    org_id=org_id,
                    escrow_id=escrow_id,
                    job_id=job_id,
                    amount=money(amount),
                    reason=reason,
                    message=message,
                    rejected_at=ts(now),
                ),
                org_id,
                escrow_id,
            )

        entry = {
            "escrow_id": escrow_id,
            "job_id": job_id,
            "amount": amount.amount,
            "currency": amount.currency,
            "fee_bps": fee_bps,
            "at": now,
        }
        if await self.store.get_decision(org_id, key) is not None:
            return "rejected"  # a redelivered request that was rejected before
        if amount.amount <= 0 or amount.amount > self.settings.escrow_max_hold:
            await self.store.record_decision(
                org_id,
                key,
                [
                    rejected(
                        bt.ESCROW_REJECTION_REASON_LIMIT_EXCEEDED,
                        "amount is not within the allowed range",
                    )
                ],
                detail={"escrow": {**entry, "status": "rejected"}},
            )
            return "rejected"
        txn = L.Txn(
            key,
            "escrow_hold",
            org_id,
            L.escrow_hold(org_id, escrow_id, job_id, amount).legs,
            amount.currency,
            memo=f"escrow for job {job_id}",
            refs={"escrow_id": escrow_id, "job_id": job_id},
        )
        held = bev.EscrowHeld(
            org_id=org_id,
            escrow_id=escrow_id,
            job_id=job_id,
            amount=money(amount),
            platform_fee_bps=fee_bps,
            held_at=ts(now),
        )
        res = await self._commit(
            txn,
            [out(held, org_id, escrow_id)],
            extra_set={f"escrows.{safe_key(escrow_id)}": {**entry, "status": "held"}},
        )
        if res.status == "insufficient":
            await self.store.record_decision(
                org_id,
                key,
                [
                    rejected(
                        bt.ESCROW_REJECTION_REASON_INSUFFICIENT_FUNDS,
                        "the prepaid balance does not cover the estimate",
                    )
                ],
                detail={"escrow": {**entry, "status": "rejected"}},
            )
            return "rejected"
        return "held" if res.status == "applied" else res.status

    async def escrow_settle(
        self,
        org_id: str,
        escrow_id: str,
        job_id: str,
        usage: Sequence[L.ProviderUse],
        refund_reason: Any = bt.ESCROW_REFUND_REASON_UNSPECIFIED,
    ) -> str:
        """Settle from metered minutes: providers net, platform fee, rest refunded.
        Settling twice is settling once (same transaction id, guarded status)."""
        ek = safe_key(escrow_id)
        w = await self.store.get_wallet(org_id) or {}
        entry = (w.get("escrows") or {}).get(ek)
        if entry is None:
            if await self.store.get_decision(org_id, f"escrow-hold-{ek}") is not None:
                return "rejected"  # the hold was refused: nothing to settle
            raise LookupError(f"no escrow {escrow_id} (yet)")
        if entry.get("status") != "held":
            return "duplicate"
        now = self.clock()
        held = Money(int(entry["amount"]), str(entry.get("currency", "USD")))
        s = L.compute_settlement(held, usage, int(entry.get("fee_bps", 0)))
        txn = L.escrow_settle(org_id, escrow_id, job_id, held.currency, s)
        if s.charged > 0:
            ev: Any = bev.EscrowSettled(
                org_id=org_id,
                escrow_id=escrow_id,
                job_id=job_id,
                held=money(s.held, held.currency),
                charged=money(s.charged, held.currency),
                platform_fee=money(s.platform_fee, held.currency),
                platform_fee_bps=int(entry.get("fee_bps", 0)),
                providers=[
                    bt.ProviderShare(
                        provider_id=sh.provider_id,
                        provider_org_id=sh.provider_org_id,
                        gpu_minutes=sh.gpu_minutes,
                        gross=money(sh.gross, held.currency),
                        net=money(sh.net, held.currency),
                    )
                    for sh in s.shares
                ],
                refunded=money(s.refunded, held.currency),
                settled_at=ts(now),
            )
        else:
            ev = bev.EscrowRefunded(
                org_id=org_id,
                escrow_id=escrow_id,
                job_id=job_id,
                amount=money(s.held, held.currency),
                reason=refund_reason,
                refunded_at=ts(now),
            )
        res = await self._commit(
            txn,
            [out(ev, org_id, escrow_id)],
            guard={f"escrows.{ek}.status": "held"},
            guard_ok=lambda doc: (doc.get("escrows") or {}).get(ek, {}).get("status") == "held",
            extra_set={
                f"escrows.{ek}.status": "settled" if s.charged else "refunded",
                f"escrows.{ek}.charged": s.charged,
                f"escrows.{ek}.refunded": s.refunded,
                f"escrows.{ek}.platform_fee": s.platform_fee,
                f"escrows.{ek}.settled_at": ms(now),
            },
        )
        return "settled" if res.status == "applied" else "duplicate"

    async def purchase(
        self,
        buyer_org: str,
        purchase_id: str,
        seller_org: str,
        price: Money,
        platform_fee_bps: int,
    ) -> str:
        now = self.clock()
        bps = platform_fee_bps or self.settings.marketplace_platform_fee_bps
        payment_id = new_id("pay")
        txn, _, _ = L.sale(buyer_org, purchase_id, seller_org, price, bps)
        ok = bev.PaymentSucceeded(
            org_id=buyer_org,
            payment_id=payment_id,
            amount=money(price),
            purchase_id=purchase_id,
            provider="prepaid",
            provider_payment_id=payment_id,
            succeeded_at=ts(now),
        )
        if await self.store.get_decision(buyer_org, txn.id) is not None:
            return "failed"  # a redelivered request that failed before
        res = await self._commit(txn, [out(ok, buyer_org, payment_id)])
        if res.status == "insufficient":
            failed = bev.PaymentFailed(
                org_id=buyer_org,
                payment_id=payment_id,
                amount=money(price),
                purchase_id=purchase_id,
                provider="prepaid",
                failure_code="insufficient_funds",
                failure_message="the prepaid balance does not cover the price",
                attempt=1,
                failed_at=ts(now),
            )
            await self.store.record_decision(
                buyer_org, txn.id, [out(failed, buyer_org, payment_id)]
            )
            return "failed"
        return "paid" if res.status == "applied" else res.status

    async def refund_purchase(
        self, buyer_org: str, purchase_id: str, listing_id: str, request_id: str, reason: str = ""
    ) -> str:
        """A marketplace refund: the reversal of the purchase's sale (the buyer gets the
        price back; the creator's payable and the platform fee are taken back), with
        ``PurchaseRefunded`` in the same commit. One that cannot go through (no sale
        booked, the creator's payable paid out meanwhile) moves nothing and answers
        ``PurchaseRefundFailed`` once per request. Redeliveries change nothing."""
        now = self.clock()
        decision = f"refund-{purchase_id}-{request_id}"
        if await self.store.get_decision(buyer_org, decision) is not None:
            return "failed"  # a redelivered request that failed before

        async def refuse(message: str) -> str:
            failed = mev.PurchaseRefundFailed(
                org_id=buyer_org,
                purchase_id=purchase_id,
                listing_id=listing_id,
                message=message,
                failed_at=ts(now),
            )
            await self.store.record_decision(
                buyer_org, decision, [out(failed, buyer_org, purchase_id)]
            )
            return "failed"

        await self.store.materialize(buyer_org)
        doc = await self.store.get_txn(f"sale-{purchase_id}")
        if doc is None or doc.get("org_id") != buyer_org:
            return await refuse("no sale of this purchase is booked for the buyer")
        sale = L.Txn.from_doc(doc)
        part = {L.parse_account(leg.account)[0]: abs(leg.amount) for leg in sale.legs}
        seller = str(sale.refs.get("seller_org_id", ""))
        done = mev.PurchaseRefunded(
            org_id=buyer_org,
            purchase_id=purchase_id,
            listing_id=listing_id,
            seller_org_id=seller,
            amount=money(part.get(L.CUSTOMER_BALANCE, 0), sale.currency),
            creator_amount=money(part.get(L.CREATOR_PAYABLE, 0), sale.currency),
            platform_fee=money(part.get(L.PLATFORM_REVENUE, 0), sale.currency),
            reversal_id=f"reversal-{sale.id}",
            refunded_at=ts(now),
        )
        try:
            await self.reverse(
                sale.id,
                reason or f"marketplace refund of {purchase_id}",
                events=[out(done, buyer_org, purchase_id)],
            )
        except (PaymentRequired, Conflict) as exc:
            return await refuse(str(exc))
        return "refunded"

    async def reverse(self, txn_id: str, reason: str, events: Sequence[Any] = ()) -> str:
        doc = await self.store.get_txn(txn_id)
        if doc is None:
            raise NotFound("no such transaction")
        original = L.Txn.from_doc(doc)
        try:
            rev = L.reversal(original, reason)
        except L.LedgerError as exc:
            raise Conflict(str(exc)) from None
        if await self.store.txn_committed(rev.org_id, rev.id):
            return rev.id  # reversed before: once
        # payables a reversal takes back (a creator's, a provider's) belong to other
        # orgs: each is debited first in its payee's wallet, guarded there (never below
        # zero, e.g. after a payout); then the reversal commits on the payer's wallet.
        # A refusal at either step undoes the holds; a crash between them leaves a hold
        # that the retry of the same reversal adopts (it is keyed by the reversal id).
        held: list[tuple[str, str, int]] = []
        for owner, kind, amount in L.payable_debits(rev):
            acct = L.account(kind, owner)
            got = await self.store.hold_payable(
                owner, kind, amount, rev.id, await self.store.payable_credits(acct)
            )
            if got == "insufficient":
                await self._release_holds(held, rev.id)
                raise PaymentRequired(
                    f"{acct} no longer holds {amount} (paid out?); the reversal would "
                    "take it below zero"
                )
            held.append((owner, kind, amount))
        try:
            res = await self._commit(rev, events)
        except L.LedgerError as exc:
            await self._release_holds(held, rev.id)
            raise Conflict(str(exc)) from None
        if res.status in ("insufficient", "guard"):
            await self._release_holds(held, rev.id)
            raise PaymentRequired("the balance no longer covers this reversal")
        return rev.id

    async def _release_holds(self, held: Sequence[tuple[str, str, int]], txn_id: str) -> None:
        for owner, kind, amount in held:
            await self.store.release_payable(owner, kind, amount, txn_id)

    # ======================================================================= payouts

    async def payout(self, org_id: str, kind: str) -> Doc | None:
        """Pay out the whole materialized payable of ``kind``. Exactly once: the
        wallet's payout sequence guards against a concurrent payout."""
        await self.store.ensure_wallet(org_id)
        await self.store.materialize(org_id)
        w = await self.store.get_wallet(org_id) or {}
        seq = int(w.get("payout_seq", 0))
        # what was credited minus what was ever debited (payouts, reversals: counted
        # in this wallet, so the guard below sees a concurrent reversal's hold)
        credited = await self.store.payable_credits(L.account(kind, org_id))
        debited = await self.store.payable_debits(org_id, kind)
        available = credited - debited
        if available <= 0:
            return None
        now = self.clock()
        payout_id = new_id("po")
        txn = L.payout(org_id, payout_id, kind, Money(available))
        ev = bev.PayoutIssued(
            org_id=org_id,
            payout_id=payout_id,
            payee_kind=bt.PAYEE_KIND_GPU_PROVIDER
            if kind == L.PROVIDER_PAYABLE
            else bt.PAYEE_KIND_CREATOR,
            amount=money(available),
            provider=self.settings.payment_provider,
            provider_payout_id=payout_id,
            issued_at=ts(now),
        )
        res = await self._commit(
            txn,
            [out(ev, org_id, payout_id)],
            guard={"payout_seq": seq, f"pdebit.{kind}": debited},
            guard_ok=lambda d: (
                int(d.get("payout_seq", 0)) == seq
                and int((d.get("pdebit") or {}).get(kind, 0)) == debited
            ),
            extra_inc={"payout_seq": 1, f"pdebit.{kind}": available},
        )
        if res.status != "applied":
            raise Conflict("another payout ran concurrently; try again")
        return {"payout_id": payout_id, "kind": kind, "amount": available, "issued_at": now}

    async def payouts(
        self, org_id: str, limit: int, cursor: str | None
    ) -> tuple[list[Doc], str | None]:
        docs, nxt = await self.store.page_txns(org_id, "payout", limit, cursor)
        items = []
        for d in docs:
            amount = sum(int(x["amount"]) for x in d["legs"] if int(x["amount"]) > 0)
            kind = next(
                (L.parse_account(x["account"])[0] for x in d["legs"] if int(x["amount"]) > 0), ""
            )
            items.append(
                {
                    "id": (d.get("refs") or {}).get("payout_id", d["_id"]),
                    "kind": kind,
                    "amount": {"amount": amount, "currency": d.get("currency", "USD")},
                    "status": "issued",
                    "issued_at": d.get("created_at"),
                }
            )
        return items, nxt

    async def ledger_check(self) -> L.CheckReport:
        await self.flush_ledger()
        wallets = {
            str(w["_id"]): {k: int(v) for k, v in (w.get("bal") or {}).items()}
            for w in await self.store.all_wallets()
            if not w.get("pending_n")
        }
        docs = [d async for d in await self.store.all_txns()]
        return L.check(docs, wallets)
