"""Every MongoDB call of the billing service.

Atomic units (each one single-document write, events staged in the same write):

- ``subscriptions`` (``_id`` = org id): plan, period, quotas (limit/used/reserved/
  available), open reservations ``res.<id>``, reservation tombstones, plan-change
  charges and the period history.
- ``wallets`` (``_id`` = org id): the org's cached customer balance, escrow and
  receivable, escrow states, and each committed ledger transaction staged under
  ``pending.<txn id>`` until it is materialized into ``ledger`` + ``postings``.
- ``usage_events`` (``_id`` = source|ce id): raw usage, inserted once.
- ``invoices``: one per org and period (unique), drafts → finalized → paid/void.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from qlp_billing.ledger import WALLET_KINDS, Txn, parse_account
from qlp_billing.metering import ACCEPTED, REJECTED, MeterAggregate, latest_value
from qlp_billing.timeutil import ms
from qlp_kit.consumer import Inbox
from qlp_kit.mongo import (
    CROSS_TENANT,
    IndexSpec,
    TenantCollection,
    decode_cursor,
    encode_cursor,
)
from qlp_kit.outbox import Staged, outbox_update, with_outbox

Doc = dict[str, Any]

SUBSCRIPTIONS = "subscriptions"
WALLETS = "wallets"
LEDGER = "ledger"
POSTINGS = "postings"
USAGE = "usage_events"
INVOICES = "invoices"
COUNTERS = "counters"
WEBHOOKS = "webhook_events"
RESERVATIONS = "reservations"
DECISIONS = "decisions"
OUTBOX_COLLECTIONS = (SUBSCRIPTIONS, WALLETS, INVOICES, RESERVATIONS, DECISIONS)
#: Every document carries org_id and every query names it (guarded in tests).
TENANT_COLLECTIONS = (SUBSCRIPTIONS, WALLETS, USAGE, INVOICES, RESERVATIONS, DECISIONS)
SWEEP = f"{CROSS_TENANT}: billing background job"
REPORT = f"{CROSS_TENANT}: platform admin report"
#: Recent transaction ids kept in a wallet (older ones are found in the ledger).
APPLIED_WINDOW = 1_000

INDEXES = [
    IndexSpec(USAGE, [("org_id", ASCENDING), ("period", ASCENDING), ("meter", ASCENDING)]),
    IndexSpec(LEDGER, [("org_id", ASCENDING), ("created_at", ASCENDING)]),
    IndexSpec(POSTINGS, [("account", ASCENDING)]),
    IndexSpec(POSTINGS, [("txn_id", ASCENDING)]),
    IndexSpec(SUBSCRIPTIONS, [("period_end", ASCENDING)]),
    IndexSpec(SUBSCRIPTIONS, [("quotas.generations.reserved", ASCENDING)]),
    IndexSpec(WALLETS, [("pending_n", ASCENDING)]),
    IndexSpec(INVOICES, [("org_id", ASCENDING), ("period", ASCENDING)], unique=True),
    IndexSpec(INVOICES, [("status", ASCENDING)]),
]


def safe_key(value: str) -> str:
    """A caller-chosen id as a document field name (no '.' or leading '$')."""
    return value.replace(".", "_").replace("$", "_")


class Store:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.db = db
        self.subs = db[SUBSCRIPTIONS]
        self.wallets = db[WALLETS]
        self.ledger = db[LEDGER]
        self.postings = db[POSTINGS]
        self.usage = db[USAGE]
        self.invoices = db[INVOICES]
        self.counters = db[COUNTERS]
        self.webhooks = db[WEBHOOKS]
        self.reservations = db[RESERVATIONS]
        self.decisions = db[DECISIONS]
        self._known_wallets: set[str] = set()

    # ---- subscriptions ------------------------------------------------------------

    async def insert_subscription(self, doc: Doc, events: Sequence[Staged]) -> bool:
        return await Inbox.insert_once(self.subs, with_outbox(doc, events))

    async def get_subscription(self, org_id: str, *, light: bool = False) -> Doc | None:
        """The subscription; ``light`` leaves out open reservations and pending events."""
        proj = {"res": 0, "_outbox": 0} if light else None
        return await TenantCollection(self.subs, org_id).find_one({"_id": org_id}, projection=proj)

    async def update_subscription(
        self,
        org_id: str,
        guard: Doc,
        update: Doc,
        events: Sequence[Staged] = (),
    ) -> Doc | None:
        """One guarded single-document write; None when the guard did not match."""
        return await self.subs.find_one_and_update(
            {"_id": org_id, "org_id": org_id, **guard},
            outbox_update(events, update),
            return_document=ReturnDocument.AFTER,
        )

    async def subscriptions_due(self, now: datetime, limit: int = 500) -> list[Doc]:
        cur = self.subs.find({"period_end": {"$lte": ms(now)}}, comment=SWEEP).limit(limit)
        return [d async for d in cur]

    async def subscriptions_trial_due(self, now: datetime, limit: int = 500) -> list[Doc]:
        cur = self.subs.find(
            {"status": "trialing", "trial_end": {"$lte": ms(now)}}, comment=SWEEP
        ).limit(limit)
        return [d async for d in cur]

    async def subscriptions_with_reservations(self, limit: int = 500) -> list[Doc]:
        cur = self.subs.find({"quotas.generations.reserved": {"$gt": 0}}, comment=SWEEP).limit(
            limit
        )
        return [d async for d in cur]

    async def all_subscriptions(self) -> list[Doc]:
        return [d async for d in self.subs.find({}, {"res": 0, "_outbox": 0}, comment=SWEEP)]

    # ---- wallets and the ledger -----------------------------------------------------

    async def ensure_wallet(self, org_id: str) -> None:
        if org_id in self._known_wallets:
            return
        await self.wallets.update_one(
            {"_id": org_id, "org_id": org_id},
            {
                "$setOnInsert": {
                    "org_id": org_id,
                    "bal": dict.fromkeys(WALLET_KINDS, 0),
                    "pending": {},
                    "pending_n": 0,
                    "_applied": [],
                    "escrows": {},
                    "payout_seq": 0,
                }
            },
            upsert=True,
        )
        self._known_wallets.add(org_id)

    async def get_wallet(self, org_id: str) -> Doc | None:
        return await self.wallets.find_one({"_id": org_id, "org_id": org_id})

    async def txn_exists(self, txn_id: str) -> bool:
        return await self.ledger.find_one({"_id": txn_id}, {"_id": 1}) is not None

    async def commit_txn(
        self,
        txn: Txn,
        now: datetime,
        events: Sequence[Staged] = (),
        *,
        guard: Doc | None = None,
        extra_set: Doc | None = None,
        extra_inc: Doc | None = None,
    ) -> Doc | None:
        """Commit ``txn`` on its org's wallet: cached balances (guarded ≥ 0), the staged
        transaction, its idempotency mark and its events in ONE write. Returns the
        wallet after, or None when a guard failed (caller inspects why)."""
        await self.ensure_wallet(txn.org_id)
        filt: Doc = {
            "_id": txn.org_id,
            "org_id": txn.org_id,
            "_applied": {"$nin": [txn.id]},
            f"pending.{txn.id}": {"$exists": False},
            **(guard or {}),
        }
        inc: Doc = {"pending_n": 1, **(extra_inc or {})}
        for kind, d in txn.wallet_delta().items():
            inc[f"bal.{kind}"] = d
            if d < 0:
                filt[f"bal.{kind}"] = {"$gte": -d}
        doc = {**txn.to_doc(), "created_at": now}
        update: Doc = {
            "$inc": inc,
            "$set": {f"pending.{txn.id}": doc, **(extra_set or {})},
            "$push": {"_applied": {"$each": [txn.id], "$slice": -APPLIED_WINDOW}},
        }
        return await self.wallets.find_one_and_update(
            filt, outbox_update(events, update), return_document=ReturnDocument.AFTER
        )

    async def record_decision(
        self, org_id: str, key: str, events: Sequence[Staged], detail: Doc | None = None
    ) -> bool:
        """Record a decision without money moving (a rejection) once, with its events
        (one insert; a repeat is a duplicate key)."""
        doc = {"_id": f"{org_id}|{key}", "org_id": org_id, "key": key, **(detail or {})}
        return await Inbox.insert_once(self.decisions, with_outbox(doc, events))

    async def get_decision(self, org_id: str, key: str) -> Doc | None:
        return await self.decisions.find_one({"_id": f"{org_id}|{key}", "org_id": org_id})

    # ---- reservation outcomes (tombstones) -------------------------------------

    async def reservation_outcome(self, org_id: str, reservation_id: str) -> Doc | None:
        return await self.reservations.find_one(
            {"_id": f"{org_id}|{reservation_id}", "org_id": org_id}
        )

    async def record_outcome(
        self, org_id: str, reservation_id: str, state: str, events: Sequence[Staged] = ()
    ) -> str:
        """Record how a reservation ended (once); returns the recorded state, which is
        the earlier one when this is a repeat."""
        doc = {
            "_id": f"{org_id}|{reservation_id}",
            "org_id": org_id,
            "reservation_id": reservation_id,
            "state": state,
        }
        if await Inbox.insert_once(self.reservations, with_outbox(doc, events)):
            return state
        prior = await self.reservations.find_one(
            {"_id": doc["_id"], "org_id": org_id}, {"state": 1}
        )
        return str((prior or {}).get("state", state))

    async def materialize(self, org_id: str, txn_ids: Sequence[str] | None = None) -> int:
        """Copy staged transactions into ``ledger`` and ``postings`` (idempotent
        inserts, deterministic ids), then clear them from the wallet. A crash at any
        point leaves them staged and the next run finishes the job."""
        wallet = await self.wallets.find_one({"_id": org_id, "org_id": org_id}, {"pending": 1})
        pending: dict[str, Doc] = (wallet or {}).get("pending") or {}
        ids = [i for i in (txn_ids if txn_ids is not None else list(pending)) if i in pending]
        if not ids:
            return 0
        txns = [pending[i] for i in ids]
        await Inbox.insert_many_once(self.ledger, txns)
        posts = []
        for t in txns:
            for n, leg in enumerate(t["legs"]):
                kind, owner = parse_account(str(leg["account"]))
                posts.append(
                    {
                        "_id": f"{t['_id']}|{n}",
                        "txn_id": t["_id"],
                        "account": leg["account"],
                        "kind": kind,
                        "owner": owner,
                        "amount": int(leg["amount"]),
                        "created_at": t.get("created_at"),
                    }
                )
        await Inbox.insert_many_once(self.postings, posts)
        await self.wallets.bulk_write(
            [
                UpdateOne(
                    {"_id": org_id, "org_id": org_id, f"pending.{i}": {"$exists": True}},
                    {"$unset": {f"pending.{i}": ""}, "$inc": {"pending_n": -1}},
                )
                for i in ids
            ],
            ordered=False,
        )
        return len(ids)

    async def wallets_with_pending(self, limit: int = 500) -> list[str]:
        cur = self.wallets.find({"pending_n": {"$gt": 0}}, {"_id": 1}, comment=SWEEP).limit(limit)
        return [str(d["_id"]) async for d in cur]

    async def account_balance(self, acct: str) -> int:
        """Raw (debit-positive) sum of an account's materialized postings."""
        pipe: list[Doc] = [
            {"$match": {"account": acct}},
            {"$group": {"_id": "$account", "s": {"$sum": "$amount"}}},
        ]
        rows = [r async for r in await self.postings.aggregate(pipe)]
        return int(rows[0]["s"]) if rows and rows[0].get("s") is not None else 0

    async def txn_committed(self, org_id: str, txn_id: str) -> bool:
        """Committed on ``org_id``'s wallet: materialized, staged, or recently applied."""
        if await self.txn_exists(txn_id):
            return True
        w = await self.wallets.find_one(
            {
                "_id": org_id,
                "org_id": org_id,
                "$or": [{"_applied": txn_id}, {f"pending.{txn_id}": {"$exists": True}}],
            },
            {"_id": 1},
        )
        return w is not None

    # ---- payables (credited by other orgs' transactions, guarded in the payee's wallet)

    async def payable_credits(self, acct: str) -> int:
        """Everything ever credited to a payable account (materialized postings).
        Credits only grow, so a stale read is a lower bound: safe for a guard."""
        pipe: list[Doc] = [
            {"$match": {"account": acct, "amount": {"$lt": 0}}},
            {"$group": {"_id": "$account", "s": {"$sum": "$amount"}}},
        ]
        rows = [r async for r in await self.postings.aggregate(pipe)]
        return -int(rows[0]["s"]) if rows and rows[0].get("s") is not None else 0

    async def payable_debits(self, org_id: str, kind: str) -> int:
        """Everything ever debited from ``org_id``'s payable of ``kind`` (payouts and
        reversals), counted in the payee's wallet; started from the ledger once."""
        await self.ensure_wallet(org_id)
        field = f"pdebit.{kind}"
        w = await self.wallets.find_one({"_id": org_id, "org_id": org_id}, {"pdebit": 1})
        have = ((w or {}).get("pdebit") or {}).get(kind)
        if have is not None:
            return int(have)
        pipe: list[Doc] = [
            {"$match": {"account": f"{kind}:{org_id}", "amount": {"$gt": 0}}},
            {"$group": {"_id": "$account", "s": {"$sum": "$amount"}}},
        ]
        rows = [r async for r in await self.postings.aggregate(pipe)]
        start = int(rows[0]["s"]) if rows and rows[0].get("s") is not None else 0
        await self.wallets.update_one(
            {"_id": org_id, "org_id": org_id, field: {"$exists": False}},
            {"$set": {field: start}},
        )
        return await self.payable_debits(org_id, kind)

    async def hold_payable(
        self, org_id: str, kind: str, amount: int, txn_id: str, credited: int
    ) -> str:
        """Debit ``amount`` from a payee's payable for ``txn_id`` (a reversal committed
        on another org's wallet) with ONE guarded write: never below zero, once per
        transaction. Returns ``held``, ``duplicate`` or ``insufficient``."""
        await self.payable_debits(org_id, kind)
        field = f"pdebit.{kind}"
        res = await self.wallets.find_one_and_update(
            {
                "_id": org_id,
                "org_id": org_id,
                "_pd_applied": {"$nin": [txn_id]},
                field: {"$lte": credited - amount},
            },
            {
                "$inc": {field: amount},
                "$push": {"_pd_applied": {"$each": [txn_id], "$slice": -APPLIED_WINDOW}},
            },
            return_document=ReturnDocument.AFTER,
        )
        if res is not None:
            return "held"
        w = await self.wallets.find_one(
            {"_id": org_id, "org_id": org_id, "_pd_applied": txn_id}, {"_id": 1}
        )
        return "duplicate" if w is not None else "insufficient"

    async def release_payable(self, org_id: str, kind: str, amount: int, txn_id: str) -> None:
        """Undo :meth:`hold_payable` (the transaction it was for was not committed)."""
        await self.wallets.update_one(
            {"_id": org_id, "org_id": org_id, "_pd_applied": txn_id},
            {"$inc": {f"pdebit.{kind}": -amount}, "$pull": {"_pd_applied": txn_id}},
        )

    async def get_txn(self, txn_id: str) -> Doc | None:
        return await self.ledger.find_one({"_id": txn_id})

    async def org_txns(
        self, org_id: str, start: datetime, end: datetime, kinds: Sequence[str]
    ) -> list[Doc]:
        cur = self.ledger.find(
            {
                "org_id": org_id,
                "created_at": {"$gte": start, "$lt": end},
                "kind": {"$in": list(kinds)},
            }
        ).sort([("created_at", ASCENDING)])
        return [d async for d in cur]

    async def page_txns(
        self, org_id: str, kind: str, limit: int, cursor: str | None
    ) -> tuple[list[Doc], str | None]:
        f: Doc = {"org_id": org_id, "kind": kind}
        if cursor:
            f["_id"] = {"$gt": decode_cursor(cursor)}
        docs = [d async for d in self.ledger.find(f).sort([("_id", ASCENDING)]).limit(limit + 1)]
        more = len(docs) > limit
        docs = docs[:limit]
        return docs, encode_cursor(str(docs[-1]["_id"])) if more and docs else None

    async def all_txns(self) -> Any:
        return self.ledger.find({})

    async def all_wallets(self) -> list[Doc]:
        return [d async for d in self.wallets.find({}, {"bal": 1, "pending_n": 1}, comment=REPORT)]

    # ---- usage --------------------------------------------------------------------

    async def insert_usage(self, docs: Sequence[Doc], chunk: int = 100) -> int:
        """Insert once each (duplicates skipped); chunks go in parallel, which the
        database absorbs faster than one large sequential batch."""
        if len(docs) <= chunk:
            return await Inbox.insert_many_once(self.usage, docs)
        parts = [docs[i : i + chunk] for i in range(0, len(docs), chunk)]
        counts = await asyncio.gather(*(Inbox.insert_many_once(self.usage, p) for p in parts))
        return sum(counts)

    async def aggregates(
        self, org_id: str, period: str, billed: Doc | str | None = None
    ) -> dict[str, MeterAggregate]:
        """Per-meter aggregates of a period's usage; ``billed`` narrows the accepted
        events by the invoice that billed them (their ``inv`` field)."""
        out: dict[str, MeterAggregate] = {}
        match: Doc = {"org_id": org_id, "period": period, "status": ACCEPTED}
        if billed is not None:
            match["inv"] = billed
        pipe: list[Doc] = [
            {"$match": match},
            {
                "$group": {
                    "_id": "$meter",
                    "sum": {"$sum": "$quantity"},
                    "count": {"$sum": 1},
                    "max": {"$max": "$quantity"},
                    "latest": {"$max": "$latest_key"},
                    "premium": {"$sum": "$premium_quantity"},
                }
            },
        ]
        async for r in await self.usage.aggregate(pipe):
            m = str(r["_id"])
            out[m] = MeterAggregate(
                m,
                int(r.get("sum") or 0),
                int(r.get("count") or 0),
                int(r.get("max") or 0),
                latest_value(r.get("latest")),
                int(r.get("premium") or 0),
            )
        pipe = [
            {"$match": {"org_id": org_id, "period": period, "status": REJECTED}},
            {"$group": {"_id": "$meter", "n": {"$sum": 1}, "s": {"$sum": "$quantity"}}},
        ]
        async for r in await self.usage.aggregate(pipe):
            m = str(r["_id"])
            agg = out.setdefault(m, MeterAggregate(m))
            agg.rejected_count = int(r.get("n") or 0)
            agg.rejected_sum = int(r.get("s") or 0)
        return out

    async def tag_usage(self, org_id: str, periods: Sequence[str], invoice_id: str) -> int:
        """Mark the accepted, not yet billed usage of ``periods`` as billed by
        ``invoice_id`` (each event is billed by exactly one invoice: the first that
        tags it). Usage inserted after this is left for a later invoice."""
        if not periods:
            return 0
        res = await self.usage.update_many(
            {
                "org_id": org_id,
                "period": {"$in": list(periods)},
                "status": ACCEPTED,
                "inv": {"$exists": False},
            },
            {"$set": {"inv": invoice_id}},
        )
        return int(res.modified_count)

    async def usage_periods(self, org_id: str, billed: Doc | str) -> list[str]:
        """Periods having accepted usage whose ``inv`` matches ``billed``."""
        pipe: list[Doc] = [
            {"$match": {"org_id": org_id, "status": ACCEPTED, "inv": billed}},
            {"$group": {"_id": "$period", "n": {"$sum": 1}}},
        ]
        return sorted([str(r["_id"]) async for r in await self.usage.aggregate(pipe)])

    async def rejected_usage(self, org_id: str, limit: int) -> list[Doc]:
        cur = (
            self.usage.find({"org_id": org_id, "status": REJECTED})
            .sort([("received_at", DESCENDING)])
            .limit(limit)
        )
        return [d async for d in cur]

    async def usage_by_meter_all(self, period: str) -> list[Doc]:
        pipe: list[Doc] = [
            {"$match": {"period": period, "status": ACCEPTED}},
            {"$group": {"_id": "$meter", "sum": {"$sum": "$quantity"}, "count": {"$sum": 1}}},
        ]
        return [r async for r in await self.usage.aggregate(pipe, comment=REPORT)]

    async def usage_by_org(self, period: str, meters: Sequence[str]) -> dict[str, int]:
        pipe: list[Doc] = [
            {"$match": {"period": period, "status": ACCEPTED, "meter": {"$in": list(meters)}}},
            {"$group": {"_id": "$org_id", "sum": {"$sum": "$quantity"}}},
        ]
        return {
            str(r["_id"]): int(r.get("sum") or 0)
            async for r in await self.usage.aggregate(pipe, comment=REPORT)
        }

    # ---- invoices -----------------------------------------------------------------

    async def insert_invoice(self, doc: Doc) -> bool:
        try:
            await self.invoices.insert_one(with_outbox(doc, []))
        except DuplicateKeyError:
            return False
        return True

    async def update_invoice(
        self,
        org_id: str,
        invoice_id: str,
        guard: Doc,
        update: Doc,
        events: Sequence[Staged] = (),
    ) -> Doc | None:
        return await self.invoices.find_one_and_update(
            {"_id": invoice_id, "org_id": org_id, **guard},
            outbox_update(events, update),
            return_document=ReturnDocument.AFTER,
        )

    async def invoices_in(self, status: str, limit: int = 500) -> list[Doc]:
        return [d async for d in self.invoices.find({"status": status}, comment=SWEEP).limit(limit)]

    async def invoices_unbooked(self, limit: int = 500) -> list[Doc]:
        cur = self.invoices.find({"status": "finalized", "booked": 0}, comment=SWEEP).limit(limit)
        return [d async for d in cur]

    async def closed_periods(self, org_id: str, before: str) -> list[str]:
        """Periods before ``before`` whose invoice was issued (not voided)."""
        cur = self.invoices.find(
            {
                "org_id": org_id,
                "period": {"$lt": before},
                "status": {"$in": ["finalized", "paying", "paid"]},
            },
            {"period": 1},
        )
        return sorted([str(d["period"]) async for d in cur])

    async def invoice_for(self, org_id: str, period: str) -> Doc | None:
        return await self.invoices.find_one({"org_id": org_id, "period": period})

    async def get_invoice(self, org_id: str, invoice_id: str) -> Doc | None:
        return await TenantCollection(self.invoices, org_id).find_one({"_id": invoice_id})

    async def open_invoices(self, org_id: str) -> list[Doc]:
        return await TenantCollection(self.invoices, org_id).find(
            {"status": "finalized", "booked": 1}, sort=[("_id", ASCENDING)]
        )

    async def page_invoices(
        self, org_id: str, limit: int, cursor: str | None
    ) -> tuple[list[Doc], str | None]:
        page = await TenantCollection(self.invoices, org_id).page({}, limit, cursor)
        return page.items, page.next_cursor

    async def next_number(self, name: str) -> int:
        doc = await self.counters.find_one_and_update(
            {"_id": name}, {"$inc": {"n": 1}}, upsert=True, return_document=ReturnDocument.AFTER
        )
        return int(doc["n"]) if doc else 1

    # ---- webhooks -----------------------------------------------------------------

    async def webhook_seen(self, event_id: str) -> bool:
        return await self.webhooks.find_one({"_id": event_id}, {"_id": 1}) is not None

    async def remember_webhook(self, event_id: str, doc: Doc) -> bool:
        """Record a provider event as handled (once); written after its effect."""
        return await Inbox.insert_once(self.webhooks, {"_id": event_id, **doc})
