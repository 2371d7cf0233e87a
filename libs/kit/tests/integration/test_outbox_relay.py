"""The outbox relay against the real broker and database: order within a document
without clocks, isolation of records the broker can never take, outages retried,
and an idle relay that costs little but still publishes a local write at once."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from pymongo import AsyncMongoClient, monitoring

from qlp.usage.v1 import events_pb2 as usage
from qlp_infra.embedded import start_kafka
from qlp_kit.metrics import OUTBOX_OLDEST_AGE, OUTBOX_STUCK
from qlp_kit.mongo import Mongo
from qlp_kit.outbox import (
    OUTBOX,
    PENDING,
    PENDING_STUCK,
    STUCK,
    OutboxRelay,
    OutboxWakeup,
    outbox_update,
    requeue_stuck,
    stage,
    with_outbox,
)
from qlp_kit.producer import Producer
from qlp_testing.infra import TestInfra

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def _ev(topic: str, n: int, key: str = "agg") -> Any:
    return stage(
        usage.UsageRecorded(org_id="org_a", meter="m", quantity=n),
        org_id="org_a",
        key=key,
        source="qlp/test",
        topic=topic,
    )


async def _quantities(bootstrap: str, topic: str, idle_ms: int = 1500) -> list[int]:
    c = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
        enable_auto_commit=False,
    )
    await c.start()
    out: list[int] = []
    try:
        while True:
            batch = await c.getmany(timeout_ms=idle_ms, max_records=1000)
            recs = [r for rs in batch.values() for r in rs]
            if not recs:
                break
            out += [usage.UsageRecorded.FromString(r.value).quantity for r in recs]
    finally:
        await c.stop()
    return out


@pytest.fixture
async def producer(qlp_infra: TestInfra) -> Any:
    p = Producer(qlp_infra.kafka)
    await p.start()
    try:
        yield p
    finally:
        await p.stop()


async def test_order_within_a_document_follows_its_writes_not_the_writers_clocks(
    qlp_infra: TestInfra, mongo_db: Any, producer: Producer, unique: str, monkeypatch: Any
) -> None:
    """Two processes write the same document; the second one's clock is 10 s behind.
    Its events still go out after the first one's, in the order of its write."""
    topic = f"qlp.test.{unique}"
    real = time.time_ns
    first = _ev(topic, 1)  # process A
    monkeypatch.setattr(time, "time_ns", lambda: real() - 10_000_000_000)  # process B
    second, third = _ev(topic, 2), _ev(topic, 3)
    monkeypatch.setattr(time, "time_ns", lambda: real() - 20_000_000_000)
    fourth = _ev(topic, 4)
    monkeypatch.undo()
    coll = mongo_db["aggs"]
    await coll.insert_one(with_outbox({"_id": "agg"}, [first]))
    await coll.update_one({"_id": "agg"}, outbox_update([second, third]))
    await coll.update_one({"_id": "agg"}, outbox_update([fourth]))
    relay = OutboxRelay(mongo_db, ["aggs"], producer)
    assert await relay.drain_once() == 4
    assert await _quantities(qlp_infra.kafka, topic) == [1, 2, 3, 4]


async def test_documents_stored_with_the_old_clock_order_are_still_published_in_order(
    qlp_infra: TestInfra, mongo_db: Any, producer: Producer, unique: str
) -> None:
    topic = f"qlp.test.{unique}"
    old2, old1 = _ev(topic, 2), _ev(topic, 1)
    doc = {
        "_id": "agg",
        OUTBOX: {
            old2.event_id: {**old2.entry, "order": 2_000},
            old1.event_id: {**old1.entry, "order": 1_000},
        },
        PENDING: 1,
        "_outbox_seq": 1,
    }  # as written before the write order was recorded
    await mongo_db["aggs"].insert_one(doc)
    await mongo_db["aggs"].update_one({"_id": "agg"}, outbox_update([_ev(topic, 3)]))
    relay = OutboxRelay(mongo_db, ["aggs"], producer)
    assert await relay.drain_once() == 3
    assert await relay.drain_once() == 0
    assert await _quantities(qlp_infra.kafka, topic) == [1, 2, 3]


