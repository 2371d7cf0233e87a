"""Consumer lag and dead letters of consumer groups, read from the broker.

Shared by every service's operator route (``GET /v1/admin/consumers/<service>``,
:mod:`qlp_kit.consumer_admin`) and by ``qlpctl status`` (whose probes run this module
in a service pod on a cluster). Only JSON-able values come back.

A group's lag on a topic is the end offset minus the group's committed offset, summed
over the partitions; a partition the group never committed counts from the beginning
of the log. A group's dead letters are the records in its ``qlp.dlq.<group>`` topic,
and those not replayed yet (past the replay group's committed offsets).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from qlp_contracts.topics import dlq_topic

DLQ_PREFIX = "qlp.dlq."
REPLAY_PREFIX = "qlp-dlq-replay."


async def end_and_begin(
    bootstrap: str, topics: Sequence[str]
) -> tuple[dict[Any, int], dict[Any, int]]:
    """End (next offset to be written) and beginning offset of every partition of the
    topics that exist (a missing topic has no partitions).

    The end is read back from the log, not taken from ListOffsets alone: the embedded
    broker (Tansu) answers ListOffsets(latest) with the number of record batches, not
    the next offset. From the reported end minus one the partition is read to its
    end, which costs one fetch of one record on a real Kafka.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        existing = await consumer.topics()
        tps = [
            TopicPartition(t, p)
            for t in dict.fromkeys(topics)
            if t in existing
            for p in sorted(consumer.partitions_for_topic(t) or ())
        ]
        if not tps:
            return {}, {}
        reported = await consumer.end_offsets(tps)
        begin = await consumer.beginning_offsets(tps)
        ends = dict(reported)
        readable = [tp for tp in tps if reported[tp] > begin.get(tp, 0)]
        if readable:
            consumer.assign(readable)
            for tp in readable:
                consumer.seek(tp, reported[tp] - 1)
            while True:
                batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
                if not any(batch.values()):
                    break
                for tp, records in batch.items():
                    ends[tp] = max(ends[tp], records[-1].offset + 1)
        return ends, begin
    finally:
        await consumer.stop()


async def committed(bootstrap: str, group: str, tps: Sequence[Any]) -> dict[Any, int | None]:
    """A group's committed offsets (OffsetFetch; the group is not joined)."""
    from aiokafka import AIOKafkaConsumer

    if not tps:
        return {}
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        return {tp: await consumer.committed(tp) for tp in tps}
    finally:
        await consumer.stop()


async def topics(bootstrap: str) -> list[str]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return sorted(await admin.list_topics())
    finally:
        await admin.close()


def _behind(
    end: Mapping[Any, int], begin: Mapping[Any, int], done: Mapping[Any, int | None]
) -> dict[str, int]:
    per_topic: dict[str, int] = {}
    for tp, last in end.items():
        at = done.get(tp)
        start = max(begin.get(tp, 0), at if at is not None else 0)
        per_topic[tp.topic] = per_topic.get(tp.topic, 0) + max(0, last - start)
    return per_topic


async def consumer_lag(
    bootstrap: str, topics_of: Mapping[str, Sequence[str]]
) -> list[dict[str, Any]]:
    """Rows ``{group, topic, lag}`` for each group (name → the topics it reads), every
    topic listed (lag 0 included); a topic that does not exist yet is not listed."""
    wanted = [t for ts in topics_of.values() for t in ts]
    end, begin = await end_and_begin(bootstrap, wanted)
    rows = []
    for group, group_topics in topics_of.items():
        tps = [tp for tp in end if tp.topic in set(group_topics)]
        per_topic = _behind(
            {tp: end[tp] for tp in tps}, begin, await committed(bootstrap, group, tps)
        )
        rows += [{"group": group, "topic": t, "lag": n} for t, n in sorted(per_topic.items())]
    return rows


async def dead_letters(bootstrap: str, groups: Sequence[str]) -> list[dict[str, Any]]:
    """Rows ``{group, topic, records, not_replayed}`` for each group's dead-letter
    topic (0 and 0 where the topic does not exist: nothing was ever dead-lettered)."""
    names = {g: dlq_topic(g) for g in groups}
    end, begin = await end_and_begin(bootstrap, list(names.values()))
    rows = []
    for group, topic in names.items():
        tps = [tp for tp in end if tp.topic == topic]
        total = sum(end[tp] - begin.get(tp, 0) for tp in tps)
        replayed = await committed(bootstrap, REPLAY_PREFIX + group, tps)
        pending = _behind({tp: end[tp] for tp in tps}, begin, replayed).get(topic, 0)
        rows.append({"group": group, "topic": topic, "records": total, "not_replayed": pending})
    return rows


async def dlq_groups(bootstrap: str) -> list[str]:
    """The groups that have a dead-letter topic."""
    return [t.removeprefix(DLQ_PREFIX) for t in await topics(bootstrap) if t.startswith(DLQ_PREFIX)]
