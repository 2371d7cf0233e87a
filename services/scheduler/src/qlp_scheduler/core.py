"""The scheduler's shared state and the mechanics every use case relies on: the
in-memory offer index and its refresh, and the side effects a job's write records
under ``fx_assign`` / ``fx_release`` (applied right after the write, idempotently; a
reconciler applies whatever a crash left pending), the Kubernetes backend's dispatch
among them.

The use cases build on it by subdomain: :mod:`qlp_scheduler.providers` (register,
heartbeat, drain, earnings), :mod:`qlp_scheduler.agent_api` (assignments, status
reports, logs, checkpoints), :mod:`qlp_scheduler.jobs` (quote, submit, escrow,
placement, cancel) and :mod:`qlp_scheduler.engine` (the background rounds), which
composes them into :class:`~qlp_scheduler.engine.Scheduler`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog

from qlp_kit.ids import new_id
from qlp_kit.mongo import utcnow
from qlp_kit.producer import Record
from qlp_scheduler import events as E
from qlp_scheduler import service as S
from qlp_scheduler.checkpoint_store import CheckpointStore, make_store
from qlp_scheduler.k8s import KubernetesLauncher
from qlp_scheduler.metrics import OFFERS_INDEXED
from qlp_scheduler.offer_feed import OfferFeed
from qlp_scheduler.offer_index import OfferIndex, view_from_doc
from qlp_scheduler.repository import Repository
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


class SchedulerCore:
    """State shared by every part of the scheduler (one per process)."""

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

    def _notify(self, provider_id: str) -> None:
        ev = self._waiters.pop(provider_id, None)
        if ev is not None:
            ev.set()

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
