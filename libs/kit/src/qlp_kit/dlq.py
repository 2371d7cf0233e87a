"""Dead-letter topics: inspect and replay.

Replay reads ``qlp.dlq.<group>`` with its own consumer group, republishes each
message to the topic it came from with its original key and headers (so consumers
dedupe it by ``ce_id`` as usual), and, once the broker acknowledged them, commits
exactly the offsets it republished, per partition: nothing leaves the DLQ without
being republished.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition

from qlp_contracts.topics import dlq_topic
from qlp_kit.consumer import DLQ_HEADERS, DLQ_REASON, DLQ_TOPIC
from qlp_kit.producer import Producer, Record

log = structlog.get_logger("qlp.dlq")


@dataclass
class DeadLetter:
    offset: int
    original_topic: str
    reason: str
    event_type: str
    event_id: str


def _consumer(bootstrap: str, group: str, replay_group: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        dlq_topic(group),
        bootstrap_servers=bootstrap,
        group_id=replay_group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )


async def replay(
    bootstrap: str, group: str, *, limit: int | None = None, idle_s: float = 2.0
) -> int:
    """Put dead letters of ``group`` back on their original topics; returns the count.

    Per partition of the DLQ, records are republished in order and the replay group
    commits, for each partition, the offset just past the last record that was
    republished and acknowledged, never the consumer's position: with ``limit`` the
    records read but not republished stay in the DLQ for the next replay. A record
    without an original topic cannot be republished; its partition stops there (it
    is logged, and stays in the DLQ) while the other partitions go on.
    """
    consumer = _consumer(bootstrap, group, f"qlp-dlq-replay.{group}")
    producer = Producer(bootstrap, client_id="qlp-dlq-replay")
    await consumer.start()
    await producer.start()
    moved = 0
    blocked: set[TopicPartition] = set()
    try:
        while limit is None or moved < limit:
            batch = await consumer.getmany(timeout_ms=int(idle_s * 1000), max_records=500)
            if not any(batch.values()):
                break
            out: list[Record] = []
            commit: dict[TopicPartition, int] = {}
            for tp, recs in batch.items():
                if tp in blocked:
                    continue
                for rec in recs:
                    if limit is not None and moved + len(out) >= limit:
                        break
                    headers = {k: v.decode("utf-8", "replace") for k, v in rec.headers}
                    target = headers.get(DLQ_TOPIC)
                    if not target:
                        log.error(
                            "dead letter without its original topic; replay of its partition"
                            " stops here",
                            group=group,
                            partition=tp.partition,
                            offset=rec.offset,
                        )
                        blocked.add(tp)
                        consumer.pause(tp)
                        break
                    clean = {k: v for k, v in headers.items() if k not in DLQ_HEADERS}
                    out.append(Record(target, (rec.key or b"").decode(), rec.value or b"", clean))
                    commit[tp] = rec.offset + 1
            await producer.send_many(out)
            if commit:
                await consumer.commit(commit)
            moved += len(out)
            if consumer.assignment() and consumer.assignment() <= blocked:
                break
    finally:
        await producer.stop()
        await consumer.stop()
    return moved


async def peek(
    bootstrap: str, group: str, *, idle_s: float = 1.0, max_items: int = 1000
) -> list[DeadLetter]:
    """List what is in a group's DLQ without moving anything."""
    consumer = AIOKafkaConsumer(
        dlq_topic(group),
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    out: list[DeadLetter] = []
    try:
        while len(out) < max_items:
            batch = await consumer.getmany(timeout_ms=int(idle_s * 1000), max_records=500)
            records = [r for rs in batch.values() for r in rs]
            if not records:
                break
            for rec in records:
                h = {k: v.decode("utf-8", "replace") for k, v in rec.headers}
                out.append(
                    DeadLetter(
                        rec.offset,
                        h.get(DLQ_TOPIC, ""),
                        h.get(DLQ_REASON, ""),
                        h.get("ce_type", ""),
                        h.get("ce_id", ""),
                    )
                )
    finally:
        await consumer.stop()
    return out
