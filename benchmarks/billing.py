"""Billing benchmarks against the real embedded broker and database.

    uv run python -m benchmarks.billing [--events 50000] [--reservations 5000]

1. Metering ingest: a backlog of UsageRecorded events (10 % duplicates, spread over
   100 orgs) on qlp.usage.v1 is consumed by billing's metering consumer (the kit's
   consumer runner: decode, dedupe on source|id, insert_many) into the raw usage
   collection that aggregates are computed from. Compared with the raw bulk-insert
   rate of the same documents into the same database in the same run (the ceiling).
2. Event-to-queryable latency: events published at a steady rate while the consumer
   runs; each event's time from send until its row is visible to the usage query.
3. Quota reservations: 50 concurrent callers reserving generations (one conditional
   find_one_and_update each), first one org per caller, then all on one org's quota
   (the contended worst case), each committing after its reservation
   succeeded (the saga's normal path), with the outbox relay draining: reservations/s
   and reserve latency.

Targets (issue: billing and metering): ingest >= 50 % of the ceiling and >= 10,000
events/s, p99 event-to-queryable <= 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from faststream.kafka import KafkaBroker
from google.protobuf.timestamp_pb2 import Timestamp
from pymongo import AsyncMongoClient

from benchmarks._common import write_results
from qlp.usage.v1 import events_pb2 as usage
from qlp_billing.handlers import build_consumers
from qlp_billing.metering import usage_doc
from qlp_billing.repository import INDEXES, OUTBOX_COLLECTIONS, USAGE, Store
from qlp_billing.service import Billing
from qlp_billing.settings import BillingSettings
from qlp_contracts import topics
from qlp_infra.topics import provision
from qlp_kit.consumer import ConsumerRunner, RetryPolicy, register_consumer
from qlp_kit.events import build_headers
from qlp_kit.mongo import Mongo
from qlp_kit.outbox import OutboxRelay
from qlp_kit.producer import Producer, Record
from qlp_testing.infra import start_embedded

BATCH = 1000  # billing's consumer_batch_max_records
ORGS = [f"org_bench{i:03d}" for i in range(100)]
METERS = ["api_calls", "generations.t1", "compute_minutes", "storage_gb_hours"]


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def _records(n: int, topic: str, dup_ratio: float, rng: random.Random) -> tuple[list[Record], int]:
    recs = []
    now = datetime.now(UTC)
    for i in range(n):
        org = ORGS[i % len(ORGS)]
        ts = Timestamp()
        ts.FromDatetime(now - timedelta(seconds=rng.randint(0, 3600)))
        msg = usage.UsageRecorded(
            org_id=org, meter=METERS[i % len(METERS)], quantity=rng.randint(1, 10), occurred_at=ts
        )
        headers = build_headers(msg, org_id=org, source="qlp/bench", subject=org)
        recs.append(Record(topic, org, msg.SerializeToString(), headers))
    unique = len(recs)
    recs += rng.sample(recs, int(n * dup_ratio))
    rng.shuffle(recs)
    return recs, unique


async def _ceiling(db: Any, settings: BillingSettings, n: int) -> dict[str, float]:
    """Raw insert_many of the same documents (same indexes, then none)."""
    out = {}
    now = datetime.now(UTC)
    grace = timedelta(seconds=settings.usage_grace_s)
    docs = [
        usage_doc(
            source="qlp/ceiling",
            event_id=uuid.uuid4().hex,
            org_id=ORGS[i % len(ORGS)],
            meter=METERS[i % len(METERS)],
            quantity=1,
            occurred_at=now,
            subject_id="",
            attributes={},
            now=now,
            grace=grace,
        )
        for i in range(n)
    ]
    for label, indexed, parallel in (
        ("indexed", True, False),
        ("plain", False, False),
        ("indexed_parallel", True, True),
    ):
        coll = db[f"ceiling_{label}"]
        if indexed:
            for spec in INDEXES:
                if spec.collection == USAGE:
                    await coll.create_index(list(spec.keys))
        batch = [dict(d, _id=f"{label}|{d['_id']}") for d in docs]
        t0 = time.monotonic()
        if parallel:  # many concurrent insert_many of 100: the best this database does
            for i in range(0, n, 4_000):
                await asyncio.gather(
                    *(
                        coll.insert_many(batch[j : j + 100], ordered=False)
                        for j in range(i, min(i + 4_000, n), 100)
                    )
                )
        else:
            for i in range(0, n, BATCH):
                await coll.insert_many(batch[i : i + BATCH], ordered=False)
        out[label] = n / (time.monotonic() - t0)
    return out


async def _start_metering(
    bootstrap: str, billing: Billing, producer: Producer, stamps: dict[str, float]
) -> KafkaBroker:
    """Billing's metering consumer; ``stamps`` gets, per event, when its insert was
    acknowledged (from then on the usage query sees it)."""
    broker = KafkaBroker(bootstrap, enable_idempotence=False, logger=None)
    spec = next(s for s in build_consumers(billing) if s.group.endswith(".metering"))
    spec.group = f"bench.metering.{uuid.uuid4().hex[:6]}"
    inner_batch, inner_one = spec.batch_handler, spec.handler
    assert inner_batch is not None

    async def batch(events: list[Any]) -> None:
        await inner_batch(events)
        now = time.monotonic()
        for ev in events:
            stamps.setdefault(ev.id, now)

    async def one(ev: Any) -> None:
        await inner_one(ev)
        stamps.setdefault(ev.id, time.monotonic())

    spec.batch_handler, spec.handler = batch, one
    register_consumer(
        broker, ConsumerRunner(spec, producer, RetryPolicy(), "bench"), max_records=BATCH
    )
    await broker.start()
    return broker


async def run(n: int, n_res: int, rate: int, n_hot: int) -> dict[str, Any]:
    infra = start_embedded()
    try:
        await provision(infra.kafka)
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongodb_url)
        db = client["bench_billing"]
        settings = BillingSettings(
            kafka_bootstrap_servers=infra.kafka,
            mongodb_url=infra.mongodb_url,
            mongodb_database="bench_billing",
        )
        mongo = Mongo(infra.mongodb_url, "bench_billing")
        await mongo.ensure_indexes(INDEXES)
        billing = Billing(Store(mongo.db), settings)
        producer = Producer(infra.kafka, client_id="bench")
        await producer.start()
        out: dict[str, Any] = {"events": n, "duplicate_ratio": 0.1, "consumer_batch": BATCH}
        rng = random.Random(42)  # noqa: S311 - test data, not crypto

        # 1. ceiling: raw bulk insert of the same documents
        ceiling = await _ceiling(db, settings, n)
        out["ceiling_bulk_insert_indexed_per_s"] = round(ceiling["indexed"])
        out["ceiling_bulk_insert_plain_per_s"] = round(ceiling["plain"])

        # 2. ingest a backlog from Kafka
        recs, unique = _records(n, topics.USAGE.name, 0.1, rng)
        t0 = time.monotonic()
        for i in range(0, len(recs), 5_000):
            await producer.send_many(recs[i : i + 5_000])
        out["publish_per_s"] = round(len(recs) / (time.monotonic() - t0))
        coll = mongo.db[USAGE]
        stamps: dict[str, float] = {}
        broker = await _start_metering(infra.kafka, billing, producer, stamps)
        first = None
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            c = await coll.estimated_document_count()
            if c and first is None:
                first = time.monotonic()
            if c >= unique:
                break
            await asyncio.sleep(0.01)
        t_done = time.monotonic()
        assert first is not None
        count = await coll.count_documents({})
        out["ingest_unique_rows"] = count
        out["ingest_exact"] = count == unique
        elapsed = t_done - first
        out["ingest_events_per_s"] = round(len(recs) / elapsed)
        out["ingest_unique_per_s"] = round(unique / elapsed)
        out["ceiling_bulk_insert_indexed_parallel_per_s"] = round(ceiling["indexed_parallel"])
        best = max(ceiling.values())
        out["ingest_vs_ceiling_best"] = round(out["ingest_unique_per_s"] / best, 3)
        out["ingest_vs_ceiling_indexed"] = round(out["ingest_unique_per_s"] / ceiling["indexed"], 3)
        out["ingest_vs_ceiling_plain"] = round(out["ingest_unique_per_s"] / ceiling["plain"], 3)

        # aggregate read cost for one org after the backlog (what GET /usage does)
        period = datetime.now(UTC).strftime("%Y-%m")
        lat = []
        for org in ORGS[:20]:
            t = time.monotonic()
            await billing.store.aggregates(org, period)
            lat.append(time.monotonic() - t)
        out["usage_query_ms_p50"] = round(statistics.median(lat) * 1000, 1)
        out["usage_query_rows_per_org"] = n // len(ORGS)

        # 3. event-to-queryable latency at a steady rate
        sent: dict[str, float] = {}
        stamps.clear()
        seconds = 5
        per_tick = max(rate // 20, 1)
        for _ in range(seconds * 20):
            tick = time.monotonic()
            batch, _ = _records(per_tick, topics.USAGE.name, 0.0, rng)
            now = time.monotonic()
            for r in batch:
                sent[r.headers["ce_id"]] = now
            await producer.send_many(batch)
            await asyncio.sleep(max(0.0, 0.05 - (time.monotonic() - tick)))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(k in stamps for k in sent):
            await asyncio.sleep(0.05)
        await broker.stop()
        lat_s = [stamps[k] - t for k, t in sent.items() if k in stamps]
        out["latency_rate_events_per_s"] = rate
        out["latency_samples"] = len(lat_s)
        out["event_to_queryable_p50_ms"] = round(_pct(lat_s, 0.5) * 1000, 1)
        out["event_to_queryable_p99_ms"] = round(_pct(lat_s, 0.99) * 1000, 1)

        # 4. quota reservations: 50 concurrent callers (a) one org each, (b) one org
        relay = OutboxRelay(
            mongo.db, list(OUTBOX_COLLECTIONS), producer, service="bench", poll_interval_s=0.02
        )
        relay_task = asyncio.create_task(relay.run())
        for label, orgs, total in (
            ("50_orgs", [f"org_bench_q{i:02d}" for i in range(50)], n_res),
            ("one_org", ["org_bench_hot"] * 50, n_hot),
        ):
            for org in set(orgs):
                await billing.open_subscription(org, plan_id="enterprise")
            res_lat: list[float] = []
            counter = iter(range(total))
            oks = 0

            async def caller(
                org: str, counter: Any = counter, res_lat: list[float] = res_lat
            ) -> None:
                nonlocal oks
                for i in counter:
                    t = time.monotonic()
                    r = await billing.reserve(org, f"res_{i}", "generations.t1", 1, f"gen_{i}")
                    res_lat.append(time.monotonic() - t)
                    oks += r.ok
                    if r.ok:  # the generation finished: commit (the saga's normal path)
                        await billing.commit_reservation(org, f"res_{i}")

            t0 = time.monotonic()
            await asyncio.gather(*(caller(o) for o in orgs))
            elapsed = time.monotonic() - t0
            out[f"reservations_{label}"] = len(res_lat)
            out[f"reservations_{label}_ok"] = oks
            out[f"reservations_{label}_per_s"] = round(len(res_lat) / elapsed, 1)
            out[f"reservation_{label}_p50_ms"] = round(_pct(res_lat, 0.5) * 1000, 1)
            out[f"reservation_{label}_p99_ms"] = round(_pct(res_lat, 0.99) * 1000, 1)
        relay.stop()
        await relay_task

        out["targets"] = {
            "ingest_vs_ceiling_min": 0.5,
            "ingest_events_per_s_min": 10_000,
            "event_to_queryable_p99_ms_max": 2_000,
        }
        out["meets_targets"] = {
            "ingest_vs_ceiling_best": out["ingest_vs_ceiling_best"] >= 0.5,
            "ingest_events_per_s": out["ingest_events_per_s"] >= 10_000,
            "event_to_queryable_p99": out["event_to_queryable_p99_ms"] <= 2_000,
        }
        await producer.stop()
        await mongo.close()
        await client.close()
        return out
    finally:
        infra.close()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--events", type=int, default=50_000)
    p.add_argument("--reservations", type=int, default=2_000)
    p.add_argument("--rate", type=int, default=2_000, help="events/s for the latency phase")
    p.add_argument("--hot-reservations", type=int, default=300, help="on one org")
    args = p.parse_args()
    res = asyncio.run(run(args.events, args.reservations, args.rate, args.hot_reservations))
    for k, v in res.items():
        print(f"{k:<36} {v}")
    write_results("billing", res)


if __name__ == "__main__":
    main()
