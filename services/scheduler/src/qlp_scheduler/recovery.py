"""What the lease owner does when a provider of a job is lost (the failover service
decides; the scheduler acts, in one conditional write per job):

- the primary is lost and a standby is warm: the standby becomes the primary under
  epoch + 1 and resumes from the latest checkpoint; a new standby is claimed on a third
  machine when one is free (never the lost machine);
- the primary is lost and there is no standby: the job goes back to waiting with its
  checkpoint and is placed again under a new epoch (it resumes from the checkpoint);
- the standby is lost: a new standby is claimed on another machine (the epoch stays).

Every case revokes the lost provider's lease (its later reports carry a stale epoch
and are refused), gives its GPUs back, queues a cancel it receives if it returns,
counts a loss against its reliability, and appends an entry to the job's
``failovers`` history (``GET /v1/gpu/jobs/{id}/failovers``).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog

from qlp.failover.v1 import events_pb2 as fev
from qlp.scheduling.v1 import types_pb2 as t
from qlp_kit.ids import new_id
from qlp_kit.mongo import utcnow
from qlp_kit.outbox import Staged, outbox_update
from qlp_scheduler import events as E
from qlp_scheduler import service as S
from qlp_scheduler.service import ms

if TYPE_CHECKING:
    from qlp_scheduler.engine import Scheduler

log = structlog.get_logger("qlp.scheduler.recovery")

Doc = dict[str, Any]

PROMOTED = "promoted"
REQUEUED = "requeued"
STANDBY_REPLACED = "standby_replaced"


def failover_entry(
    job: Doc,
    lost: Doc,
    now: datetime,
    *,
    outcome: str,
    failover_id: str,
    new_epoch: int,
    provider_id: str | None,
    standby_provider_id: str | None,
) -> Doc:
    """One row of the job's failover history: when, who was lost, who runs it now,
    the checkpoint it resumes from and how many steps are redone (the last step the
    lost primary reported minus the checkpoint's step)."""
    ck = job.get("latest_checkpoint") or {}
    last = job.get("step")
    ck_step = int(ck["step"]) if ck else 0
    primary_lost = outcome != STANDBY_REPLACED
    return {
        "failover_id": failover_id or f"{job['_id']}:{int(job['epoch'])}",
        "at_ms": ms(now),
        "outcome": outcome,
        "failed_provider_id": lost["provider_id"],
        "failed_role": S.PRIMARY if primary_lost else S.STANDBY,
        "old_epoch": int(job["epoch"]),
        "epoch": new_epoch,
        "provider_id": provider_id,
        "standby_provider_id": standby_provider_id,
        "checkpoint_id": ck.get("checkpoint_id") if primary_lost else None,
        "checkpoint_step": (int(ck["step"]) if ck else None) if primary_lost else None,
        "last_step": int(last) if last is not None else None,
        "steps_redone": (max(0, int(last) - ck_step) if last is not None else None)
        if primary_lost
        else 0,
    }


def history_key(entry: Doc) -> str:
    """Where the entry lives in the job's ``failovers`` map (one per lost lease: the
    epoch, the role it held and the provider). A map, not an array: the embedded database stores
    documents pushed into arrays as strings."""
    return (
        f"failovers.e{int(entry['old_epoch'])}_{entry['failed_role']}_{entry['failed_provider_id']}"
    )


def _standby_promoted(job: Doc, entry: Doc, new_p: Doc, now: datetime) -> Staged:
    msg = fev.StandbyPromoted(
        org_id=job["org_id"],
        job_id=job["_id"],
        failover_id=entry["failover_id"],
        provider_id=new_p["provider_id"],
        previous_provider_id=entry["failed_provider_id"],
        new_epoch=int(entry["epoch"]),
        checkpoint_id=entry.get("checkpoint_id") or "",
        checkpoint_step=int(entry.get("checkpoint_step") or 0),
        lease_id=new_p["lease_id"],
        promoted_at=E.ts(now),
    )
    return E.staged(msg, job["org_id"], job["_id"], now)


async def _claim_standby(sched: Scheduler, job: Doc, exclude: set[str]) -> Doc | None:
    """A standby on a machine not in ``exclude`` (claimed; the caller gives it back when
    its write loses), or None when no offer fits."""
    if job["spec"].get("redundancy") != "hot_standby":
        return None
    from qlp_scheduler.core import _placement

    got = await sched.claim_best(
        job["_id"], S.STANDBY, sched._requirements(job["spec"]), {m for m in exclude if m}
    )
    return _placement(got[0], got[1], S.STANDBY) if got else None


def _former(job: Doc, lost: Doc) -> list[str]:
    """Providers that held the job and lost it: their reports are refused as stale."""
    return sorted({*(job.get("former_provider_ids") or []), lost["provider_id"]})


def _release_fx(*placements: Doc | None) -> Doc:
    return {
        p["provider_id"]: {"provider_id": p["provider_id"], "gpu_uuids": p["gpu_uuids"]}
        for p in placements
        if p
    }


async def _after_loss(sched: Scheduler, job: Doc, lost: Doc, now: datetime) -> None:
    """The lost provider's cancel survives the epoch change (it is told to stop if it
    returns) and the loss counts against its reliability."""
    cancel = sched._cancel_assignment(job, lost, int(job["epoch"]), now)
    from qlp_scheduler.core import ASSIGNMENT_TTL

    await sched.repo.insert_assignments([{**cancel, "expire_at": now + ASSIGNMENT_TTL}])
    await sched.repo.supersede_starts_of(job["_id"], lost["provider_id"], now)
    doc = await sched.repo.record_provider_loss(
        lost["provider_id"], ms(now), sched.settings.reliability_window_min
    )
    if doc is not None:
        sched._index_doc(doc)


async def promote_standby(
    sched: Scheduler, job_id: str, expected_epoch: int | None = None, failover_id: str = ""
) -> Doc:
    """The standby becomes the primary under epoch + 1 and resumes from the latest
    checkpoint; a new standby is claimed on a third machine when one is free.

    With ``expected_epoch`` (a failover decision names the epoch it replaces) a job
    that already moved past it is returned unchanged: a duplicate or redelivered
    decision never promotes twice, even when it races the first one."""
    for _ in range(5):
        job = await sched.repo.get_job(job_id)
        if job is None:
            raise S.NotFound("job")
        if expected_epoch is not None and int(job["epoch"]) != int(expected_epoch):
            return job
        if job["status"] not in S.LIVE or not job.get("standby"):
            raise S.InvalidTransition(
                f"job {job_id} in status {job['status']} has no standby to promote"
            )
        now = utcnow()
        old_epoch = int(job["epoch"])
        epoch = old_epoch + 1
        old_p = dict(job["primary"])
        new_p = {**job["standby"], "role": S.PRIMARY, "lease_id": new_id("lse")}
        new_sb = await _claim_standby(
            sched, job, {new_p.get("machine_id", ""), old_p.get("machine_id", "")}
        )
        entry = failover_entry(
            job,
            old_p,
            now,
            outcome=PROMOTED,
            failover_id=failover_id,
            new_epoch=epoch,
            provider_id=new_p["provider_id"],
            standby_provider_id=new_sb["provider_id"] if new_sb else None,
        )
        evs = [
            E.lease_revoked(job, old_p, old_epoch, t.LEASE_REVOCATION_REASON_FAILOVER, now),
            E.job_placed(job, new_p, new_sb, epoch, now),
            _standby_promoted(job, entry, new_p, now),
        ]
        cancel = sched._cancel_assignment(job, old_p, old_epoch, now)
        fx_assign = {cancel["_id"]: cancel}
        for a in sched._start_assignments(job, new_p, new_sb, epoch, True, now):
            fx_assign[a["_id"]] = a
        sets = {
            "status": S.PLACED,
            "epoch": epoch,
            "primary": new_p,
            "standby": new_sb,
            "provider_ids": [new_p["provider_id"]] + ([new_sb["provider_id"]] if new_sb else []),
            "former_provider_ids": _former(job, old_p),
            "usage": sched._close_segment(job, now),
            "run_started_ms": None,
            "updated_ms": ms(now),
            "promoted_ms": ms(now),
        }
        update = sched._with_fx(sets, fx_assign, _release_fx(old_p))
        update["$set"][history_key(entry)] = entry
        done = await sched.repo.update_job(
            job_id, {"epoch": old_epoch, "status": job["status"]}, outbox_update(evs, update)
        )
        if done is None:
            if new_sb:
                await sched._release(new_sb["provider_id"], job_id, new_sb["gpu_uuids"])
            continue
        await sched.repo.supersede_assignments(job_id, epoch, now)
        await _after_loss(sched, job, old_p, now)
        log.warning(
            "standby promoted",
            job_id=job_id,
            lost=old_p["provider_id"],
            primary=new_p["provider_id"],
            standby=new_sb["provider_id"] if new_sb else None,
            excluded=sorted({new_p.get("machine_id", ""), old_p.get("machine_id", "")}),
            standby_machine=new_sb.get("machine_id") if new_sb else None,
            epoch=epoch,
        )
        return await sched.apply_effects(done)
    raise S.DomainError("promotion kept racing with other updates")


async def requeue_lost(
    sched: Scheduler, job_id: str, expected_epoch: int, failover_id: str = ""
) -> Doc | None:
    """The primary is lost and nothing is warm: the job waits again (its checkpoint
    kept) and is placed again under a new epoch, resuming from the checkpoint. None when
    the job moved past ``expected_epoch`` meanwhile."""
    job = await sched.repo.get_job(job_id)
    if job is None or int(job["epoch"]) != int(expected_epoch) or job["status"] not in S.LIVE:
        return None
    now = utcnow()
    old_p = dict(job.get("primary") or {})
    if not old_p:
        return None
    entry = failover_entry(
        job,
        old_p,
        now,
        outcome=REQUEUED,
        failover_id=failover_id,
        new_epoch=int(job["epoch"]) + 1,
        provider_id=None,
        standby_provider_id=None,
    )
    evs = [E.lease_revoked(job, old_p, int(job["epoch"]), t.LEASE_REVOCATION_REASON_FAILOVER, now)]
    sets: Doc = {
        "status": S.ESCROW_HELD,
        "primary": None,
        "standby": None,
        "provider_ids": [],
        "former_provider_ids": _former(job, old_p),
        "usage": sched._close_segment(job, now),
        "run_started_ms": None,
        "escrow_held_ms": ms(now),  # its wait for capacity starts now
        "placement_reason": (
            f"provider {old_p['provider_id']} was lost and the job had no standby; "
            "placing it again from its latest checkpoint"
        ),
        "updated_ms": ms(now),
    }
    update = sched._with_fx(sets, {}, _release_fx(old_p, job.get("standby")))
    update["$set"][history_key(entry)] = entry
    done = await sched.repo.update_job(
        job_id, {"epoch": int(expected_epoch), "status": job["status"]}, outbox_update(evs, update)
    )
    if done is None:
        return None
    await sched.repo.supersede_assignments(job_id, int(expected_epoch) + 1, now)
    await _after_loss(sched, job, old_p, now)
    await sched.apply_effects(done)
    log.warning("primary lost without standby; job placed again", job_id=job_id)
    try:
        return await sched.place_job(job_id)
    except Exception as exc:  # the placement-retry loop tries again
        log.warning("placement after loss failed", job_id=job_id, error=str(exc))
        return await sched.repo.get_job(job_id)


async def replace_standby(
    sched: Scheduler, job_id: str, expected_epoch: int, lost_provider_id: str, failover_id: str = ""
) -> Doc | None:
    """The standby is lost: its lease is revoked and a new standby is claimed on another
    machine (the primary and the epoch stay). None when nothing changed."""
    job = await sched.repo.get_job(job_id)
    if job is None or int(job["epoch"]) != int(expected_epoch) or job["status"] not in S.LIVE:
        return None
    old_sb = dict(job.get("standby") or {})
    if old_sb.get("provider_id") != lost_provider_id:
        return None
    now = utcnow()
    p = job["primary"]
    new_sb = await _claim_standby(
        sched, job, {p.get("machine_id", ""), old_sb.get("machine_id", "")}
    )
    entry = failover_entry(
        job,
        old_sb,
        now,
        outcome=STANDBY_REPLACED,
        failover_id=failover_id,
        new_epoch=int(job["epoch"]),
        provider_id=p["provider_id"],
        standby_provider_id=new_sb["provider_id"] if new_sb else None,
    )
    evs = [
        E.lease_revoked(job, old_sb, int(job["epoch"]), t.LEASE_REVOCATION_REASON_FAILOVER, now),
        # the placement changed (same epoch, new standby): the failover service closes
        # the lost standby's record on it
        E.job_placed(job, p, new_sb, int(job["epoch"]), now),
    ]
    fx_assign: Doc = {}
    if new_sb:
        for a in sched._start_assignments(job, p, new_sb, int(job["epoch"]), True, now):
            if a["role"] == S.STANDBY:
                fx_assign[a["_id"]] = a
    sets: Doc = {
        "standby": new_sb,
        "provider_ids": [p["provider_id"]] + ([new_sb["provider_id"]] if new_sb else []),
        "former_provider_ids": _former(job, old_sb),
        "updated_ms": ms(now),
    }
    update = sched._with_fx(sets, fx_assign, _release_fx(old_sb))
    update["$set"][history_key(entry)] = entry
    done = await sched.repo.update_job(
        job_id,
        {
            "epoch": int(expected_epoch),
            "status": job["status"],
            "standby.provider_id": lost_provider_id,
        },
        outbox_update(evs, update),
    )
    if done is None:
        if new_sb:
            await sched._release(new_sb["provider_id"], job_id, new_sb["gpu_uuids"])
        return None
    await _after_loss(sched, job, old_sb, now)
    return await sched.apply_effects(done)
