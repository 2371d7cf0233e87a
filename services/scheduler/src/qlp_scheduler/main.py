"""The scheduler service definition."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

from qlp_contracts import topics
from qlp_kit.app import ServiceContext, ServiceDefinition
from qlp_scheduler.api import gpu, providers
from qlp_scheduler.engine import Scheduler
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
    await sched.refresh_offers(full=True)


def _loop(
    name: str, every_s: float, step: Callable[[], Coroutine[Any, Any, Any]]
) -> Callable[[], Coroutine[Any, Any, None]]:
    async def run() -> None:
        while True:
            try:
                await step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a database hiccup: try again next round
                log.warning("background step failed", loop=name, error=str(exc))
            await asyncio.sleep(every_s)

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


def background(ctx: ServiceContext) -> list[Callable[[], Coroutine[Any, Any, None]]]:
    settings = ctx.settings
    assert isinstance(settings, SchedulerSettings)
    sched: Scheduler = ctx.extras["scheduler"]
    loops = [
        _loop("offer-index", settings.offer_refresh_s, sched.refresh_offers),
        _watch(sched),
    ]
    if settings.background_enabled:
        loops += [
            _loop("placement-retry", settings.placement_retry_s, sched.place_waiting),
            _loop("reconcile", settings.reconcile_interval_s, sched.reconcile),
            _loop("timeouts", 5.0, sched.expire_overdue),
            _loop("orphan-claims", 30.0, sched.sweep_orphan_claims),
        ]
    if settings.background_enabled and settings.k8s_enabled:
        loops += [
            _loop("k8s-dispatch", 2.0, sched.dispatch_k8s),
            _loop("k8s-status", 5.0, sched.sync_k8s_status),
        ]
    return loops


service = ServiceDefinition(
    name="scheduler",
    settings_cls=SchedulerSettings,
    routers=[providers, gpu],
    indexes=INDEXES,
    outbox_collections=[PROVIDERS, JOBS],
    tenant_collections=TENANT_COLLECTIONS,
    consumers=consumers,
    publishes=[topics.SCHEDULING.name, topics.USAGE.name],
    on_startup=on_startup,
    background=background,
    description="GPU scheduling: providers, offers, jobs, placement, leases, agent API",
)
