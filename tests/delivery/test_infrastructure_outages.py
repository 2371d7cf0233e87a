"""Infrastructure outages are waited out, never dead-lettered, against the real broker
and database.

A handler that fails because the database is unreachable (pymongo ``AutoReconnect``,
timeouts, no primary) is retried with backoff for as long as the outage lasts; only a
message that fails on its own merits goes to the DLQ. Before this rule a one-second
blip exhausted five quick retries and turned the event into a no-op.
"""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

import httpx
import pytest

from qlp.usage.v1 import events_pb2 as usage
from qlp_infra.embedded import start_mongodb
from qlp_kit import dlq
from qlp_kit.outbox import stage
from qlp_kit.producer import Producer, Record
from qlp_testing.infra import TestInfra
from qlp_testing.services import ServiceProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

PROBE = "qlp_testing.probe:service"


def _env(mongodb_url: str, kafka: str, unique: str) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": kafka,
        "MONGODB_URL": mongodb_url,
        "QLP_PROBE_MONGODB_DATABASE": f"probe_{unique}",
        "QLP_PROBE_TOPIC": f"qlp.probe.{unique}",
        "QLP_PROBE_GROUP": f"probe.{unique}",
        "QLP_PROBE_CONSUMER_BATCH_MAX_RECORDS": "100",
        # Few, fast attempts: before the fix an outage of a second or two was enough
        # to dead-letter events.
        "QLP_PROBE_CONSUMER_MAX_ATTEMPTS": "3",
        "QLP_PROBE_CONSUMER_BACKOFF_INITIAL_S": "0.01",
        "QLP_PROBE_CONSUMER_BACKOFF_MAX_S": "0.2",
        # many infrastructure retries in a few seconds, not minutes
        "QLP_PROBE_CONSUMER_TRANSIENT_BACKOFF_MAX_S": "0.5",
    }


async def _tally(url: str, org: str) -> dict[str, int]:
    async with httpx.AsyncClient(timeout=30) as c:
        r = await c.get(f"{url}/v1/probe/tally", params={"org_id": org})
        r.raise_for_status()
        out: dict[str, int] = r.json()
        return out


async def _wait_effects(url: str, org: str, n: int, timeout: float = 90.0) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    t: dict[str, int] = {}
    while time.monotonic() < deadline:
        t = await _tally(url, org)
        if t["effects"] >= n:
            return t
        await asyncio.sleep(0.2)
    raise AssertionError(f"{n} effects not reached in {timeout}s; last tally {t}")


async def _publish(kafka: str, topic: str, org: str, n: int) -> None:
    """Put ``n`` probe events on the topic directly (the database may be paused)."""
    records = []
    for i in range(n):
        msg = usage.UsageRecorded(org_id=org, meter="probe.units", quantity=1)
        msg.attributes["record_id"] = f"rec_{i}"
        ev = stage(msg, org_id=org, key=f"rec_{i}", source="qlp/test", topic=topic)
        e = ev.entry
        records.append(Record(e["topic"], e["key"], base64.b64decode(e["data"]), e["headers"]))
    producer = Producer(kafka)
    await producer.start()
    try:
        await producer.send_many(records)
    finally:
        await producer.stop()


async def test_database_paused_under_consumption_dead_letters_nothing(
    qlp_infra: TestInfra, unique: str, tmp_logs: Any, tmp_path: Any
) -> None:
    """SIGSTOP the database for several seconds while a consumer is applying events:
    its handlers time out (short socket timeout), keep retrying, and once the
    database is back every event is applied exactly once; the DLQ stays empty."""
    mongo = start_mongodb(tmp_path)  # its own database: pausing it disturbs no other test
    url = f"mongodb://127.0.0.1:{mongo.port}/?socketTimeoutMS=400&connectTimeoutMS=400"
    env = _env(url, qlp_infra.kafka, unique)
    org = f"org_{unique}"
    svc = ServiceProcess(PROBE, {**env, "QLP_PROBE_RELAY_ENABLED": "false"}, tmp_logs, "probe")
    try:
        await svc.start()
        await _publish(qlp_infra.kafka, env["QLP_PROBE_TOPIC"], org, 20)
        await _wait_effects(svc.url, org, 20)
        mongo.pause()
        try:
            await _publish(qlp_infra.kafka, env["QLP_PROBE_TOPIC"], org, 30)
            await asyncio.sleep(6.0)  # the consumer fails against the paused database
        finally:
            mongo.resume()
        t = await _wait_effects(svc.url, org, 50)
        await asyncio.sleep(1.0)
        t = await _tally(svc.url, org)
        assert t["effects"] == 50
        letters = await dlq.peek(qlp_infra.kafka, env["QLP_PROBE_GROUP"], idle_s=1.0)
        assert letters == []
    finally:
        svc.stop()
        mongo.stop()


async def _retries(c: httpx.AsyncClient, url: str, group: str) -> float:
    text = (await c.get(f"{url}/metrics")).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("qlp_consumer_transient_retries_total{") and f'"{group}"' in line
    )


async def _letters(kafka: str, group: str, n: int, timeout: float = 30.0) -> list[dlq.DeadLetter]:
    letters: list[dlq.DeadLetter] = []
    deadline = time.monotonic() + timeout
    while len(letters) < n and time.monotonic() < deadline:
        letters = await dlq.peek(kafka, group, idle_s=0.5)
    return letters


async def test_failing_longer_than_max_attempts_for_infrastructure_is_retried_until_it_recovers(
    qlp_infra: TestInfra, unique: str, tmp_logs: Any
) -> None:
    """Events whose handler raises a database connection error many times more than
    ``max_attempts`` are applied once when it recovers, and none is dead-lettered,
    not even across a restart during the outage, while a genuinely bad (poison) event
    still goes to the DLQ."""
    env = _env(qlp_infra.mongodb_url, qlp_infra.kafka, unique)
    org, group = f"org_{unique}", env["QLP_PROBE_GROUP"]
    svc = ServiceProcess(PROBE, env, tmp_logs, "probe")
    try:
        await svc.start()
        async with httpx.AsyncClient(timeout=30) as c:

            async def create(**body: Any) -> None:
                r = await c.post(f"{svc.url}/v1/probe/records", json={"org_id": org, **body})
                assert r.status_code == 201, r.text

            await create(count=10)
            await create(count=1, poison=True)
            (poison,) = await _letters(qlp_infra.kafka, group, 1)
            assert "poison" in poison.reason
            await _wait_effects(svc.url, org, 10)
            await create(count=5, flaky=True)
            # Far more failed attempts than max_attempts (3), and still no dead letter.
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and await _retries(c, svc.url, group) < 20:
                await asyncio.sleep(0.3)
            assert await _retries(c, svc.url, group) >= 20
            assert len(await dlq.peek(qlp_infra.kafka, group, idle_s=0.5)) == 1
            assert (await _tally(svc.url, org))["effects"] == 10
            # Stopping meanwhile: the handler gives up waiting, the batch is rewound (not
            # committed, not dead-lettered) and the process exits on its own (SIGTERM,
            # not the SIGKILL that follows 15 s later).
            svc.stop()
            assert svc.proc is not None and svc.proc.returncode != -9
            await svc.start()
            (await c.post(f"{svc.url}/v1/probe/heal")).raise_for_status()
        await _wait_effects(svc.url, org, 15)
        await asyncio.sleep(1.0)
        assert (await _tally(svc.url, org))["effects"] == 15
        (only,) = await dlq.peek(qlp_infra.kafka, group, idle_s=0.5)
        assert only.event_id == poison.event_id
    finally:
        svc.stop()
