"""Event consumers: decode, bounded retries with backoff, per-group dead-letter topic,
and helpers for idempotent effects.

Consumers run on FastStream's ``KafkaBroker`` as batch subscribers with offsets
committed only after the whole batch was handled (``NACK_ON_ERROR``: an infrastructure
failure rewinds and the batch is delivered again). Delivery is at-least-once; each
effect records the event id with the effect itself (see :class:`Inbox`), so a
redelivered event changes nothing.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiokafka import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from opentelemetry import context as otel_context
from pymongo import InsertOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, DuplicateKeyError

from qlp_contracts.topics import dlq_topic
from qlp_kit import faults
from qlp_kit.events import EnvelopeError, Event, decode_record
from qlp_kit.metrics import EVENTS_CONSUMED, EVENTS_DEAD_LETTERED
from qlp_kit.producer import Producer, Record
from qlp_kit.tracing import extract_context, tracer

log = structlog.get_logger("qlp.consumer")

Handler = Callable[[Event], Awaitable[None]]
BatchHandler = Callable[[list[Event]], Awaitable[None]]

DLQ_REASON = "qlp_dlq_reason"
DLQ_TOPIC = "qlp_dlq_original_topic"
DLQ_PARTITION = "qlp_dlq_original_partition"
DLQ_OFFSET = "qlp_dlq_original_offset"
DLQ_ATTEMPTS = "qlp_dlq_attempts"
DLQ_GROUP = "qlp_dlq_group"
DLQ_HEADERS = (DLQ_REASON, DLQ_TOPIC, DLQ_PARTITION, DLQ_OFFSET, DLQ_ATTEMPTS, DLQ_GROUP)


class PermanentError(Exception):
    """Raised by a handler for an event that can never succeed: straight to the DLQ."""


@dataclass
class ConsumerSpec:
    """One consumer group: what it reads and what it does with each event.

    ``handler`` processes one event; the optional ``batch_handler`` processes a whole
    poll at once for throughput, and the runner falls back to ``handler`` one by one
    (with retries) when the batch fails, so a poison event is isolated.
    """

    group: str
    topics: Sequence[str]
    handler: Handler
    batch_handler: BatchHandler | None = None
    event_types: Sequence[str] = ()  # empty: all; otherwise others are skipped
    description: str = ""
    max_attempts: int | None = None


@dataclass
class RetryPolicy:
    max_attempts: int = 5
    initial_s: float = 0.05
    max_s: float = 2.0

    def delay(self, attempt: int) -> float:
        base: float = min(self.max_s, self.initial_s * (2 ** (attempt - 1)))
        return base * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not crypto


@dataclass
class ConsumerRunner:
    """Handles batches for one spec; separate from FastStream for unit testing."""

    spec: ConsumerSpec
    producer: Producer
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    service: str = "service"

    def _wanted(self, ev: Event) -> bool:
        return not self.spec.event_types or ev.type in self.spec.event_types

    async def handle_records(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        events: list[tuple[ConsumerRecord[bytes, bytes], Event]] = []
        for rec in records:
            try:
                ev = decode_record(
                    rec.topic, rec.partition, rec.offset, rec.key, rec.value, rec.headers
                )
            except EnvelopeError as exc:
                await self._dead_letter(rec, f"envelope: {exc}", 0)
                continue
            if self._wanted(ev):
                events.append((rec, ev))
            else:
                EVENTS_CONSUMED.labels(self.service, self.spec.group, "skipped").inc()
        if not events:
            faults.hit("consumer.after_effect", self.spec.group)
            return
        if self.spec.batch_handler is not None:
            try:
                await self.spec.batch_handler([ev for _, ev in events])
                EVENTS_CONSUMED.labels(self.service, self.spec.group, "ok").inc(len(events))
                faults.hit("consumer.after_effect", self.spec.group)
                return
            except Exception as exc:
                log.warning(
                    "batch failed; handling one by one", group=self.spec.group, error=str(exc)
                )
        for rec, ev in events:
            await self._handle_one(rec, ev)
        faults.hit("consumer.after_effect", self.spec.group)

    async def _handle_one(self, rec: ConsumerRecord[bytes, bytes], ev: Event) -> None:
        attempts = self.spec.max_attempts or self.retry.max_attempts
        last = ""
        for attempt in range(1, attempts + 1):
            token = otel_context.attach(extract_context(ev.headers))
            try:
                with tracer().start_as_current_span(f"consume {ev.type}"):
                    await self.spec.handler(ev)
                EVENTS_CONSUMED.labels(self.service, self.spec.group, "ok").inc()
                return
            except PermanentError as exc:
                last = f"permanent: {exc}"
                break
            except Exception as exc:
                last = f"{type(exc).__name__}: {exc}"
                log.warning(
                    "handler failed",
                    group=self.spec.group,
                    event_id=ev.id,
                    attempt=attempt,
                    error=last,
                )
                if attempt < attempts:
                    await asyncio.sleep(self.retry.delay(attempt))
            finally:
                otel_context.detach(token)
        await self._dead_letter(rec, last, attempts)

    async def _dead_letter(
        self, rec: ConsumerRecord[bytes, bytes], reason: str, attempts: int
    ) -> None:
        headers = {k: v.decode("utf-8", "replace") for k, v in rec.headers if k not in DLQ_HEADERS}
        headers.update(
            {
                DLQ_REASON: reason[:500],
                DLQ_TOPIC: rec.topic,
                DLQ_PARTITION: str(rec.partition),
                DLQ_OFFSET: str(rec.offset),
                DLQ_ATTEMPTS: str(attempts),
                DLQ_GROUP: self.spec.group,
            }
        )
        key = (rec.key or b"").decode("utf-8", "replace")
        await self.producer.send(Record(dlq_topic(self.spec.group), key, rec.value or b"", headers))
        EVENTS_DEAD_LETTERED.labels(self.service, self.spec.group).inc()
        EVENTS_CONSUMED.labels(self.service, self.spec.group, "dead_lettered").inc()
        log.error(
            "event dead-lettered",
            group=self.spec.group,
            topic=rec.topic,
            offset=rec.offset,
            reason=reason,
        )


def register_consumer(
    broker: KafkaBroker, runner: ConsumerRunner, *, max_records: int = 500
) -> None:
    """Attach a runner to the broker as a batch subscriber with manual-after-success
    commits."""
    spec = runner.spec

    async def _on_batch(msg: KafkaMessage) -> None:
        raw = msg.raw_message
        records = raw if isinstance(raw, tuple) else (raw,)
        await runner.handle_records(records)

    _on_batch.__name__ = f"consume_{spec.group.replace('.', '_').replace('-', '_')}"
    broker.subscriber(
        *spec.topics,
        group_id=spec.group,
        batch=True,
        max_records=max_records,
        batch_timeout_ms=50,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title=spec.group,
        description=spec.description or f"consumer group {spec.group}",
    )(_on_batch)


class Inbox:
    """Idempotent effects: the event id is recorded in the same single-document write
    as the effect, under a unique key, so applying twice is applying once."""

    @staticmethod
    async def insert_once(coll: AsyncCollection[dict[str, Any]], doc: dict[str, Any]) -> bool:
        """Insert an effect document whose ``_id`` (or another unique key) derives from
        the event id. Returns False when it was applied before."""
        try:
            await coll.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    @staticmethod
    async def insert_many_once(
        coll: AsyncCollection[dict[str, Any]], docs: Sequence[dict[str, Any]]
    ) -> int:
        """Batch form of :meth:`insert_once`; duplicates are skipped. Returns how many
        were new."""
        if not docs:
            return 0
        try:
            res = await coll.bulk_write([InsertOne(d) for d in docs], ordered=False)
            return res.inserted_count
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != 11000 for e in errors):
                raise
            return int(exc.details.get("nInserted", len(docs) - len(errors)))

    @staticmethod
    async def apply_once(
        coll: AsyncCollection[dict[str, Any]],
        key: dict[str, Any],
        update: dict[str, Any],
        event_id: str,
        *,
        remember: int = 10_000,
    ) -> bool:
        """Apply ``update`` to the document at ``key`` (upserting it) unless it already
        recorded ``event_id`` in ``_applied``. Returns False for a repeat.

        ``key`` must address one document through a unique key (``_id``). The document
        keeps the last ``remember`` event ids: redeliveries come from uncommitted
        offsets, far fewer than that per document.
        """
        guarded = {**key, "_applied": {"$nin": [event_id]}}
        upd = {k: dict(v) for k, v in update.items()}
        upd.setdefault("$push", {})["_applied"] = {"$each": [event_id], "$slice": -remember}
        try:
            res = await coll.update_one(guarded, upd, upsert=True)
        except DuplicateKeyError:
            return False
        return res.modified_count > 0 or res.upserted_id is not None
