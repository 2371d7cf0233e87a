"""The console's one collection: sign-in sessions (the API tokens kept server-side,
keyed by the digest of the cookie's random id). Every MongoDB call is here."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from qlp_kit.mongo import IndexSpec

SESSIONS = "sessions"

INDEXES = [
    IndexSpec(SESSIONS, [("expires_at", 1)], expire_after_seconds=0),
    IndexSpec(SESSIONS, [("user_id", 1)]),
]


def _now() -> datetime:
    return datetime.now(UTC)


class SessionRepository:
    def __init__(self, db: Any) -> None:
        self.coll = db[SESSIONS]

    async def create(self, key: str, doc: dict[str, Any], idle_s: int, max_age_s: int) -> None:
        now = _now()
        await self.coll.insert_one(
            {
                "_id": key,
                **doc,
                "created_at": now,
                "last_seen": now,
                "hard_expiry": now + timedelta(seconds=max_age_s),
                "expires_at": now + timedelta(seconds=idle_s),
            }
        )

    async def get(self, key: str) -> dict[str, Any] | None:
        doc: dict[str, Any] | None = await self.coll.find_one({"_id": key})
        if doc is None:
            return None
        now = _now()
        for field in ("expires_at", "hard_expiry"):
            at = doc.get(field)
            if isinstance(at, datetime):
                if at.tzinfo is None:
                    at = at.replace(tzinfo=UTC)
                if at <= now:
                    await self.delete(key)
                    return None
        return doc

    async def touch(self, key: str, idle_s: int) -> None:
        now = _now()
        await self.coll.update_one(
            {"_id": key},
            {"$set": {"last_seen": now, "expires_at": now + timedelta(seconds=idle_s)}},
        )

    async def update_tokens(self, key: str, tokens: dict[str, Any]) -> None:
        await self.coll.update_one({"_id": key}, {"$set": tokens})

    async def claim_refresh(self, key: str, refresh_token: str, hold_s: float) -> bool:
        """Whether this caller may spend the session's refresh token now: one claim at a
        time across replicas (single-document conditional update), for ``hold_s``."""
        now = time.time()
        got = await self.coll.find_one_and_update(
            {
                "_id": key,
                "refresh_token": refresh_token,
                "$or": [
                    {"refreshing_until": {"$exists": False}},
                    {"refreshing_until": {"$lt": now}},
                ],
            },
            {"$set": {"refreshing_until": now + hold_s}},
        )
        return got is not None

    async def delete(self, key: str) -> bool:
        res = await self.coll.delete_one({"_id": key})
        return bool(res.deleted_count)
