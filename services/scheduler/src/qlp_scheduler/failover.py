"""The scheduler's side of failover.

- Liveness input: every heartbeat received is published as
  ``qlp.failover.v1.ProviderAlive`` straight to ``qlp.failover.heartbeats.v1`` (keyed
  by provider id), fire-and-forget and bounded: the provider document is written at
  most every ``heartbeat_write_s`` while nothing changes, so the failover service
  cannot watch the database; a heartbeat event the broker did not take is a missed
  heartbeat, which the detector tolerates.
- Decisions: the failover service records one ``FailoverStarted`` per (job, epoch);
  this consumer promotes the standby in one conditional write on the job (epoch + 1,
  fencing the old primary), only while the job still holds the epoch the decision
  names and the lost provider is still its primary. A redelivered or duplicate
  decision finds the epoch moved and changes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import structlog
from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client import Counter

from qlp.failover.v1 import events_pb2 as fev
from qlp.failover.v1 import types_pb2 as ftypes
from qlp_contracts import topics
from qlp_kit.aio import within
from qlp_kit.app import ServiceContext
from qlp_kit.consumer import ConsumerSpec
from qlp_kit.events import Event, build_headers
from qlp_kit.producer import Producer, Record
from qlp_scheduler import recovery
from qlp_scheduler import service as S
from qlp_scheduler.engine import Scheduler
from qlp_scheduler.settings import SchedulerSettings

log = structlog.get_logger("qlp.scheduler.failover")

FAILOVER_STARTED = "qlp.failover.v1.FailoverStarted"
VERDICTS = {
    "qlp.failover.v1.ProviderSuspected": ("suspected", "suspected_at"),
    "qlp.failover.v1.ProviderDead": ("lost", "declared_at"),
    "qlp.failover.v1.ProviderRecovered": ("alive", "recovered_at"),
}

FAILOVERS = Counter(
    "qlp_scheduler_failovers_total",
    "Failover decisions the scheduler acted on, by outcome (promoted, requeued, "
    "standby_replaced, already_done, not_placed, not_live, unknown_job)",
    ["outcome"],
)
ALIVE_DROPPED = Counter(
    "qlp_scheduler_liveness_events_dropped_total",
    "Heartbeat liveness events not published (broker slow or down, or too many in flight)",
)

Doc = dict[str, Any]


def alive_record(doc: Doc, running: Iterable[Doc], receiver: str = "") -> Record:
    """The ProviderAlive record of one heartbeat of provider ``doc``."""
    claims = doc.get("claims") or {}
    now = Timestamp()
    now.GetCurrentTime()
    msg = fev.ProviderAlive(
        org_id=doc["org_id"],
        provider_id=doc["_id"],
        received_at=now,
        receiver=receiver,
        leases=[
            ftypes.HeldLease(
                job_id=str(r["job_id"]),
                epoch=int(r["epoch"]),
                status=str(r.get("status") or "running"),
                role=str((claims.get(str(r["job_id"])) or {}).get("role") or ""),
            )
            for r in running
        ],
    )
    headers = build_headers(msg, org_id=doc["org_id"], source="scheduler", subject=doc["_id"])
    return Record(topics.HEARTBEATS.name, doc["_id"], msg.SerializeToString(), headers)


class AlivePublisher:
    """Publishes liveness events without making a heartbeat wait for the broker."""

    def __init__(self, producer: Producer, max_in_flight: int = 2000, timeout_s: float = 5.0):
        self.producer = producer
        self.max_in_flight = max_in_flight
        self.timeout_s = timeout_s
        self._tasks: set[asyncio.Task[None]] = set()

    def publish(self, doc: Doc, running: Iterable[Doc]) -> None:
        if len(self._tasks) >= self.max_in_flight:
            ALIVE_DROPPED.inc()
            return
        task = asyncio.create_task(self._send(alive_record(doc, running)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, record: Record) -> None:
        try:
            await within(self.producer.send(record), self.timeout_s)
        except Exception as exc:  # a missed heartbeat; the detector tolerates one
            ALIVE_DROPPED.inc()
            log.debug("liveness event not published", error=str(exc))


def alive_publisher(ctx: ServiceContext) -> AlivePublisher:
    return ctx.singleton("alive_publisher", AlivePublisher, lambda: AlivePublisher(ctx.producer))


async def on_failover_started(
    sched: Scheduler,
    job_id: str,
    old_epoch: int,
    failed_provider_id: str,
    failover_id: str = "",
) -> str:
    """Act on one failover decision; returns the outcome (also counted): ``promoted``
    (the standby took over), ``requeued`` (no standby: placed again from the
    checkpoint), ``standby_replaced`` (the standby was lost), or why nothing changed."""
    # cross-tenant: the decision names the job; the lease owner acts on it
    job = await sched.repo.get_job(job_id)
    outcome: str
    if job is None:
        outcome = "unknown_job"
    elif int(job.get("epoch", 0)) != int(old_epoch):
        outcome = "already_done"  # acted on before (a duplicate or redelivered decision)
    elif job.get("status") not in S.LIVE:
        outcome = "not_live"
    elif (job.get("standby") or {}).get("provider_id") == failed_provider_id:
        done = await recovery.replace_standby(
            sched, job_id, int(old_epoch), failed_provider_id, failover_id
        )
        outcome = recovery.STANDBY_REPLACED if done is not None else "already_done"
    elif (job.get("primary") or {}).get("provider_id") != failed_provider_id:
        outcome = "not_placed"  # the lost provider holds no placement of this job
    elif not job.get("standby"):
        done = await recovery.requeue_lost(sched, job_id, int(old_epoch), failover_id)
        outcome = recovery.REQUEUED if done is not None else "already_done"
    else:
        try:
            await sched.promote_standby(job_id, int(old_epoch), failover_id)
            outcome = recovery.PROMOTED
        except (S.InvalidTransition, S.NotFound):
            outcome = "already_done"
    FAILOVERS.labels(outcome=outcome).inc()
    log.info("failover decision", job_id=job_id, epoch=old_epoch, outcome=outcome)
    return outcome


def consumers(ctx: ServiceContext) -> list[ConsumerSpec]:
    settings = ctx.settings
    assert isinstance(settings, SchedulerSettings)

    async def handle(ev: Event) -> None:
        m = ev.message
        if ev.type in VERDICTS:
            state, field = VERDICTS[ev.type]
            at = getattr(m, field)
            at_ms = int(at.ToMilliseconds()) if at.seconds or at.nanos else 0
            sched: Scheduler = ctx.extras["scheduler"]
            doc = await sched.repo.set_liveness(m.provider_id, state, at_ms)
            if doc is not None:
                sched._index_doc(doc)
            return
        await on_failover_started(
            ctx.extras["scheduler"], m.job_id, int(m.old_epoch), m.failed_provider_id, m.failover_id
        )

    return [
        ConsumerSpec(
            settings.failover_consumer_group,
            [topics.FAILOVER.name],
            handle,
            event_types=[FAILOVER_STARTED, *VERDICTS],
            description="failover decisions promote the hot standby under a new epoch; "
            "liveness verdicts keep lost providers out of placement",
        )
    ]
