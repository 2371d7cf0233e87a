from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from qlp_generation.main import service
from qlp_generation.settings import GenerationSettings
from qlp_infra.topics import provision
from qlp_kit.auth import Principal
from qlp_testing.infra import TestInfra
from qlp_testing.principals import PrincipalAuth, principal_headers
from qlp_testing.services import running_app

SECRET = "test-internal-secret"


@pytest.fixture(scope="session")
async def topics_ready(qlp_infra: TestInfra) -> str:
    await provision(qlp_infra.kafka)
    return qlp_infra.kafka


def gen_settings(infra: TestInfra, db: str, **kw: Any) -> GenerationSettings:
    base: dict[str, Any] = {
        "kafka_bootstrap_servers": infra.kafka,
        "mongodb_url": infra.mongodb_url,
        "mongodb_database": db,
        "internal_auth_secret": SECRET,
        "relay_poll_interval_s": 0.02,
        "consumer_backoff_initial_s": 0.01,
        "tenant_guard": True,
        "consumer_group_prefix": f"generation-it-{uuid.uuid4().hex[:6]}",
        "quota_enabled": False,
    }
    return GenerationSettings(**{**base, **kw})


@pytest.fixture(scope="module")
async def app_db(qlp_infra: TestInfra) -> AsyncIterator[Any]:
    from pymongo import AsyncMongoClient

    name = f"t_generation_{uuid.uuid4().hex[:8]}"
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
    async with running_app(service, gen_settings(qlp_infra, app_db.name), timeout=120) as url:
        yield url


async def api(url: str, method: str, path: str, org_id: str, **kw: Any) -> httpx.Response:
    p = Principal(
        org_id=org_id, subject="usr_test", kind="user", roles=["owner"], user_id="usr_test"
    )
    headers = {**principal_headers(p), **kw.pop("headers", {})}
    async with httpx.AsyncClient(base_url=url, timeout=30, auth=PrincipalAuth(SECRET)) as c:
        return await c.request(method, path, headers=headers, **kw)


async def eventually(
    probe: Callable[[], Awaitable[Any]], timeout: float = 120.0, interval: float = 0.2
) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not reached in {timeout}s (last: {last!r})")


async def finished(url: str, org: str, gen_id: str, timeout: float = 180.0) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        r = await api(url, "GET", f"/v1/generations/{gen_id}", org)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body if body["status"] in ("completed", "failed") else None

    done: dict[str, Any] = await eventually(probe, timeout)
    return done


@pytest.fixture
def h() -> Any:
    from types import SimpleNamespace

    return SimpleNamespace(
        api=api, finished=finished, eventually=eventually, gen_settings=gen_settings
    )
