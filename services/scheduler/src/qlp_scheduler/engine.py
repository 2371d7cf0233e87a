"""The scheduler's use cases: the pure rules of :mod:`qlp_scheduler.service` applied
to the documents of :mod:`qlp_scheduler.repository`.

Every state change of a job is ONE conditional single-document write that also
stages its events (outbox). Side effects on other documents (writing agent
assignments, giving GPUs back) are recorded in the same write under
``fx_assign`` / ``fx_release`` with ``fx_pending = 1`` and applied right after,
idempotently; a reconciler applies whatever a crash left pending.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog

from qlp.scheduling.v1 import types_pb2 as t
from qlp_kit.aio import wait_event
from qlp_kit.auth import Principal
from qlp_kit.ids import new_id
from qlp_kit.money import Money
from qlp_kit.mongo import utcnow
from qlp_kit.outbox import Staged, outbox_update, with_outbox
from qlp_kit.producer import Record
from qlp_scheduler import balances
from qlp_scheduler import events as E
from qlp_scheduler import service as S
from qlp_scheduler.checkpoint_store import CheckpointStore, make_store
from qlp_scheduler.k8s import KubernetesLauncher
from qlp_scheduler.metrics import (
    CLAIM_CONFLICTS,
    JOBS_AT_RISK,
    OFFERS_INDEXED,
    PLACEMENT_SECONDS,
    PLACEMENTS,
    STALE_EPOCH_REPORTS,
)
from qlp_scheduler.offer_feed import OfferFeed
from qlp_scheduler.offer_index import OfferIndex, view_from_doc
from qlp_scheduler.repository import Repository, offer_changed
from qlp_scheduler.service import ms
from qlp_scheduler.settings import SchedulerSettings

#: The offer catalogue hears of a reliability change alone once it moved this much.
RELIABILITY_STEP_BPS = 100

log = structlog.get_logger("qlp.scheduler")

Doc = dict[str, Any]

# Assignments are kept (TTL index) a day longer than the longest job may run.
ASSIGNMENT_TTL = timedelta(days=8)
# Checkpoints kept per job (older ones are deleted after each new one).
CHECKPOINTS_KEPT = 3


@dataclass
class Checkpoint:
    checkpoint_id: str
    step: int
    data: bytes


def _placement(view: S.OfferView, uuids: list[str], role: str) -> Doc:
    return {
        "provider_id": view.provider_id,
        "provider_org_id": view.provider_org_id,
        "offer_id": view.offer_id,
        "machine_id": view.machine_id,
        "gpu_model": view.gpu_model,
        "gpu_uuids": list(uuids),
        "price_minor": view.price_minor,
        "currency": view.currency,
        "lease_id": new_id("lse"),
        "role": role,
    }


def containers_of(body: Doc) -> bool:
    """A Kubernetes pool runs images; an agent does when it found a container engine."""
    if body.get("backend") == "kubernetes":
        return True
    return bool((body.get("machine") or {}).get("container_engine"))


def assignment_id(job_id: str, epoch: int, provider_id: str, action: str) -> str:
    return f"asg-{job_id}-{epoch}-{provider_id}-{action}"


class Scheduler:
    """One per process (kept in the service context's extras)."""

    def __init__(self, repo: Repository, settings: SchedulerSettings) -> None:
        self.repo = repo
        self.settings = settings
        self.index = OfferIndex()
        self.checkpoints: CheckpointStore = make_store(repo.db, settings)
        self._waiters: dict[str, asyncio.Event] = {}
        # True while the change stream on assignments runs: waiting long-polls then
        # need the database only at the end (and a slow safety re-check)
        self.watching = False
        # set when this process sees capacity appear (GPUs released, a provider
        # registered or back online): the placement retry loop runs at once
        self.capacity_changed = asyncio.Event()
        # OfferAvailabilityChanged for the catalogue, coalesced off the claim path
        self.offer_feed = OfferFeed(repo, self.offer_availability)
        # offer-index pulls that found nothing new in a row (the refresh backs off)
        self.idle_refreshes = 0
        # live jobs the last timeout round looked at (the timeout loop backs off at 0)
        self.live_jobs_seen = 0
        self._refresh_high_ms = 0
        # Set when the Kubernetes backend is enabled (KubernetesLauncher).
        self.k8s: KubernetesLauncher | None = None
        self._refresh_lock = asyncio.Lock()

    # ====================================================================== offers

    async def refresh_offers(self, full: bool = False) -> int:
        """Pull offers changed since the last pull into the in-memory index."""
        async with self._refresh_lock:
            now = utcnow()
            since = None if full or self.index.last_refresh is None else self.index.last_refresh
            # Overlap a little: writes of the same moment as the last pull, clock skew
            # between replicas.
            overlap_ms = int(self.settings.offer_refresh_overlap_s * 1000)
            docs = await self.repo.offers_changed_since(
                None if since is None else ms(since) - overlap_ms
            )
            newer = 0
            for doc in docs:
                self._index_doc(doc, now)
                changed = int(doc.get("updated_ms", 0) or 0)
                if changed > self._refresh_high_ms:
                    newer += 1
                    self._refresh_high_ms = changed
            self.index.last_refresh = now
            OFFERS_INDEXED.set(len(self.index))
            # the overlap re-reads the last pull's newest offers: only newer ones count
            self.idle_refreshes = 0 if newer else self.idle_refreshes + 1
            return newer

    def _index_doc(self, doc: Doc | None, now: datetime | None = None) -> None:
        """Upsert an offer into the index; capacity that appears (more free GPUs, a
        provider back online or new) wakes the placement retry loop."""
        if doc is None:
            return
        now = now or utcnow()
        view = view_from_doc(doc, now, self.settings.reliability_window_min)
        old = self.index.get(view.offer_id)
        self.index.upsert(view)
        if view.status != S.ACTIVE or view.available_gpus <= 0:
            return
        timeout = self.settings.heartbeat_timeout_s
        ts = now.timestamp()
        if (
            old is None
            or view.available_gpus > old.available_gpus
            or (S.is_healthy(view, ts, timeout) and not S.is_healthy(old, ts, timeout))
        ):
            self.capacity_changed.set()

    # =================================================================== providers

    def provider_doc(self, org_id: str, body: Doc, now: datetime) -> Doc:
        """A new provider document (the machine and its offer) with its first events."""
        machine = body["machine"]
        gpus = {
            g["uuid"]: {"index": int(g["index"]), "model": g["model"], "memory_gb": g["memory_gb"]}
            for g in machine["gpus"]
        }
        models = sorted({g["model"] for g in machine["gpus"]})
        price = body["price_per_gpu_hour"]
        doc: Doc = {
            "_id": new_id("prv"),
            "org_id": org_id,
            "offer_id": new_id("ofr"),
            "machine_id": new_id("mch"),
            "name": body["name"],
            "region": body["region"],
            "price_minor": int(price["amount"]),
            "currency": price["currency"],
            "fingerprint": machine["fingerprint"],
            "machine": {k: v for k, v in machine.items() if k not in ("gpus", "fingerprint")},
            "gpus": gpus,
            "gpu_model": models[0] if models else "",
            "gpu_memory_gb": min((float(g["memory_gb"]) for g in machine["gpus"]), default=0.0),
            "gpu_count": len(gpus),
            "available_gpus": len(gpus),
            "gpu_owner": dict.fromkeys(gpus, ""),
            "claims": {},
            "status": S.ACTIVE,
            "backend": body.get("backend", "agent"),
            "containers": containers_of(body),
            "kubernetes": body.get("kubernetes") if body.get("backend") == "kubernetes" else None,
            "stake_minor": int(body.get("stake_minor", 0) or 0),
            "created_at": now,
            "updated_ms": ms(now),
            "last_heartbeat_ms": ms(now),
            "hb_seq": 0,
            "registered_minute": S.minute_of(now),
            "uptime": {
                str(S.minute_of(now) % self.settings.reliability_window_min): S.minute_of(now)
            },
            "gpu_status": {},
        }
        return with_outbox(doc, E.provider_registered(doc, now))

    async def register_provider(self, org_id: str, body: Doc) -> tuple[Doc, bool]:
        machine = body["machine"]
        existing = await self.repo.provider_by_fingerprint(org_id, machine["fingerprint"])
        if existing is not None:
            return await self._reregister(existing, body), False
        now = utcnow()
        doc = self.provider_doc(org_id, body, now)
        if not await self.repo.insert_provider(doc):
            again = await self.repo.provider_by_fingerprint(org_id, machine["fingerprint"])
            if again is None:  # pragma: no cover - unique index says it exists
                raise S.DomainError("provider registration raced and vanished")
            return again, False
        self._index_doc(doc)
        return doc, True

    async def _reregister(self, doc: Doc, body: Doc) -> Doc:
        """The same machine again: the same provider; a changed name, region or price
        is taken over and the offer republished."""
        price = body["price_per_gpu_hour"]
        changes = {
            "name": body["name"],
            "region": body["region"],
            "price_minor": int(price["amount"]),
            "currency": price["currency"],
            "containers": containers_of(body),
        }
        if doc.get("status") == S.OFFLINE:  # the agent is back: offer again
            changes["status"] = S.ACTIVE
        if all(doc.get(k) == v for k, v in changes.items()):
            return doc
        now = utcnow()
        new = {**doc, **changes}
        update = outbox_update(
            [E.staged(E.offer_published(new, now), doc["org_id"], doc["offer_id"], now)],
            {"$set": {**changes, "updated_ms": ms(now)}},
        )
        after = await self.repo.update_provider(doc["_id"], doc["org_id"], {}, update)
        self._index_doc(after)
        return after or new

    async def provider(self, org_id: str, provider_id: str) -> Doc:
        doc = await self.repo.get_provider(provider_id, org_id)
        if doc is None:
            raise S.NotFound("provider")
        return doc

    def offer_availability(self, doc: Doc) -> Record:
        """An offer's OfferAvailabilityChanged (free GPUs, status, reliability) built
        from its provider document (the offer feed's record)."""
        return E.offer_availability(doc, round(self.reliability_of(doc) * 10_000), utcnow())

    def reliability_of(self, doc: Doc) -> float:
        now = utcnow()
        return S.reliability(
            doc.get("uptime") or {},
            int(doc.get("registered_minute", S.minute_of(now))),
            S.minute_of(now),
            self.settings.reliability_window_min,
            doc.get("losses") or {},
        )

    async def heartbeat(self, org_id: str, provider_id: str, body: Doc) -> Doc:
        running = list(body.get("running", []))
        leases = sorted(
            f"{r['job_id']}@{int(r['epoch'])}:{r.get('status', 'running')}" for r in running
        )
        for _ in range(5):
            doc = await self.provider(org_id, provider_id)
            now = utcnow()
            minute = S.minute_of(now)
            slot = f"{minute % self.settings.reliability_window_min}"
            if self._heartbeat_changes_nothing(doc, leases, slot, minute, now):
                # coalesced: no write, no event; liveness stays within its resolution
                await self.repo.ack_from_heartbeat(
                    provider_id,
                    {(r["job_id"], int(r["epoch"])) for r in running},
                    now,
                    body.get("handled_through_ms"),
                )
                return doc
            seq = int(doc.get("hb_seq", 0)) + 1
            known = doc.get("gpus") or {}
            gpus = [g for g in body.get("gpus", []) if g["uuid"] in known]
            sets: Doc = {
                "last_heartbeat_ms": ms(now),
                "updated_ms": ms(now),
                "hb_seq": seq,
                "hb_leases": leases,
                f"uptime.{slot}": minute,
            }
            for g in gpus:
                sets[f"gpu_status.{g['uuid']}"] = {**g, "at_ms": ms(now)}
            staged = [E.heartbeat(doc, seq, gpus, running, now)]
            guard: Doc = {"hb_seq": doc.get("hb_seq", 0)}
            post = {**doc, "uptime": {**(doc.get("uptime") or {}), slot: minute}}
            bps = round(self.reliability_of(post) * 10_000)
            last_bps = doc.get("offer_rel_bps")
            # coalesced: the catalogue hears of reliability only when it moved by a step
            moved = last_bps is None or abs(bps - int(last_bps)) >= RELIABILITY_STEP_BPS
            if moved:
                sets["offer_rel_bps"] = bps
            change: Doc = {"$set": sets}
            update = outbox_update(staged, offer_changed(change) if moved else change)
            after = await self.repo.update_provider(provider_id, org_id, guard, update)
            if after is not None:
                if moved:
                    self.offer_feed.poke()
                break
        else:
            raise S.DomainError("heartbeat kept racing")
        self._index_doc(after)
        await self.repo.ack_from_heartbeat(
            provider_id,
            {(r["job_id"], int(r["epoch"])) for r in running},
            now,
            body.get("handled_through_ms"),
        )
        return after

    def _heartbeat_changes_nothing(
        self, doc: Doc, leases: list[str], slot: str, minute: int, now: datetime
    ) -> bool:
        """A heartbeat needs no write when the provider is active, holds the same
        leases as last written, this minute already counts for its reliability, and the
        last written one is younger than ``heartbeat_write_s`` (well inside the
        ``heartbeat_timeout_s`` liveness resolution)."""
        last = doc.get("last_heartbeat_ms")
        return (
            doc.get("status") == S.ACTIVE
            and isinstance(last, int | float)
            and ms(now) - int(last) < int(self.settings.heartbeat_write_s * 1000)
            and doc.get("hb_leases") == leases
            and (doc.get("uptime") or {}).get(slot) == minute
        )

    async def drain(self, org_id: str, provider_id: str) -> Doc:
        doc = await self.provider(org_id, provider_id)
        if doc["status"] == S.DRAINING:
            return doc
        now = utcnow()
        update = outbox_update(
            [E.offer_withdrawn(doc, "provider draining", now)],
            {"$set": {"status": S.DRAINING, "updated_ms": ms(now)}},
        )
        after = await self.repo.update_provider(provider_id, org_id, {"status": S.ACTIVE}, update)
        after = after or await self.provider(org_id, provider_id)
        self.index.remove(after["offer_id"])
        return after

    async def go_offline(self, org_id: str, provider_id: str) -> Doc:
        """The agent stopped on purpose: withdraw the offer at once (no waiting for
        missed heartbeats); registering again makes it active. A draining provider
        stays draining (an operator's decision)."""
        doc = await self.provider(org_id, provider_id)
        if doc["status"] != S.ACTIVE:
            return doc
        now = utcnow()
        update = outbox_update(
            [E.offer_withdrawn(doc, "provider went offline", now)],
            {"$set": {"status": S.OFFLINE, "updated_ms": ms(now)}},
        )
        after = await self.repo.update_provider(provider_id, org_id, {"status": S.ACTIVE}, update)
        after = after or await self.provider(org_id, provider_id)
        self.index.remove(after["offer_id"])
        return after

    async def earnings(self, org_id: str, provider_id: str) -> Doc:
        prov = await self.provider(org_id, provider_id)
        minutes = 0
        gross = 0
        jobs = 0
        for job in await self.repo.jobs_of_provider(provider_id):
            u = (job.get("usage") or {}).get(provider_id)
            if not u or job.get("status") not in S.TERMINAL:
                continue
            line = S.usage_lines({provider_id: u})[0]
            jobs += 1
            minutes += line.gpu_minutes
            gross += S.cost_minor(line.gpu_minutes, line.price_minor)
        fee = Money(gross, prov.get("currency", "USD")).fee(self.settings.platform_fee_bps).amount
        return {
            "provider_id": provider_id,
            "currency": prov.get("currency", "USD"),
            "jobs": jobs,
            "gpu_minutes": minutes,
            "gross": gross,
            "platform_fee": fee,
            "net": gross - fee,
            "platform_fee_bps": self.settings.platform_fee_bps,
        }

    # ======================================================================== jobs

    async def quote(self, org_id: str, spec: Doc) -> Doc:
        """What a submit of ``spec`` would hold and find, without submitting: the
        escrow estimate, the offers that match now and those registered that could,
        why the job would wait, and the prepaid balance the scheduler sees."""
        amount = S.escrow_estimate(
            int(spec["gpu_count"]), int(spec["max_price_minor"]), int(spec["max_duration_s"])
        )
        await self.refresh_offers()
        req = self._requirements(spec)
        offers = list(self.index.by_price())
        now_ts = time.time()
        timeout = self.settings.heartbeat_timeout_s
        matching = sum(1 for o in offers if S.eligible(o, req, now_ts, timeout))
        unsat = S.unsatisfiable_reason(offers, req, self._machines_needed(spec))
        avail = await balances.available(self.repo, org_id)
        return {
            "amount": amount,
            "currency": spec.get("currency", "USD"),
            "matching_offers": matching,
            "unsatisfiable": unsat,
            "placement_reason": None
            if matching
            else S.placement_reason(offers, req, now_ts, timeout, self._machines_needed(spec)),
            "available": avail,
            "escrow_required": self.settings.escrow_required,
        }

    @staticmethod
    def _machines_needed(spec: Doc) -> int:
        return 2 if spec.get("redundancy") == "hot_standby" else 1

    async def check_submit(self, org_id: str, spec: Doc, amount: int) -> None:
        """Refuse at submit what could never run (422 naming the requirement, unless
        the request asks to wait for capacity) or what the prepaid balance, as the
        scheduler last saw it, cannot cover (402 with the shortfall)."""
        if not spec.get("wait_for_capacity"):
            req = self._requirements(spec)
            needed = self._machines_needed(spec)
            if S.unsatisfiable_reason(self.index.by_price(), req, needed) is not None:
                # the index may lag a registration on another replica: pull first
                await self.refresh_offers(full=self.index.last_refresh is None)
                why = S.unsatisfiable_reason(self.index.by_price(), req, needed)
                if why is not None:
                    raise S.Unsatisfiable(why)
        if self.settings.escrow_required:
            avail = await balances.available(self.repo, org_id)
            if avail is not None and avail < amount:
                raise S.InsufficientBalance(amount, avail, spec.get("currency", "USD"))

    async def submit_job(self, principal: Principal, spec: Doc) -> Doc:
        now = utcnow()
        job_id = new_id("job")
        amount = S.escrow_estimate(
            int(spec["gpu_count"]), int(spec["max_price_minor"]), int(spec["max_duration_s"])
        )
        await self.check_submit(principal.org_id, spec, amount)
        escrow_required = self.settings.escrow_required
        job: Doc = {
            "_id": job_id,
            "org_id": principal.org_id,
            "status": S.SUBMITTED if escrow_required else S.ESCROW_HELD,
            "spec": spec,
            "escrow_id": new_id("esc") if escrow_required else "",
            "escrow_amount": {"amount": amount, "currency": spec.get("currency", "USD")},
            "escrow_required": 1 if escrow_required else 0,
            "epoch": 0,
            "primary": None,
            "standby": None,
            "provider_ids": [],
            "usage": {},
            "run_started_ms": None,
            "step": None,
            "message": "",
            "latest_checkpoint": None,
            "failure": None,
            "exit_code": None,
            "fx_pending": 0,
            "fx_seq": 0,
            "placement_attempts": 0,
            "created_at": now,
            "updated_ms": ms(now),
            "escrow_held_ms": None if escrow_required else ms(now),
            "submitted_by": principal.subject,
        }
        evs = [E.job_submitted(job, principal, now)]
        if escrow_required:
            evs.append(E.escrow_hold_requested(job, self.settings.platform_fee_bps, now))
            job = with_outbox(job, evs)
            await self.repo.insert_job(job)
            return job
        # No escrow to wait for: claim first, then ONE insert of the placed job.
        placement = await self._claim_placement(job)
        if placement is None:
            job["message"] = "waiting for capacity"
            job["placement_reason"] = self.why_waiting(spec)
            await self.repo.insert_job(with_outbox(job, evs))
            if self.settings.placement_timeout_s <= 0:
                return await self._no_capacity(job, now)
            return job
        sets, placed_evs = self._placed_fields(job, *placement, now)
        job = with_outbox({**job, **sets, "placement_attempts": 1, "fx_seq": 1}, evs + placed_evs)
        try:
            await self.repo.insert_job(job)
        except Exception:
            await self._give_back(job_id, *placement)
            raise
        return await self.apply_effects(job)

    async def job(self, org_id: str, job_id: str) -> Doc:
        doc = await self.repo.get_job(job_id, org_id)
        if doc is None:
            raise S.NotFound("job")
        return doc

    async def on_escrow_held(self, org_id: str, job_id: str, escrow_id: str) -> Doc | None:
        """Idempotent: only a job still ``submitted`` under this escrow moves on (to
        ``placed``, or ``escrow_held`` while no capacity), by a conditional write."""
        job = await self.repo.get_job(job_id, org_id)
        if job is None or job.get("escrow_id") != escrow_id:
            return None
        if job["status"] != S.SUBMITTED:
            await self._late_hold(job, escrow_id, utcnow())
            return None
        out = await self.place_job(job_id, job, expect=S.SUBMITTED)
        return out if out["status"] != S.SUBMITTED else None

    async def _late_hold(self, job: Doc, escrow_id: str, now: datetime) -> None:
        """A hold that arrives after the job was canceled (or failed) before it: tell
        billing once more that the job ended with no usage, so it releases the hold
        (billing settles an escrow once; this notice is sent once)."""
        job_id = job["_id"]
        if (
            job.get("escrow_id") != escrow_id
            or job["status"] not in (S.CANCELED, S.FAILED)
            or job.get("primary")
            or job.get("late_hold_notified")
            or (job.get("failure") or {}).get("reason") == "escrow_rejected"
        ):
            return
        reason = (job.get("failure") or {}).get("message") or job["status"]
        ev = (
            E.job_canceled(job, reason, [], None, now)
            if job["status"] == S.CANCELED
            else E.job_failed(job, "", 0, t.JOB_FAILURE_REASON_UNSPECIFIED, reason, 0, [], now)
        )
        await self.repo.update_job(
            job_id,
            {"status": job["status"], "late_hold_notified": {"$exists": False}},
            outbox_update([ev], {"$set": {"late_hold_notified": 1}}),
        )

    async def on_escrow_rejected(
        self, org_id: str, job_id: str, escrow_id: str, reason: str
    ) -> Doc | None:
        job = await self.repo.get_job(job_id, org_id)
        if job is None or job.get("escrow_id") != escrow_id or job["status"] != S.SUBMITTED:
            return None
        now = utcnow()
        msg = f"escrow rejected: {reason}"
        update = outbox_update(
            [E.job_failed(job, "", 0, t.JOB_FAILURE_REASON_ESCROW_REJECTED, msg, 0, [], now)],
            {
                "$set": {
                    "status": S.FAILED,
                    "failure": {"reason": "escrow_rejected", "message": msg},
                    "updated_ms": ms(now),
                    "ended_ms": ms(now),
                }
            },
        )
        return await self.repo.update_job(job_id, {"status": S.SUBMITTED}, update)

    def _requirements(self, spec: Doc) -> S.Requirements:
        return S.Requirements(
            gpu_count=int(spec["gpu_count"]),
            max_price_minor=int(spec["max_price_minor"]),
            currency=spec.get("currency", "USD"),
            gpu_model=spec.get("gpu_model") or "",
            min_gpu_memory_gb=float(spec.get("min_gpu_memory_gb") or 0),
            region=spec.get("region") or "",
            region_strict=bool(spec.get("region_strict")),
            container=bool(spec.get("image")),
        )

    def why_waiting(self, spec: Doc) -> str:
        """Why no placement was found for a job with this spec (from the offer index)."""
        return S.placement_reason(
            self.index.by_price(),
            self._requirements(spec),
            time.time(),
            self.settings.heartbeat_timeout_s,
            machines_needed=2 if spec.get("redundancy") == "hot_standby" else 1,
        )

    async def claim_best(
        self, job_id: str, role: str, req: S.Requirements, exclude_machines: set[str]
    ) -> tuple[S.OfferView, list[str]] | None:
        """Claim GPUs on the best eligible offer; on a lost race reload that offer and
        try the next. Returns the offer view and the claimed GPU uuids."""
        if self.index.last_refresh is None:
            await self.refresh_offers(full=True)
        tried: set[str] = set()
        for _ in range(4):
            cands = S.top_candidates_grouped(
                self.index.groups(),
                req,
                time.time(),
                self.settings.heartbeat_timeout_s,
                k=8,
                exclude_machines=exclude_machines,
                exclude_offers=tried,
            )
            if not cands:
                return None
            for view in cands:
                tried.add(view.offer_id)
                uuids = S.pick_gpus(view, req.gpu_count)
                if not uuids:
                    continue
                if await self.repo.claim(view.provider_id, job_id, role, uuids, utcnow()):
                    # what the conditional update changed, mirrored in the index
                    view.available_gpus -= len(uuids)
                    for u in uuids:
                        view.gpu_owner[u] = job_id
                    return view, uuids
                CLAIM_CONFLICTS.inc()
                fresh = await self.repo.get_provider(view.provider_id)
                if fresh is None:
                    self.index.remove(view.offer_id)
                else:
                    self._index_doc(fresh)
        return None

    async def _claim_placement(self, job: Doc) -> tuple[Doc, Doc | None] | None:
        """Claim the primary's GPUs and, with hot standby, the standby's on another
        machine; a half placement is given back (compensation). None: no capacity."""
        t0 = time.perf_counter()
        out = await self._claim_placement_inner(job)
        PLACEMENT_SECONDS.observe(time.perf_counter() - t0)
        PLACEMENTS.labels("placed" if out else "no_capacity").inc()
        return out

    async def _claim_placement_inner(self, job: Doc) -> tuple[Doc, Doc | None] | None:
        job_id = job["_id"]
        spec = job["spec"]
        req = self._requirements(spec)
        primary = await self.claim_best(job_id, S.PRIMARY, req, set())
        if primary is None:
            return None
        standby = None
        if spec.get("redundancy") == "hot_standby":
            standby = await self.claim_best(job_id, S.STANDBY, req, {primary[0].machine_id})
            if standby is None:
                await self._release(primary[0].provider_id, job_id, primary[1])
                return None
        p = _placement(primary[0], primary[1], S.PRIMARY)
        sb = _placement(standby[0], standby[1], S.STANDBY) if standby else None
        return p, sb

    def _placed_fields(
        self, job: Doc, p: Doc, sb: Doc | None, now: datetime
    ) -> tuple[Doc, list[Staged]]:
        """What a placed job sets (the next epoch, placements, assignments to write) and its
        JobPlaced event."""
        epoch = int(job.get("epoch") or 0) + 1  # a job placed again gets a new epoch
        # placed again after its provider was lost: it resumes from its checkpoint
        resume = bool(job.get("latest_checkpoint"))
        fx_assign = {a["_id"]: a for a in self._start_assignments(job, p, sb, epoch, resume, now)}
        sets: Doc = {
            "status": S.PLACED,
            "epoch": epoch,
            "primary": p,
            "standby": sb,
            "provider_ids": [p["provider_id"]] + ([sb["provider_id"]] if sb else []),
            "placed_ms": ms(now),
            "updated_ms": ms(now),
            "fx_pending": 1,
            "fx_assign": fx_assign,
            "message": "",
            "placement_reason": None,
        }
        return sets, [E.job_placed(job, p, sb, epoch, now)]

    async def _give_back(self, job_id: str, p: Doc, sb: Doc | None) -> None:
        await self._release(p["provider_id"], job_id, p["gpu_uuids"])
        if sb:
            await self._release(sb["provider_id"], job_id, sb["gpu_uuids"])

    async def place_job(
        self, job_id: str, job: Doc | None = None, expect: str = S.ESCROW_HELD
    ) -> Doc:
        """Place a job in status ``expect`` (``escrow_held``, or ``submitted`` when
        billing's hold just arrived: then the hold and the placement are one write).
        ``job`` is its document when the caller has it fresh. Without capacity the
        job waits in ``escrow_held`` for the retry loop."""
        job = job or await self.repo.get_job(job_id)
        if job is None:
            raise S.NotFound("job")
        if job["status"] != expect:
            return job
        now = utcnow()
        placement = await self._claim_placement(job)
        if placement is None:
            return await self._no_capacity(job, now, expect)
        p, sb = placement
        sets, evs = self._placed_fields(job, p, sb, now)
        if expect == S.SUBMITTED:
            sets["escrow_held_ms"] = ms(now)
        update = outbox_update(evs, {"$set": sets, "$inc": {"placement_attempts": 1, "fx_seq": 1}})
        placed = await self.repo.update_job(job_id, {"status": expect}, update)
        if placed is None:  # canceled meanwhile: give the GPUs back
            await self._give_back(job_id, p, sb)
            return await self.repo.get_job(job_id) or job
        return await self.apply_effects(placed)

    async def _no_capacity(self, job: Doc, now: datetime, expect: str = S.ESCROW_HELD) -> Doc:
        held_ms = job.get("escrow_held_ms") or ms(now)
        waited = (ms(now) - int(held_ms)) / 1000
        if waited < self.settings.placement_timeout_s or (
            expect == S.SUBMITTED and self.settings.placement_timeout_s > 0
        ):
            sets: Doc = {
                "status": S.ESCROW_HELD,
                "updated_ms": ms(now),
                "message": "waiting for capacity",
                "placement_reason": self.why_waiting(job["spec"]),
            }
            if expect == S.SUBMITTED:
                sets["escrow_held_ms"] = ms(now)
            out = await self.repo.update_job(
                job["_id"],
                {"status": expect},
                {"$set": sets, "$inc": {"placement_attempts": 1}},
            )
            return out or job
        msg = f"no offer satisfies the requirements: {self.why_waiting(job['spec'])}"
        update = outbox_update(
            [E.job_failed(job, "", 0, t.JOB_FAILURE_REASON_NO_CAPACITY, msg, 0, [], now)],
            {
                "$set": {
                    "status": S.FAILED,
                    "failure": {"reason": "no_capacity", "message": msg},
                    "updated_ms": ms(now),
                    "ended_ms": ms(now),
                }
            },
        )
        out = await self.repo.update_job(job["_id"], {"status": expect}, update)
        return out or job

    def _start_assignments(
        self, job: Doc, p: Doc, sb: Doc | None, epoch: int, resume: bool, now: datetime
    ) -> list[Doc]:
        spec = job["spec"]
        out = []
        for role, pl in ((S.PRIMARY, p), (S.STANDBY, sb)):
            if pl is None:
                continue
            action = "start" if role == S.PRIMARY else "prepare"
            out.append(
                {
                    "_id": assignment_id(job["_id"], epoch, pl["provider_id"], action),
                    "assignment_id": assignment_id(job["_id"], epoch, pl["provider_id"], action),
                    "provider_id": pl["provider_id"],
                    "job_id": job["_id"],
                    "epoch": epoch,
                    "role": role,
                    "action": action,
                    "command": list(spec["command"]),
                    "image": spec.get("image") or "",
                    "env": dict(spec.get("env") or {}),
                    "gpu_uuids": list(pl["gpu_uuids"]),
                    "checkpoint_interval_s": int(spec["checkpoint_interval_s"]),
                    "max_duration_s": int(spec["max_duration_s"]),
                    "resume": resume,
                    # what a resumed start restores (a standby that pre-staged it
                    # need not download it)
                    "checkpoint_id": (job.get("latest_checkpoint") or {}).get("checkpoint_id")
                    if resume
                    else None,
                    "acked": 0,
                    "deliveries": 0,
                    "seq": time.time_ns(),
                    "created_ms": ms(now),
                }
            )
        return out

    def _cancel_assignment(self, job: Doc, pl: Doc, epoch: int, now: datetime) -> Doc:
        aid = assignment_id(job["_id"], epoch, pl["provider_id"], "cancel")
        return {
            "_id": aid,
            "assignment_id": aid,
            "provider_id": pl["provider_id"],
            "job_id": job["_id"],
            "epoch": epoch,
            "role": pl.get("role", S.PRIMARY),
            "action": "cancel",
            "command": [],
            "env": {},
            "gpu_uuids": list(pl["gpu_uuids"]),
            "checkpoint_interval_s": 0,
            "max_duration_s": 0,
            "resume": False,
            "acked": 0,
            "deliveries": 0,
            "seq": time.time_ns(),
            "created_ms": ms(now),
        }

    async def _release(self, provider_id: str, job_id: str, uuids: list[str]) -> None:
        doc = await self.repo.release(provider_id, job_id, uuids, utcnow())
        self._index_doc(doc)

    async def apply_effects(self, job: Doc) -> Doc:
        """Write pending assignments and give back released GPUs (both idempotent),
        then clear exactly what was applied."""
        if not job.get("fx_pending"):
            return job
        assigns: Doc = job.get("fx_assign") or {}
        releases: Doc = job.get("fx_release") or {}
        if assigns:
            expire_at = utcnow() + ASSIGNMENT_TTL
            await self.repo.insert_assignments(
                [{**a, "expire_at": expire_at} for a in assigns.values()]
            )
            for pid in {a["provider_id"] for a in assigns.values()}:
                self._notify(pid)
            if self.k8s is not None:
                try:
                    await self.dispatch_k8s()
                except Exception as exc:  # the dispatch loop retries
                    log.warning("kubernetes dispatch failed", error=str(exc))
        for rel in releases.values():
            await self._release(rel["provider_id"], job["_id"], list(rel["gpu_uuids"]))
        unset = {f"fx_assign.{k}": "" for k in assigns} | {f"fx_release.{k}": "" for k in releases}
        cleared = await self.repo.update_job(
            job["_id"],
            {"fx_seq": job.get("fx_seq", 0)},
            {"$set": {"fx_pending": 0}, **({"$unset": unset} if unset else {})},
        )
        if cleared is None and unset:
            cleared = await self.repo.update_job(job["_id"], {}, {"$unset": unset})
        return cleared or job

    async def cancel_job(self, principal: Principal, job_id: str, reason: str) -> Doc:
        for _ in range(5):
            job = await self.job(principal.org_id, job_id)
            if job["status"] == S.CANCELED:
                return job  # canceling again changes nothing (a retry)
            if job["status"] in S.TERMINAL:
                raise S.InvalidTransition(
                    f"job {job_id} already {job['status']}: there is nothing to cancel"
                )
            now = utcnow()
            usage = self._close_segment(job, now)
            lines = S.usage_lines(usage)
            epoch = int(job.get("epoch", 0))
            evs: list[Staged] = [
                E.job_canceled({**job, "usage": usage}, reason, lines, principal, now)
            ]
            fx_assign: Doc = {}
            fx_release: Doc = {}
            for pl in (job.get("primary"), job.get("standby")):
                if not pl:
                    continue
                evs.append(
                    E.lease_revoked(job, pl, epoch, t.LEASE_REVOCATION_REASON_JOB_CANCELED, now)
                )
                a = self._cancel_assignment(job, pl, epoch, now)
                fx_assign[a["_id"]] = a
                fx_release[pl["provider_id"]] = {
                    "provider_id": pl["provider_id"],
                    "gpu_uuids": pl["gpu_uuids"],
                }
            evs += E.usage_recorded(job, lines, now)
            cost = S.total_cost(lines, int(job["escrow_amount"]["amount"]))
            sets: Doc = {
                "status": S.CANCELED,
                "usage": usage,
                "run_started_ms": None,
                "cost_minor": cost,
                "failure": {"reason": "canceled", "message": reason},
                "updated_ms": ms(now),
                "ended_ms": ms(now),
            }
            update = self._with_fx(sets, fx_assign, fx_release)
            done = await self.repo.update_job(
                job_id,
                {"status": job["status"], "epoch": epoch},
                outbox_update(evs, update),
            )
            if done is not None:
                await self.repo.supersede_starts(job_id, now)
                return await self.apply_effects(done)
        raise S.DomainError("cancel kept racing with other updates")

    def _with_fx(self, sets: Doc, fx_assign: Doc, fx_release: Doc) -> Doc:
        sets = dict(sets)
        if fx_assign or fx_release:
            sets["fx_pending"] = 1
            sets.update({f"fx_assign.{k}": v for k, v in fx_assign.items()})
            sets.update({f"fx_release.{k}": v for k, v in fx_release.items()})
            return {"$set": sets, "$inc": {"fx_seq": 1}}
        return {"$set": sets}

    def _close_segment(self, job: Doc, now: datetime) -> Doc:
        """Usage map with the current primary's running time added (GPU seconds)."""
        usage: Doc = {k: dict(v) for k, v in (job.get("usage") or {}).items()}
        started = job.get("run_started_ms")
        p = job.get("primary")
        if started and p:
            secs = max(0.0, (S.ms(now) - int(started)) / 1000) * int(job["spec"]["gpu_count"])
            u = usage.setdefault(
                p["provider_id"],
                {
                    "provider_org_id": p["provider_org_id"],
                    "role": S.PRIMARY,
                    "gpu_seconds": 0.0,
                    "price_minor": int(p["price_minor"]),
                    "gpu_model": str(p.get("gpu_model", "")),
                    "gpu_count": int(job["spec"]["gpu_count"]),
                },
            )
            u["gpu_seconds"] = float(u.get("gpu_seconds", 0)) + secs
        return usage

    def cost_so_far(self, job: Doc) -> int:
        usage = (
            self._close_segment(job, utcnow())
            if job["status"] in S.LIVE
            else job.get("usage") or {}
        )
        return S.total_cost(S.usage_lines(usage), int(job["escrow_amount"]["amount"]))

    async def promote_standby(
        self, job_id: str, expected_epoch: int | None = None, failover_id: str = ""
    ) -> Doc:
        """Failover: the standby becomes the primary under epoch + 1 (see
        :func:`qlp_scheduler.recovery.promote_standby`)."""
        from qlp_scheduler import recovery

        return await recovery.promote_standby(self, job_id, expected_epoch, failover_id)

    # ================================================================= agent API

    def _notify(self, provider_id: str) -> None:
        ev = self._waiters.pop(provider_id, None)
        if ev is not None:
            ev.set()

    async def watch_assignments(self) -> None:
        """Wake this process's waiting long-polls when any replica writes assignments
        (a change stream on inserts); without it, waiters re-check the database every
        ``assignment_poll_s``.

        A server that answers ``getMore`` at once instead of awaiting new events (the
        embedded database does) would make a plain ``async for`` spin, burning CPU in
        this process and the database: an empty answer that came back quickly is
        followed by a pause, up to ``assignment_watch_idle_s``."""
        idle = self.settings.assignment_watch_idle_s
        pause = min(0.05, idle)
        stream = await self.repo.watch_assignment_inserts(max_await_ms=int(idle * 1000))
        async with stream:
            self.watching = True
            try:
                while stream.alive:
                    t0 = time.monotonic()
                    change = await stream.try_next()
                    if change is not None:
                        pause = min(0.05, idle)
                        pid = (change.get("fullDocument") or {}).get("provider_id")
                        if pid:
                            self._notify(str(pid))
                        continue
                    if time.monotonic() - t0 < idle / 2:  # the server did not wait
                        await asyncio.sleep(pause)
                        pause = min(idle, pause * 2)
            finally:
                self.watching = False

    async def poll_assignments(self, org_id: str, provider_id: str, wait_s: float) -> list[Doc]:
        await self.provider(org_id, provider_id)
        deadline = time.monotonic() + max(0.0, min(wait_s, self.settings.max_wait_s))
        while True:
            items = await self._deliverable(await self.repo.pending_assignments(provider_id))
            remaining = deadline - time.monotonic()
            if items or remaining <= 0:
                break
            ev = self._waiters.setdefault(provider_id, asyncio.Event())
            # woken by this process's writes and (change stream) other replicas'; the
            # re-check is a safety net, slow while the change stream runs
            recheck = (
                self.settings.assignment_recheck_s
                if self.watching
                else self.settings.assignment_poll_s
            )
            await wait_event(ev, min(remaining, recheck))
        items.sort(key=lambda a: a.get("seq", 0))
        now = utcnow()
        await self.repo.mark_delivered([a["_id"] for a in items], now)
        for a in items:
            a["delivered_ms"] = ms(now)
        return items

    async def _deliverable(self, items: list[Doc]) -> list[Doc]:
        """Pending assignments minus starts/prepares whose job ended (canceled, failed)
        or moved to another epoch: those are superseded, never delivered, whichever
        replica or late effect wrote them. Checked at delivery, so a start is never
        delivered after its job's cancel was recorded."""
        starts = {a["job_id"] for a in items if a.get("action") in S.EPOCH_BOUND_ACTIONS}
        if not starts:
            return items
        current = await self.repo.job_epochs(sorted(starts))
        stale = [
            a["_id"]
            for a in items
            if a.get("action") in S.EPOCH_BOUND_ACTIONS
            and (cur := current.get(a["job_id"])) is not None
            and (cur[0] in S.TERMINAL or cur[1] != int(a["epoch"]))
        ]
        if not stale:
            return items
        await self.repo.supersede_ids(stale, utcnow())
        gone = set(stale)
        return [a for a in items if a["_id"] not in gone]

    async def _agent_job(
        self, org_id: str, provider_id: str, job_id: str, epoch: int
    ) -> tuple[Doc, str]:
        """The job as its provider sees it: the provider's role, with the epoch fenced."""
        await self.provider(org_id, provider_id)
        job = await self.repo.get_job(job_id)
        if job is None:
            raise S.NotFound("job")
        if provider_id not in (job.get("provider_ids") or []):
            if provider_id in (job.get("former_provider_ids") or []):
                # lost and replaced: whatever epoch it reports, its lease is revoked
                STALE_EPOCH_REPORTS.inc()
                raise S.StaleEpoch(job_id, epoch, int(job.get("epoch", 0)))
            raise S.NotFound("job")
        if epoch != int(job.get("epoch", 0)):
            STALE_EPOCH_REPORTS.inc()
            raise S.StaleEpoch(job_id, epoch, int(job.get("epoch", 0)))
        role = ""
        if (job.get("primary") or {}).get("provider_id") == provider_id:
            role = S.PRIMARY
        elif (job.get("standby") or {}).get("provider_id") == provider_id:
            role = S.STANDBY
        else:  # pragma: no cover - provider_ids lists only current placements' providers
            raise S.StaleEpoch(job_id, epoch, int(job.get("epoch", 0)))
        return job, role

    async def report_status(self, org_id: str, provider_id: str, job_id: str, body: Doc) -> Doc:
        epoch = int(body["epoch"])
        for _ in range(5):
            job, role = await self._agent_job(org_id, provider_id, job_id, epoch)
            now = utcnow()
            reported = body["status"]
            # A report acknowledges the start/prepare it answers. A cancel is done only
            # once the agent no longer runs the job: a terminal report (or a heartbeat
            # that no longer lists it), never a keepalive that says it still runs.
            await self.repo.ack_assignments(
                provider_id,
                job_id,
                epoch,
                now,
                actions=None if reported in S.AGENT_TERMINAL else S.START_ACTIONS,
            )
            if role == S.STANDBY or job["status"] in S.TERMINAL:
                return {"status": "ok", "job_status": job["status"], "role": role}
            new = S.next_status(job["status"], reported)
            sets: Doc = {"status": new, "updated_ms": ms(now)}
            evs: list[Staged] = []
            fx_assign: Doc = {}
            fx_release: Doc = {}
            step = body.get("step")
            if step is not None:
                sets["step"] = int(step)
            if body.get("message"):
                sets["message"] = str(body["message"])[:500]
            if new in (S.STARTING, S.RUNNING) and not job.get("run_started_ms"):
                sets["run_started_ms"] = ms(now)
                sets["started_ms"] = job.get("started_ms") or ms(now)
                evs.append(E.job_started(job, provider_id, epoch, now))
            elif new == S.RUNNING and step is not None:
                evs.append(
                    E.job_progress(
                        job, provider_id, epoch, int(step), body.get("message") or "", now
                    )
                )
            if new in (S.COMPLETED, S.FAILED):
                started = job.get("run_started_ms") or ms(now)
                usage = self._close_segment({**job, "run_started_ms": started}, now)
                lines = S.usage_lines(usage)
                exit_code = int(body.get("exit_code") or 0)
                sets.update(
                    usage=usage,
                    run_started_ms=None,
                    exit_code=exit_code,
                    ended_ms=ms(now),
                    cost_minor=S.total_cost(lines, int(job["escrow_amount"]["amount"])),
                )
                if new == S.COMPLETED:
                    evs.append(E.job_completed(job, provider_id, epoch, exit_code, lines, now))
                else:
                    msg = str(body.get("message") or f"workload exited with {exit_code}")
                    sets["failure"] = {"reason": "workload_error", "message": msg}
                    evs.append(
                        E.job_failed(
                            job,
                            provider_id,
                            epoch,
                            t.JOB_FAILURE_REASON_WORKLOAD_ERROR,
                            msg,
                            exit_code,
                            lines,
                            now,
                        )
                    )
                evs += E.usage_recorded(job, lines, now)
                for pl in (job.get("primary"), job.get("standby")):
                    if not pl:
                        continue
                    fx_release[pl["provider_id"]] = {
                        "provider_id": pl["provider_id"],
                        "gpu_uuids": pl["gpu_uuids"],
                    }
                sb = job.get("standby")
                if sb:
                    a = self._cancel_assignment(job, sb, epoch, now)
                    fx_assign[a["_id"]] = a
            done = await self.repo.update_job(
                job_id,
                {"epoch": epoch, "status": job["status"]},
                outbox_update(evs, self._with_fx(sets, fx_assign, fx_release)),
            )
            if done is not None:
                await self.apply_effects(done)
                return {"status": "ok", "job_status": new, "role": role}
        raise S.DomainError("status report kept racing with other updates")

    async def append_logs(
        self, org_id: str, provider_id: str, job_id: str, epoch: int, lines: list[str]
    ) -> int:
        job, role = await self._agent_job(org_id, provider_id, job_id, epoch)
        if not lines:
            return 0
        now = utcnow()
        await self.repo.insert_logs(
            {
                "_id": new_id("log"),
                "job_id": job_id,
                "org_id": job["org_id"],
                "provider_id": provider_id,
                "epoch": epoch,
                "role": role,
                "lines": [str(x)[:4000] for x in lines[:1000]],
                "at": now,
            }
        )
        return len(lines)

    async def put_checkpoint(
        self, org_id: str, provider_id: str, job_id: str, epoch: int, step: int, data: bytes
    ) -> Doc:
        job, role = await self._agent_job(org_id, provider_id, job_id, epoch)
        if role != S.PRIMARY:
            raise S.InvalidTransition("only the primary writes checkpoints")
        if job["status"] not in S.LIVE:
            raise S.InvalidTransition(f"job is {job['status']}")
        now = utcnow()
        ck_id = new_id("ckp")
        digest = hashlib.sha256(data).hexdigest()
        ck = {
            "checkpoint_id": ck_id,
            "step": step,
            "epoch": epoch,
            "provider_id": provider_id,
            "size_bytes": len(data),
            "sha256": digest,
            "at_ms": ms(now),
        }
        await self.checkpoints.put(job_id, ck_id, data, {"org_id": job["org_id"], **ck})
        done = await self.repo.update_job(
            job_id,
            {"epoch": epoch, "primary.provider_id": provider_id, "status": {"$in": sorted(S.LIVE)}},
            outbox_update(
                [E.checkpoint_written(job, ck, self.checkpoints.uri(job_id, ck_id), now)],
                {"$set": {"latest_checkpoint": ck, "updated_ms": ms(now)}},
            ),
        )
        if done is None:  # fenced meanwhile: the blob must not count
            await self.checkpoints.delete(job_id, ck_id)
            current = await self.repo.get_job(job_id)
            raise S.StaleEpoch(job_id, epoch, int((current or job).get("epoch", 0)))
        await self._prune_checkpoints(job_id, keep_id=ck_id)
        await self._stage_on_standby(done, ck, now)
        return ck

    async def _stage_on_standby(self, job: Doc, ck: Doc, now: datetime) -> None:
        """Tell the standby to fetch the checkpoint now, so a promotion does not wait
        for the download. Best effort: a lost one only means a download at promotion."""
        sb = job.get("standby")
        if not sb:
            return
        epoch = int(job["epoch"])
        aid = assignment_id(job["_id"], epoch, sb["provider_id"], f"stage-{ck['checkpoint_id']}")
        doc = {
            "_id": aid,
            "assignment_id": aid,
            "provider_id": sb["provider_id"],
            "job_id": job["_id"],
            "epoch": epoch,
            "role": S.STANDBY,
            "action": S.STAGE_ACTION,
            "checkpoint_id": ck["checkpoint_id"],
            "step": int(ck["step"]),
            "acked": 0,
            "deliveries": 0,
            "seq": time.time_ns(),
            "created_ms": ms(now),
            "expire_at": now + ASSIGNMENT_TTL,
        }
        try:
            await self.repo.insert_assignments([doc])
            self._notify(sb["provider_id"])
        except Exception as exc:
            log.warning("checkpoint staging not queued", job_id=job["_id"], error=str(exc))

    async def _prune_checkpoints(self, job_id: str, keep_id: str) -> None:
        """Keep the newest few checkpoints of a job (never the one just recorded)."""
        try:
            ids = await self.checkpoints.newest_first(job_id)
            for ck_id in ids[CHECKPOINTS_KEPT:]:
                if ck_id != keep_id:
                    await self.checkpoints.delete(job_id, ck_id)
        except Exception as exc:  # retention is best effort
            log.warning("checkpoint pruning failed", job_id=job_id, error=str(exc))

    async def latest_checkpoint(
        self, org_id: str, provider_id: str, job_id: str, epoch: int
    ) -> Checkpoint:
        job, _ = await self._agent_job(org_id, provider_id, job_id, epoch)
        ck = job.get("latest_checkpoint")
        if not ck:
            raise S.NotFound("checkpoint")
        data = await self.checkpoints.get(job_id, ck["checkpoint_id"])
        if data is None:
            raise S.NotFound("checkpoint")
        return Checkpoint(ck["checkpoint_id"], int(ck["step"]), data)

    # ================================================================ background

    async def place_waiting(self, all_waiting: bool = False) -> int:
        """Retry jobs waiting for capacity (those not tried for ``placement_retry_s``,
        or every one of them when capacity just appeared). Returns how many moved on
        (placed, or failed after the placement timeout)."""
        before = None if all_waiting else ms(utcnow()) - int(self.settings.placement_retry_s * 1000)
        placed = 0
        for job in await self.repo.jobs_in_status([S.ESCROW_HELD], before=before):
            try:
                out = await self.place_job(job["_id"])
                placed += out["status"] != S.ESCROW_HELD
            except Exception as exc:  # keep the loop alive; next round retries
                log.warning("placement retry failed", job_id=job["_id"], error=str(exc))
        return placed

    async def reconcile(self) -> int:
        before = ms(utcnow()) - int(self.settings.reconcile_interval_s * 1000)
        n = 0
        for job in await self.repo.jobs_with_pending_effects(before):
            await self.apply_effects(job)
            n += 1
        return n

    # ========================================================== kubernetes backend

    async def dispatch_k8s(self) -> int:
        """Turn pending assignments of Kubernetes providers into batch/v1 Jobs (start)
        or deletions (cancel); idempotent, acknowledged once done."""
        if self.k8s is None:
            return 0
        providers = {p["_id"]: p for p in await self.repo.kubernetes_providers()}
        if not providers:
            return 0
        done = 0
        for a in await self._deliverable(await self.repo.pending_assignments_of(list(providers))):
            prov = providers[a["provider_id"]]
            if a["action"] == "start":
                await self.k8s.start(a, prov)
            elif a["action"] == "cancel":
                await self.k8s.cancel(a["job_id"], int(a["epoch"]), prov)
            await self.repo.ack_assignment_ids([a["_id"]], utcnow())
            done += 1
        return done

    async def sync_k8s_status(self) -> int:
        """Kubernetes providers are alive while the cluster answers; their Jobs' states
        are reported like an agent would, under the lease epoch."""
        if self.k8s is None:
            return 0
        providers = {p["_id"]: p for p in await self.repo.kubernetes_providers()}
        for p in providers.values():
            await self.heartbeat(p["org_id"], p["_id"], {"gpus": [], "running": []})
        n = 0
        for job in await self.repo.jobs_in_status(sorted(S.LIVE), limit=500):
            p = job.get("primary") or {}
            prov = providers.get(p.get("provider_id", ""))
            if prov is None:
                continue
            epoch = int(job["epoch"])
            got = await self.k8s.status(job["_id"], epoch, prov)
            if got is None or got[0] == job["status"]:
                continue
            status, message = got
            body: Doc = {"epoch": epoch, "status": status, "message": message}
            if status in (S.COMPLETED, S.FAILED):
                body["exit_code"] = 0 if status == S.COMPLETED else 1
            try:
                await self.report_status(prov["org_id"], prov["_id"], job["_id"], body)
                n += 1
            except (S.InvalidTransition, S.StaleEpoch) as exc:
                log.info("kubernetes status not applied", job_id=job["_id"], error=str(exc))
        return n

    async def sweep_orphan_claims(self, grace_s: float = 60.0) -> int:
        """Give back GPUs claimed for a job that does not hold them: a placement that
        crashed between its claims and the job's write, or a release a crash lost."""
        cutoff = ms(utcnow()) - int(grace_s * 1000)
        released = 0
        for doc in await self.repo.providers_with_claims():
            for job_id, claim in (doc.get("claims") or {}).items():
                if int(claim.get("at_ms", 0) or 0) > cutoff:
                    continue
                job = await self.repo.get_job(job_id)
                holders = {
                    (job.get(r) or {}).get("provider_id")
                    for r in (S.PRIMARY, S.STANDBY)
                    if job is not None
                }
                if job is not None and job["status"] not in S.TERMINAL and doc["_id"] in holders:
                    continue
                if job is not None and job.get("fx_pending"):
                    continue  # its own effects will release it
                await self._release(doc["_id"], job_id, list(claim.get("uuids") or []))
                released += 1
        return released

    async def requeue_unpicked(self) -> int:
        """Placed jobs whose start nobody picked up within ``start_pickup_timeout_s``
        (the provider's agent stopped polling right after it was chosen, before its
        heartbeats went stale) go back to waiting and are placed again under a new
        epoch: their GPUs are released, the old start is never delivered (its epoch is
        stale) and the job says why it waits. Returns how many were requeued."""
        now = utcnow()
        cutoff = ms(now) - int(self.settings.start_pickup_timeout_s * 1000)
        n = 0
        for job in await self.repo.jobs_in_status([S.PLACED], limit=500):
            if int(job.get("placed_ms") or ms(now)) > cutoff:
                continue
            epoch = int(job["epoch"])
            if not await self.repo.start_untouched(job["_id"], epoch):
                continue
            primary = job.get("primary") or {}
            evs = []
            fx_release: Doc = {}
            for pl in (job.get("primary"), job.get("standby")):
                if not pl:
                    continue
                evs.append(E.lease_revoked(job, pl, epoch, t.LEASE_REVOCATION_REASON_EXPIRED, now))
                fx_release[pl["provider_id"]] = {
                    "provider_id": pl["provider_id"],
                    "gpu_uuids": pl["gpu_uuids"],
                }
            waited = int(self.settings.start_pickup_timeout_s)
            sets: Doc = {
                "status": S.ESCROW_HELD,
                "primary": None,
                "standby": None,
                "provider_ids": [],
                "placement_reason": (
                    f"provider {primary.get('provider_id', '?')} did not pick the job up "
                    f"within {waited}s; placing it again"
                ),
                "updated_ms": ms(now),
            }
            done = await self.repo.update_job(
                job["_id"],
                {"epoch": epoch, "status": S.PLACED},
                outbox_update(evs, self._with_fx(sets, {}, fx_release)),
            )
            if done is None:
                continue  # it moved on meanwhile (started, canceled, promoted)
            await self.repo.supersede_assignments(job["_id"], epoch + 1, now)
            await self.apply_effects(done)
            log.warning(
                "start not picked up; job placed again",
                job_id=job["_id"],
                provider_id=primary.get("provider_id"),
                stale_epoch=epoch,
            )
            n += 1
            try:
                await self.place_job(job["_id"])
            except Exception as exc:  # the placement-retry loop tries again
                log.warning("placement after requeue failed", job_id=job["_id"], error=str(exc))
        return n

    async def expire_overdue(self) -> int:
        """Jobs running past their max duration fail with TIMEOUT."""
        n = 0
        now = utcnow()
        live = await self.repo.jobs_in_status(sorted(S.LIVE), limit=500)
        self.live_jobs_seen = len(live)
        risks = Counter(r for j in live if (r := S.at_risk(j, ms(now))))
        for reason in ("no_standby", "stale_checkpoint"):
            JOBS_AT_RISK.labels(reason=reason).set(risks.get(reason, 0))
        for job in live:
            started = job.get("started_ms") or job.get("placed_ms")
            if not started:
                continue
            limit = int(job["spec"]["max_duration_s"])
            if (ms(now) - int(started)) / 1000 <= limit:
                continue
            usage = self._close_segment(job, now)
            lines = S.usage_lines(usage)
            epoch = int(job["epoch"])
            msg = f"exceeded max duration of {limit}s"
            evs = [
                E.job_failed(
                    job,
                    (job.get("primary") or {}).get("provider_id", ""),
                    epoch,
                    t.JOB_FAILURE_REASON_TIMEOUT,
                    msg,
                    0,
                    lines,
                    now,
                )
            ]
            evs += E.usage_recorded(job, lines, now)
            fx_assign: Doc = {}
            fx_release: Doc = {}
            for pl in (job.get("primary"), job.get("standby")):
                if not pl:
                    continue
                evs.append(E.lease_revoked(job, pl, epoch, t.LEASE_REVOCATION_REASON_EXPIRED, now))
                a = self._cancel_assignment(job, pl, epoch, now)
                fx_assign[a["_id"]] = a
                fx_release[pl["provider_id"]] = {
                    "provider_id": pl["provider_id"],
                    "gpu_uuids": pl["gpu_uuids"],
                }
            sets = {
                "status": S.FAILED,
                "usage": usage,
                "run_started_ms": None,
                "failure": {"reason": "timeout", "message": msg},
                "cost_minor": S.total_cost(lines, int(job["escrow_amount"]["amount"])),
                "updated_ms": ms(now),
                "ended_ms": ms(now),
            }
            done = await self.repo.update_job(
                job["_id"],
                {"epoch": epoch, "status": job["status"]},
                outbox_update(evs, self._with_fx(sets, fx_assign, fx_release)),
            )
            if done is not None:
                await self.apply_effects(done)
                n += 1
        return n
