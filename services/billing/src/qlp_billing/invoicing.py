"""Invoicing: lines (subscription, proration, usage, late usage, prepaid purchases),
drafts, finalization, booking, payment and void, and the HTML rendering."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import structlog

from qlp_billing import ledger as L
from qlp_billing import metering as M
from qlp_billing import pricing
from qlp_billing.base import BillingBase, BillingError, Conflict, NotFound
from qlp_billing.events import bev, bt, money, out, ts
from qlp_billing.invoice_docs import bill_to, invoice_html, issuer
from qlp_billing.plans import Plan, get_plan
from qlp_billing.timeutil import dt, ms
from qlp_kit.ids import new_id
from qlp_kit.money import Money

log = structlog.get_logger("qlp.billing")

__all__ = ["Invoicing", "invoice_html"]

Doc = dict[str, Any]


class Invoicing(BillingBase):
    """Invoices from drafts to paid or void; every step idempotent and claimed."""

    @staticmethod
    def _usage_plan(sub: Doc, period: str) -> Plan:
        info = (sub.get("periods") or {}).get(period) or {}
        plan_at_start = get_plan(str(info.get("plan_id") or sub["plan_id"]))
        # usage is priced by the plan in effect after the period's last upgrade
        return get_plan(str(info.get("usage_plan_id") or plan_at_start.id))

    async def _late_lines(
        self, sub: Doc, period: str, invoice_id: str | None
    ) -> list[pricing.Line]:
        """Usage of earlier, already invoiced periods that arrived after their invoice:
        billed on this one, each event once. Finalizing (``invoice_id``): the events
        this invoice tagged; a preview: those no invoice has tagged yet."""
        org_id = sub["org_id"]
        if invoice_id is None:
            untagged = set(await self.store.usage_periods(org_id, {"$exists": False}))
            periods = untagged & set(await self.store.closed_periods(org_id, "9999-99"))
        else:
            periods = set(await self.store.usage_periods(org_id, invoice_id)) - {period}
        lines: list[pricing.Line] = []
        for q in sorted(periods):
            if invoice_id is None:
                before = await self.store.aggregates(org_id, q, {"$exists": True})
                after = await self.store.aggregates(org_id, q)
            else:
                before = await self.store.aggregates(
                    org_id, q, {"$exists": True, "$ne": invoice_id}
                )
                after = await self.store.aggregates(org_id, q, {"$exists": True})
            lines += pricing.late_usage_lines(q, self._usage_plan(sub, q), before, after)
        return lines

    async def _lines(
        self, sub: Doc, period: str, invoice_id: str | None = None
    ) -> list[pricing.Line]:
        """An invoice's lines. ``invoice_id`` (finalizing): usage is what the invoice
        tagged as billed by it; otherwise (a draft, the upcoming invoice) all of it."""
        info = (sub.get("periods") or {}).get(period) or {}
        plan_at_start = get_plan(str(info.get("plan_id") or sub["plan_id"]))
        usage_plan = self._usage_plan(sub, period)
        charges = sorted(
            (c for c in (sub.get("charges") or {}).values() if c.get("period") == period),
            key=lambda c: (dt(c["at"]), int(c.get("seq", 0))),
        )
        aggs = await self.store.aggregates(sub["org_id"], period, invoice_id)
        late = await self._late_lines(sub, period, invoice_id)
        start, end = M.period_bounds(period)
        txns = await self.store.org_txns(sub["org_id"], start, end, ["sale", "escrow_settle"])
        return pricing.invoice_lines(
            plan_at_start=plan_at_start,
            trial=bool(info.get("trial")),
            plan_for_usage=usage_plan,
            charges=charges,
            aggs=aggs,
            ledger_txns=txns,
            late=late,
        )

    def _invoice_view(self, inv: Doc) -> Doc:
        view = {k: v for k, v in inv.items() if not k.startswith("_outbox")}
        # a claim in progress shows as the state it started from
        if view.get("status") == "paying":
            view["status"] = "finalized"
        elif view.get("status") == "finalizing":
            view["status"] = "draft"
        elif view.get("status") == "voiding":
            view["status"] = view.get("voiding_from") or "finalized"
        return view

    async def invoices(
        self, org_id: str, limit: int, cursor: str | None
    ) -> tuple[list[Doc], str | None]:
        """A page of the org's invoices as shown (a claim in progress as its origin)."""
        docs, nxt = await self.store.page_invoices(org_id, limit, cursor)
        return [self._invoice_view(d) for d in docs], nxt

    async def upcoming_invoice(self, org_id: str) -> Doc:
        sub = await self.subscription(org_id)
        lines = await self._lines(sub, sub["period"])
        total, due = pricing.totals(lines)
        start, end = M.period_bounds(sub["period"])
        return {
            "id": None,
            "org_id": org_id,
            "period": sub["period"],
            "period_start": start,
            "period_end": end,
            "status": "upcoming",
            "lines": [x.to_dict() for x in lines],
            "subtotal": {"amount": total, "currency": "USD"},
            "tax": {"amount": 0, "currency": "USD"},
            "total": {"amount": total, "currency": "USD"},
            "amount_due": {"amount": due, "currency": "USD"},
            "bill_to": bill_to(sub, org_id),
            "issuer": issuer(self.settings),
        }

    async def run_invoicing(self, now: datetime | None = None) -> dict[str, int]:
        """Drafts for ended periods; finalized once the grace window has passed (usage is
        then frozen: later events are rejected); booked to the ledger; paid from the
        prepaid balance when it covers the amount due. Every step is idempotent."""
        now = now or self.clock()
        stats = {"drafted": 0, "finalized": 0, "booked": 0, "paid": 0}
        for sub in await self.store.all_subscriptions():
            for period, info in (sub.get("periods") or {}).items():
                end = dt(info["end"])
                if end > now:
                    continue
                if await self.store.invoice_for(sub["org_id"], period) is None:
                    doc = {
                        "_id": new_id("inv"),
                        "org_id": sub["org_id"],
                        "subscription_id": sub["subscription_id"],
                        "period": period,
                        "period_start": dt(info["start"]),
                        "period_end": end,
                        "status": "draft",
                        "booked": 0,
                        "payment_attempts": 0,
                        "created_at": now,
                    }
                    if await self.store.insert_invoice(doc):
                        stats["drafted"] += 1
        for inv in await self.store.invoices_in("draft"):
            if dt(inv["period_end"]) + self.grace <= now and await self._finalize(inv, now):
                stats["finalized"] += 1
        for inv in await self.store.invoices_unbooked():
            if await self._book(inv):
                stats["booked"] += 1
            if await self._try_pay(inv["org_id"], inv["_id"]):
                stats["paid"] += 1
        await self.resume_claims(now)
        return stats

    async def _finalize(self, inv: Doc, now: datetime, *, takeover: bool = False) -> bool:
        """Issue a draft: claim it (draft -> finalizing), tag the usage it bills (its
        period's, and late usage of earlier issued periods that no invoice billed
        yet), price exactly the tagged usage, and issue it under the claim. Usage
        arriving after the tagging is billed by the next invoice, never lost."""
        org_id, invoice_id, period = inv["org_id"], inv["_id"], inv["period"]
        sub = await self.store.get_subscription(org_id, light=True)
        if sub is None:
            return False
        token = new_id("clm")
        guard: Doc = (
            {"status": "finalizing", "claim": inv.get("claim")} if takeover else {"status": "draft"}
        )
        claimed = await self.store.update_invoice(
            org_id,
            invoice_id,
            guard,
            {"$set": {"status": "finalizing", "claim": token, "claimed_at": ms(now)}},
        )
        if claimed is None:
            return False
        await self.store.tag_usage(org_id, [period], invoice_id)
        await self.store.tag_usage(
            org_id, await self.store.closed_periods(org_id, period), invoice_id
        )
        lines = await self._lines(sub, period, invoice_id)
        total, due = pricing.totals(lines)
        number = f"QLP-{now.year}-{await self.store.next_number(f'invoice-{now.year}'):06d}"
        due_at = now + timedelta(days=self.settings.invoice_due_days)
        ev = bev.InvoiceIssued(
            org_id=inv["org_id"],
            invoice_id=inv["_id"],
            number=number,
            subscription_id=inv.get("subscription_id", ""),
            period_start=ts(dt(inv["period_start"])),
            period_end=ts(dt(inv["period_end"])),
            lines=[
                bt.InvoiceLine(
                    kind=_line_kind(x.kind),
                    description=x.description,
                    meter=x.meter,
                    quantity=x.quantity,
                    amount=money(x.amount),
                )
                for x in lines
            ],
            subtotal=money(total),
            tax=money(0),
            total=money(total),
            issued_at=ts(now),
            due_at=ts(due_at),
        )
        status = "finalized" if due > 0 else "paid"
        res = await self.store.update_invoice(
            inv["org_id"],
            inv["_id"],
            {"status": "finalizing", "claim": token},
            {
                "$set": {
                    "status": status,
                    "number": number,
                    "lines": [x.to_dict() for x in lines],
                    "subtotal": {"amount": total, "currency": "USD"},
                    "tax": {"amount": 0, "currency": "USD"},
                    "total": {"amount": total, "currency": "USD"},
                    "amount_due": {"amount": due, "currency": "USD"},
                    "issued_at": ms(now),
                    "due_at": ms(due_at),
                    # who it is addressed to and who issued it, as of issue
                    "bill_to": bill_to(sub, org_id),
                    "issuer": issuer(self.settings),
                    "booked": 0 if due > 0 else 1,
                    "paid_at": ms(now) if due <= 0 else None,
                }
            },
            [out(ev, inv["org_id"], inv["_id"])],
        )
        return res is not None

    async def _book(self, inv: Doc) -> bool:
        org_id, invoice_id = inv["org_id"], inv["_id"]
        due = int((inv.get("amount_due") or {}).get("amount", 0))
        if due > 0:
            await self._commit(L.invoice_booking(org_id, invoice_id, Money(due)))
        res = await self.store.update_invoice(
            org_id, invoice_id, {"booked": 0, "status": "finalized"}, {"$set": {"booked": 1}}
        )
        if res is None and due > 0:
            cur = await self.store.get_invoice(org_id, invoice_id)
            if cur is not None and cur.get("status") in ("voiding", "void"):
                # voided while this booking was in flight: take it back
                await self._reverse_booking(cur)
        return res is not None

    # An invoice's money moves only under a claim on the invoice: a payment moves it
    # finalized -> paying -> paid, a void (draft|finalized) -> voiding -> void. The
    # claims are guarded single-document writes, so a payment and a void of the same
    # invoice cannot both happen; one that fails midway hands the invoice back, and
    # one that crashed is finished by the invoicing sweep (every money move is
    # idempotent by its transaction id).
    CLAIM_STALE = timedelta(minutes=1)

    async def _try_pay(self, org_id: str, invoice_id: str, *, resume: bool = False) -> bool:
        inv = await self.store.get_invoice(org_id, invoice_id)
        if inv is None or not inv.get("booked"):
            return False
        now = self.clock()
        if resume:
            if inv.get("status") != "paying":
                return False
        else:
            if inv.get("status") != "finalized":
                return False
            claimed = await self.store.update_invoice(
                org_id,
                invoice_id,
                {"status": "finalized", "booked": 1},
                {"$set": {"status": "paying", "claimed_at": ms(now)}},
            )
            if claimed is None:
                return False  # paid, voided or being voided meanwhile
        due = int((inv.get("amount_due") or {}).get("amount", 0))
        txn = L.invoice_payment(org_id, invoice_id, Money(due))
        res = await self._commit(txn)
        if res.status in ("applied", "duplicate"):
            pid = new_id("pay")
            ev = bev.PaymentSucceeded(
                org_id=org_id,
                payment_id=pid,
                amount=money(due),
                invoice_id=invoice_id,
                provider="prepaid",
                provider_payment_id=pid,
                succeeded_at=ts(now),
            )
            done = await self.store.update_invoice(
                org_id,
                invoice_id,
                {"status": "paying"},
                {"$set": {"status": "paid", "paid_at": ms(now)}},
                [out(ev, org_id, invoice_id)],
            )
            return done is not None
        # not paid: hand the invoice back (a void may proceed, a top-up retries)
        update: Doc = {"$set": {"status": "finalized"}}
        events = []
        if res.status == "insufficient" and not inv.get("payment_attempts"):
            events.append(
                out(
                    bev.PaymentFailed(
                        org_id=org_id,
                        payment_id=new_id("pay"),
                        amount=money(due),
                        invoice_id=invoice_id,
                        provider="prepaid",
                        failure_code="insufficient_funds",
                        failure_message="top up credits to pay this invoice",
                        attempt=1,
                        failed_at=ts(now),
                    ),
                    org_id,
                    invoice_id,
                )
            )
            update["$inc"] = {"payment_attempts": 1}
        await self.store.update_invoice(org_id, invoice_id, {"status": "paying"}, update, events)
        return False

    async def pay_open_invoices(self, org_id: str) -> int:
        n = 0
        for inv in await self.store.open_invoices(org_id):
            if await self._try_pay(org_id, inv["_id"]):
                n += 1
        return n

    async def void_invoice(self, org_id: str, invoice_id: str) -> Doc:
        inv = await self.store.get_invoice(org_id, invoice_id)
        if inv is None:
            raise NotFound("invoice not found")
        status = str(inv.get("status"))
        if status in ("paid", "void"):
            raise Conflict(f"a {status} invoice cannot be voided")
        if status not in ("draft", "finalized"):
            raise Conflict("a payment or a void of this invoice is in progress; try again")
        claimed = await self.store.update_invoice(
            org_id,
            invoice_id,
            {"status": status},
            {"$set": {"status": "voiding", "voiding_from": status, "claimed_at": ms(self.clock())}},
        )
        if claimed is None:
            raise Conflict("the invoice changed concurrently (paid?); try again")
        return self._invoice_view(await self._finish_void(claimed))

    async def _reverse_booking(self, inv: Doc) -> str:
        """Reverse the invoice's booking if it was committed: ``none``, ``reversed``
        or ``refused`` (the receivable no longer holds it)."""
        org_id, invoice_id = inv["org_id"], inv["_id"]
        due = int((inv.get("amount_due") or {}).get("amount", 0))
        booking = L.invoice_booking(org_id, invoice_id, Money(due)) if due > 0 else None
        if booking is None or not await self.store.txn_committed(org_id, booking.id):
            return "none"
        res = await self._commit(L.reversal(booking, "invoice voided"))
        return "reversed" if res.status in ("applied", "duplicate") else "refused"

    async def _finish_void(self, inv: Doc) -> Doc:
        org_id, invoice_id = inv["org_id"], inv["_id"]
        if await self._reverse_booking(inv) == "refused":
            await self.store.update_invoice(
                org_id,
                invoice_id,
                {"status": "voiding"},
                {"$set": {"status": inv.get("voiding_from") or "finalized"}},
            )
            raise Conflict("the invoice was paid meanwhile (its receivable is gone); not voided")
        res = await self.store.update_invoice(
            org_id,
            invoice_id,
            {"status": "voiding"},
            {"$set": {"status": "void", "voided_at": ms(self.clock())}},
        )
        if res is None:
            raise Conflict("the invoice changed concurrently; try again")
        return res

    async def resume_claims(self, now: datetime | None = None) -> int:
        """Finish payments and voids that stopped midway (a crash after the claim)."""
        now = now or self.clock()
        n = 0
        for status in ("finalizing", "paying", "voiding"):
            for inv in await self.store.invoices_in(status):
                if dt(inv.get("claimed_at") or 0) + self.CLAIM_STALE > now:
                    continue  # still in progress, probably
                try:
                    if status == "finalizing":
                        await self._finalize(inv, now, takeover=True)
                    elif status == "paying":
                        await self._try_pay(inv["org_id"], inv["_id"], resume=True)
                    else:
                        await self._finish_void(inv)
                    n += 1
                except BillingError as exc:
                    log.warning("claim not finished", invoice=inv["_id"], error=str(exc))
        return n

    async def invoice(self, org_id: str, invoice_id: str) -> Doc:
        inv = await self.store.get_invoice(org_id, invoice_id)
        if inv is None:
            raise NotFound("invoice not found")
        sub = None
        if inv.get("status") in ("draft", "finalizing") or not inv.get("bill_to"):
            sub = await self.store.get_subscription(org_id, light=True)
        if inv.get("status") in ("draft", "finalizing") and sub is not None:
            lines = await self._lines(sub, inv["period"])
            total, due = pricing.totals(lines)
            inv = {
                **inv,
                "lines": [x.to_dict() for x in lines],
                "subtotal": {"amount": total, "currency": "USD"},
                "total": {"amount": total, "currency": "USD"},
                "amount_due": {"amount": due, "currency": "USD"},
            }
        if not inv.get("bill_to"):
            # a draft, or issued before invoices carried them: as of now
            inv = {**inv, "bill_to": bill_to(sub, org_id), "issuer": issuer(self.settings)}
        return self._invoice_view(inv)


def _line_kind(kind: str) -> Any:
    return {
        pricing.SUBSCRIPTION: bt.INVOICE_LINE_KIND_SUBSCRIPTION,
        pricing.PRORATION: bt.INVOICE_LINE_KIND_PRORATION,
        pricing.USAGE: bt.INVOICE_LINE_KIND_USAGE,
        pricing.CREDIT: bt.INVOICE_LINE_KIND_CREDIT,
        pricing.MARKETPLACE: bt.INVOICE_LINE_KIND_USAGE,
        pricing.GPU_COMPUTE: bt.INVOICE_LINE_KIND_USAGE,
    }.get(kind, bt.INVOICE_LINE_KIND_UNSPECIFIED)
