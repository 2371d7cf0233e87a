"""Idempotency-Key rules. Pure; the records live in MongoDB (see repository.py).

A request with a key runs at most once, for the principal that sent it:

- The key is scoped by the caller (org and subject): another user or API key of the
  same org never sees the first one's stored answer (it may hold a fresh API key
  secret), and its own request with the same key runs on its own.
- The request's fingerprint is SHA-256 over method, path, query and body; the same key
  with another fingerprint is refused (422).
- A record moves ``claimed`` → ``sent`` → ``done`` (answer stored) or ``unknown``:

  ``claimed``  the key is held, nothing was sent yet. A claim older than the lock time
               belongs to a gateway that died before sending: it may be taken over.
  ``sent``     the request may have reached the service. It is never sent again:
               a retry gets 409 until the answer is stored, also after the lock time
               (its gateway may have died, or storing the answer failed).
  ``unknown``  the request may have executed but its answer was lost (timeout, the
               service's answer broke off): 409 for the record's lifetime.
  ``done``     the answer is replayed: same status, headers and body, plus
               ``Idempotent-Replayed: true``; an answer too large to store leaves a
               ``done`` record without a body, and a retry gets 409 naming its status.

- The key is released (the record deleted) only when the request certainly did not
  execute: it never left the gateway (connect error), or the service answered that
  nothing executed (``x-qlp-not-executed``: validation failed before the endpoint
  ran), or it answered 401/403/429 (refusals before anything runs).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from qlp_kit.problems import NOT_EXECUTED_HEADER

HEADER = "idempotency-key"
REPLAYED_HEADER = "Idempotent-Replayed"
_VALID_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")

#: Response headers kept with a stored answer (others are per-response).
STORED_HEADERS = frozenset({"content-type", "location", "etag", "content-language"})

#: Answers a service gives before anything executes: never stored, the key is released.
NOT_EXECUTED_STATUSES = frozenset({401, 403, 429})

CLAIMED = "claimed"
SENT = "sent"
UNKNOWN = "unknown"
DONE = "done"


def valid_key(key: str) -> bool:
    return bool(_VALID_KEY.match(key))


def _digest(*parts: str) -> str:
    h = hashlib.sha256()
    for part in parts:
        b = part.encode()
        h.update(len(b).to_bytes(8, "big"))
        h.update(b)
    return h.hexdigest()


def record_id(org_id: str, subject: str, key: str) -> str:
    """The record of ``key`` for one principal (org and subject), unambiguous whatever
    characters the parts hold."""
    return f"{org_id}:{_digest(org_id, subject, key)}"


def fingerprint(method: str, path: str, query: str, body: bytes) -> str:
    h = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), query.encode()):
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    h.update(body)
    return h.hexdigest()


Outcome = Literal["replay", "mismatch", "in_flight", "take_over", "unknown", "not_stored"]


@dataclass(frozen=True)
class Existing:
    fingerprint: str
    state: str  # claimed | sent | unknown | done
    since: datetime  # when it was claimed, or sent
    token: str = ""
    has_body: bool = True
    status: int | None = None


def decide(existing: Existing, fp: str, now: datetime, lock_s: float) -> Outcome:
    """What to do with a request whose key was claimed before."""
    if existing.fingerprint != fp:
        return "mismatch"
    if existing.state == DONE:
        return "replay" if existing.has_body else "not_stored"
    if existing.state == CLAIMED:
        if now - existing.since > timedelta(seconds=lock_s):
            return "take_over"
        return "in_flight"
    if existing.state == SENT and now - existing.since <= timedelta(seconds=lock_s):
        return "in_flight"
    return "unknown"  # sent long ago (its gateway died or storing failed), or lost


def not_executed(status: int, headers: list[tuple[str, str]]) -> bool:
    """The service's answer says the request did not execute (the key is released)."""
    if status in NOT_EXECUTED_STATUSES:
        return True
    return any(k.lower() == NOT_EXECUTED_HEADER and v.strip() == "1" for k, v in headers)


def stored_headers(headers: list[tuple[str, str]]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers if k.lower() in STORED_HEADERS}


def epoch_ms(value: datetime) -> int:
    """Times of records are epoch milliseconds: the embedded database keeps a datetime
    given to ``$set`` as a string."""
    return int(value.timestamp() * 1000)


def from_epoch_ms(value: Any) -> datetime:
    return datetime.fromtimestamp(int(value) / 1000, UTC)


def existing_from_doc(doc: dict[str, Any]) -> Existing:
    status = doc.get("status")
    return Existing(
        fingerprint=str(doc.get("fingerprint", "")),
        state=str(doc.get("state", SENT)),
        since=from_epoch_ms(doc.get("sent_ms") or doc.get("claimed_ms") or 0),
        token=str(doc.get("token", "")),
        has_body="body" in doc,
        status=int(status) if status is not None else None,
    )
