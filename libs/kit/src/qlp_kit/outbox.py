"""Transactional outbox on single-document atomicity.

A state change and the events it causes are one write: the events are staged inside
the changed document under ``_outbox.<event id>`` together with ``_outbox_pending``
and an incremented ``_outbox_seq``. The relay finds pending documents, publishes
their events in order, then clears exactly the events it published, guarded by the
sequence it read, so events staged meanwhile are kept. A crash before the publish
leaves the events pending (published later); a crash after the publish but before the
clear publishes them again with the same ``ce_id``, which idempotent consumers
ignore. Nothing is lost and nothing is invented.

(Entries are a map, not an array: the embedded database stores sub-documents pushed
onto arrays as strings; ``$set``/``$unset`` of dotted paths behave everywhere.)
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from google.protobuf.message import Message
from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from qlp_contracts import topics as topic_registry
from qlp_kit import faults
from qlp_kit.events import build_headers
from qlp_kit.metrics import EVENTS_PUBLISHED, OUTBOX_PENDING
from qlp_kit.mongo import CROSS_TENANT
from qlp_kit.producer import Producer, Record

log = structlog.get_logger("qlp.outbox")

OUTBOX = "_outbox"
PENDING = "_outbox_pending"
SEQ = "_outbox_seq"

_order = itertools.count()
RELAY_COMMENT = f"{CROSS_TENANT}: outbox relay"
# nx-27017 silently skips an update with 127 or more field operations; stay well below.
MAX_FIELDS_PER_UPDATE = 100


class TooManyEvents(ValueError):
    """One write can carry at most ``MAX_FIELDS_PER_UPDATE`` fields with its events."""


@dataclass(frozen=True)
class Staged:
    """One event ready to be stored in a document's outbox."""

    event_id: str
    entry: dict[str, Any]


def stage(
    message: Message,
    *,
    org_id: str,
    key: str,
    source: str,
    topic: str | None = None,
    time_: datetime | None = None,
    event_id: str | None = None,
) -> Staged:
    headers = build_headers(
        message, org_id=org_id, source=source, subject=key, event_id=event_id, time=time_
    )
    resolved = topic or topic_registry.topic_for_event(message).name
    entry = {
        "topic": resolved,
        "key": key,
        "data": base64.b64encode(message.SerializeToString(deterministic=True)).decode(),
        "headers": headers,
        "order": time.time_ns() + next(_order) % 1000,
    }
    return Staged(headers["ce_id"], entry)


def outbox_update(events: Sequence[Staged], update: dict[str, Any] | None = None) -> dict[str, Any]:
    """Merge staged events into a MongoDB update document (one atomic write)."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in (update or {}).items()}
    if not events:
        return out
    sets = out.setdefault("$set", {})
    for ev in events:
        sets[f"{OUTBOX}.{ev.event_id}"] = ev.entry
    sets[PENDING] = 1
    out.setdefault("$inc", {})[SEQ] = 1
    fields = sum(len(v) for v in out.values() if isinstance(v, dict))
    if fields > MAX_FIELDS_PER_UPDATE:
        raise TooManyEvents(f"{fields} fields in one update; split the change")
    return out


def with_outbox(doc: dict[str, Any], events: Sequence[Staged]) -> dict[str, Any]:
    """A new document that carries its first events (for inserts)."""
    new = dict(doc)
    new[OUTBOX] = {ev.event_id: ev.entry for ev in events}
    new[PENDING] = 1 if events else 0
    new[SEQ] = 1 if events else 0
    return new


def strip_outbox(doc: dict[str, Any]) -> dict[str, Any]:
    """The document without outbox bookkeeping (for API responses)."""
    return {k: v for k, v in doc.items() if k not in (OUTBOX, PENDING, SEQ)}


class OutboxRelay:
    """Publishes pending events of the given collections, in order per document."""

    def __init__(
        self,
        db: AsyncDatabase[dict[str, Any]],
        collections: Sequence[str],
        producer: Producer,
        *,
        service: str = "service",
        batch_size: int = 500,
        poll_interval_s: float = 0.05,
    ) -> None:
        self.db = db
        self.collections = list(collections)
        self.producer = producer
        self.service = service
        self.batch_size = batch_size
        self.poll_interval_s = poll_interval_s
        self._stopping = asyncio.Event()
        self.published = 0

    async def ensure_indexes(self) -> None:
        for name in self.collections:
            await self.db[name].create_index([(PENDING, 1)])

    async def drain_once(self) -> int:
        """Publish one batch per collection; returns how many events went out."""
        total = 0
        for name in self.collections:
            coll = self.db[name]
            docs = [
                d
                async for d in coll.find(
                    {PENDING: 1}, {OUTBOX: 1, SEQ: 1}, comment=RELAY_COMMENT
                ).limit(self.batch_size)
            ]
            if not docs:
                continue
            records: list[Record] = []
            by_seq: dict[int, list[Any]] = {}
            fallback: list[UpdateOne] = []
            for doc in docs:
                entries = sorted((doc.get(OUTBOX) or {}).items(), key=lambda kv: kv[1]["order"])
                for _, e in entries:
                    records.append(
                        Record(e["topic"], e["key"], base64.b64decode(e["data"]), e["headers"])
                    )
                seq = int(doc.get(SEQ, 0))
                by_seq.setdefault(seq, []).append(doc["_id"])
                # Used only if a writer staged more events after this read. Chunked:
                # the embedded database ignores updates with many field operations.
                keys = [f"{OUTBOX}.{eid}" for eid, _ in entries]
                for i in range(0, len(keys), MAX_FIELDS_PER_UPDATE):
                    fallback.append(
                        UpdateOne(
                            {"_id": doc["_id"], SEQ: {"$ne": seq}},
                            {"$unset": dict.fromkeys(keys[i : i + MAX_FIELDS_PER_UPDATE], "")},
                        )
                    )
            faults.hit("relay.before_publish")
            await self.producer.send_many(records)
            faults.hit("relay.after_publish")
            # Clear what was read: documents whose sequence is unchanged hold exactly
            # the published events, so their whole outbox empties in one update per
            # sequence value; the rest lose only the published entries.
            cleared = 0
            for seq, ids in by_seq.items():
                res = await coll.update_many(
                    {"_id": {"$in": ids}, SEQ: seq},
                    {"$set": {OUTBOX: {}, PENDING: 0}},
                    comment=RELAY_COMMENT,
                )
                cleared += res.matched_count
            if cleared < len(docs) and fallback:
                await coll.bulk_write(fallback, ordered=False, comment=RELAY_COMMENT)
            for r in records:
                EVENTS_PUBLISHED.labels(self.service, r.topic).inc()
            OUTBOX_PENDING.labels(self.service).observe(len(records))
            total += len(records)
        self.published += total
        return total

    async def run(self) -> None:
        backoff = self.poll_interval_s
        while not self._stopping.is_set():
            try:
                n = await self.drain_once()
                backoff = self.poll_interval_s
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # broker or database unavailable: retry later
                log.warning("outbox relay batch failed; will retry", error=str(exc))
                n = 0
                backoff = min(backoff * 2 if backoff else 0.1, 5.0)
            if n < self.batch_size:
                try:
                    await asyncio.wait_for(self._stopping.wait(), timeout=backoff)
                except TimeoutError:
                    pass

    def stop(self) -> None:
        self._stopping.set()
