"""Every MongoDB call of the scheduler.

Collections (database ``qlp_scheduler``):

- ``providers``: one document per provider machine; it is also that machine's offer
  (GPU map, ``available_gpus``, ``gpu_owner`` uuid -> claiming job, ``claims``
  job -> GPUs) and its liveness ring (``uptime``). Tenant = the provider's org.
- ``jobs``: GPU jobs with spec, status, lease ``epoch``, placements, usage and the
  outbox. Tenant = the consumer's org.
- ``assignments``: what an agent must do (start / prepare / cancel), redelivered to
  the agent until its next status report acknowledges it. Deterministic ids make
  writing them idempotent.
- ``job_logs``: batches of log lines. GridFS bucket ``checkpoints``: checkpoint blobs.
- ``balances``: a read model of each org's prepaid balance, one document per
  billing event that moved it (``qlp_scheduler.balances``; the event id is the key,
  so a redelivery changes nothing): submit refuses a job it cannot cover; billing's
  escrow hold stays the authority.

Agents act across tenants (a provider works for many consumers), so job lookups by
agents go by job id and are then checked against the provider's placement.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, ReturnDocument, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from qlp_kit.mongo import (
    CROSS_TENANT,
    IndexSpec,
    Page,
    TenantCollection,
    decode_cursor,
    encode_cursor,
)
from qlp_scheduler.service import ms

#: What an offer's availability event is built from: not the whole provider document,
#: which carries GPU status, machine facts and claims.
OFFER_EVENT_FIELDS = {
    f: 1
    for f in (
        "org_id",
        "offer_id",
        "available_gpus",
        "gpu_count",
        "offer_rev",
        "status",
        "liveness",
        "uptime",
        "registered_minute",
        "losses",
    )
}


def offer_changed(update: dict[str, Any]) -> dict[str, Any]:
    """``update`` plus the mark that the offer's availability changed: its revision goes
    up by one and it is flagged for the offer feed, in the same conditional write (the
    feed publishes the event off the claim path, coalescing a burst into one)."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in update.items()}
    out.setdefault("$inc", {})["offer_rev"] = 1
    out.setdefault("$set", {})["offer_dirty"] = 1
    return out


Doc = dict[str, Any]

PROVIDERS = "providers"
JOBS = "jobs"
ASSIGNMENTS = "assignments"
LOGS = "job_logs"
BALANCES = "balances"

# Queries that span tenants by design carry one of these comments (the tenant guard
# lets them through): the tenant check happens in the use case, not the filter.
BY_ID = f"{CROSS_TENANT}: by id after the caller's tenant or placement check"
MARKET = f"{CROSS_TENANT}: offers are a marketplace across provider orgs"
SWEEP = f"{CROSS_TENANT}: background loop over every tenant"
EARNINGS = f"{CROSS_TENANT}: a provider's usage across consumer orgs"
TENANT_COLLECTIONS = [PROVIDERS, JOBS, LOGS, BALANCES]

# What the offer index reads of a provider document.
OFFER_FIELDS = dict.fromkeys(
    [
        "offer_id",
        "org_id",
        "machine_id",
        "gpu_model",
        "gpu_memory_gb",
        "gpu_count",
        "available_gpus",
        "price_minor",
        "currency",
        "region",
        "uptime",
        "losses",
        "liveness",
        "registered_minute",
        "last_heartbeat_ms",
        "status",
        "gpus",
        "gpu_owner",
        "containers",
    ],
    1,
)

