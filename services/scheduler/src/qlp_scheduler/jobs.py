"""Jobs: quote, submit (the escrow hold is billing's), placement of a primary and a hot
standby from the offer index with one conditional claim per machine, cancel, and the
failover promotion the recovery module carries out. Every state change of a job is ONE
conditional single-document write that also stages its events (outbox)."""

from __future__ import annotations

import time
from datetime import datetime

from qlp.scheduling.v1 import types_pb2 as t
from qlp_kit.auth import Principal
from qlp_kit.ids import new_id
from qlp_kit.mongo import utcnow
from qlp_kit.outbox import Staged, outbox_update, with_outbox
from qlp_scheduler import balances
from qlp_scheduler import events as E
from qlp_scheduler import service as S
from qlp_scheduler.agent_api import AgentApi
from qlp_scheduler.core import (
    Doc,
    _placement,
    assignment_id,
)
from qlp_scheduler.metrics import (
    CLAIM_CONFLICTS,
    PLACEMENT_SECONDS,
    PLACEMENTS,
)
from qlp_scheduler.service import ms


class Jobs(AgentApi):
    """Consumer-facing job use cases."""

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
