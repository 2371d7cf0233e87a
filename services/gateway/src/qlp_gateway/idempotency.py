"""Idempotency-Key rules. Pure; the records live in MongoDB (see repository.py).

- The key is scoped by the caller's org: ``<org_id>:<key>``.
- The request's fingerprint is SHA-256 over method, path, query and body; the same key
  with another fingerprint is refused (422).
- The first request claims the key with an atomic insert of a ``pending`` record; a
  second one while it is pending is refused (409), unless the claim is older than the
  lock time (its gateway died), in which case it may be taken over.
- A finished record is replayed: same status, headers and body, plus
  ``Idempotent-Replayed: true``. 5xx answers and upstream failures release the key
  so the client can retry.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

HEADER = "idempotency-key"
REPLAYED_HEADER = "Idempotent-Replayed"
_VALID_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")

#: Response headers kept with a stored answer (others are per-response).
STORED_HEADERS = frozenset({"content-type", "location", "etag", "content-language"})


def valid_key(key: str) -> bool:
    return bool(_VALID_KEY.match(key))


def record_id(org_id: str, key: str) -> str:
    return f"{org_id}:{key}"


def fingerprint(method: str, path: str, query: str, body: bytes) -> str:
    h = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), query.encode()):
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    h.update(body)
    return h.hexdigest()


Outcome = Literal["replay", "mismatch", "in_flight", "take_over"]


@dataclass(frozen=True)
class Existing:
    fingerprint: str
    state: str  # "pending" | "done"
    claimed_at: datetime


def decide(existing: Existing, fp: str, now: datetime, lock_s: float) -> Outcome:
    """What to do with a request whose key was claimed before."""
    if existing.fingerprint != fp:
        return "mismatch"
    if existing.state == "done":
        return "replay"
    if now - existing.claimed_at > timedelta(seconds=lock_s):
        return "take_over"
    return "in_flight"


def storable(status: int) -> bool:
    """Answers that are final for the request (5xx may succeed when retried)."""
    return status < 500


def stored_headers(headers: list[tuple[str, str]]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers if k.lower() in STORED_HEADERS}


def existing_from_doc(doc: dict[str, Any]) -> Existing:
    return Existing(
        fingerprint=str(doc.get("fingerprint", "")),
        state=str(doc.get("state", "pending")),
        claimed_at=doc["claimed_at"],
    )
