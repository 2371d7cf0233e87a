"""The topic registry: one topic per event, unique names, deliberate sizes."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from qlp.billing.v1 import events_pb2 as billing
from qlp.common.v1 import money_pb2
from qlp.usage.v1 import events_pb2 as usage
from qlp_contracts import catalog, topics
from qlp_contracts.catalog import UnknownEventType
from qlp_contracts.topics import Topic, UnknownTopic


def test_every_event_is_in_exactly_one_topic() -> None:
    counts = Counter(t for topic in topics.all_topics() for t in topic.event_types)
    assert set(counts) == set(catalog.event_types())
    assert all(n == 1 for n in counts.values()), counts.most_common(3)
    for ce_type in catalog.event_types():
        assert topics.topic_for_event(ce_type).carries(ce_type)


def test_topic_names_are_unique_and_follow_the_scheme() -> None:
    names = [t.name for t in topics.all_topics()]
    assert len(names) == len(set(names))
    assert sorted(names) == sorted(
        [
            f"qlp.{d}.events.v1"
            for d in ("identity", "billing", "generation", "marketplace", "scheduling", "failover")
        ]
        + ["qlp.usage.v1", "qlp.failover.heartbeats.v1"]
    )


def test_domain_topics_carry_their_package() -> None:
    for topic in topics.all_topics():
        match = re.fullmatch(r"qlp\.(\w+)\.(?:events\.|heartbeats\.)?v1", topic.name)
        assert match, topic.name
        assert topic.event_types, topic.name
        assert {catalog.package_of(t) for t in topic.event_types} == {f"qlp.{match[1]}.v1"}


def test_sizes_are_deliberate() -> None:
    for topic in topics.all_topics():
        assert 1 <= topic.partitions <= 6, topic
        # heartbeats are worth minutes: the liveness topic keeps an hour, the rest a day+
        floor = 60 * 60 * 1000 if topic is topics.HEARTBEATS else topics.DAY_MS
        assert topic.retention_ms >= floor, topic
        assert topic.owner and topic.description and topic.producers, topic
    assert topics.USAGE.partitions > topics.BILLING.partitions
    assert topics.SCHEDULING.owner == "scheduler"
    assert topics.USAGE.kafka_config() == {
        "cleanup.policy": "delete",
        "retention.ms": str(14 * topics.DAY_MS),
    }


def test_heartbeats_have_their_own_short_lived_topic_keyed_by_provider() -> None:
    alive = "qlp.failover.v1.ProviderAlive"
    assert topics.topic_for_event(alive) is topics.HEARTBEATS
    assert not topics.FAILOVER.carries(alive)
    assert topics.HEARTBEATS.producers == ("scheduler",)
    assert topics.HEARTBEATS.retention_ms < topics.DAY_MS
    assert catalog.key_field(alive) == "provider_id"


def test_topic_for_event_accepts_messages_classes_and_names() -> None:
    assert topics.topic_for_event(usage.UsageRecorded(org_id="org_1")) is topics.USAGE
    assert topics.topic_for_event(billing.EscrowHeld) is topics.BILLING
    assert topics.topic_for_event("qlp.scheduling.v1.EscrowHoldRequested").name == (
        "qlp.scheduling.events.v1"
    )
    assert topics.topic_for_event("qlp.generation.v1.QuotaReservationRequested") is (
        topics.GENERATION
    )
    with pytest.raises(UnknownEventType):
        topics.topic_for_event(money_pb2.Money)
    with pytest.raises(UnknownEventType):
        topics.topic_for_event("qlp.nope.v1.Nothing")


def test_topic_by_name() -> None:
    assert topics.topic_by_name("qlp.failover.events.v1") is topics.FAILOVER
    with pytest.raises(UnknownTopic, match=r"qlp.nope"):
        topics.topic_by_name("qlp.nope")


def test_dlq_topics() -> None:
    assert topics.dlq_topic("billing.usage") == "qlp.dlq.billing.usage"
    spec = topics.dlq_topic_spec("billing.usage", owner="billing")
    assert spec.name == "qlp.dlq.billing.usage"
    assert 1 <= spec.partitions <= 3
    assert spec.retention_ms > max(t.retention_ms for t in topics.all_topics())
    assert spec.event_types == ()
    assert spec.name not in {t.name for t in topics.all_topics()}
    for bad in ("", "has space", "slash/group", "x" * 300):
        with pytest.raises(ValueError, match="consumer group id"):
            topics.dlq_topic(bad)


def test_topic_is_frozen_and_validated() -> None:
    with pytest.raises(AttributeError):
        topics.USAGE.partitions = 1  # type: ignore[misc]
    with pytest.raises(ValueError, match="partitions"):
        Topic("qlp.x.v1", 0, 1, "x", (), "x")
    with pytest.raises(ValueError, match="illegal"):
        Topic("qlp x", 1, 1, "x", (), "x")
