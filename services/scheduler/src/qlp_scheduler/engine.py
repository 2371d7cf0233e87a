"""The scheduler's use cases: the pure rules of :mod:`qlp_scheduler.service` applied
to the documents of :mod:`qlp_scheduler.repository`, composed by subdomain into one
:class:`Scheduler` per process (core → providers → agent API → jobs → here), and the
background rounds its loops run: placement retries, the reconciler, orphan claims,
requeues of unpicked starts, overdue jobs, Kubernetes status and failover promotion.

Every state change of a job is ONE conditional single-document write that also
stages its events (outbox). Side effects on other documents (writing agent
assignments, giving GPUs back) are recorded in the same write under
``fx_assign`` / ``fx_release`` with ``fx_pending = 1`` and applied right after,
idempotently; a reconciler applies whatever a crash left pending.
"""

from __future__ import annotations

from collections import Counter

from qlp.scheduling.v1 import types_pb2 as t
from qlp_kit.mongo import utcnow
from qlp_kit.outbox import outbox_update
from qlp_scheduler import events as E
from qlp_scheduler import service as S
from qlp_scheduler.core import (
    ASSIGNMENT_TTL,
    Checkpoint,
    Doc,
    log,
)
from qlp_scheduler.jobs import Jobs
from qlp_scheduler.metrics import JOBS_AT_RISK
from qlp_scheduler.service import ms

__all__ = ["ASSIGNMENT_TTL", "Checkpoint", "Scheduler"]


class Scheduler(Jobs):
    """One per process (kept in the service context's extras): every use case, and the
    background rounds the service's loops run."""

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

    async def promote_standby(
        self, job_id: str, expected_epoch: int | None = None, failover_id: str = ""
    ) -> Doc:
        """Failover: the standby becomes the primary under epoch + 1 (see
        :func:`qlp_scheduler.recovery.promote_standby`)."""
        from qlp_scheduler import recovery

        return await recovery.promote_standby(self, job_id, expected_epoch, failover_id)

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
