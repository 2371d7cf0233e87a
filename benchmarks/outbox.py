"""Outbox relay and idempotent consumer throughput against the real embedded broker
and database, with raw aiokafka consumption of the same topic as the ceiling.

    uv run python -m benchmarks.outbox [--events 20000]

Targets (issue: platform foundation): the idempotent consumer keeps >= 30 % of raw
consumption; >= 5,000 events/s end to end (database write → relay → Kafka → consumer
effect) on a 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer
from faststream.kafka import KafkaBroker
from pymongo import AsyncMongoClient

from benchmarks._common import write_results
from qlp_infra.topics import provision
from qlp_kit.consumer import ConsumerRunner, RetryPolicy, register_consumer
from qlp_kit.outbox import OutboxRelay, OutboxWakeup
from qlp_kit.producer import Producer
from qlp_testing.infra import start_embedded
from qlp_testing.probe import ProbeSettings, RecordsIn, build_records, consumers

BATCH = 500


async def _insert(db: Any, settings: ProbeSettings, org: str, n: int) -> None:
    for i in range(0, n, BATCH):
        docs = build_records(settings, RecordsIn(org_id=org, count=min(BATCH, n - i)))
        await db["records"].insert_many(docs, ordered=False)


async def _wait_effects(db: Any, n: int, timeout: float = 300) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await db["effects"].estimated_document_count() >= n:
            return time.monotonic()
        await asyncio.sleep(0.02)
    raise TimeoutError("consumer did not finish")


async def _raw_consume(bootstrap: str, topic: str, n: int) -> float:
    c = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"raw-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await c.start()
    t0 = time.monotonic()
    got = 0
    try:
        while got < n:
            batch = await c.getmany(timeout_ms=1000, max_records=BATCH)
            got += sum(len(v) for v in batch.values())
        await c.commit()
    finally:
        await c.stop()
    return n / (time.monotonic() - t0)


class _Ctx:
    def __init__(self, settings: ProbeSettings, db: Any) -> None:
        self.settings = settings
        self.db = db


async def _start_consumer(
    bootstrap: str, settings: ProbeSettings, db: Any, producer: Producer
) -> KafkaBroker:
    broker = KafkaBroker(bootstrap, enable_idempotence=False, logger=None)
    for spec in consumers(_Ctx(settings, db)):  # type: ignore[arg-type]
        register_consumer(
            broker, ConsumerRunner(spec, producer, RetryPolicy(), "bench"), max_records=BATCH
        )
    await broker.start()
    return broker


async def run(n: int) -> dict[str, Any]:
    infra = start_embedded()
    try:
        # as a service's client: its outbox writes wake the relay
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            infra.mongodb_url, event_listeners=[OutboxWakeup()]
        )
        producer = Producer(infra.kafka)
        await producer.start()
        out: dict[str, Any] = {"events": n}

        # 1. relay alone: N stored events → Kafka
        topic = "qlp.bench.relay"
        await provision(infra.kafka, [])
        settings = ProbeSettings(
            kafka_bootstrap_servers=infra.kafka,
            mongodb_url=infra.mongodb_url,
            topic=topic,
            group="bench.idem",
        )
        db = client["bench_relay"]
        await _insert(db, settings, "org_bench", n)
        relay = OutboxRelay(db, ["records"], producer, service="bench", batch_size=BATCH)
        await relay.ensure_indexes()
        t0 = time.monotonic()
        while await relay.drain_once():
            pass
        out["relay_events_per_s"] = round(n / (time.monotonic() - t0))

        # 1b. the database's own ceiling: bulk inserts of effect-sized documents
        t0 = time.monotonic()
        ceiling_db = client["bench_ceiling"]
        for i in range(0, n, 2 * BATCH):
            await ceiling_db["effects"].insert_many(
                [
                    {"_id": f"c{i + j}", "org_id": "o", "meter": "m", "quantity": 1}
                    for j in range(min(2 * BATCH, n - i))
                ],
                ordered=False,
            )
        out["db_bulk_insert_ceiling_per_s"] = round(n / (time.monotonic() - t0))

        # 2. raw aiokafka consumption of that topic: the ceiling
        out["raw_consume_events_per_s"] = round(await _raw_consume(infra.kafka, topic, n))

        # 3. the idempotent consumer (decode, dedupe, effect, commit) on the same topic;
        # the clock starts at the first effect, after the consumer group has joined
        broker = await _start_consumer(infra.kafka, settings, db, producer)
        t0 = await _wait_effects(db, 1)
        t1 = await _wait_effects(db, n)
        await broker.stop()
        out["idempotent_consume_events_per_s"] = round(n / (t1 - t0))
        out["consumer_vs_db_ceiling"] = round(
            out["idempotent_consume_events_per_s"] / out["db_bulk_insert_ceiling_per_s"], 3
        )
        out["consumer_vs_raw"] = round(
            out["idempotent_consume_events_per_s"] / out["raw_consume_events_per_s"], 3
        )

        # 4. end to end: writes, relay and consumer all running at once
        settings2 = settings.model_copy(update={"topic": "qlp.bench.e2e", "group": "bench.e2e"})
        db2 = client["bench_e2e"]
        relay2 = OutboxRelay(
            db2, ["records"], producer, service="bench", batch_size=BATCH, poll_interval_s=0.01
        )
        await relay2.ensure_indexes()
        await db2["effects"].insert_one({"_id": "warmup", "org_id": "-"})
        await db2["effects"].delete_one({"_id": "warmup"})
        broker2 = await _start_consumer(infra.kafka, settings2, db2, producer)
        relay_task = asyncio.create_task(relay2.run())
        await _insert(db2, settings2, "org_warmup", 1)  # wait until the group has joined
        await _wait_effects(db2, 1)
        t0 = time.monotonic()
        await _insert(db2, settings2, "org_bench", n)
        t_written = time.monotonic()
        t1 = await _wait_effects(db2, n + 1)
        relay2.stop()
        await relay_task
        await broker2.stop()
        out["write_events_per_s"] = round(n / (t_written - t0))
        out["end_to_end_events_per_s"] = round(n / (t1 - t0))
        out["targets"] = {"consumer_vs_raw_min": 0.30, "end_to_end_events_per_s_min": 5000}
        out["meets_targets"] = {
            "consumer_vs_raw": out["consumer_vs_raw"] >= 0.30,
            "end_to_end": out["end_to_end_events_per_s"] >= 5000,
        }
        await producer.stop()
        await client.close()
        return out
    finally:
        infra.close()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--events", type=int, default=20_000)
    args = p.parse_args()
    res = asyncio.run(run(args.events))
    for k, v in res.items():
        print(f"{k:<34} {v}")
    write_results("outbox", res)


if __name__ == "__main__":
    main()
