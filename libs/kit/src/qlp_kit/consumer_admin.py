"""Operators' view of a service's consumer groups: lag per topic and dead letters.

Every service with consumers serves ``GET /v1/admin/consumers/<service>`` (platform
administrators only; the gateway routes the path to that service and serves its own
groups itself). The numbers come from the broker (:mod:`qlp_kit.broker_stats`), are
cached per process for ``consumer_stats_ttl_s`` so a page left open costs the broker
one read per interval whatever the number of viewers, and a broker that does not
answer in ``consumer_stats_timeout_s`` is a 503 problem, never a hang. A group of one
replica (``…<replica>``) is reported by the replica that answered.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Sequence
from typing import Annotated, Any

from aiokafka.errors import KafkaError
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from qlp_kit import broker_stats
from qlp_kit import permissions as perm
from qlp_kit.aio import within
from qlp_kit.auth import Principal
from qlp_kit.consumer import ConsumerSpec
from qlp_kit.problems import Problem

PATH = "/v1/admin/consumers/{service}"
SPECS_KEY = "consumer_specs"


#: Services with consumer groups: each serves its operators' view of them at
#: ``/v1/admin/consumers/<service>`` (the gateway answers its own).
CONSUMER_SERVICES = ("billing", "failover", "gateway", "generation", "marketplace", "scheduler")


class TopicLag(BaseModel):
    topic: str
    #: Records on the topic the group has not committed yet (summed over partitions).
    lag: int


class GroupStats(BaseModel):
    group: str
    description: str = ""
    topics: list[TopicLag]
    #: Sum of the topics' lag.
    lag: int
    #: Records in the group's dead-letter topic (``qlp.dlq.<group>``), and of those the
    #: ones not replayed yet (``qlpctl dlq replay <group>``).
    dead_letters: int
    not_replayed: int


class ConsumersOut(BaseModel):
    service: str
    #: The replica (host) that answered: groups of one replica are its own.
    replica: str
    #: When the broker was read (epoch milliseconds); at most ``consumer_stats_ttl_s`` old.
    measured_at_ms: int
    groups: list[GroupStats] = Field(default_factory=list)


async def read_stats(bootstrap: str, service: str, specs: Sequence[ConsumerSpec]) -> ConsumersOut:
    """One read of the broker for ``specs``' groups."""
    topics_of = {s.group: list(s.topics) for s in specs}
    lag_rows = await broker_stats.consumer_lag(bootstrap, topics_of)
    dead = {r["group"]: r for r in await broker_stats.dead_letters(bootstrap, list(topics_of))}
    groups = []
    for spec in specs:
        rows = [
            TopicLag(topic=r["topic"], lag=r["lag"]) for r in lag_rows if r["group"] == spec.group
        ]
        d = dead.get(spec.group) or {}
        groups.append(
            GroupStats(
                group=spec.group,
                description=spec.description,
                topics=rows,
                lag=sum(r.lag for r in rows),
                dead_letters=int(d.get("records", 0)),
                not_replayed=int(d.get("not_replayed", 0)),
            )
        )
    return ConsumersOut(
        service=service,
        replica=socket.gethostname(),
        measured_at_ms=int(time.time() * 1000),
        groups=groups,
    )


class ConsumerStats:
    """Cached reads of one service's groups; concurrent callers share one read."""

    def __init__(self, bootstrap: str, service: str, *, ttl_s: float, timeout_s: float) -> None:
        self.bootstrap = bootstrap
        self.service = service
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        self._last: tuple[float, ConsumersOut] | None = None
        self._lock = asyncio.Lock()

    async def get(self, specs: Sequence[ConsumerSpec]) -> ConsumersOut:
        async with self._lock:
            if self._last is not None and time.monotonic() - self._last[0] < self.ttl_s:
                return self._last[1]
            try:
                out = await within(read_stats(self.bootstrap, self.service, specs), self.timeout_s)
            except (TimeoutError, OSError, KafkaError) as exc:
                raise Problem(
                    503,
                    "Broker unavailable",
                    f"the broker did not report {self.service}'s consumer groups "
                    f"within {self.timeout_s:g} s ({type(exc).__name__}); try again shortly",
                    type_="broker-unavailable",
                    headers={"Retry-After": "5"},
                ) from exc
            self._last = (time.monotonic(), out)
            return out


def stats_of(ctx: Any, service: str) -> ConsumerStats:
    s = ctx.settings
    return ctx.singleton(  # type: ignore[no-any-return]
        "consumer_stats",
        ConsumerStats,
        lambda: ConsumerStats(
            s.kafka_bootstrap_servers,
            service,
            ttl_s=s.consumer_stats_ttl_s,
            timeout_s=s.consumer_stats_timeout_s,
        ),
    )


async def report(ctx: Any, service: str) -> ConsumersOut:
    """The service's groups as this process runs them (none while consumers are off)."""
    specs: Sequence[ConsumerSpec] = ctx.extras.get(SPECS_KEY) or ()
    return await stats_of(ctx, service).get(specs)


SUMMARY = "Consumer lag and dead letters (operators)"


def describe(service: str) -> str:
    return (
        f"Lag per topic and dead letters of {service}'s consumer groups, read from the "
        "broker at most every few seconds (`measured_at_ms`). Platform administrators only."
    )


def _ctx(request: Request) -> Any:
    return request.app.state.ctx


Admin = Annotated[Principal, perm.require(perm.PLATFORM_ADMIN)]
ServiceCtx = Annotated[Any, Depends(_ctx)]


def router_for(service: str) -> APIRouter:
    """The route for services built by :func:`qlp_kit.app.create_app` (the caller is
    the principal the gateway forwards)."""
    router = APIRouter(tags=["Platform admin"])

    @router.get(
        PATH.format(service=service),
        response_model=ConsumersOut,
        summary=SUMMARY,
        description=describe(service),
        operation_id=f"{service}_consumers",
    )
    async def consumers(ctx: ServiceCtx, principal: Admin) -> ConsumersOut:
        return await report(ctx, service)

    return router
