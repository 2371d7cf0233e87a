"""Liveness verdicts and failover decisions: the detector's transitions become
conditional writes with their events, and a lost provider's leases become one failover
record per (job, epoch) whoever decides it."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from qlp.failover.v1 import events_pb2 as ev
from qlp_failover import metrics as M
from qlp_failover.liveness import Detector, Lease, State, Transition, Watch
from qlp_failover.repository import Doc, Store, failover_id
from qlp_failover.settings import FailoverSettings
from qlp_kit.outbox import Staged, stage

SOURCE = "failover"


def _ts(at_ms: int) -> Timestamp:
    t = Timestamp()
    t.FromMilliseconds(int(at_ms))
    return t


def _lease_docs(leases: Iterable[Lease]) -> list[Doc]:
    return [
        {"job_id": x.job_id, "epoch": x.epoch, "role": x.role, "status": x.status} for x in leases
    ]


def _leases_of(docs: Iterable[Doc]) -> tuple[Lease, ...]:
    return tuple(
        Lease(str(d["job_id"]), int(d["epoch"]), str(d.get("role", "")), str(d.get("status", "")))
        for d in docs
    )


class Failover:
    """One per process: the detector of the partitions this replica owns."""

    def __init__(self, store: Store, settings: FailoverSettings) -> None:
        self.store = store
        self.settings = settings
        self.detector = Detector.from_intervals(
            settings.heartbeat_interval_s,
            settings.miss_threshold,
            settings.grace_intervals,
            settings.suspect_intervals,
        )
        self.replica = settings.replica or f"{socket.gethostname()}:{os.getpid()}"
        self._persisted_ms: dict[str, int] = {}
        self._persisted_leases: dict[str, tuple[Lease, ...]] = {}

    # ------------------------------------------------------------------ input

    async def heartbeat(
        self,
        provider_id: str,
        org_id: str,
        leases: Sequence[Lease],
        now_ms: int,
        partition: int = -1,
    ) -> Transition | None:
        M.HEARTBEATS.inc()
        change = self.detector.observe(provider_id, org_id, now_ms, leases, partition)
        held = tuple(leases)
        last = self._persisted_ms.get(provider_id)
        due = (
            last is None
            or now_ms - last >= int(self.settings.persist_every_s * 1000)
            or self._persisted_leases.get(provider_id) != held
        )
        if due and change is None:
            await self.store.seen(
                provider_id,
                org_id,
                {
                    "last_seen_ms": now_ms,
                    "partition": partition,
                    "leases": _lease_docs(held),
                    "interval_ms": self.detector.watches[provider_id].learned_ms,
                },
            )
            self._persisted_ms[provider_id] = now_ms
            self._persisted_leases[provider_id] = held
        if change is not None:
            await self._recovered(change, partition)
        self._gauges()
        return change

    async def tick(self, now_ms: int) -> list[Transition]:
        changes = self.detector.tick(now_ms)
        for change in changes:
            if change.state is State.SUSPECTED:
                await self._suspected(change)
            elif change.state is State.LOST:
                await self._lost(change)
        if changes:
            self._gauges()
        return changes

    async def assigned(self, partitions: set[int], now_ms: int) -> int:
        """A rebalance gave this replica ``partitions``: rebuild their providers."""
        docs = await self.store.in_partitions(sorted(partitions)) if partitions else []
        for d in docs:
            state = State(d.get("state", "alive"))
            seen = int(d.get("last_seen_ms", 0) or 0)
            if state is State.LOST:
                # the previous owner may have died between the verdict and the failover
                # records: deciding again is a no-op for leases already decided
                await self.decide(
                    Transition(
                        d["_id"],
                        d.get("org_id", ""),
                        State.ALIVE,
                        State.LOST,
                        seen,
                        int(d.get("lost_ms", now_ms) or now_ms),
                        _leases_of(d.get("leases") or []),
                    )
                )
            self.detector.adopt(
                Watch(
                    d["_id"],
                    d.get("org_id", ""),
                    state,
                    # see Detector.adopt: the clock restarts at adoption at the earliest
                    max(seen, now_ms),
                    _leases_of(d.get("leases") or []),
                    int(d.get("partition", -1)),
                    int(d.get("interval_ms", 0) or 0),
                )
            )
            self._persisted_ms[d["_id"]] = seen
            self._persisted_leases[d["_id"]] = _leases_of(d.get("leases") or [])
        M.REBUILDS.inc()
        self._gauges()
        return len(docs)

    def revoked(self, partitions: set[int]) -> None:
        for p in self.detector.release(partitions):
            self._persisted_ms.pop(p, None)
            self._persisted_leases.pop(p, None)
        self._gauges()

    # -------------------------------------------------------------- verdicts

    async def _suspected(self, t: Transition) -> None:
        msg = ev.ProviderSuspected(
            org_id=t.org_id,
            provider_id=t.provider_id,
            last_heartbeat_at=_ts(t.last_seen_ms),
            missed_heartbeats=t.silent_ms // self.detector.interval_ms,
            affected_job_ids=sorted({x.job_id for x in t.leases}),
            suspected_at=_ts(t.at_ms),
        )
        await self.store.transition(
            t.provider_id,
            t.org_id,
            ["alive"],
            {"state": "suspected", "suspected_ms": t.at_ms, "last_seen_ms": t.last_seen_ms},
            [self._stage(msg, t.org_id, t.provider_id, t.at_ms)],
        )

    async def _lost(self, t: Transition) -> None:
        msg = ev.ProviderDead(
            org_id=t.org_id,
            provider_id=t.provider_id,
            last_heartbeat_at=_ts(t.last_seen_ms),
            affected_job_ids=sorted({x.job_id for x in t.leases}),
            declared_at=_ts(t.at_ms),
        )
        declared = await self.store.transition(
            t.provider_id,
            t.org_id,
            ["alive", "suspected"],
            {
                "state": "lost",
                "lost_ms": t.at_ms,
                "last_seen_ms": t.last_seen_ms,
                "declared_by": self.replica,
            },
            [self._stage(msg, t.org_id, t.provider_id, t.at_ms)],
            inc={"losses": 1},
        )
        if declared:
            M.PROVIDERS_LOST.inc()
            M.DETECTION_SECONDS.observe(t.silent_ms / 1000)
        # Decide even when another replica (or this one before a crash) wrote the
        # verdict: the unique record makes a second decision a no-op.
        await self.decide(t)

    async def decide(self, t: Transition) -> list[str]:
        """One failover record per lease of the lost provider; the ids newly decided."""
        decided: list[str] = []
        for lease in t.leases:
            fid = failover_id(lease.job_id, lease.epoch, lease.role, t.provider_id)
            reason = "standby_lost" if lease.role == "standby" else "primary_lost"
            msg = ev.FailoverStarted(
                # The provider's org: the heartbeat names the provider, not the job's
                # tenant; the scheduler (the lease owner) resolves the job itself.
                org_id=t.org_id,
                job_id=lease.job_id,
                failover_id=fid,
                failed_provider_id=t.provider_id,
                old_epoch=lease.epoch,
                reason=reason,
                started_at=_ts(t.at_ms),
            )
            doc: Doc = {
                "_id": fid,
                "org_id": t.org_id,
                "job_id": lease.job_id,
                "epoch": lease.epoch,
                "role": lease.role,
                "reason": reason,
                "failed_provider_id": t.provider_id,
                "last_heartbeat_ms": t.last_seen_ms,
                "decided_ms": t.at_ms,
                "decided_by": self.replica,
                "status": "started",
            }
            if await self.store.decide(doc, [self._stage(msg, t.org_id, lease.job_id, t.at_ms)]):
                M.FAILOVERS.labels(reason=reason).inc()
                decided.append(fid)
            else:
                M.DUPLICATE_DECISIONS.inc()
        return decided

    # ------------------------------------------------------------ outcomes

    async def promoted(self, fid: str, new_epoch: int, provider_id: str, at_ms: int) -> bool:
        """The scheduler promoted the standby (StandbyPromoted)."""
        return await self.store.mark(
            fid,
            ["started"],
            {
                "status": "promoted",
                "promoted_ms": at_ms,
                "new_epoch": new_epoch,
                "provider_id": provider_id,
            },
        )

    async def job_running_again(
        self,
        job_id: str,
        epoch: int,
        provider_id: str,
        checkpoint_id: str,
        at_ms: int,
        standby_provider_id: str = "",
        placed: bool = False,
    ) -> list[str]:
        """Close the job's open records this event answers: a lost primary's when the job
        runs under a later epoch (JobStarted), a lost standby's when the job is placed
        again under the same epoch with its new standby (JobPlaced). The ids closed."""
        closed: list[str] = []
        for rec in await self.store.open_failovers_of_job(job_id):
            standby = rec.get("role") == "standby"
            if placed != standby:
                continue
            if (standby and int(rec["epoch"]) != epoch) or (
                not standby and int(rec["epoch"]) >= epoch
            ):
                continue
            duration = max(0, at_ms - int(rec["decided_ms"]))
            msg = ev.FailoverCompleted(
                org_id=rec["org_id"],
                job_id=job_id,
                failover_id=rec["_id"],
                primary_provider_id=provider_id,
                standby_provider_id=standby_provider_id,
                epoch=epoch,
                checkpoint_id=checkpoint_id,
                duration_ms=duration,
                completed_at=_ts(at_ms),
            )
            sets = {
                "status": "completed",
                "completed_ms": at_ms,
                "epoch_after": epoch,
                "provider_id": provider_id,
                "recovery_ms": duration,
            }
            if await self.store.close(
                rec["_id"], sets, [self._stage(msg, rec["org_id"], job_id, at_ms)]
            ):
                M.RECOVERY_SECONDS.labels(role="standby" if standby else "primary").observe(
                    duration / 1000
                )
                closed.append(rec["_id"])
        return closed

    async def job_ended(self, job_id: str, status: str, at_ms: int) -> int:
        """The job finished before it ran again: its open records end with it."""
        n = 0
        for rec in await self.store.open_failovers_of_job(job_id):
            if await self.store.close(
                rec["_id"], {"status": "ended", "ended_ms": at_ms, "job_status": status}, []
            ):
                n += 1
        return n

    async def _recovered(self, t: Transition, partition: int) -> None:
        msg = ev.ProviderRecovered(
            org_id=t.org_id,
            provider_id=t.provider_id,
            previous_state=t.previous.value,
            silent_ms=t.silent_ms,
            recovered_at=_ts(t.at_ms),
        )
        moved = await self.store.transition(
            t.provider_id,
            t.org_id,
            [t.previous.value],
            {
                "state": "alive",
                "recovered_ms": t.at_ms,
                "last_seen_ms": t.at_ms,
                "partition": partition,
                "leases": _lease_docs(t.leases),
            },
            [self._stage(msg, t.org_id, t.provider_id, t.at_ms)],
        )
        if moved:
            M.RECOVERIES.labels(previous=t.previous.value).inc()
        self._persisted_ms[t.provider_id] = t.at_ms
        self._persisted_leases[t.provider_id] = t.leases

    # ---------------------------------------------------------------- helpers

    def _stage(self, msg: Any, org_id: str, key: str, at_ms: int) -> Staged:
        return stage(
            msg,
            org_id=org_id,
            key=key,
            source=SOURCE,
            time_=datetime.fromtimestamp(at_ms / 1000, UTC),
        )

    def _gauges(self) -> None:
        counts = {s: 0 for s in State}
        for w in self.detector.watches.values():
            counts[w.state] += 1
        for s, n in counts.items():
            M.PROVIDERS.labels(state=s.value).set(n)

    async def stats_per_hour(self, hours: int, now_ms: int | None = None) -> dict[str, Any]:
        """Failover decisions per hour over the last ``hours`` hours (every hour, oldest
        first) and the providers lost now: the operators' view, counts only."""
        hour = 3_600_000
        now = now_ms if now_ms is not None else int(time.time() * 1000)
        first = (now // hour - hours + 1) * hour
        rows: dict[int, dict[str, Any]] = {
            first + i * hour: {"f": 0, "p": 0, "s": 0, "c": 0, "rec": []} for i in range(hours)
        }
        for d in await self.store.decided_since(first):
            row = rows.get(int(d["decided_ms"]) // hour * hour)
            if row is None:
                continue
            row["f"] += 1
            row["s" if d.get("role") == "standby" else "p"] += 1
            if d.get("status") == "completed" and d.get("recovery_ms") is not None:
                row["c"] += 1
                row["rec"].append(int(d["recovery_ms"]))
        out = []
        for at, r in rows.items():
            rec = sorted(r["rec"])
            out.append(
                {
                    "hour_ms": at,
                    "failovers": r["f"],
                    "primary": r["p"],
                    "standby": r["s"],
                    "completed": r["c"],
                    "recovery_ms_p50": rec[(len(rec) - 1) // 2] if rec else None,
                }
            )
        return {
            "hours": out,
            "total": sum(r["failovers"] for r in out),
            "providers_lost": await self.store.lost_now(),
        }
