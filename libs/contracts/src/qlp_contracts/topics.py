"""The Kafka topic registry: the one place topic names, partitions and retention live.

Topics are provisioned from ``all_topics()`` (locally and by the Helm hook job),
and producers find where an event goes with ``topic_for_event``.

- ``qlp.<domain>.events.v1``: the events of proto package ``qlp.<domain>.v1``,
  owned (produced) by that domain's service.
- ``qlp.usage.v1``: usage metering (``qlp.usage.v1``), produced by many services,
  consumed by billing; more partitions.
- ``qlp.dlq.<group_id>``: one dead-letter topic per consumer group
  (``dlq_topic``), holding the original messages that failed after bounded retries.

A topic carries every event of its proto package, so a new event in an existing
domain needs no change here. Partition counts are deliberately small (a
2-core development box); raising them later is possible, lowering is not.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from dataclasses import dataclass
from types import MappingProxyType

from qlp_contracts.catalog import EventRef, UnknownEventType, event_types, package_of

__all__ = [
    "BILLING",
    "DAY_MS",
    "DLQ_PARTITIONS",
    "DLQ_RETENTION_MS",
    "EVENTS_RETENTION_MS",
    "FAILOVER",
    "GENERATION",
    "HEARTBEATS",
    "IDENTITY",
    "MARKETPLACE",
    "SCHEDULING",
    "USAGE",
    "USAGE_RETENTION_MS",
    "Topic",
    "UnknownTopic",
    "all_topics",
    "dlq_topic",
    "dlq_topic_spec",
    "topic_by_name",
    "topic_for_event",
]

DAY_MS = 24 * 60 * 60 * 1000
#: Domain event topics keep a week: enough to rebuild a consumer after an outage.
EVENTS_RETENTION_MS = 7 * DAY_MS
#: Usage is money: keep it two weeks so billing can catch up after a long outage.
USAGE_RETENTION_MS = 14 * DAY_MS
#: Dead letters wait for a human and a replay: a month.
DLQ_RETENTION_MS = 30 * DAY_MS
DLQ_PARTITIONS = 1

# Kafka's legal topic characters and maximum length.
_LEGAL_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_DLQ_PREFIX = "qlp.dlq."


class UnknownTopic(LookupError):
    """No topic of that name in the registry."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True, slots=True)
class Topic:
    """One Kafka topic as the platform provisions and uses it."""

    name: str
    partitions: int
    retention_ms: int
    #: The service that owns the topic's contract and its provisioning.
    owner: str
    #: CloudEvent types (full proto names) the topic carries; empty for DLQs (anything).
    event_types: tuple[str, ...]
    description: str
    #: Services that publish to it (the owner unless stated otherwise).
    producers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not _LEGAL_TOPIC.match(self.name):
            raise ValueError(f"illegal Kafka topic name {self.name!r}")
        if self.partitions < 1:
            raise ValueError(f"{self.name}: partitions must be at least 1")
        if self.retention_ms < 1:
            raise ValueError(f"{self.name}: retention_ms must be positive")

    def carries(self, event: EventRef) -> bool:
        """True when events of this type are published to this topic."""
        name = event if isinstance(event, str) else event.DESCRIPTOR.full_name
        return name in self.event_types

    def kafka_config(self) -> dict[str, str]:
        """Topic-level configs for CreateTopics / kafka-topics ``--config``."""
        return {"cleanup.policy": "delete", "retention.ms": str(self.retention_ms)}


def _events_of(package: str) -> tuple[str, ...]:
    return tuple(t for t in event_types() if package_of(t) == package)


def _domain_topic(domain: str, owner: str, description: str, *, partitions: int = 3) -> Topic:
    return Topic(
        name=f"qlp.{domain}.events.v1",
        partitions=partitions,
        retention_ms=EVENTS_RETENTION_MS,
        owner=owner,
        event_types=_events_of(f"qlp.{domain}.v1"),
        description=description,
        producers=(owner,),
    )


