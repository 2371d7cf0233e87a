"""Broker and database reads that qlpctl runs where the platform's network is.

Locally they run in qlpctl's own process against the ``make up`` broker and
database. On a cluster, qlpctl sends this module's source to a service pod
(``kubectl exec ... python -c``), whose image has aiokafka, pymongo and qlp_kit and
whose environment has ``KAFKA_BOOTSTRAP_SERVERS`` and ``MONGODB_URL``, and runs one
function there. So this module imports nothing from qlp_infra and takes only
JSON-able arguments and returns only JSON-able values.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

DLQ_PREFIX = "qlp.dlq."
REPLAY_PREFIX = "qlp-dlq-replay."


async def _end_and_begin(
    bootstrap: str, topics: list[str]
) -> tuple[dict[Any, int], dict[Any, int]]:
    """End (next offset to be written) and beginning offset of every partition.

    The end is read back from the log, not taken from ListOffsets alone: the embedded
    broker (Tansu) answers ListOffsets(latest) with the number of record batches, not
    the next offset. From the reported end minus one the partition is read to its
    end, which costs one fetch of one record on a real Kafka.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [
            TopicPartition(t, p)
            for t in topics
            for p in sorted(consumer.partitions_for_topic(t) or await _partitions(consumer, t))
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


async def _partitions(consumer: Any, topic: str) -> set[int]:
    await consumer.topics()  # fetches the cluster metadata
    return consumer.partitions_for_topic(topic) or set()


async def _committed(bootstrap: str, group: str, tps: list[Any]) -> dict[Any, int | None]:
    """A group's committed offsets (OffsetFetch; the group is not joined)."""
    from aiokafka import AIOKafkaConsumer

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


async def consumer_groups(bootstrap: str) -> list[str]:
    """Consumer groups the broker knows, or, where it cannot list them, the groups
    that have a dead-letter topic (every platform consumer group has one)."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        try:
            listed = [g[0] for g in await admin.list_consumer_groups()]
        except Exception:
            listed = []
        names = await admin.list_topics()
    finally:
        await admin.close()
    from_dlq = [t.removeprefix(DLQ_PREFIX) for t in names if t.startswith(DLQ_PREFIX)]
    return sorted({g for g in [*listed, *from_dlq] if g and not g.startswith(REPLAY_PREFIX)})


async def consumer_lag(
    bootstrap: str, groups: list[str], topics_of: dict[str, list[str]]
) -> list[dict[str, Any]]:
    """Lag per (group, topic): end offset minus committed offset, summed over partitions.
    A partition the group never committed counts from the beginning of the log."""
    rows = []
    for group in groups:
        wanted = topics_of.get(group) or []
        if not wanted:
            continue
        end, begin = await _end_and_begin(bootstrap, wanted)
        committed = await _committed(bootstrap, group, list(end))
        per_topic: dict[str, int] = {}
        for tp, last in end.items():
            done = committed.get(tp)
            per_topic[tp.topic] = per_topic.get(tp.topic, 0) + max(
                0, last - (done if done is not None else begin.get(tp, 0))
            )
        rows += [{"group": group, "topic": t, "lag": lag} for t, lag in sorted(per_topic.items())]
    return rows


async def dlq_depth(bootstrap: str) -> list[dict[str, Any]]:
    """Per dead-letter topic: records kept, and records not replayed yet."""
    dlqs = [t for t in await topics(bootstrap) if t.startswith(DLQ_PREFIX)]
    rows = []
    for topic in dlqs:
        group = topic.removeprefix(DLQ_PREFIX)
        end, begin = await _end_and_begin(bootstrap, [topic])
        replayed = await _committed(bootstrap, REPLAY_PREFIX + group, list(end))
        total = sum(end[tp] - begin.get(tp, 0) for tp in end)
        pending = sum(end[tp] - max(begin.get(tp, 0), replayed.get(tp) or 0) for tp in end)
        rows.append({"group": group, "topic": topic, "records": total, "not_replayed": pending})
    return rows


async def dlq_list(bootstrap: str, group: str, limit: int = 1000) -> list[dict[str, Any]]:
    from qlp_kit import dlq

    return [
        {
            "offset": d.offset,
            "original_topic": d.original_topic,
            "event_type": d.event_type,
            "event_id": d.event_id,
            "reason": d.reason,
        }
        for d in await dlq.peek(bootstrap, group, max_items=limit)
    ]


async def dlq_replay(bootstrap: str, group: str, limit: int | None = None) -> dict[str, Any]:
    from qlp_kit import dlq

    return {"group": group, "replayed": await dlq.replay(bootstrap, group, limit=limit)}


#: Credentials are never exported, even hashed.
REDACTED = ("password_hash", "secret_hash", "token_hash", "private_key", "private_pem")


#: Collections whose ids are credential digests (a refresh token's hash is its id).
REDACTED_IDS = ("refresh_tokens",)


def _redact(doc: Any) -> Any:
    if isinstance(doc, dict):
        return {k: ("[redacted]" if k in REDACTED else _redact(v)) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_redact(v) for v in doc]
    return doc


async def tenant_export(mongodb_url: str, org_id: str, databases: list[str]) -> dict[str, Any]:
    """Every document of one organisation in the given databases, as extended JSON.

    Documents carry the tenant as ``org_id``; identity's users (records of their own)
    are found through the organisation's memberships. Credential hashes are redacted.
    """
    from bson import json_util
    from pymongo import AsyncMongoClient

    client: Any = AsyncMongoClient(mongodb_url, serverSelectionTimeoutMS=5000)
    out: dict[str, Any] = {}
    try:
        for name in databases:
            db = client[name]
            found: dict[str, list[Any]] = {}
            collections = sorted(await db.list_collection_names())
            for coll in collections:
                docs = [d async for d in db[coll].find({"org_id": org_id})]
                if docs:
                    found[coll] = docs
            members = sorted({m.get("user_id") for m in found.get("memberships", [])} - {None})
            if members and "users" in collections:
                known = {d["_id"] for d in found.get("users", [])}
                extra = [d async for d in db["users"].find({"_id": {"$in": members}})]
                found.setdefault("users", []).extend(d for d in extra if d["_id"] not in known)
            for coll in REDACTED_IDS:
                for doc in found.get(coll, []):
                    doc["_id"] = "[redacted]"
            if found:
                out[name] = _redact(json.loads(json_util.dumps(found)))
    finally:
        await client.close()
    return out


def _main() -> None:
    """``python -c <this source> <function> <json kwargs>`` inside a pod: the broker and
    database come from the pod's environment."""
    name, kwargs = sys.argv[1], json.loads(sys.argv[2])
    env = {"bootstrap": "KAFKA_BOOTSTRAP_SERVERS", "mongodb_url": "MONGODB_URL"}
    func = globals()[name]
    for arg, var in env.items():
        if arg in func.__code__.co_varnames[: func.__code__.co_argcount] and arg not in kwargs:
            kwargs[arg] = os.environ[var]
    result = asyncio.run(func(**kwargs))
    sys.stdout.write("\n" + "QLPCTL-RESULT " + json.dumps(result) + "\n")


if __name__ == "__main__":
    _main()
