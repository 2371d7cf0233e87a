"""The scheduler service definition."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

from qlp_contracts import topics
from qlp_kit.aio import wait_event
from qlp_kit.app import ServiceContext, ServiceDefinition
from qlp_scheduler.api import gpu, providers
from qlp_scheduler.engine import Scheduler
from qlp_scheduler.failover import consumers as failover_consumers
from qlp_scheduler.handlers import consumers
from qlp_scheduler.k8s import KubernetesLauncher, in_cluster_api
from qlp_scheduler.repository import INDEXES, JOBS, PROVIDERS, TENANT_COLLECTIONS, Repository
from qlp_scheduler.settings import SchedulerSettings

log = structlog.get_logger("qlp.scheduler")


async def on_startup(ctx: ServiceContext) -> None:
    settings = ctx.settings
    assert isinstance(settings, SchedulerSettings)
    sched = Scheduler(Repository(ctx.db), settings)
    if settings.k8s_enabled:
        sched.k8s = KubernetesLauncher(
            in_cluster_api(), settings.k8s_jobs_namespace, settings.k8s_default_image
        )
    ctx.extras["scheduler"] = sched
    sched.offer_feed.send = ctx.producer.send_many
    await sched.refresh_offers(full=True)


def loop_every(
    name: str,
    every_s: float,
    step: Callable[[], Coroutine[Any, Any, Any]],
    *,
    idle_max_s: float | None = None,
    wake: asyncio.Event | None = None,
    on_wake: Callable[[], Coroutine[Any, Any, Any]] | None = None,
) -> Callable[[], Coroutine[Any, Any, None]]:
    """Run ``step`` every ``every_s``. With ``idle_max_s``, rounds that found nothing
    to do (the step returned 0/None/False) double the pause up to ``idle_max_s``, and
    a round with work resets it: idle costs next to nothing, work is handled at the
    base rate. With ``wake``, setting that event runs the next round at once (then
    ``on_wake`` instead of ``step``), never sooner than ``every_s`` after the last."""

    async def run() -> None:
        pause = every_s
        while True:
            woken = False
            if wake is not None:
                woken = wake.is_set()
                wake.clear()
            try:
                did = await (on_wake if woken and on_wake is not None else step)()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a database hiccup: try again next round
                log.warning("background step failed", loop=name, error=str(exc))
                did = 1
            if idle_max_s is not None:
                pause = every_s if did else min(idle_max_s, pause * 2)
            await asyncio.sleep(every_s)
            if wake is not None:
                await wait_event(wake, pause - every_s)
            elif pause > every_s:
                await asyncio.sleep(pause - every_s)

    return run


def _watch(sched: Scheduler) -> Callable[[], Coroutine[Any, Any, None]]:
    async def run() -> None:
        while True:
            try:
                await sched.watch_assignments()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # no change streams here: polling still works
                log.warning("assignment change stream unavailable", error=str(exc))
                await asyncio.sleep(30.0)

    return run


def offer_feed_loop(
    sched: Scheduler, settings: SchedulerSettings
) -> Callable[[], Coroutine[Any, Any, None]]:
    """The offer feed: woken by this process's offer changes, a slow sweep otherwise."""
    return loop_every(
        "offer-feed",
        settings.offer_feed_coalesce_s,
        sched.offer_feed.publish,
        idle_max_s=settings.offer_feed_sweep_s,
        wake=sched.offer_feed.changed,
    )


def background(ctx: ServiceContext) -> list[Callable[[], Coroutine[Any, Any, None]]]:
    settings = ctx.settings
    assert isinstance(settings, SchedulerSettings)
    sched: Scheduler = ctx.extras["scheduler"]
    loops = [
        loop_every(
            "offer-index",
            settings.offer_refresh_s,
            sched.refresh_offers,
            idle_max_s=settings.offer_refresh_max_s,
        ),
        _watch(sched),
        offer_feed_loop(sched, settings),
    ]
    if settings.background_enabled:

        async def place_all() -> int:
            return await sched.place_waiting(all_waiting=True)

        async def timeouts() -> int:
            await sched.expire_overdue()
            await sched.requeue_unpicked()
            return sched.live_jobs_seen  # live jobs keep the base rate

        loops += [
            # woken when this process sees capacity appear; slow fallback otherwise
            loop_every(
                "placement-retry",
                settings.placement_retry_s,
                sched.place_waiting,
                idle_max_s=settings.placement_retry_idle_s,
                wake=sched.capacity_changed,
                on_wake=place_all,
            ),
            # effects a crash left pending, overdue jobs, orphaned claims: rare work,
            # so rounds that find none back off
            loop_every(
                "reconcile", settings.reconcile_interval_s, sched.reconcile, idle_max_s=60.0
            ),
            loop_every("timeouts", 5.0, timeouts, idle_max_s=60.0),
            loop_every("orphan-claims", 30.0, sched.sweep_orphan_claims, idle_max_s=300.0),
        ]
    if settings.background_enabled and settings.k8s_enabled:
        loops += [
            loop_every("k8s-dispatch", 2.0, sched.dispatch_k8s, idle_max_s=30.0),
            loop_every("k8s-status", 5.0, sched.sync_k8s_status),
        ]
    return loops


service = ServiceDefinition(
    name="scheduler",
    settings_cls=SchedulerSettings,
    routers=[providers, gpu],
    indexes=INDEXES,
    outbox_collections=[PROVIDERS, JOBS],
    tenant_collections=TENANT_COLLECTIONS,
    consumers=lambda ctx: [*consumers(ctx), *failover_consumers(ctx)],
    publishes=[topics.SCHEDULING.name, topics.USAGE.name],
    on_startup=on_startup,
    background=background,
    description="GPU scheduling: providers, offers, jobs, placement, leases, agent API",
)
