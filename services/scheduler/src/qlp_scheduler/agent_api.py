"""The agent's side of the protocol: long-polled assignments (woken by a change stream
on inserts), status reports fenced by epoch, logs, and checkpoints (each staged on the
standby as it lands)."""

from __future__ import annotations

import asyncio
import hashlib
import time
from datetime import datetime

from qlp.scheduling.v1 import types_pb2 as t
from qlp_kit.aio import wait_event
from qlp_kit.ids import new_id
from qlp_kit.mongo import utcnow
from qlp_kit.outbox import Staged, outbox_update
from qlp_scheduler import events as E
from qlp_scheduler import service as S
from qlp_scheduler.core import (
    ASSIGNMENT_TTL,
    CHECKPOINTS_KEPT,
    Checkpoint,
    Doc,
    assignment_id,
    log,
)
from qlp_scheduler.metrics import STALE_EPOCH_REPORTS
from qlp_scheduler.providers import Providers
from qlp_scheduler.service import ms


class AgentApi(Providers):
    """What provider agents call."""

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
