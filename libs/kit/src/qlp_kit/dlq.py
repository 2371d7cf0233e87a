"""Dead-letter topics: inspect and replay.

Replay reads ``qlp.dlq.<group>`` with its own consumer group, republishes each
message to the topic it came from with its original key and headers (so consumers
dedupe it by ``ce_id`` as usual), and commits after each batch is acknowledged.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer

from qlp_contracts.topics import dlq_topic
from qlp_kit.consumer import DLQ_HEADERS, DLQ_REASON, DLQ_TOPIC
from qlp_kit.producer import Producer, Record


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
    """Put dead letters of ``group`` back on their original topics; returns the count."""
    consumer = _consumer(bootstrap, group, f"qlp-dlq-replay.{group}")
    producer = Producer(bootstrap, client_id="qlp-dlq-replay")
    await consumer.start()
    await producer.start()
    moved = 0
    try:
        while limit is None or moved < limit:
            batch = await consumer.getmany(timeout_ms=int(idle_s * 1000), max_records=500)
            records = [r for rs in batch.values() for r in rs]
            if not records:
                break
            out = []
            for rec in records[: None if limit is None else limit - moved]:
                headers = {k: v.decode() for k, v in rec.headers}
                target = headers.get(DLQ_TOPIC)
                if not target:
                    continue
                clean = {k: v for k, v in headers.items() if k not in DLQ_HEADERS}
                out.append(Record(target, (rec.key or b"").decode(), rec.value or b"", clean))
            await producer.send_many(out)
            moved += len(out)
            await consumer.commit()
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
