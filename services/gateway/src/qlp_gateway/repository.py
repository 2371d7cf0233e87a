"""Every MongoDB call of the gateway. It owns caches only:

- ``plans``: the plan of each org, as billing's events last said (``_id`` = org id);
- ``idempotency``: Idempotency-Key records, removed by a TTL index after 24 h.

Both are keyed by org id in ``_id`` (the tenant is part of every key).
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

from pymongo.errors import DuplicateKeyError

from qlp_gateway.idempotency import Existing, existing_from_doc
from qlp_kit.mongo import IndexSpec, as_utc, utcnow

PLANS = "plans"
IDEMPOTENCY = "idempotency"


def indexes(idempotency_ttl_s: int = 24 * 3600) -> list[IndexSpec]:
    return [
        IndexSpec(IDEMPOTENCY, [("created_at", 1)], expire_after_seconds=idempotency_ttl_s),
    ]


class PlanRepository:
    def __init__(self, db: Any) -> None:
        self.coll = db[PLANS]

    async def get(self, org_id: str) -> str | None:
        doc = await self.coll.find_one({"_id": org_id}, {"plan_id": 1})
        return str(doc["plan_id"]) if doc and doc.get("plan_id") else None

    async def apply(self, org_id: str, plan_id: str, at: datetime, event_id: str) -> bool:
        """Record the plan unless a newer event already set one. True if applied."""
        try:
            res = await self.coll.update_one(
                {"_id": org_id, "at": {"$lte": at}},
                {"$set": {"plan_id": plan_id, "at": at, "event_id": event_id}},
                upsert=True,
            )
        except DuplicateKeyError:
            return False  # a newer event is recorded: this one is stale
        return bool(res.matched_count or res.upserted_id is not None)


class IdempotencyRepository:
    def __init__(self, db: Any) -> None:
        self.coll = db[IDEMPOTENCY]

    async def claim(self, rid: str, org_id: str, key: str, fp: str) -> Existing | None:
        """Claim the key atomically. None when claimed; else the record that holds it."""
        now = utcnow()
        try:
            await self.coll.insert_one(
                {
                    "_id": rid,
                    "org_id": org_id,
                    "key": key,
                    "fingerprint": fp,
                    "state": "pending",
                    "claimed_at": now,
                    "created_at": now,
                }
            )
            return None
        except DuplicateKeyError:
            doc = await self.coll.find_one({"_id": rid})
        if doc is None:  # expired between the insert and the read: try once more
            return await self.claim(rid, org_id, key, fp)
        doc["claimed_at"] = as_utc(doc["claimed_at"])
        return existing_from_doc(doc)

    async def take_over(self, rid: str, claimed_at: datetime) -> bool:
        """Take over an abandoned pending claim (guarded: only one taker wins)."""
        res = await self.coll.update_one(
            {"_id": rid, "state": "pending", "claimed_at": claimed_at},
            {"$set": {"claimed_at": utcnow()}},
        )
        return bool(res.modified_count)

    async def complete(self, rid: str, status: int, headers: dict[str, str], body: bytes) -> None:
        await self.coll.update_one(
            {"_id": rid},
            {
                "$set": {
                    "state": "done",
                    "status": status,
                    "headers": json.dumps(headers),
                    "body": base64.b64encode(body).decode(),
                    "completed_at": utcnow(),
                }
            },
        )

    async def release(self, rid: str) -> None:
        await self.coll.delete_one({"_id": rid, "state": "pending"})

    async def stored(self, rid: str) -> tuple[int, dict[str, str], bytes] | None:
        doc = await self.coll.find_one({"_id": rid, "state": "done"})
        if doc is None:
            return None
        headers: dict[str, str] = json.loads(doc.get("headers") or "{}")
        return int(doc["status"]), headers, base64.b64decode(doc.get("body") or "")
