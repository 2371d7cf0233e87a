"""The delivery guarantees, proven against the real broker and database.

Each test runs the probe service (libs/testing) as real OS processes and crashes
them with SIGKILL at exact points (``QLP_FAULTS`` fail points) or pauses the broker
with SIGSTOP. Totals are read from the database afterwards: every event applied
exactly once, none lost, none invented.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from qlp_infra.embedded import start_kafka
from qlp_infra.topics import provision
from qlp_kit import dlq
from qlp_testing.infra import TestInfra
from qlp_testing.services import ServiceProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

PROBE = "qlp_testing.probe:service"


def _env(infra: TestInfra, db: str, topic: str, group: str, **extra: str) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": infra.kafka,
        "MONGODB_URL": infra.mongodb_url,
        "QLP_PROBE_MONGODB_DATABASE": db,
        "QLP_PROBE_TOPIC": topic,
        "QLP_PROBE_GROUP": group,
        "QLP_PROBE_RELAY_BATCH_SIZE": "100",
        "QLP_PROBE_CONSUMER_BATCH_MAX_RECORDS": "100",
        "QLP_PROBE_CONSUMER_MAX_ATTEMPTS": "3",
        "QLP_PROBE_CONSUMER_BACKOFF_INITIAL_S": "0.01",
        **extra,
    }


async def _tally(url: str, org: str) -> dict[str, int]:
    async with httpx.AsyncClient() as c:
        r = await c.get(f"{url}/v1/probe/tally", params={"org_id": org})
        r.raise_for_status()
        out: dict[str, int] = r.json()
        return out


async def _wait_for(url: str, org: str, pred: Any, timeout: float = 60.0) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    t: dict[str, int] = {}
    while time.monotonic() < deadline:
        t = await _tally(url, org)
        if pred(t):
            return t
        await asyncio.sleep(0.2)
    raise AssertionError(f"condition not reached in {timeout}s; last tally {t}")


async def _count_topic(bootstrap: str, topic: str, idle_s: float = 1.5) -> tuple[int, int]:
    """(messages, distinct ce_id) on a topic, read from the beginning."""
    c = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await c.start()
    n, ids = 0, set()
    try:
        while True:
            batch = await c.getmany(timeout_ms=int(idle_s * 1000), max_records=1000)
            recs = [r for rs in batch.values() for r in rs]
            if not recs:
                break
            for r in recs:
                n += 1
                ids.add(dict(r.headers)["ce_id"])
    finally:
        await c.stop()
    return n, len(ids)


@pytest.fixture
async def names(unique: str) -> AsyncIterator[dict[str, str]]:
    yield {
        "db": f"probe_{unique}",
        "topic": f"qlp.probe.{unique}",
        "group": f"probe.{unique}",
        "org": f"org_{unique}",
    }


async def _create(url: str, org: str, count: int, poison: bool = False) -> None:
    async with httpx.AsyncClient(timeout=30) as c:
        r = await c.post(
            f"{url}/v1/probe/records", json={"org_id": org, "count": count, "poison": poison}
        )
        assert r.status_code == 201, r.text


@pytest.mark.parametrize("point", ["relay.before_publish", "relay.after_publish"])
async def test_relay_killed_mid_batch_loses_nothing(
    qlp_infra: TestInfra, names: dict[str, str], tmp_logs: Any, point: str
) -> None:
    """(a) kill -9 the relay between the database write and the publish (and between
    the publish and marking sent): after a restart every event is published and
    applied exactly once."""
    await provision(qlp_infra.kafka, [])
    env = _env(qlp_infra, names["db"], names["topic"], names["group"])
    # The writer/relay process dies on its 3rd batch at the fail point.
    relay = ServiceProcess(
        PROBE,
        {**env, "QLP_PROBE_CONSUMERS_ENABLED": "false", "QLP_PROBE_RELAY_ENABLED": "false"},
        tmp_logs,
        "writer",
    )
    consumer = ServiceProcess(
        PROBE, {**env, "QLP_PROBE_RELAY_ENABLED": "false"}, tmp_logs, "consumer"
    )
    await relay.start()
    await _create(relay.url, names["org"], 1000)
    relay.stop()
    before = await _count_topic(qlp_infra.kafka, names["topic"], idle_s=0.5)
    assert before == (0, 0)  # stored, not yet published
    relay.env = {**env, "QLP_PROBE_CONSUMERS_ENABLED": "false"}
    relay.spawn({"QLP_FAULTS": f"{point}:3"})
    assert await relay.wait_exit(60) == -9
    published, distinct = await _count_topic(qlp_infra.kafka, names["topic"], idle_s=0.5)
    assert 0 < distinct < 1000
    await relay.start()
    await consumer.start()
    try:
        t = await _wait_for(
            consumer.url, names["org"], lambda t: t["effects"] >= 1000 and t["pending"] == 0
        )
        published, distinct = await _count_topic(qlp_infra.kafka, names["topic"])
        assert distinct == 1000
        if point == "relay.after_publish":
            assert published > 1000  # the killed batch went out twice ...
        await asyncio.sleep(1.0)
        t = await _tally(consumer.url, names["org"])
        assert t["effects"] == 1000  # ... and was applied once
        assert t["deliveries"] == published
    finally:
        relay.stop()
        consumer.stop()


async def test_consumer_killed_before_commit_redelivery_changes_nothing(
    qlp_infra: TestInfra, names: dict[str, str], tmp_logs: Any
) -> None:
    """(b) kill -9 a consumer after its effect but before its offset commit."""
    env = _env(qlp_infra, names["db"], names["topic"], names["group"])
    writer = ServiceProcess(
        PROBE, {**env, "QLP_PROBE_CONSUMERS_ENABLED": "false"}, tmp_logs, "writer"
    )
    consumer = ServiceProcess(
        PROBE, {**env, "QLP_PROBE_RELAY_ENABLED": "false"}, tmp_logs, "consumer"
    )
    await writer.start()
    await _create(writer.url, names["org"], 1000)
    await _wait_for(writer.url, names["org"], lambda t: t["pending"] == 0)
    consumer.spawn({"QLP_FAULTS": "consumer.after_effect:3"})
    assert await consumer.wait_exit(60) == -9
    t = await _tally(writer.url, names["org"])
    assert 0 < t["effects"] < 1000
    await consumer.start()
    try:
        await _wait_for(consumer.url, names["org"], lambda t: t["effects"] >= 1000)
        await asyncio.sleep(1.0)
        t = await _tally(consumer.url, names["org"])
        assert t["effects"] == 1000
        assert t["deliveries"] > 1000  # the uncommitted batch was delivered again
    finally:
        writer.stop()
        consumer.stop()


async def test_poison_message_goes_to_dlq_and_replays(
    qlp_infra: TestInfra, names: dict[str, str], tmp_logs: Any
) -> None:
    """(c) a poison message ends in the DLQ after bounded retries; it replays from there."""
    env = _env(qlp_infra, names["db"], names["topic"], names["group"])
    svc = ServiceProcess(PROBE, env, tmp_logs, "probe")
    await svc.start()
    try:
        await _create(svc.url, names["org"], 50)
        await _create(svc.url, names["org"], 2, poison=True)
        await _create(svc.url, names["org"], 50)
        # good events flow past the poison ones
        await _wait_for(svc.url, names["org"], lambda t: t["effects"] >= 100)
        letters: list[dlq.DeadLetter] = []
        deadline = time.monotonic() + 30
        while len(letters) < 2 and time.monotonic() < deadline:
            letters = await dlq.peek(qlp_infra.kafka, names["group"], idle_s=0.5)
        assert len(letters) == 2
        assert all(d.original_topic == names["topic"] for d in letters)
        assert all("poison" in d.reason for d in letters)
        assert (await _tally(svc.url, names["org"]))["effects"] == 100
        async with httpx.AsyncClient() as c:
            (await c.post(f"{svc.url}/v1/probe/heal")).raise_for_status()
        assert await dlq.replay(qlp_infra.kafka, names["group"], idle_s=0.5) == 2
        await _wait_for(svc.url, names["org"], lambda t: t["effects"] >= 102)
        # replaying again moves nothing (the replay group committed)
        assert await dlq.replay(qlp_infra.kafka, names["group"], idle_s=0.5) == 0
        await asyncio.sleep(0.5)
        assert (await _tally(svc.url, names["org"]))["effects"] == 102
    finally:
        svc.stop()


@pytest.mark.slow
async def test_broker_paused_under_load_loses_nothing(
    qlp_infra: TestInfra, names: dict[str, str], tmp_logs: Any, tmp_path: Any
) -> None:
    """(d) SIGSTOP the broker for 10 s while records keep arriving; after SIGCONT
    every event is published and applied exactly once."""
    broker = start_kafka(tmp_path)  # its own broker: pausing it disturbs no other test
    env = {
        **_env(qlp_infra, names["db"], names["topic"], names["group"]),
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{broker.port}",
    }
    svc = ServiceProcess(PROBE, env, tmp_logs, "probe")
    try:
        await svc.start()
        sent = 0
        async with httpx.AsyncClient(timeout=30) as c:
            t0 = time.monotonic()
            paused = resumed = False
            while time.monotonic() - t0 < 16:
                el = time.monotonic() - t0
                if el > 2 and not paused:
                    broker.pause()
                    paused = True
                if el > 12 and not resumed:
                    broker.resume()
                    resumed = True
                r = await c.post(
                    f"{svc.url}/v1/probe/records", json={"org_id": names["org"], "count": 50}
                )
                assert r.status_code == 201
                sent += 50
                await asyncio.sleep(0.1)
        assert paused and resumed and sent >= 2000
        t = await _wait_for(svc.url, names["org"], lambda t: t["effects"] >= sent, timeout=120)
        await asyncio.sleep(1.0)
        t = await _tally(svc.url, names["org"])
        assert t["effects"] == sent and t["pending"] == 0
    finally:
        svc.stop()
        broker.stop()
