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


async def test_infrastructure_failure_is_retried_past_max_attempts_and_never_dead_lettered() -> (
    None
):
    from pymongo.errors import AutoReconnect

    calls = 0

    async def handler(ev: Event) -> None:
        nonlocal calls
        calls += 1
        if calls <= 12:  # four times max_attempts
            raise AutoReconnect("connection refused")

    prod = FakeProducer()
    runner = ConsumerRunner(ConsumerSpec("g", ["t"], handler), prod, FAST)  # type: ignore[arg-type]
    await runner.handle_records([_record(1)])
    assert calls == 13 and prod.sent == []


async def test_infrastructure_failure_of_a_batch_retries_the_batch() -> None:
    from pymongo.errors import NetworkTimeout

    batches: list[int] = []
    singles: list[int] = []

    async def batch(events: list[Event]) -> None:
        batches.append(len(events))
        if len(batches) <= 6:
            raise NetworkTimeout("timed out")

    async def one(ev: Event) -> None:
        singles.append(ev.message.quantity)

    prod = FakeProducer()
    runner = ConsumerRunner(ConsumerSpec("g", ["t"], one, batch), prod, FAST)  # type: ignore[arg-type]
    await runner.handle_records([_record(i) for i in range(3)])
    assert batches == [3] * 7 and singles == [] and prod.sent == []


async def test_wrapped_infrastructure_failure_counts_as_infrastructure() -> None:
    calls = 0

    async def handler(ev: Event) -> None:
        nonlocal calls
        calls += 1
        if calls <= 5:
            try:
                raise ConnectionResetError("reset by peer")
            except OSError as exc:
                raise RuntimeError("could not apply") from exc

    prod = FakeProducer()
    runner = ConsumerRunner(ConsumerSpec("g", ["t"], handler), prod, FAST)  # type: ignore[arg-type]
    await runner.handle_records([_record(1)])
    assert calls == 6 and prod.sent == []


async def test_stopping_during_an_outage_rewinds_instead_of_committing_or_dead_lettering() -> None:
    import asyncio

    import pytest
    from pymongo.errors import ServerSelectionTimeoutError

    started = asyncio.Event()

    async def handler(ev: Event) -> None:
        started.set()
        raise ServerSelectionTimeoutError("no servers")

    prod = FakeProducer()
    slow = RetryPolicy(max_attempts=3, initial_s=0.5, max_s=0.5)
    runner = ConsumerRunner(ConsumerSpec("g", ["t"], handler), prod, slow)  # type: ignore[arg-type]
    task = asyncio.create_task(runner.handle_records([_record(1)]))
    await asyncio.wait_for(started.wait(), 10)
    runner.stop()
    # The batch ends with the infrastructure error (FastStream NACKs: seek back, no
    # commit), and nothing went to the DLQ.
    with pytest.raises(ServerSelectionTimeoutError):
        await asyncio.wait_for(task, 10)
    assert prod.sent == []


def test_transient_classification() -> None:

    from aiokafka import errors as ke
    from pymongo import errors as me

    from qlp_kit.transient import TransientError, is_transient

    transient = [
        me.ConnectionFailure("x"),
        me.AutoReconnect("x"),
        me.NetworkTimeout("x"),
        me.ServerSelectionTimeoutError("x"),
        me.NotPrimaryError("x"),
        me.ExecutionTimeout("x"),
        me.OperationFailure("stepped down", code=189),
        ke.KafkaConnectionError(),
        ke.KafkaTimeoutError(),
        ke.NodeNotReadyError(),
        ke.RequestTimedOutError(),
        ke.NotLeaderForPartitionError(),
        TimeoutError(),
        ConnectionRefusedError(),
        OSError(104, "reset"),
        TransientError("retry me"),
        ExceptionGroup("all", [me.AutoReconnect("a"), TimeoutError()]),
    ]
    permanent = [
        ValueError("bad amount"),
        KeyError("plan"),
        RuntimeError("poison"),
        me.DuplicateKeyError("dup", code=11000),
        me.OperationFailure("bad query", code=2),
        ke.MessageSizeTooLargeError(),
        ke.InvalidTopicError(),
        FileNotFoundError("x"),
        PermissionError("x"),
        ExceptionGroup("mixed", [me.AutoReconnect("a"), ValueError()]),
    ]
    assert [e for e in transient if not is_transient(e)] == []
    assert [e for e in permanent if is_transient(e)] == []


async def test_a_stopping_subscriber_ends_the_outage_wait_promptly() -> None:
    """The probe ``register_consumer`` installs (the subscriber no longer running)
    makes a handler waiting out an outage give up within a slice, instead of holding
    shutdown for the whole backoff (or FastStream's graceful timeout)."""
    import asyncio

    import pytest
    from pymongo.errors import AutoReconnect

    running = True

    async def handler(ev: Event) -> None:
        raise AutoReconnect("database away")

    prod = FakeProducer()
    slow = RetryPolicy(max_attempts=3, initial_s=60.0, max_s=60.0)
    runner = ConsumerRunner(ConsumerSpec("g", ["t"], handler), prod, slow)  # type: ignore[arg-type]
    runner.stopping_probe = lambda: not running
    task = asyncio.create_task(runner.handle_records([_record(1)]))
    await asyncio.sleep(0.3)
    assert not task.done()  # waiting out the outage (a 30-60 s backoff)
    running = False
    with pytest.raises(AutoReconnect):
        await asyncio.wait_for(task, 10)  # far less than the backoff
    assert prod.sent == []
