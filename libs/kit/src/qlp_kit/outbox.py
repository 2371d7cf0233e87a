"""Transactional outbox on single-document atomicity.

A state change and the events it causes are one write: the events are staged inside
the changed document under ``_outbox.<event id>`` together with ``_outbox_pending``,
an incremented ``_outbox_seq`` and the event ids appended to ``_outbox_order``. The
relay finds pending documents, publishes their events in order, then clears exactly
the events it published, guarded by the sequence it read, so events staged meanwhile
are kept. A crash before the publish leaves the events pending (published later); a
crash after the publish but before the clear publishes them again with the same
``ce_id``, which idempotent consumers ignore. Nothing is lost and nothing is invented.

Order within a document is the order in which the database applied the writes: each
write appends its event ids to ``_outbox_order`` (``$push``, atomic with the write),
so two processes with skewed clocks writing the same document keep their order.
Documents stored before that field existed are still read: their entries carry a
clock-based ``order`` and come first, sorted by it.

A document whose events the broker can never take (too large, an invalid topic name,
a corrupt entry) is marked stuck (``_outbox_pending: 2`` with ``_outbox_stuck``
saying why and when); it no longer holds up the collection, none of its later events
is published, and ``qlp_outbox_stuck_total`` / ``qlp_outbox_stuck_documents`` count it.
:func:`requeue_stuck` puts it back once the cause is fixed.

The relay polls quickly while there is work and backs off to ``idle_interval_s``
when there is none; an :class:`OutboxWakeup` listener on the process's MongoDB
client (:class:`qlp_kit.mongo.Mongo` registers one) wakes it as soon as this process
writes an outbox event. Events written by another process are found by the poll.

(Entries are a map, not an array: the embedded database stores sub-documents pushed
onto arrays as strings; ``$set``/``$unset`` of dotted paths behave everywhere.)
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from google.protobuf.message import Message
from pymongo import UpdateOne, monitoring
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from qlp_contracts import topics as topic_registry
from qlp_kit import faults
from qlp_kit.aio import wait_event
from qlp_kit.events import build_headers
from qlp_kit.metrics import (
    EVENTS_PUBLISHED,
    OUTBOX_OLDEST_AGE,
    OUTBOX_PENDING,
    OUTBOX_STUCK,
    OUTBOX_STUCK_DOCUMENTS,
)
from qlp_kit.mongo import CROSS_TENANT, utcnow
from qlp_kit.producer import Producer, Record
from qlp_kit.transient import is_transient

log = structlog.get_logger("qlp.outbox")

OUTBOX = "_outbox"
PENDING = "_outbox_pending"
SEQ = "_outbox_seq"
ORDER = "_outbox_order"
STUCK = "_outbox_stuck"
STAGED_MS = "staged_ms"
PENDING_STUCK = 2
BOOKKEEPING = (OUTBOX, PENDING, SEQ, ORDER, STUCK)

RELAY_COMMENT = f"{CROSS_TENANT}: outbox relay"
# nx-27017 silently skips an update with 127 or more field operations; stay well below.
MAX_FIELDS_PER_UPDATE = 100
# Kafka's rule for topic names; a record for any other name can never be published.
_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


class TooManyEvents(ValueError):
    """One write can carry at most ``MAX_FIELDS_PER_UPDATE`` fields with its events."""


class UnpublishableEvent(ValueError):
    """A staged entry no broker can take (corrupt, or an invalid topic name)."""

    def __init__(self, event_id: str, reason: str) -> None:
        super().__init__(reason)
        self.event_id = event_id


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
        # When it was staged (not the event's own time, which may be backdated): the
        # relay's backlog-age gauge reads it.
        STAGED_MS: int(time.time() * 1000),
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
    out.setdefault("$push", {})[ORDER] = {"$each": [ev.event_id for ev in events]}
    fields = sum(len(v) for v in out.values() if isinstance(v, dict))
    if fields > MAX_FIELDS_PER_UPDATE:
        raise TooManyEvents(f"{fields} fields in one update; split the change")
    return out


def with_outbox(doc: dict[str, Any], events: Sequence[Staged]) -> dict[str, Any]:
    """A new document that carries its first events (for inserts)."""
    new = dict(doc)
    new[OUTBOX] = {ev.event_id: ev.entry for ev in events}
    new[ORDER] = [ev.event_id for ev in events]
    new[PENDING] = 1 if events else 0
    new[SEQ] = 1 if events else 0
    return new


def strip_outbox(doc: dict[str, Any]) -> dict[str, Any]:
    """The document without outbox bookkeeping (for API responses)."""
    return {k: v for k, v in doc.items() if k not in BOOKKEEPING}


def ordered_entries(doc: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """A document's pending events in publishing order: the order their writes were
    applied (``_outbox_order``); entries stored before that field existed come first,
    by their old ``order``."""
    entries = doc.get(OUTBOX) or {}
    pos = {eid: i for i, eid in enumerate(doc.get(ORDER) or ()) if isinstance(eid, str)}

    def key(kv: tuple[str, Any]) -> tuple[int, float, str]:
        eid, entry = kv
        if eid in pos:
            return (1, float(pos[eid]), eid)
        old = entry.get("order", 0) if isinstance(entry, Mapping) else 0
        return (0, float(old) if isinstance(old, int | float) else 0.0, eid)

    return sorted(entries.items(), key=key)


def _oldest_age_s(docs: Sequence[Mapping[str, Any]]) -> float:
    """Seconds since the oldest of these documents' pending events was staged (0 when
    none, or when they were staged before entries carried the time)."""
    staged = [
        e[STAGED_MS]
        for d in docs
        for e in (d.get(OUTBOX) or {}).values()
        if isinstance(e, Mapping) and isinstance(e.get(STAGED_MS), int)
    ]
    return max(0.0, time.time() - min(staged) / 1000) if staged else 0.0


def _record(event_id: str, entry: Any) -> Record:
    """The broker record of one entry, or :class:`UnpublishableEvent`."""
    try:
        topic, key, headers = entry["topic"], entry["key"], entry["headers"]
        value = base64.b64decode(entry["data"], validate=True)
    except (KeyError, TypeError, binascii.Error, ValueError) as exc:
        raise UnpublishableEvent(event_id, f"corrupt outbox entry: {exc!r}") from exc
    if not isinstance(topic, str) or not _TOPIC_NAME.match(topic):
        raise UnpublishableEvent(event_id, f"invalid topic name {topic!r}")
    if not isinstance(headers, Mapping):
        raise UnpublishableEvent(event_id, "corrupt outbox entry: headers are not a map")
    return Record(topic, str(key), value, {str(k): str(v) for k, v in headers.items()})


async def requeue_stuck(
    db: AsyncDatabase[dict[str, Any]],
    collection: str,
    doc_id: Any = None,
    *,
    drop_events: Sequence[str] = (),
) -> int:
    """Put stuck documents back in the relay's scan (all of ``collection``, or the one
    ``doc_id``), optionally dropping the named events for good; returns how many.
    Events of a document that went out before its stuck one are published again
    (same ``ce_id``; consumers ignore the repeat)."""
    filter_: dict[str, Any] = {PENDING: PENDING_STUCK}
    if doc_id is not None:
        filter_["_id"] = doc_id
    update: dict[str, Any] = {"$set": {PENDING: 1}, "$unset": {STUCK: ""}}
    if drop_events:
        update["$unset"].update({f"{OUTBOX}.{eid}": "" for eid in drop_events})
        update["$pullAll"] = {ORDER: list(drop_events)}
    res = await db[collection].update_many(filter_, update, comment=RELAY_COMMENT)
    return res.modified_count


_WRITES = ("insert", "update", "findAndModify")


def _stages_events(update: Any) -> bool:
    """Whether an update (operators, replacement or pipeline) sets pending events."""
    if isinstance(update, Mapping):
        if update.get(PENDING) == 1:
            return True
        sets = update.get("$set")
        return isinstance(sets, Mapping) and sets.get(PENDING) == 1
    if isinstance(update, list | tuple):
        return any(_stages_events(stage_) for stage_ in update)
    return False


class OutboxWakeup(monitoring.CommandListener):
    """Sees this process's successful writes that stage outbox events and wakes the
    relays of that database and collection at once (thread-safely). Registered on the
    client by :class:`qlp_kit.mongo.Mongo`; the relay finds it among the client's
    listeners."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inflight: dict[tuple[Any, int], tuple[str, str]] = {}
        self._subs: dict[int, tuple[str, frozenset[str], asyncio.AbstractEventLoop, Any]] = {}
        self._next = 0
        self.wakeups = 0

    def subscribe(
        self, database: str, collections: Sequence[str], wake: Callable[[], None]
    ) -> Callable[[], None]:
        """Call ``wake`` in the running loop after each such write; returns the
        unsubscribe function."""
        loop = asyncio.get_running_loop()
        with self._lock:
            self._next += 1
            token = self._next
            self._subs[token] = (database, frozenset(collections), loop, wake)

        def unsubscribe() -> None:
            with self._lock:
                self._subs.pop(token, None)

        return unsubscribe

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        name = event.command_name
        if name not in _WRITES or not self._subs:
            return
        cmd = event.command
        if str(cmd.get("comment", "")).startswith(RELAY_COMMENT):
            return
        if name == "insert":
            docs = cmd.get("documents") or ()
            staged = any(isinstance(d, Mapping) and d.get(PENDING) == 1 for d in docs)
        elif name == "update":
            staged = any(_stages_events(u.get("u")) for u in cmd.get("updates") or ())
        else:
            staged = _stages_events(cmd.get("update"))
        if staged:
            with self._lock:
                self._inflight[(event.connection_id, event.request_id)] = (
                    event.database_name,
                    str(cmd.get(name)),
                )

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        if not self._inflight:
            return
        with self._lock:
            target = self._inflight.pop((event.connection_id, event.request_id), None)
            subs = list(self._subs.values()) if target else []
        for database, collections, loop, wake in subs:
            if target and database == target[0] and target[1] in collections:
                self.wakeups += 1
                try:
                    loop.call_soon_threadsafe(wake)
                except RuntimeError:  # that loop is closed
                    pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        if self._inflight:
            with self._lock:
                self._inflight.pop((event.connection_id, event.request_id), None)


