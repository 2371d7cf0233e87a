"""The liveness consumer: heartbeat events in, verdicts out.

It is a plain aiokafka consumer in group ``<prefix>.liveness`` rather than a kit
``ConsumerSpec``, because it needs the group's partition assignment: each replica
watches the providers of the partitions it owns, rebuilds them from MongoDB when a
rebalance hands them over, and forgets them when they move away. Heartbeats are not
retried or dead-lettered: a heartbeat that cannot be read is a missed heartbeat.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from qlp_contracts import topics
from qlp_failover import metrics as M
from qlp_failover.liveness import Lease
from qlp_failover.repository import Store
from qlp_failover.service import Failover
from qlp_failover.settings import FailoverSettings
from qlp_kit.app import ServiceContext
from qlp_kit.consumer import ConsumerSpec
from qlp_kit.events import EnvelopeError, Event, decode_record

log = structlog.get_logger(__name__)


def now_ms() -> int:
    return int(time.time() * 1000)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, svc: Failover) -> None:
        self.svc = svc

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.svc.revoked({tp.partition for tp in revoked})

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        n = await self.svc.assigned({tp.partition for tp in assigned}, now_ms())
        log.info(
            "liveness partitions assigned",
            partitions=sorted(tp.partition for tp in assigned),
            providers=n,
        )


async def run_detector(svc: Failover, bootstrap: str, group: str) -> None:
    """Consume heartbeats and tick the detector until cancelled."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        client_id=f"qlp-failover-{svc.replica}",
        enable_auto_commit=True,
        # A group's first start reads from the beginning (an hour of retention) and
        # skips what is stale below: with "latest" the embedded broker (Tansu) left
        # some partitions undelivered in the benchmark. Later starts resume from the
        # committed offsets.
        auto_offset_reset="earliest",
        session_timeout_ms=10_000,
        heartbeat_interval_ms=1_000,
    )
    consumer.subscribe([topics.HEARTBEATS.name], listener=_Rebalance(svc))
    await consumer.start()
    tick_ms = max(10, int(svc.settings.tick_s * 1000))
    stale_ms = svc.detector.lost_ms
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=tick_ms, max_records=1000)
            for tp, records in batches.items():
                for r in records:
                    now = now_ms()
                    if r.timestamp and now - int(r.timestamp) > stale_ms:
                        # A replay from an older committed offset: it says nothing about now.
                        M.STALE_HEARTBEATS.inc()
                        continue
                    try:
                        e = decode_record(
                            r.topic, tp.partition, r.offset, r.key, r.value, r.headers
                        )
                    except EnvelopeError as exc:
                        log.warning("unreadable heartbeat event", error=str(exc))
                        continue
                    m = e.message
                    leases = [Lease(x.job_id, int(x.epoch), x.role, x.status) for x in m.leases]
                    await svc.heartbeat(m.provider_id, m.org_id, leases, now, tp.partition)
            await svc.tick(now_ms())
    finally:
        await consumer.stop()


def get_failover(ctx: ServiceContext) -> Failover:
    """The process's one :class:`Failover` (created on first use)."""
    return ctx.singleton(
        "failover", Failover, lambda: Failover(Store(ctx.db), ctx.settings_as(FailoverSettings))
    )


STANDBY_PROMOTED = "qlp.failover.v1.StandbyPromoted"
JOB_STARTED = "qlp.scheduling.v1.JobStarted"
JOB_PLACED = "qlp.scheduling.v1.JobPlaced"
JOB_ENDED = (
    "qlp.scheduling.v1.JobCompleted",
    "qlp.scheduling.v1.JobFailed",
    "qlp.scheduling.v1.JobCanceled",
)


def _ms(ts: Any) -> int:
    return int(ts.ToMilliseconds()) if ts.seconds or ts.nanos else now_ms()


def consumers(ctx: ServiceContext) -> list[ConsumerSpec]:
    """Outcomes of the decisions: the scheduler's promotion and the job running again
    close the failover records (FailoverCompleted, recovery time)."""
    settings = ctx.settings
    assert isinstance(settings, FailoverSettings)

    async def handle(e: Event) -> None:
        svc = get_failover(ctx)
        m = e.message
        if e.type == STANDBY_PROMOTED:
            await svc.promoted(m.failover_id, int(m.new_epoch), m.provider_id, _ms(m.promoted_at))
        elif e.type == JOB_STARTED:
            await svc.job_running_again(
                m.job_id, int(m.epoch), m.provider_id, m.checkpoint_id, _ms(m.started_at)
            )
        elif e.type == JOB_PLACED:
            await svc.job_running_again(
                m.job_id,
                int(m.epoch),
                m.primary.provider_id,
                "",
                _ms(m.placed_at),
                standby_provider_id=m.standby.provider_id,
                placed=True,
            )
        elif e.type in JOB_ENDED:
            await svc.job_ended(m.job_id, e.type.rsplit(".", 1)[-1], now_ms())

    return [
        ConsumerSpec(
            f"{settings.consumer_group_prefix}.outcomes",
            [topics.FAILOVER.name, topics.SCHEDULING.name],
            handle,
            event_types=[STANDBY_PROMOTED, JOB_STARTED, JOB_PLACED, *JOB_ENDED],
            description="promotions and restarted jobs close failover records "
            "(FailoverCompleted, recovery seconds)",
        )
    ]


def background(ctx: ServiceContext) -> list[Callable[[], Coroutine[Any, Any, None]]]:
    settings = ctx.settings
    assert isinstance(settings, FailoverSettings)
    if not settings.detector_enabled:
        return []
    svc = get_failover(ctx)

    async def detector() -> None:
        group = f"{settings.consumer_group_prefix}.liveness"
        while True:
            try:
                await run_detector(svc, settings.kafka_bootstrap_servers, group)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # broker or database outage: rejoin after a pause
                log.warning("liveness detector stopped; restarting", error=str(exc))
                await asyncio.sleep(1.0)

    return [detector]
