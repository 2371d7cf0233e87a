"""Event consumers: decode, retries with backoff, per-group dead-letter topic, and
helpers for idempotent effects.

A failure is either the infrastructure's or the message's own (see
:mod:`qlp_kit.transient`). An infrastructure failure (database or broker unreachable,
a timeout, no primary) is retried with capped exponential backoff for as long as it
lasts and never dead-letters the event: a one-second database blip must not turn an
event into a no-op. A failure of the message itself is retried a bounded number of
times and then goes to ``qlp.dlq.<group>``; :class:`PermanentError` goes there at once.

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
from qlp_kit.aio import wait_event
from qlp_kit.events import EnvelopeError, Event, decode_record
from qlp_kit.metrics import CONSUMER_TRANSIENT_RETRIES, EVENTS_CONSUMED, EVENTS_DEAD_LETTERED
from qlp_kit.producer import Producer, Record
from qlp_kit.tracing import extract_context, tracer
from qlp_kit.transient import TransientError, is_transient

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


__all__ = [
    "ConsumerRunner",
    "ConsumerSpec",
    "Inbox",
    "PermanentError",
    "RetryPolicy",
    "TransientError",
    "is_transient",
    "register_consumer",
]


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
    """``max_attempts`` bounds the attempts for failures of the message itself;
    infrastructure failures are retried without limit, backing off up to
    ``transient_max_s``."""

    max_attempts: int = 5
    initial_s: float = 0.05
    max_s: float = 2.0
    transient_max_s: float = 10.0

    @staticmethod
    def _backoff(initial: float, cap: float, attempt: int) -> float:
        base: float = min(cap, initial * (2 ** min(max(attempt - 1, 0), 30)))
        return base * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not crypto

    def delay(self, attempt: int) -> float:
        return self._backoff(self.initial_s, self.max_s, attempt)

    def transient_delay(self, attempt: int) -> float:
        return self._backoff(self.initial_s, max(self.max_s, self.transient_max_s), attempt)


@dataclass
class ConsumerRunner:
    """Handles batches for one spec; separate from FastStream for unit testing."""

    spec: ConsumerSpec
    producer: Producer
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    service: str = "service"
    _stopping: asyncio.Event = field(default_factory=asyncio.Event, init=False, repr=False)

    stopping_probe: Callable[[], bool] | None = field(default=None, repr=False)

    def stop(self) -> None:
        """The process is stopping: an infrastructure failure from now on ends the
        batch with that error (the batch is NACKed and rewound, never committed)
        instead of waiting for the infrastructure to come back. ``register_consumer``
        also ties this to its subscriber stopping."""
        self._stopping.set()

    def _should_stop(self) -> bool:
        return self._stopping.is_set() or bool(self.stopping_probe and self.stopping_probe())

    async def _wait_transient(self, exc: Exception, attempt: int, event_id: str) -> None:
        """Back off after an infrastructure failure; re-raise it when stopping."""
        CONSUMER_TRANSIENT_RETRIES.labels(self.service, self.spec.group).inc()
        log.warning(
            "infrastructure failure; retrying until it recovers",
            group=self.spec.group,
            event_id=event_id,
            attempt=attempt,
            error=f"{type(exc).__name__}: {exc}",
        )
        deadline = asyncio.get_running_loop().time() + self.retry.transient_delay(attempt)
        while not self._should_stop():
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return
            # in slices, so a stopping subscriber is noticed within 0.2 s
            await wait_event(self._stopping, min(left, 0.2))
        raise exc

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
            transient = 0
            while True:
                try:
                    await self.spec.batch_handler([ev for _, ev in events])
                except PermanentError as exc:
                    log.warning(
                        "batch failed; handling one by one", group=self.spec.group, error=str(exc)
                    )
                    break
                except Exception as exc:
                    if is_transient(exc):
                        transient += 1
                        await self._wait_transient(exc, transient, events[0][1].id)
                        continue
                    log.warning(
                        "batch failed; handling one by one", group=self.spec.group, error=str(exc)
                    )
                    break
                EVENTS_CONSUMED.labels(self.service, self.spec.group, "ok").inc(len(events))
                faults.hit("consumer.after_effect", self.spec.group)
                return
        for rec, ev in events:
            await self._handle_one(rec, ev)
        faults.hit("consumer.after_effect", self.spec.group)

    async def _handle_one(self, rec: ConsumerRecord[bytes, bytes], ev: Event) -> None:
        attempts = self.spec.max_attempts or self.retry.max_attempts
        last = ""
        failures = transient = 0
        while failures < attempts:
            token = otel_context.attach(extract_context(ev.headers))
            error: Exception | None = None
            try:
                with tracer().start_as_current_span(f"consume {ev.type}"):
                    await self.spec.handler(ev)
                EVENTS_CONSUMED.labels(self.service, self.spec.group, "ok").inc()
                return
            except PermanentError as exc:
                failures += 1
                last = f"permanent: {exc}"
                break
            except Exception as exc:
                error = exc
            finally:
                otel_context.detach(token)
            assert error is not None
            if is_transient(error):
                transient += 1
                await self._wait_transient(error, transient, ev.id)
                continue
            failures += 1
            last = f"{type(error).__name__}: {error}"
            log.warning(
                "handler failed",
                group=self.spec.group,
                event_id=ev.id,
                attempt=failures,
                error=last,
            )
            if failures < attempts:
                await asyncio.sleep(self.retry.delay(failures))
        await self._dead_letter(rec, last, failures)

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
    subscriber = broker.subscriber(
        *spec.topics,
        group_id=spec.group,
        batch=True,
        max_records=max_records,
        batch_timeout_ms=50,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title=spec.group,
        description=spec.description or f"consumer group {spec.group}",
    )
    subscriber(_on_batch)
    # FastStream clears ``running`` first when it stops a subscriber, then waits up to
    # its graceful timeout for the handler: a handler waiting out an outage gives up
    # at once and the batch is NACKed (rewound, not committed).
    runner.stopping_probe = lambda: not getattr(subscriber, "running", True)


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
