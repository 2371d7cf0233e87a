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
from qlp_kit.events import EnvelopeError, decode_record

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
    svc = ctx.extras.get("failover")
    if svc is None:
        settings = ctx.settings
        assert isinstance(settings, FailoverSettings)
        svc = Failover(Store(ctx.db), settings)
        ctx.extras["failover"] = svc
    assert isinstance(svc, Failover)
    return svc


def consumers(ctx: ServiceContext) -> list[ConsumerSpec]:
    return []


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