async def test_an_unpublishable_record_is_isolated_and_the_rest_keeps_flowing(
    qlp_infra: TestInfra, mongo_db: Any, producer: Producer, unique: str
) -> None:
    topic = f"qlp.test.{unique}"
    coll = mongo_db["things"]
    huge = stage(
        usage.UsageRecorded(org_id="org_a", meter="m" * 1_500_000, quantity=100),
        org_id="org_a",
        key="huge",
        source="qlp/test",
        topic=topic,
    )  # larger than the producer's (and the broker's) 1 MiB limit
    bad_topic = _ev("not a valid topic!", 101, key="badtopic")
    corrupt = _ev(topic, 102, key="corrupt")
    corrupt.entry["data"] = "@@not base64@@"
    await coll.insert_one(with_outbox({"_id": "good1"}, [_ev(topic, 1, "good1")]))
    await coll.insert_one(with_outbox({"_id": "huge"}, [huge]))
    await coll.insert_one(with_outbox({"_id": "badtopic"}, [bad_topic]))
    await coll.insert_one(with_outbox({"_id": "corrupt"}, [corrupt]))
    # a document whose second event is bad: the first goes out, the third must not
    mid_bad = _ev("bad/topic", 201, key="mixed")
    await coll.insert_one(
        with_outbox({"_id": "mixed"}, [_ev(topic, 200, "mixed"), mid_bad, _ev(topic, 202, "mixed")])
    )
    await coll.insert_one(with_outbox({"_id": "good2"}, [_ev(topic, 2, "good2")]))
    before = OUTBOX_STUCK.labels("svc", "things")._value.get()

    relay = OutboxRelay(mongo_db, ["things"], producer, service="svc")
    assert await relay.drain_once() == 3  # good1, mixed's first event, good2
    assert await relay.drain_once() == 0  # stuck ones are out of the scan
    assert relay.stuck == 4
    assert OUTBOX_STUCK.labels("svc", "things")._value.get() == before + 4
    stuck = {d["_id"]: d async for d in coll.find({PENDING: PENDING_STUCK})}
    assert set(stuck) == {"huge", "badtopic", "corrupt", "mixed"}
    assert stuck["mixed"][STUCK]["event_id"] == mid_bad.event_id
    assert "topic" in stuck["badtopic"][STUCK]["error"]
    assert stuck["huge"][STUCK]["event_id"] == huge.event_id and stuck["huge"][STUCK]["at"]
    assert {d["_id"] async for d in coll.find({PENDING: 0})} == {"good1", "good2"}
    assert sorted(await _quantities(qlp_infra.kafka, topic)) == [1, 2, 200]

    # The operator drops the bad event and requeues: the rest of the document follows.
    assert await requeue_stuck(mongo_db, "things", "mixed", drop_events=[mid_bad.event_id]) == 1
    assert await relay.drain_once() == 2
    assert sorted(await _quantities(qlp_infra.kafka, topic)) == [1, 2, 200, 200, 202]
    doc = await coll.find_one({"_id": "mixed"})
    assert doc is not None and doc[PENDING] == 0 and STUCK not in doc


async def test_a_broker_outage_is_retried_and_marks_nothing_stuck(
    qlp_infra: TestInfra, mongo_db: Any, unique: str, tmp_path: Any
) -> None:
    broker = start_kafka(tmp_path)  # its own broker: pausing it disturbs no other test
    bootstrap = f"127.0.0.1:{broker.port}"
    topic = f"qlp.test.{unique}"
    producer = Producer(bootstrap)
    await producer.start()
    relay = OutboxRelay(mongo_db, ["aggs"], producer)
    task = asyncio.create_task(relay.run())
    try:
        broker.pause()
        await mongo_db["aggs"].insert_one(with_outbox({"_id": "agg"}, [_ev(topic, 7)]))
        await asyncio.sleep(20)  # past the producer's 15 s request timeout
        doc = await mongo_db["aggs"].find_one({"_id": "agg"})
        assert doc is not None and doc[PENDING] == 1 and relay.stuck == 0
        broker.resume()
        deadline = time.monotonic() + 60
        while relay.published < 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert relay.published == 1
        assert await _quantities(bootstrap, topic) == [7]
    finally:
        broker.resume()
        relay.stop()
        await asyncio.wait_for(task, 30)
        await producer.stop()
        broker.stop()