INDEXES = [
    IndexSpec(PROVIDERS, [("org_id", ASCENDING), ("fingerprint", ASCENDING)], unique=True),
    IndexSpec(PROVIDERS, [("offer_id", ASCENDING)], unique=True),
    IndexSpec(PROVIDERS, [("updated_ms", ASCENDING)]),
    # the offer feed's work list: only offers changed since their last event carry it
    IndexSpec(PROVIDERS, [("offer_dirty", ASCENDING)], sparse=True),
    IndexSpec(PROVIDERS, [("status", ASCENDING), ("price_minor", ASCENDING)]),
    IndexSpec(JOBS, [("org_id", ASCENDING)]),
    IndexSpec(JOBS, [("status", ASCENDING), ("updated_ms", ASCENDING)]),
    IndexSpec(JOBS, [("fx_pending", ASCENDING)]),
    IndexSpec(JOBS, [("escrow_id", ASCENDING)]),
    IndexSpec(ASSIGNMENTS, [("provider_id", ASCENDING), ("acked", ASCENDING)]),
    IndexSpec(ASSIGNMENTS, [("job_id", ASCENDING)]),
    IndexSpec(LOGS, [("job_id", ASCENDING)]),
    IndexSpec(BALANCES, [("org_id", ASCENDING)]),
    IndexSpec(LOGS, [("at", ASCENDING)], expire_after_seconds=30 * 86_400),
    IndexSpec(ASSIGNMENTS, [("expire_at", ASCENDING)], expire_after_seconds=0),
]


async def _keyset_page(
    tc: TenantCollection, f: Doc, limit: int, cursor: str | None, newest_first: bool
) -> Page:
    """A page in ``_id`` order (ids are time ordered): newest first, or oldest first."""
    f = tc.scoped(f)
    if cursor:
        f["_id"] = {"$lt" if newest_first else "$gt": decode_cursor(cursor)}
    order = -1 if newest_first else ASCENDING
    docs = [d async for d in tc.raw.find(f).sort([("_id", order)]).limit(limit + 1)]
    more = len(docs) > limit
    docs = docs[:limit]
    return Page(docs, encode_cursor(str(docs[-1]["_id"])) if more and docs else None)


