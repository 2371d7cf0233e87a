"""Metering survives SIGKILL between its effect and the offset commit: the service
runs as a real process, is killed at a fail point, restarts, and the totals are exact
(redelivered events are duplicate keys)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from qlp.usage.v1 import events_pb2 as usage
from qlp_contracts import topics
from qlp_kit.producer import Producer
from qlp_testing.infra import TestInfra
from qlp_testing.services import ServiceProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


async def _commit_group_at_end(bootstrap: str, group: str, topic: str) -> None:
    """Start ``group`` at the end of ``topic``: the session's earlier tests left usage
    events there, and the fail point must count only batches of this test's events.
    (Read to the end rather than ``seek_to_end``: the embedded broker answers
    ListOffsets(latest) wrongly.)"""
    c = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await c.start()
    try:
        deadline = time.monotonic() + 60
        while not c.assignment():
            assert time.monotonic() < deadline, "no partitions assigned"
            await c.getmany(timeout_ms=200)
        while any((await c.getmany(timeout_ms=1000)).values()):
            assert time.monotonic() < deadline, "the topic did not end"
        await c.commit()
    finally:
        await c.stop()


async def test_metering_exact_after_kill9_before_offset_commit(
    qlp_infra: TestInfra,
    topics_ready: str,
    producer: Producer,
    h: Any,
    unique: str,
    mongo_db: Any,
    tmp_path: Path,
) -> None:
    org = f"org_k{unique}"
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": qlp_infra.kafka,
        "MONGODB_URL": qlp_infra.mongodb_url,
        "QLP_INTERNAL_AUTH_SECRET": "test-internal-secret",
        "QLP_BILLING_MONGODB_DATABASE": mongo_db.name,
        "QLP_BILLING_CONSUMER_GROUP_PREFIX": f"billing-crash-{unique}",
        "QLP_BILLING_CONSUMER_BATCH_MAX_RECORDS": "50",
        "QLP_BILLING_BACKGROUND_ENABLED": "false",
    }
    group = f"billing-crash-{unique}.metering"
    await _commit_group_at_end(qlp_infra.kafka, group, topics.USAGE.name)
    proc = ServiceProcess("billing", env, tmp_path)
    # killed the 3rd time metering finished a batch's effect (before its commit)
    await proc.start({"QLP_FAULTS": f"consumer.after_effect@{group}:3"}, timeout=120)
    msgs = [
        usage.UsageRecorded(org_id=org, meter="api_calls", quantity=i % 7 + 1) for i in range(300)
    ]
    recs = [
        h.record(m, org_id=org, key=org, topic=topics.USAGE.name, event_id=f"evt_{i}")
        for i, m in enumerate(msgs)
    ]
    expected = sum(m.quantity for m in msgs)
    for i in range(0, len(recs), 50):
        await producer.send_many(recs[i : i + 50])
        await asyncio.sleep(0.2)
    code = await proc.wait_exit(60)
    assert code == -9  # it really died at the fail point
    await proc.start(timeout=120)
    try:
        deadline = time.monotonic() + 60
        got: Any = None
        while time.monotonic() < deadline:
            rows = [d async for d in mongo_db["usage_events"].find({"org_id": org})]
            got = (len(rows), sum(int(d["quantity"]) for d in rows))
            if got == (300, expected):
                break
            await asyncio.sleep(0.3)
        assert got == (300, expected)
        await producer.send_many(recs[:100])  # and a replay on top
        await asyncio.sleep(2)
        rows = [d async for d in mongo_db["usage_events"].find({"org_id": org})]
        assert (len(rows), sum(int(d["quantity"]) for d in rows)) == (300, expected)
    finally:
        proc.stop()
