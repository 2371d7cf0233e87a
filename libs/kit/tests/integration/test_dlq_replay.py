"""DLQ replay against the real broker: a limited replay moves exactly what it
republished, per partition, and the rest stays for the next replay."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from qlp.usage.v1 import events_pb2 as usage
from qlp_contracts.topics import dlq_topic
from qlp_kit import dlq
from qlp_kit.consumer import DLQ_GROUP, DLQ_OFFSET, DLQ_PARTITION, DLQ_REASON, DLQ_TOPIC
from qlp_kit.events import build_headers
from qlp_kit.producer import Producer, Record
from qlp_testing.infra import TestInfra

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


async def _create_topic(bootstrap: str, name: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="qlp-test")
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()


async def _dead_letter(bootstrap: str, group: str, topic: str, n: int) -> list[str]:
    """Put ``n`` dead letters of ``group`` (from ``topic``) in its DLQ, spread over
    its partitions by key; returns their event ids."""
    records, ids = [], []
    for i in range(n):
        msg = usage.UsageRecorded(org_id="org_a", meter="m", quantity=i)
        h = build_headers(msg, org_id="org_a", source="qlp/test", subject=f"k{i}")
        h.update(
            {
                DLQ_REASON: "RuntimeError: boom",
                DLQ_TOPIC: topic,
                DLQ_PARTITION: "0",
                DLQ_OFFSET: str(i),
                DLQ_GROUP: group,
            }
        )
        ids.append(h["ce_id"])
        records.append(Record(dlq_topic(group), f"k{i}", msg.SerializeToString(), h))
    producer = Producer(bootstrap)
    await producer.start()
    try:
        await producer.send_many(records)
    finally:
        await producer.stop()
    return ids


async def _ids_on(bootstrap: str, topic: str) -> list[str]:
    c = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await c.start()
    out: list[str] = []
    try:
        while True:
            batch = await c.getmany(timeout_ms=1500, max_records=1000)
            recs = [r for rs in batch.values() for r in rs]
            if not recs:
                break
            out += [dict(r.headers)["ce_id"].decode() for r in recs]
    finally:
        await c.stop()
    return out


async def test_replay_with_a_limit_leaves_the_rest_in_the_dlq(
    qlp_infra: TestInfra, unique: str
) -> None:
    group, topic = f"probe.{unique}", f"qlp.test.{unique}"
    await _create_topic(qlp_infra.kafka, dlq_topic(group), 3)
    ids = await _dead_letter(qlp_infra.kafka, group, topic, 12)
    assert len(await dlq.peek(qlp_infra.kafka, group, idle_s=0.5)) == 12

    assert await dlq.replay(qlp_infra.kafka, group, limit=5, idle_s=1.0) == 5
    assert len(await _ids_on(qlp_infra.kafka, topic)) == 5
    assert await dlq.replay(qlp_infra.kafka, group, limit=1, idle_s=1.0) == 1
    assert await dlq.replay(qlp_infra.kafka, group, idle_s=1.0) == 6
    assert await dlq.replay(qlp_infra.kafka, group, idle_s=1.0) == 0

    arrived = await _ids_on(qlp_infra.kafka, topic)
    assert sorted(arrived) == sorted(ids)  # every dead letter, each exactly once


async def test_replay_stops_at_a_letter_it_cannot_republish(
    qlp_infra: TestInfra, unique: str
) -> None:
    """A letter without its original topic cannot go anywhere: the replay does not
    commit past it (it stays in the DLQ), and what came before it is republished."""
    group, topic = f"probe.{unique}", f"qlp.test.{unique}"
    await _create_topic(qlp_infra.kafka, dlq_topic(group), 1)
    first = await _dead_letter(qlp_infra.kafka, group, topic, 2)
    producer = Producer(qlp_infra.kafka)
    await producer.start()
    try:
        await producer.send(Record(dlq_topic(group), "k", b"x", {DLQ_REASON: "no topic"}))
    finally:
        await producer.stop()
    await _dead_letter(qlp_infra.kafka, group, topic, 2)
    assert await dlq.replay(qlp_infra.kafka, group, idle_s=1.0) == 2
    assert await dlq.replay(qlp_infra.kafka, group, idle_s=1.0) == 0
    assert sorted(await _ids_on(qlp_infra.kafka, topic)) == sorted(first)
