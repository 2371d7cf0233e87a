"""The offer feed against the real database and broker: claims and releases only mark
the offer (revision + flag, in the claim's own conditional write); the feed then
publishes one OfferAvailabilityChanged per marked offer carrying the newest revision
and state and clears the mark; a change that lands between the feed's read and its
clear keeps the mark (its record follows with a higher revision); a mark a crash left
behind is published by the next round; without a broker nothing is cleared.

The records go to a topic of this test's own (the registry's topic and key are checked
on the record; the catalogue tests follow them to the marketplace)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from qlp.scheduling.v1 import events_pb2 as ev
from qlp_contracts import topics
from qlp_contracts.topics import Topic
from qlp_kit.mongo import utcnow
from qlp_kit.producer import Producer, Record
from qlp_kit.topics import provision
from qlp_scheduler import events as E
from qlp_scheduler.offer_feed import OfferFeed
from qlp_scheduler.repository import PROVIDERS, Repository

pytestmark = pytest.mark.integration

GPUS = 4


def _offer_doc(i: int) -> dict[str, Any]:
    uuids = [f"GPU-{i}-{g}" for g in range(GPUS)]
    return {
        "_id": f"prv_feed_{i}",
        "org_id": "org_feed",
        "offer_id": f"ofr_feed_{i}",
        "status": "active",
        "available_gpus": GPUS,
        "gpu_count": GPUS,
        "gpu_owner": dict.fromkeys(uuids, ""),
        "claims": {},
    }


class Wire:
    """The real producer, sending the feed's records to this test's topic, and a
    consumer reading them back."""

    def __init__(self, kafka: str, topic: str) -> None:
        self.kafka, self.topic = kafka, topic
        self.producer = Producer(kafka, client_id="test-offer-feed")
        self.sent: list[Record] = []
        self.got: list[ev.OfferAvailabilityChanged] = []
        self.consumer: AIOKafkaConsumer | None = None

    async def __aenter__(self) -> Wire:
        await provision(self.kafka, [Topic(self.topic, 1, 3_600_000, "scheduler", (), "test")])
        await self.producer.start()
        self.consumer = AIOKafkaConsumer(
            self.topic, bootstrap_servers=self.kafka, auto_offset_reset="earliest"
        )
        await self.consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.producer.stop()
        if self.consumer is not None:
            await self.consumer.stop()

    async def send(self, records: Sequence[Record]) -> None:
        self.sent += records
        await self.producer.send_many([dataclasses.replace(r, topic=self.topic) for r in records])

    async def received(self, n: int) -> list[ev.OfferAvailabilityChanged]:
        assert self.consumer is not None
        deadline = time.monotonic() + 30
        while len(self.got) < n and time.monotonic() < deadline:
            for recs in (await self.consumer.getmany(timeout_ms=200)).values():
                self.got += [ev.OfferAvailabilityChanged.FromString(r.value) for r in recs]
        return self.got


def _feed(repo: Repository, send: Callable[..., Any] | None, **kw: Any) -> OfferFeed:
    return OfferFeed(repo, lambda d: E.offer_availability(d, 9_000, utcnow()), send, **kw)


async def test_a_burst_of_claims_is_one_event_with_the_newest_state(
    mongo_db: Any, qlp_infra: Any, unique: str
) -> None:
    await mongo_db[PROVIDERS].insert_many([_offer_doc(0), _offer_doc(1)])
    repo = Repository(mongo_db)
    async with Wire(qlp_infra.kafka, f"test.offer-feed.{unique}") as wire:
        feed = _feed(repo, wire.send)
        now = utcnow()
        for g in range(3):
            assert await repo.claim("prv_feed_0", f"job_{g}", "primary", [f"GPU-0-{g}"], now)
        assert await repo.release("prv_feed_0", "job_1", ["GPU-0-1"], now) is not None
        assert feed.changed.is_set()  # the repository poked its feed
        # the claim path published nothing: only the mark and the revision
        doc = await mongo_db[PROVIDERS].find_one({"_id": "prv_feed_0"})
        assert doc["offer_dirty"] == 1 and doc["offer_rev"] == 4
        assert not doc.get("_outbox")
        untouched = await mongo_db[PROVIDERS].find_one({"_id": "prv_feed_1"})
        assert "offer_dirty" not in untouched

        assert await feed.publish() == 1
        [record] = wire.sent
        assert record.topic == topics.SCHEDULING.name and record.key == "ofr_feed_0"
        assert record.headers["ce_type"].endswith("OfferAvailabilityChanged")
        [change] = await wire.received(1)
        assert change.revision == 4 and change.available_gpus == 2 and change.gpu_count == GPUS
        assert change.offer_id == "ofr_feed_0" and change.status == "active"
        assert change.reliability_bps == 9_000
        doc = await mongo_db[PROVIDERS].find_one({"_id": "prv_feed_0"})
        assert "offer_dirty" not in doc
        # nothing marked: a round publishes nothing
        assert await feed.publish() == 0

        # a later change: a second event, higher revision
        assert await repo.claim("prv_feed_0", "job_9", "primary", ["GPU-0-3"], now)
        assert await feed.publish() == 1
        got = await wire.received(2)
        assert [c.revision for c in got] == [4, 5] and got[-1].available_gpus == 1


async def test_a_change_between_read_and_clear_keeps_its_mark(
    mongo_db: Any, qlp_infra: Any, unique: str
) -> None:
    await mongo_db[PROVIDERS].insert_one(_offer_doc(2))
    repo = Repository(mongo_db)
    async with Wire(qlp_infra.kafka, f"test.offer-feed.{unique}") as wire:
        now = utcnow()
        assert await repo.claim("prv_feed_2", "job_a", "primary", ["GPU-2-0"], now)

        async def claim_while_sending(records: Sequence[Record]) -> None:
            await wire.send(records)
            if len(wire.sent) == 1:  # lands after the feed read the offer
                assert await repo.claim("prv_feed_2", "job_b", "primary", ["GPU-2-1"], now)

        feed = _feed(repo, claim_while_sending)
        assert await feed.publish() == 0  # published revision 1; its mark is kept
        doc = await mongo_db[PROVIDERS].find_one({"_id": "prv_feed_2"})
        assert doc["offer_dirty"] == 1 and doc["offer_rev"] == 2
        assert await feed.publish() == 1
        got = await wire.received(2)
        assert [(c.revision, c.available_gpus) for c in got] == [(1, 3), (2, 2)]


async def test_marks_left_by_a_crash_and_liveness_verdicts_are_published(
    mongo_db: Any, qlp_infra: Any, unique: str
) -> None:
    docs = [_offer_doc(i) for i in range(10, 15)]
    await mongo_db[PROVIDERS].insert_many(docs)
    repo = Repository(mongo_db)
    now = utcnow()
    # a process claimed and died before its feed ran: the marks are in the database
    for d in docs[:3]:
        assert await repo.claim(d["_id"], "job_x", "primary", [f"GPU-{d['_id'][9:]}-0"], now)
    assert await repo.set_liveness(docs[3]["_id"], "lost", 1_000) is not None
    # no broker yet: nothing is cleared
    assert await _feed(Repository(mongo_db), None).publish() == 0
    assert await mongo_db[PROVIDERS].count_documents({"offer_dirty": 1}) == 4
    async with Wire(qlp_infra.kafka, f"test.offer-feed.{unique}") as wire:
        feed = _feed(Repository(mongo_db), wire.send, batch=2)
        assert await feed.publish() == 4  # in batches of 2
        # a redelivered older verdict changes nothing, so marks nothing
        assert await repo.set_liveness(docs[3]["_id"], "lost", 500) is None
        assert await feed.publish() == 0
        got = {c.offer_id: c for c in await wire.received(4)}
        assert set(got) == {d["offer_id"] for d in docs[:4]}
        lost = got[docs[3]["offer_id"]]
        assert lost.status == "lost" and lost.available_gpus == GPUS
        assert all(got[d["offer_id"]].available_gpus == GPUS - 1 for d in docs[:3])