class _Finds(monitoring.CommandListener):
    def __init__(self, collections: set[str]) -> None:
        self.collections = collections
        self.count = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find" and event.command.get("find") in self.collections:
            self.count += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        return None

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        return None


async def test_an_idle_relay_makes_few_queries(
    qlp_infra: TestInfra, producer: Producer, mongo_db_name: str
) -> None:
    """Idle for 5 s with two collections: a 50 ms poll would make about 200 queries;
    backing off to one poll a second per collection makes a few dozen at most."""
    finds = _Finds({"a", "b"})
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        qlp_infra.mongodb_url, event_listeners=[finds, OutboxWakeup()]
    )
    relay = OutboxRelay(client[mongo_db_name], ["a", "b"], producer)
    task = asyncio.create_task(relay.run())
    try:
        await asyncio.sleep(5.0)
    finally:
        relay.stop()
        await asyncio.wait_for(task, 30)
        await client.drop_database(mongo_db_name)
        await client.close()
    assert 0 < finds.count <= 30, finds.count


async def test_a_local_write_after_a_long_idle_period_is_published_at_once(
    qlp_infra: TestInfra, producer: Producer, unique: str
) -> None:
    """The relay sleeps a minute between polls (it polls once at start, finds
    nothing and backs off); a write through the service's client wakes it, so the
    event is out long before the next poll would find it."""
    name = f"wake_{unique}"
    topic = f"qlp.test.{unique}"
    mongo = Mongo(qlp_infra.mongodb_url, name)  # what every service uses
    relay = OutboxRelay(mongo.db, ["aggs"], producer, poll_interval_s=30.0, idle_interval_s=60.0)
    task = asyncio.create_task(relay.run())
    try:
        await asyncio.sleep(3.0)  # idle, in the long sleep
        await mongo.db["aggs"].insert_one(with_outbox({"_id": "a"}, [_ev(topic, 1, "a")]))
        deadline = time.monotonic() + 15  # generous, and still far below the 60 s poll
        while relay.published < 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert relay.published == 1
        # ... and an update (the other write path) wakes it too
        await mongo.db["aggs"].update_one({"_id": "a"}, outbox_update([_ev(topic, 2, "a")]))
        deadline = time.monotonic() + 15
        while relay.published < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert relay.published == 2
        assert await _quantities(qlp_infra.kafka, topic) == [1, 2]
    finally:
        relay.stop()
        await asyncio.wait_for(task, 30)
        await mongo.client.drop_database(name)
        await mongo.close()


async def test_the_backlog_age_gauge_shows_how_long_the_oldest_event_waits(
    mongo_db: Any, producer: Producer, unique: str, monkeypatch: Any
) -> None:
    """While the broker is away the gauge reads the age of the oldest waiting event
    (from when it was staged, not its own time), and it drops to 0 once published."""
    topic = f"qlp.test.{unique}"
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() - 120)
    old = _ev(topic, 1)  # staged two minutes ago
    monkeypatch.undo()
    await mongo_db["aged"].insert_one(with_outbox({"_id": "agg"}, [old, _ev(topic, 2)]))

    class Away(Producer):
        async def send_many(self, records: Any) -> None:
            raise ConnectionError("broker away")

    gauge = OUTBOX_OLDEST_AGE.labels("aging", "aged")
    with pytest.raises(ConnectionError):
        await OutboxRelay(mongo_db, ["aged"], Away("127.0.0.1:1"), service="aging").drain_once()
    assert 119 <= gauge._value.get() < 600
    relay = OutboxRelay(mongo_db, ["aged"], producer, service="aging")
    assert await relay.drain_once() == 2
    assert await relay.drain_once() == 0
    assert gauge._value.get() == 0