def find_wakeup(db: AsyncDatabase[dict[str, Any]]) -> OutboxWakeup | None:
    """The :class:`OutboxWakeup` registered on ``db``'s client, if any."""
    try:
        listeners = db.client.options.event_listeners
    except AttributeError:
        return None
    return next((lst for lst in listeners if isinstance(lst, OutboxWakeup)), None)


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
        idle_interval_s: float = 1.0,
        stuck_recount_s: float = 60.0,
    ) -> None:
        self.db = db
        self.collections = list(collections)
        self.producer = producer
        self.service = service
        self.batch_size = batch_size
        self.poll_interval_s = poll_interval_s
        self.idle_interval_s = max(idle_interval_s, poll_interval_s)
        self.stuck_recount_s = stuck_recount_s
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self.published = 0
        self.stuck = 0

    async def ensure_indexes(self) -> None:
        for name in self.collections:
            await self.db[name].create_index([(PENDING, 1)])

    async def drain_once(self) -> int:
        """Publish one batch per collection; returns how many events went out."""
        total = 0
        for name in self.collections:
            total += await self._drain(name)
        self.published += total
        return total

    async def _drain(self, name: str) -> int:
        coll = self.db[name]
        docs = [
            d
            async for d in coll.find(
                {PENDING: 1}, {OUTBOX: 1, SEQ: 1, ORDER: 1}, comment=RELAY_COMMENT
            ).limit(self.batch_size)
        ]
        OUTBOX_OLDEST_AGE.labels(self.service, name).set(_oldest_age_s(docs))
        if not docs:
            return 0
        published: list[dict[str, Any]] | None = None
        records: list[Record] = []
        try:
            records = [_record(eid, e) for doc in docs for eid, e in ordered_entries(doc)]
            faults.hit("relay.before_publish")
            await self.producer.send_many(records)
            faults.hit("relay.after_publish")
            published = docs
        except UnpublishableEvent:
            pass
        except Exception as exc:
            if is_transient(exc):
                raise  # the broker is away: the whole batch is retried later
            log.warning(
                "outbox batch refused; publishing document by document",
                collection=name,
                error=f"{type(exc).__name__}: {exc}",
            )
        if published is None:
            published, records = await self._isolate(coll, name, docs)
        await self._clear(coll, published)
        for r in records:
            EVENTS_PUBLISHED.labels(self.service, r.topic).inc()
        OUTBOX_PENDING.labels(self.service).observe(len(records))
        return len(records)

    async def _isolate(
        self, coll: AsyncCollection[dict[str, Any]], name: str, docs: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[Record]]:
        """Publish document by document, each event acknowledged before the next, so a
        document that fails stops at its failing event; it is marked stuck unless the
        failure is transient (then everything published so far is cleared and the
        error ends the drain, to be retried)."""
        done: list[dict[str, Any]] = []
        sent: list[Record] = []
        for doc in docs:
            failed: tuple[str, str] | None = None
            for eid, entry in ordered_entries(doc):
                try:
                    rec = _record(eid, entry)
                except UnpublishableEvent as exc:
                    failed = (eid, str(exc))
                    break
                try:
                    await self.producer.send_many([rec])
                except Exception as exc:
                    if is_transient(exc):
                        await self._clear(coll, done)
                        raise
                    failed = (eid, f"{type(exc).__name__}: {exc}")
                    break
                sent.append(rec)
            if failed is None:
                done.append(doc)
            else:
                await self._mark_stuck(coll, name, doc, *failed)
        return done, sent

    async def _mark_stuck(
        self,
        coll: AsyncCollection[dict[str, Any]],
        name: str,
        doc: dict[str, Any],
        event_id: str,
        reason: str,
    ) -> None:
        res = await coll.update_one(
            {"_id": doc["_id"], PENDING: 1, SEQ: int(doc.get(SEQ, 0))},
            {
                "$set": {
                    PENDING: PENDING_STUCK,
                    STUCK: {"event_id": event_id, "error": reason[:1000], "at": utcnow()},
                }
            },
            comment=RELAY_COMMENT,
        )
        if not res.modified_count:
            return  # changed meanwhile: the next drain looks at it again
        self.stuck += 1
        OUTBOX_STUCK.labels(self.service, name).inc()
        log.error(
            "outbox document stuck: an event the broker cannot take; see qlp_kit.outbox"
            ".requeue_stuck",
            collection=name,
            doc_id=str(doc["_id"]),
            event_id=event_id,
            error=reason,
        )
        await self._count_stuck(name)

    async def _count_stuck(self, name: str) -> None:
        n = await self.db[name].count_documents({PENDING: PENDING_STUCK}, comment=RELAY_COMMENT)
        OUTBOX_STUCK_DOCUMENTS.labels(self.service, name).set(n)

    async def _clear(
        self, coll: AsyncCollection[dict[str, Any]], docs: list[dict[str, Any]]
    ) -> None:
        """Clear what was read and published: documents whose sequence is unchanged
        hold exactly the published events, so their whole outbox empties in one update
        per sequence value; the rest lose only the published entries."""
        if not docs:
            return
        by_seq: dict[int, list[Any]] = {}
        for doc in docs:
            by_seq.setdefault(int(doc.get(SEQ, 0)), []).append(doc["_id"])
        cleared = 0
        for seq, ids in by_seq.items():
            res = await coll.update_many(
                {"_id": {"$in": ids}, SEQ: seq},
                {"$set": {OUTBOX: {}, ORDER: [], PENDING: 0}},
                comment=RELAY_COMMENT,
            )
            cleared += res.matched_count
        if cleared == len(docs):
            return
        # A writer staged more events after this read. Chunked: the embedded database
        # ignores updates with many field operations. ($pullAll, not $pull: the
        # embedded database drops an $unset that comes with a $pull.)
        fallback: list[UpdateOne] = []
        chunk = MAX_FIELDS_PER_UPDATE - 1
        for doc in docs:
            seq = int(doc.get(SEQ, 0))
            eids = [eid for eid, _ in ordered_entries(doc)]
            for i in range(0, len(eids), chunk):
                part = eids[i : i + chunk]
                fallback.append(
                    UpdateOne(
                        {"_id": doc["_id"], SEQ: {"$ne": seq}},
                        {
                            "$unset": {f"{OUTBOX}.{eid}": "" for eid in part},
                            "$pullAll": {ORDER: part},
                        },
                    )
                )
        if fallback:
            await coll.bulk_write(fallback, ordered=False, comment=RELAY_COMMENT)

    def _on_write(self) -> None:
        self._wake.set()

    async def _pause(self, seconds: float, *, wakeable: bool) -> None:
        await wait_event(self._wake if wakeable else self._stopping, seconds)

    async def run(self) -> None:
        wakeup = find_wakeup(self.db)
        unsubscribe = (
            wakeup.subscribe(self.db.name, self.collections, self._on_write) if wakeup else None
        )
        interval = self.poll_interval_s
        error_backoff = self.poll_interval_s
        recounted = float("-inf")
        try:
            while not self._stopping.is_set():
                self._wake.clear()  # before the drain: a write during it wakes us again
                try:
                    if time.monotonic() - recounted >= self.stuck_recount_s:
                        recounted = time.monotonic()
                        for name in self.collections:
                            await self._count_stuck(name)
                    n = await self.drain_once()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # broker or database unavailable: retry later
                    log.warning("outbox relay batch failed; will retry", error=str(exc))
                    error_backoff = min(error_backoff * 2 if error_backoff else 0.1, 5.0)
                    await self._pause(error_backoff, wakeable=False)
                    continue
                error_backoff = self.poll_interval_s
                if n >= self.batch_size:
                    continue
                # Idle: back off; a local outbox write (or stop()) wakes us at once.
                interval = (
                    self.poll_interval_s
                    if n
                    else min(max(interval, 0.01) * 2, self.idle_interval_s)
                )
                await self._pause(interval, wakeable=True)
        finally:
            if unsubscribe:
                unsubscribe()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
