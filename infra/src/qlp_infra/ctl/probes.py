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


async def topics(bootstrap: str) -> list[str]:
    from qlp_kit import broker_stats

    return await broker_stats.topics(bootstrap)


async def consumer_groups(bootstrap: str) -> list[str]:
    """Consumer groups the broker knows, or, where it cannot list them, the groups
    that have a dead-letter topic (every platform consumer group has one)."""
    from aiokafka.admin import AIOKafkaAdminClient

    from qlp_kit.broker_stats import DLQ_PREFIX, REPLAY_PREFIX

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
    from qlp_kit import broker_stats

    wanted = {g: topics_of[g] for g in groups if topics_of.get(g)}
    return await broker_stats.consumer_lag(bootstrap, wanted)


async def dlq_depth(bootstrap: str) -> list[dict[str, Any]]:
    """Per dead-letter topic: records kept, and records not replayed yet."""
    from qlp_kit import broker_stats

    return await broker_stats.dead_letters(bootstrap, await broker_stats.dlq_groups(bootstrap))


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
