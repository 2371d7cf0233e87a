from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from google.protobuf.message import Message

from qlp_billing.main import service
from qlp_billing.repository import Store
from qlp_billing.service import Billing
from qlp_billing.settings import BillingSettings
from qlp_infra.topics import provision
from qlp_kit.auth import Principal
from qlp_kit.events import build_headers
from qlp_kit.producer import Producer, Record
from qlp_testing.infra import TestInfra
from qlp_testing.principals import PrincipalAuth
from qlp_testing.principals import principal_headers as unsigned_principal
from qlp_testing.services import running_app

SECRET = "test-internal-secret"


@pytest.fixture(scope="session")
async def topics_ready(qlp_infra: TestInfra) -> str:
    await provision(qlp_infra.kafka)
    return qlp_infra.kafka


@pytest.fixture
def settings(qlp_infra: TestInfra, mongo_db_name: str) -> BillingSettings:
    return BillingSettings(
        kafka_bootstrap_servers=qlp_infra.kafka,
        mongodb_url=qlp_infra.mongodb_url,
        mongodb_database=mongo_db_name,
        internal_auth_secret=SECRET,
        usage_grace_s=40 * 24 * 3600,
        sweep_interval_s=0.5,
        relay_poll_interval_s=0.02,
        consumer_backoff_initial_s=0.01,
        stripe_webhook_secrets="whsec_test_old,whsec_test_new",
    )


@pytest.fixture
def billing(mongo_db: Any, settings: BillingSettings) -> Billing:
    return Billing(Store(mongo_db), settings)


@pytest.fixture(scope="module")
async def app_db(qlp_infra: TestInfra) -> AsyncIterator[Any]:
    """One database for the in-process app shared by a module's tests (orgs are
    unique per test); starting consumer groups is the slow part, so it happens once a
    module. Not once a session: a billing app left running would answer other
    services' tests' events (escrow holds, purchases) on the shared broker."""
    from pymongo import AsyncMongoClient

    name = f"t_billing_app_{uuid.uuid4().hex[:8]}"
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        qlp_infra.mongodb_url, tz_aware=True
    )
    try:
        yield client[name]
        await client.drop_database(name)
    finally:
        await client.close()


@pytest.fixture(scope="module")
async def app_url(topics_ready: str, qlp_infra: TestInfra, app_db: Any) -> AsyncIterator[str]:
    settings = BillingSettings(
        kafka_bootstrap_servers=qlp_infra.kafka,
        mongodb_url=qlp_infra.mongodb_url,
        mongodb_database=app_db.name,
        internal_auth_secret=SECRET,
        usage_grace_s=40 * 24 * 3600,
        sweep_interval_s=0.5,
        relay_poll_interval_s=0.02,
        consumer_backoff_initial_s=0.01,
        stripe_webhook_secrets="whsec_test_old,whsec_test_new",
        tenant_guard=True,
        consumer_group_prefix=f"billing-it-{uuid.uuid4().hex[:6]}",
    )
    async with running_app(service, settings, timeout=120) as url:
        yield url


@pytest.fixture
async def producer(topics_ready: str) -> AsyncIterator[Producer]:
    p = Producer(topics_ready, client_id="billing-tests")
    await p.start()
    try:
        yield p
    finally:
        await p.stop()


def principal_headers(
    org_id: str,
    roles: tuple[str, ...] = ("owner",),
    kind: str = "user",
    scopes: tuple[str, ...] = (),
) -> dict[str, str]:
    p = Principal(
        org_id=org_id,
        subject="usr_test" if kind == "user" else "key_test",
        kind=kind,
        roles=list(roles),
        scopes=list(scopes),
        user_id="usr_test" if kind == "user" else None,
    )
    return unsigned_principal(p)  # the client's PrincipalAuth signs it per request


def record(
    msg: Message,
    *,
    org_id: str,
    key: str,
    topic: str,
    event_id: str | None = None,
    source: str = "qlp/tests",
) -> Record:
    headers = build_headers(msg, org_id=org_id, source=source, subject=key, event_id=event_id)
    return Record(topic, key, msg.SerializeToString(), headers)


async def eventually(
    probe: Callable[[], Awaitable[Any]], timeout: float = 30.0, interval: float = 0.1
) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not reached in {timeout}s (last: {last!r})")


async def read_topic(
    bootstrap: str, topic: str, org_id: str, idle_s: float = 1.0
) -> list[dict[str, str]]:
    """Headers of every message of ``org_id`` on a topic, from the beginning."""
    c = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await c.start()
    found = []
    try:
        while True:
            batch = await c.getmany(timeout_ms=int(idle_s * 1000), max_records=2000)
            recs = [r for rs in batch.values() for r in rs]
            if not recs:
                break
            for r in recs:
                h = {k: v.decode() for k, v in r.headers}
                if h.get("qlp_tenant") == org_id:
                    found.append(h)
    finally:
        await c.stop()
    return found


async def api(url: str, method: str, path: str, org_id: str, **kw: Any) -> httpx.Response:
    headers = {**principal_headers(org_id, **kw.pop("auth", {})), **kw.pop("headers", {})}
    async with httpx.AsyncClient(base_url=url, timeout=10, auth=PrincipalAuth(SECRET)) as c:
        return await c.request(method, path, headers=headers, **kw)


@pytest.fixture
def h() -> Any:
    from types import SimpleNamespace

    return SimpleNamespace(
        record=record,
        eventually=eventually,
        read_topic=read_topic,
        api=api,
        principal_headers=principal_headers,
    )


class Clock:
    """A settable clock for the service (tests move time forward)."""

    def __init__(self, now: Any) -> None:
        self.now = now

    def __call__(self) -> Any:
        return self.now


@pytest.fixture
def clock() -> Clock:
    from datetime import UTC, datetime

    return Clock(datetime(2026, 3, 16, 12, 0, tzinfo=UTC))


@pytest.fixture
def clocked(mongo_db: Any, settings: BillingSettings, clock: Clock) -> Billing:
    return Billing(
        Store(mongo_db), settings.model_copy(update={"usage_grace_s": 3 * 24 * 3600}), clock
    )
