"""Every MongoDB call of the gateway. It owns caches only:

- ``plans``: the plan of each org, as billing's events last said (``_id`` = org id);
- ``idempotency``: Idempotency-Key records, removed by a TTL index after 24 h.

Both are keyed by org id in ``_id`` (the tenant is part of every key; an idempotency
record's ``_id`` also carries the subject, see ``idempotency.record_id``).
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

from pymongo.errors import DuplicateKeyError

from qlp_gateway import idempotency as idem
from qlp_gateway.idempotency import Existing, epoch_ms, existing_from_doc
from qlp_kit.mongo import IndexSpec, utcnow

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
    """Idempotency records (see idempotency.py for the states). Every transition is
    one guarded single-document update: it applies only while the record is in the
    expected state and still held by the caller's claim ``token``."""

    def __init__(self, db: Any) -> None:
        self.coll = db[IDEMPOTENCY]

    async def claim(
        self, rid: str, org_id: str, subject: str, fp: str, token: str
    ) -> Existing | None:
        """Claim the key atomically. None when claimed; else the record that holds it."""
        for _ in range(3):
            now = utcnow()
            try:
                await self.coll.insert_one(
                    {
                        "_id": rid,
                        "org_id": org_id,
                        "subject": subject,
                        "fingerprint": fp,
                        "state": idem.CLAIMED,
                        "token": token,
                        "claimed_ms": epoch_ms(now),
                        "created_at": now,
                    }
                )
                return None
            except DuplicateKeyError:
                doc = await self.coll.find_one({"_id": rid})
            if doc is not None:  # else: expired between the insert and the read
                return existing_from_doc(doc)
        raise RuntimeError(f"idempotency record {rid} could not be claimed or read")

    async def legacy(self, org_id: str, key: str, fp: str) -> Existing | None:
        """A record of the former, org-scoped layout (``<org>:<key>``, kept up to 24 h
        after the upgrade) for this very request, or None. Its caller is not known, so
        it is never replayed; its request must not run again either."""
        doc = await self.coll.find_one({"_id": f"{org_id}:{key}", "fingerprint": fp})
        if doc is None or "subject" in doc:
            return None
        doc["claimed_ms"] = 0
        return existing_from_doc(doc)

    async def take_over(self, rid: str, old_token: str, token: str) -> bool:
        """Take over a claim whose gateway died before sending (only one taker wins)."""
        res = await self.coll.update_one(
            {"_id": rid, "state": idem.CLAIMED, "token": old_token},
            {"$set": {"token": token, "claimed_ms": epoch_ms(utcnow())}},
        )
        return bool(res.modified_count)

    async def mark_sent(self, rid: str, token: str) -> bool:
        """Before sending: from here on the request is never sent again. False when the
        claim was lost (taken over): then it must not be sent."""
        res = await self.coll.update_one(
            {"_id": rid, "state": idem.CLAIMED, "token": token},
            {"$set": {"state": idem.SENT, "sent_ms": epoch_ms(utcnow())}},
        )
        return bool(res.modified_count)

    async def complete(
        self, rid: str, token: str, status: int, headers: dict[str, str], body: bytes | None
    ) -> None:
        """Store the answer (``body`` None: too large to keep, only its status)."""
        fields: dict[str, Any] = {
            "state": idem.DONE,
            "status": status,
            "headers": json.dumps(headers),
            "completed_ms": epoch_ms(utcnow()),
        }
        if body is not None:
            fields["body"] = base64.b64encode(body).decode()
        await self.coll.update_one(
            {"_id": rid, "token": token, "state": {"$in": [idem.SENT, idem.UNKNOWN]}},
            {"$set": fields},
        )

    async def mark_unknown(self, rid: str, token: str, reason: str) -> None:
        """The request may have executed but its answer is lost."""
        await self.coll.update_one(
            {"_id": rid, "token": token, "state": idem.SENT},
            {"$set": {"state": idem.UNKNOWN, "reason": reason, "completed_ms": epoch_ms(utcnow())}},
        )

    async def release(self, rid: str, token: str) -> None:
        """Delete the record: the request certainly did not execute."""
        await self.coll.delete_one(
            {"_id": rid, "token": token, "state": {"$in": [idem.CLAIMED, idem.SENT]}}
        )

    async def stored(self, rid: str) -> tuple[int, dict[str, str], bytes] | None:
        doc = await self.coll.find_one({"_id": rid, "state": idem.DONE})
        if doc is None or "body" not in doc:
            return None
        headers: dict[str, str] = json.loads(doc.get("headers") or "{}")
        return int(doc["status"]), headers, base64.b64decode(doc.get("body") or "")
