"""Retry, dead-letter and batch-fallback rules of the consumer runner.

Pure logic: the records are built in memory and the producer is a fake that only
collects what would be sent (the real broker path is in tests/delivery)."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiokafka import ConsumerRecord

from qlp.usage.v1 import events_pb2 as usage
from qlp_kit.consumer import (
    DLQ_ATTEMPTS,
    DLQ_REASON,
    DLQ_TOPIC,
    ConsumerRunner,
    ConsumerSpec,
    PermanentError,
    RetryPolicy,
)
from qlp_kit.events import Event, build_headers
from qlp_kit.producer import Record


@dataclass
class FakeProducer:
    sent: list[Record] = field(default_factory=list)

    async def send(self, record: Record) -> None:
        self.sent.append(record)

    async def send_many(self, records: list[Record]) -> None:
        self.sent.extend(records)


def _record(
    offset: int, *, quantity: int = 1, headers: dict[str, str] | None = None
) -> ConsumerRecord:  # type: ignore[type-arg]
    msg = usage.UsageRecorded(org_id="org_a", meter="m", quantity=quantity)
    h = (
        headers
        if headers is not None
        else build_headers(msg, org_id="org_a", source="t", subject="k")
    )
    value = msg.SerializeToString()
    return ConsumerRecord(
        "qlp.usage.v1",
        0,
        offset,
        0,
        0,
        b"k",
        value,
        None,
        len(b"k"),
        len(value),
        [(k, v.encode()) for k, v in h.items()],
    )


FAST = RetryPolicy(max_attempts=3, initial_s=0.0, max_s=0.0)


async def test_transient_failure_is_retried_then_succeeds() -> None:
    calls: list[int] = []

    async def handler(ev: Event) -> None:
        calls.append(ev.message.quantity)
        if len(calls) < 3:
            raise RuntimeError("database hiccup")

    prod = FakeProducer()
    runner = ConsumerRunner(ConsumerSpec("g", ["t"], handler), prod, FAST)  # type: ignore[arg-type]
    await runner.handle_records([_record(1)])
    assert calls == [1, 1, 1] and prod.sent == []


async def test_exhausted_retries_dead_letter_with_reason() -> None:
    async def handler(ev: Event) -> None:
        raise RuntimeError("always")

    prod = FakeProducer()
    runner = ConsumerRunner(ConsumerSpec("billing.usage", ["t"], handler), prod, FAST)  # type: ignore[arg-type]
    await runner.handle_records([_record(7)])
    (dl,) = prod.sent
    assert dl.topic == "qlp.dlq.billing.usage"
    assert dl.headers[DLQ_TOPIC] == "qlp.usage.v1" and dl.headers[DLQ_ATTEMPTS] == "3"
    assert (
        "always" in dl.headers[DLQ_REASON] and dl.headers["ce_type"] == "qlp.usage.v1.UsageRecorded"
    )


async def test_permanent_error_skips_retries() -> None:
    calls = 0

    async def handler(ev: Event) -> None:
        nonlocal calls
        calls += 1
        raise PermanentError("unknown plan")

    prod = FakeProducer()
    runner = ConsumerRunner(ConsumerSpec("g", ["t"], handler), prod, FAST)  # type: ignore[arg-type]
    await runner.handle_records([_record(1)])
    assert calls == 1 and len(prod.sent) == 1


async def test_undecodable_record_goes_straight_to_dlq() -> None:
    async def handler(ev: Event) -> None:
        raise AssertionError("must not be called")

    prod = FakeProducer()
    runner = ConsumerRunner(ConsumerSpec("g", ["t"], handler), prod, FAST)  # type: ignore[arg-type]
    await runner.handle_records([_record(1, headers={"ce_type": "x"})])
    assert len(prod.sent) == 1 and "envelope" in prod.sent[0].headers[DLQ_REASON]


async def test_failed_batch_falls_back_to_one_by_one_isolating_the_poison() -> None:
    applied: list[int] = []

    async def batch(events: list[Event]) -> None:
        if any(e.message.quantity == 13 for e in events):
            raise RuntimeError("poison in batch")
        applied.extend(e.message.quantity for e in events)

    async def one(ev: Event) -> None:
        if ev.message.quantity == 13:
            raise RuntimeError("poison")
        applied.append(ev.message.quantity)

    prod = FakeProducer()
    runner = ConsumerRunner(ConsumerSpec("g", ["t"], one, batch), prod, FAST)  # type: ignore[arg-type]
    await runner.handle_records([_record(i, quantity=q) for i, q in enumerate([1, 13, 2])])
    assert applied == [1, 2] and len(prod.sent) == 1


async def test_event_type_filter_skips_others() -> None:
    seen: list[str] = []

    async def handler(ev: Event) -> None:
        seen.append(ev.type)

    runner = ConsumerRunner(
        ConsumerSpec("g", ["t"], handler, event_types=["qlp.identity.v1.OrgCreated"]),
        FakeProducer(),  # type: ignore[arg-type]
        FAST,
    )
    await runner.handle_records([_record(1)])
    assert seen == []


def test_backoff_is_bounded() -> None:
    p = RetryPolicy(max_attempts=10, initial_s=0.05, max_s=2.0)
    assert all(0 < p.delay(a) <= 2.0 for a in range(1, 20))