class Repository:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.db = db
        #: called after each write that marked an offer changed (the offer feed's poke)
        self.on_offer_changed: Callable[[], None] = lambda: None
        self.providers = db[PROVIDERS]
        self.jobs = db[JOBS]
        self.assignments = db[ASSIGNMENTS]
        self.logs = db[LOGS]
        self.balances = db[BALANCES]

    # --- providers / offers ----------------------------------------------------

    async def insert_provider(self, doc: Doc) -> bool:
        """False when the org already registered this machine fingerprint."""
        try:
            await TenantCollection(self.providers, doc["org_id"]).insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    async def provider_by_fingerprint(self, org_id: str, fingerprint: str) -> Doc | None:
        return await TenantCollection(self.providers, org_id).find_one({"fingerprint": fingerprint})

    async def get_provider(self, provider_id: str, org_id: str | None = None) -> Doc | None:
        if org_id is None:
            return await self.providers.find_one({"_id": provider_id}, comment=BY_ID)
        return await TenantCollection(self.providers, org_id).find_one({"_id": provider_id})

    async def list_providers(
        self, org_id: str, limit: int, cursor: str | None, newest_first: bool = True
    ) -> Page:
        tc = TenantCollection(self.providers, org_id)
        return await _keyset_page(tc, {}, limit, cursor, newest_first)

    async def update_provider(
        self, provider_id: str, org_id: str, guard: Mapping[str, Any], update: Mapping[str, Any]
    ) -> Doc | None:
        return await TenantCollection(self.providers, org_id).find_one_and_update(
            {"_id": provider_id, **guard}, update
        )

    async def offers_changed_since(self, since: int | None) -> list[Doc]:
        f: Doc = {} if since is None else {"updated_ms": {"$gte": since}}
        cur = self.providers.find(f, OFFER_FIELDS, comment=MARKET)
        return [d async for d in cur]

    async def providers_with_claims(self) -> list[Doc]:
        cur = self.providers.find(
            {"available_gpus": {"$exists": True}}, {"claims": 1}, comment=SWEEP
        )
        return [d async for d in cur if d.get("claims")]

    async def claim(
        self,
        provider_id: str,
        job_id: str,
        role: str,
        uuids: Sequence[str],
        now: datetime,
    ) -> bool:
        """Claim ``uuids`` for ``job_id`` in ONE conditional update: the offer must be
        active, have ``len(uuids)`` available GPUs, each uuid free, and the job must
        hold nothing there yet. False when the claim lost (nothing changed)."""
        n = len(uuids)
        guard: Doc = {
            "_id": provider_id,
            "status": "active",
            "available_gpus": {"$gte": n},
            f"claims.{job_id}": {"$exists": False},
        }
        sets: Doc = {f"gpu_owner.{u}": job_id for u in uuids}
        for u in uuids:
            guard[f"gpu_owner.{u}"] = ""
        sets[f"claims.{job_id}"] = {"uuids": list(uuids), "role": role, "n": n, "at_ms": ms(now)}
        sets["updated_ms"] = ms(now)
        update: Doc = {"$inc": {"available_gpus": -n}, "$set": sets}
        res = await self.providers.update_one(guard, offer_changed(update), comment=MARKET)
        if res.modified_count != 1:
            return False
        self.on_offer_changed()
        return True

    async def release(
        self,
        provider_id: str,
        job_id: str,
        uuids: Sequence[str],
        now: datetime,
    ) -> Doc | None:
        """Give the job's GPUs back; a no-op (None) when it holds none there."""
        sets: Doc = {f"gpu_owner.{u}": "" for u in uuids}
        sets["updated_ms"] = ms(now)
        guard: Doc = {"_id": provider_id, f"claims.{job_id}": {"$exists": True}}
        update: Doc = {
            "$inc": {"available_gpus": len(uuids)},
            "$set": sets,
            "$unset": {f"claims.{job_id}": ""},
        }
        doc = await self.providers.find_one_and_update(
            guard,
            offer_changed(update),
            projection={"_outbox": 0, "claims": 0},
            return_document=ReturnDocument.AFTER,
            comment=MARKET,
        )
        if doc is not None:
            self.on_offer_changed()
        return doc

    async def changed_offers(self, limit: int = 500) -> list[Doc]:
        """Offers whose availability changed since their last event (the feed's work)."""
        cur = self.providers.find(
            {"offer_dirty": 1}, OFFER_EVENT_FIELDS, limit=limit, comment=SWEEP
        )
        return [d async for d in cur]

    async def clear_offer_marks(self, published: Sequence[Doc]) -> int:
        """Clear the mark of each offer published at the revision it was read at; an
        offer changed since keeps its mark (the newer revision goes out next round).
        Returns how many were cleared."""
        if not published:
            return 0
        ops = [
            UpdateOne(
                {"_id": d["_id"], "offer_rev": int(d.get("offer_rev", 0)), "offer_dirty": 1},
                {"$unset": {"offer_dirty": ""}},
            )
            for d in published
        ]
        res = await self.providers.bulk_write(ops, ordered=False, comment=SWEEP)
        return int(res.modified_count)

    # --- jobs --------------------------------------------------------------------

    async def insert_job(self, doc: Doc) -> None:
        await TenantCollection(self.jobs, doc["org_id"]).insert_one(doc)

    async def get_job(self, job_id: str, org_id: str | None = None) -> Doc | None:
        if org_id is None:
            return await self.jobs.find_one({"_id": job_id}, comment=BY_ID)
        return await TenantCollection(self.jobs, org_id).find_one({"_id": job_id})

    async def list_jobs(
        self,
        org_id: str,
        limit: int,
        cursor: str | None,
        status: str | None,
        newest_first: bool = True,
    ) -> Page:
        """Keyset pages on ``_id`` (time ordered): newest first unless asked otherwise."""
        tc = TenantCollection(self.jobs, org_id)
        return await _keyset_page(
            tc, {"status": status} if status else {}, limit, cursor, newest_first
        )

    async def pending_escrow(self, org_id: str) -> int:
        """What the org's jobs still waiting for billing's hold will take."""
        cur = TenantCollection(self.jobs, org_id).raw.find(
            {"org_id": org_id, "status": "submitted", "escrow_required": 1},
            {"escrow_amount": 1},
        )
        return sum([int((d.get("escrow_amount") or {}).get("amount", 0)) async for d in cur])

    # --- prepaid balance read model --------------------------------------------

    async def apply_balance(
        self,
        org_id: str,
        event_id: str,
        delta: int,
        currency: str,
        now: datetime,
        opens: bool = False,
    ) -> bool:
        """Record one billing event's change of the org's balance, once per event id
        (the id is the document's key: a redelivery is a duplicate insert)."""
        doc = {
            "_id": event_id,
            "delta": int(delta),
            "opens": 1 if opens else 0,
            "currency": currency,
            "at_ms": ms(now),
        }
        try:
            await TenantCollection(self.balances, org_id).insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    async def balance_of(self, org_id: str) -> int | None:
        """The sum of the org's recorded changes; None until an event that opens the
        balance (billing account opened, a top-up) was seen."""
        cur = TenantCollection(self.balances, org_id).raw.find(
            {"org_id": org_id}, {"delta": 1, "opens": 1}
        )
        docs = [d async for d in cur]
        if not any(d.get("opens") for d in docs):
            return None
        return sum(int(d.get("delta", 0)) for d in docs)

    async def update_job(self, job_id: str, guard: Mapping[str, Any], update: Doc) -> Doc | None:
        """One conditional single-document write (state + outbox events)."""
        return await self.jobs.find_one_and_update(
            {"_id": job_id, **guard}, update, return_document=ReturnDocument.AFTER, comment=BY_ID
        )

    async def jobs_in_status(
        self, statuses: Sequence[str], limit: int = 200, before: int | None = None
    ) -> list[Doc]:
        f: Doc = {"status": {"$in": list(statuses)}}
        if before is not None:
            f["updated_ms"] = {"$lte": before}
        cur = (
            self.jobs.find(f, {"_outbox": 0}, comment=SWEEP)
            .sort([("updated_ms", ASCENDING)])
            .limit(limit)
        )
        return [d async for d in cur]

    async def job_epochs(self, job_ids: Sequence[str]) -> dict[str, tuple[str, int]]:
        """(status, epoch) of each job that exists."""
        cur = self.jobs.find(
            {"_id": {"$in": list(job_ids)}}, {"status": 1, "epoch": 1}, comment=BY_ID
        )
        return {d["_id"]: (str(d["status"]), int(d.get("epoch", 0))) async for d in cur}

    async def jobs_with_pending_effects(self, before: int) -> list[Doc]:
        cur = self.jobs.find(
            {"fx_pending": 1, "updated_ms": {"$lte": before}}, {"_outbox": 0}, comment=SWEEP
        ).limit(200)
        return [d async for d in cur]

    async def jobs_of_provider(self, provider_id: str) -> list[Doc]:
        cur = self.jobs.find(
            {"provider_ids": provider_id}, {"usage": 1, "status": 1}, comment=EARNINGS
        )
        return [d async for d in cur]

    # --- assignments -------------------------------------------------------------

    async def insert_assignments(self, docs: Sequence[Doc]) -> int:
        """Idempotent (deterministic ids): returns how many were new."""
        if not docs:
            return 0
        try:
            res = await self.assignments.insert_many(list(docs), ordered=False)
            return len(res.inserted_ids)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != 11000 for e in errors):
                raise
            return int(exc.details.get("nInserted", len(docs) - len(errors)))

    async def pending_assignments(self, provider_id: str, limit: int = 50) -> list[Doc]:
        cur = (
            self.assignments.find({"provider_id": provider_id, "acked": 0})
            .sort([("_id", ASCENDING)])
            .limit(limit)
        )
        return [d async for d in cur]

    async def watch_assignment_inserts(self, max_await_ms: int | None = None) -> Any:
        """A change stream of new assignments (needs a replica set or the embedded db)."""
        return await self.assignments.watch(
            [{"$match": {"operationType": "insert"}}], max_await_time_ms=max_await_ms
        )

    async def pending_assignments_of(self, provider_ids: Sequence[str]) -> list[Doc]:
        cur = self.assignments.find({"provider_id": {"$in": list(provider_ids)}, "acked": 0})
        return sorted([d async for d in cur], key=lambda a: a.get("seq", 0))

    async def ack_assignment_ids(self, ids: Sequence[str], now: datetime) -> None:
        await self.assignments.update_many(
            {"_id": {"$in": list(ids)}}, {"$set": {"acked": 1, "acked_ms": ms(now)}}
        )

    async def kubernetes_providers(self) -> list[Doc]:
        cur = self.providers.find(
            {"backend": "kubernetes"}, {"_outbox": 0, "claims": 0}, comment=SWEEP
        )
        return [d async for d in cur]

    async def mark_delivered(self, ids: Sequence[str], now: datetime) -> None:
        if ids:
            await self.assignments.update_many(
                {"_id": {"$in": list(ids)}},
                {"$set": {"delivered_ms": ms(now)}, "$inc": {"deliveries": 1}},
            )

    async def ack_assignments(
        self,
        provider_id: str,
        job_id: str,
        max_epoch: int,
        now: datetime,
        actions: Sequence[str] | None = None,
    ) -> int:
        f: Doc = {
            "provider_id": provider_id,
            "job_id": job_id,
            "acked": 0,
            "epoch": {"$lte": max_epoch},
        }
        if actions:
            f["action"] = {"$in": list(actions)}
        res = await self.assignments.update_many(f, {"$set": {"acked": 1, "acked_ms": ms(now)}})
        return res.modified_count

    async def ack_from_heartbeat(
        self,
        provider_id: str,
        running: set[tuple[str, int]],
        now: datetime,
        handled_through_ms: int | None = None,
    ) -> int:
        """What a heartbeat acknowledges, in one read (and one write when any): a
        start/prepare of a job the agent lists under that epoch or a newer one; a
        delivered cancel of a (job, epoch) the agent no longer lists (it may list the
        same job under a newer epoch, as standby), when the agent says it had handled
        that delivery when it built the heartbeat (``handled_through_ms``; agents that
        do not send it are taken at their word)."""
        newest: dict[str, int] = {}
        for job_id, epoch in running:
            newest[job_id] = max(epoch, newest.get(job_id, 0))
        cur = self.assignments.find(
            {"provider_id": provider_id, "acked": 0},
            {"job_id": 1, "epoch": 1, "action": 1, "deliveries": 1, "delivered_ms": 1},
        )
        done = []
        async for a in cur:
            key = (a["job_id"], int(a["epoch"]))
            if a["action"] == "stage":
                # best effort: done once delivered
                if int(a.get("deliveries", 0) or 0) >= 1:
                    done.append(a["_id"])
            elif a["action"] == "cancel":
                handled = handled_through_ms is None or handled_through_ms >= int(
                    a.get("delivered_ms") or 0
                )
                if int(a.get("deliveries", 0) or 0) >= 1 and key not in running and handled:
                    done.append(a["_id"])
            elif newest.get(a["job_id"], -1) >= int(a["epoch"]):
                done.append(a["_id"])
        if done:
            await self.ack_assignment_ids(done, now)
        return len(done)

    async def supersede_assignments(self, job_id: str, below_epoch: int, now: datetime) -> None:
        """Assignments of an older epoch are never delivered again."""
        await self.assignments.update_many(
            {"job_id": job_id, "acked": 0, "epoch": {"$lt": below_epoch}},
            {"$set": {"acked": 1, "acked_ms": ms(now), "superseded": 1}},
        )

    async def supersede_starts_of(self, job_id: str, provider_id: str, now: datetime) -> None:
        """A provider no longer placed on the job never receives its start or prepare."""
        await self.assignments.update_many(
            {
                "job_id": job_id,
                "provider_id": provider_id,
                "acked": 0,
                "action": {"$in": ["start", "prepare", "stage"]},
            },
            {"$set": {"acked": 1, "acked_ms": ms(now), "superseded": 1}},
        )

    async def set_liveness(self, provider_id: str, state: str, at_ms: int) -> Doc | None:
        """The failover service's verdict on a provider, unless a newer one is recorded
        (verdicts of one provider arrive in order; a redelivery is older or equal).
        Cross-tenant: verdicts name the provider only. The offer feed announces it."""
        guard: Doc = {
            "_id": provider_id,
            "$or": [{"liveness_ms": {"$exists": False}}, {"liveness_ms": {"$lt": at_ms}}],
        }
        update: Doc = {"$set": {"liveness": state, "liveness_ms": at_ms, "updated_ms": at_ms}}
        doc = await self.providers.find_one_and_update(
            guard, offer_changed(update), comment=SWEEP, return_document=ReturnDocument.AFTER
        )
        if doc is not None:
            self.on_offer_changed()
        return doc

    async def record_provider_loss(
        self, provider_id: str, at_ms: int, window_min: int
    ) -> Doc | None:
        """The provider was lost holding a job: the minute goes into its ``losses`` ring
        (which lowers its reliability for ``window_min`` minutes). Cross-tenant: the
        lease owner acts on a provider of another org."""
        minute = at_ms // 60_000
        return await self.providers.find_one_and_update(
            {"_id": provider_id},
            {"$set": {f"losses.{minute % window_min}": minute, "updated_ms": at_ms}},
            comment=SWEEP,
            return_document=ReturnDocument.AFTER,
        )

    async def start_untouched(self, job_id: str, epoch: int) -> bool:
        """The job's start for ``epoch`` exists and no agent (nor the Kubernetes
        dispatcher) has taken it: never delivered, never acknowledged."""
        doc = await self.assignments.find_one(
            {"job_id": job_id, "epoch": epoch, "action": "start", "role": "primary"},
            {"acked": 1, "deliveries": 1},
        )
        return (
            doc is not None
            and not int(doc.get("acked", 0) or 0)
            and not int(doc.get("deliveries", 0) or 0)
        )

    async def supersede_ids(self, ids: Sequence[str], now: datetime) -> None:
        """These assignments are never delivered (their job ended or moved on)."""
        await self.assignments.update_many(
            {"_id": {"$in": list(ids)}, "acked": 0},
            {"$set": {"acked": 1, "acked_ms": ms(now), "superseded": 1}},
        )

    async def supersede_starts(self, job_id: str, now: datetime) -> None:
        """A canceled or finished job: unstarted starts/prepares are not delivered."""
        await self.assignments.update_many(
            {"job_id": job_id, "acked": 0, "action": {"$in": ["start", "prepare"]}},
            {"$set": {"acked": 1, "acked_ms": ms(now), "superseded": 1}},
        )

    # --- logs --------------------------------------------------------------------

    async def insert_logs(self, doc: Doc) -> None:
        await self.logs.insert_one(doc)

    async def read_logs(self, org_id: str, job_id: str, limit: int, cursor: str | None) -> Page:
        """Up to ``limit`` log LINES (not batches), oldest first. The cursor names the
        next line: ``<batch id>:<line index>`` (a bare batch id: after that batch)."""
        f: Doc = {"org_id": org_id, "job_id": job_id}
        skip, first = 0, None
        if cursor:
            at = decode_cursor(cursor)
            batch, sep, idx = at.partition(":")
            if sep:
                if not idx.isdigit():
                    raise ValueError("malformed cursor")
                f["_id"] = {"$gte": batch}
                skip, first = int(idx), batch
            else:
                f["_id"] = {"$gt": batch}
        # every stored batch has at least one line: limit + 1 batches are enough
        cur = self.logs.find(f).sort([("_id", ASCENDING)]).limit(limit + 1)
        out: list[Doc] = []
        nxt: str | None = None
        async for b in cur:
            lines = list(b.pop("lines", None) or [])
            start = skip if b["_id"] == first else 0
            for i in range(start, len(lines)):
                if len(out) == limit:
                    nxt = encode_cursor(f"{b['_id']}:{i}")
                    break
                out.append({**b, "line": lines[i], "cursor": encode_cursor(f"{b['_id']}:{i + 1}")})
            if nxt:
                break
        return Page(out, nxt)