IDENTITY = _domain_topic(
    "identity",
    "identity",
    "Orgs, users, memberships, roles, API keys and lockouts.",
)
BILLING = _domain_topic(
    "billing",
    "billing",
    "Subscriptions, quota reservations, invoices, payments, escrow and payouts.",
)
GENERATION = _domain_topic(
    "generation",
    "generation",
    "Generation lifecycle, project versions and quota reservation requests.",
)
#: Billing answers a RefundRequested here with PurchaseRefunded / PurchaseRefundFailed
#: (its payment answers to PurchaseRequested stay on the billing topic).
MARKETPLACE = dataclasses.replace(
    _domain_topic(
        "marketplace",
        "marketplace",
        "Listings, versions, purchases, refunds, entitlements and reviews.",
    ),
    producers=("marketplace", "billing"),
)
SCHEDULING = _domain_topic(
    "scheduling",
    "scheduler",
    "GPU providers, heartbeats, offers, jobs, placements, checkpoints, leases and "
    "escrow hold requests.",
)
#: The liveness signal: one ProviderAlive per received heartbeat, published by the
#: scheduler straight to Kafka (not through its outbox), keyed by provider id so the
#: failover consumer group splits the providers across replicas. Heartbeats are worth
#: minutes, not days: an hour of retention.
PROVIDER_ALIVE = "qlp.failover.v1.ProviderAlive"
HEARTBEATS = Topic(
    name="qlp.failover.heartbeats.v1",
    partitions=6,
    retention_ms=60 * 60 * 1000,
    owner="failover",
    event_types=(PROVIDER_ALIVE,),
    description="One ProviderAlive per heartbeat the scheduler receives, keyed by "
    "provider id; the failover service's liveness detector reads it.",
    producers=("scheduler",),
)
FAILOVER = Topic(
    name="qlp.failover.events.v1",
    partitions=3,
    retention_ms=EVENTS_RETENTION_MS,
    owner="failover",
    event_types=tuple(t for t in _events_of("qlp.failover.v1") if t != PROVIDER_ALIVE),
    description="Provider liveness verdicts and job failovers (standby promotion under "
    "a new epoch).",
    # the failover service decides; the scheduler (the lease owner) says StandbyPromoted
    producers=("failover", "scheduler"),
)
USAGE = Topic(
    name="qlp.usage.v1",
    partitions=6,
    retention_ms=USAGE_RETENTION_MS,
    owner="billing",
    event_types=_events_of("qlp.usage.v1"),
    description="Usage metering from every producing service, keyed by org; billing "
    "aggregates, prices and enforces quotas from it.",
    producers=("gateway", "generation", "scheduler"),
)

_TOPICS: tuple[Topic, ...] = (
    IDENTITY,
    BILLING,
    USAGE,
    GENERATION,
    MARKETPLACE,
    SCHEDULING,
    FAILOVER,
    HEARTBEATS,
)


def all_topics() -> tuple[Topic, ...]:
    """Every event topic to provision (DLQs are per consumer group: see dlq_topic_spec)."""
    return _TOPICS


@functools.cache
def _by_event() -> MappingProxyType[str, Topic]:
    index: dict[str, Topic] = {}
    for topic in _TOPICS:
        for name in topic.event_types:
            if name in index:
                raise RuntimeError(f"{name} is registered in {index[name].name} and {topic.name}")
            index[name] = topic
    return MappingProxyType(index)


def topic_for_event(event: EventRef) -> Topic:
    """The topic an event is published to; raises UnknownEventType for non-events."""
    name = event if isinstance(event, str) else event.DESCRIPTOR.full_name
    try:
        return _by_event()[name]
    except KeyError:
        raise UnknownEventType(name) from None


def topic_by_name(name: str) -> Topic:
    """The registered event topic called ``name``; raises UnknownTopic."""
    for topic in _TOPICS:
        if topic.name == name:
            return topic
    raise UnknownTopic(f"no topic {name!r} in the registry")


def dlq_topic(group_id: str) -> str:
    """The dead-letter topic of a consumer group: ``qlp.dlq.<group_id>``."""
    name = f"{_DLQ_PREFIX}{group_id}"
    if not group_id or not _LEGAL_TOPIC.match(name):
        raise ValueError(
            f"consumer group id {group_id!r} cannot name a topic: use letters, digits, "
            f"'.', '_' and '-' only, at most {249 - len(_DLQ_PREFIX)} characters"
        )
    return name


def dlq_topic_spec(group_id: str, owner: str) -> Topic:
    """The dead-letter topic of ``owner``'s consumer group ``group_id``, ready to provision."""
    return Topic(
        name=dlq_topic(group_id),
        partitions=DLQ_PARTITIONS,
        retention_ms=DLQ_RETENTION_MS,
        owner=owner,
        event_types=(),
        description=f"Dead letters of consumer group {group_id}: the original messages "
        "(body and headers, plus the error) that failed after bounded retries, kept for replay.",
        producers=(owner,),
    )
