"""The gateway in-process (running_app) in front of FAKE identity and a FAKE upstream
that counts arrivals and executions (fakes_idempotency.py), against the real broker
and database, with a short upstream timeout and lock time. Shared by the
Idempotency-Key test modules (each starts its own gateway)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from qlp_gateway.main import service as gateway_service
from qlp_gateway.repository import IDEMPOTENCY
from qlp_gateway.settings import GatewaySettings, PlanLimit
from qlp_infra.topics import provision
from qlp_testing.infra import TestInfra
from qlp_testing.services import running_app

from .fakes import FAKE_IDENTITY, fake_identity
from .fakes_idempotency import fake_keyed

SECRET = "gateway-idem-secret"
LOCK_S = 1.0
TIMEOUT_S = 1.5
BASE = "/v1/projects/keyed"
KEY_PER_MINUTE = 60


@dataclass
class Env:
    url: str
    settings: GatewaySettings
    mongodb_url: str

    def org(self) -> str:
        return f"org_{uuid.uuid4().hex[:10]}"

    def auth(self, org: str, key: str, sub: str = "usr_fake") -> dict[str, str]:
        token = FAKE_IDENTITY.token(org, sub)
        return {"Authorization": f"Bearer {token}", "Idempotency-Key": key}


def _settings(cls: type[Any], infra: TestInfra, db: str, **extra: Any) -> Any:
    return cls.model_validate(
        {
            "kafka_bootstrap_servers": infra.kafka,
            "mongodb_url": infra.mongodb_url,
            "mongodb_database": db,
            "internal_auth_secret": SECRET,
            "consumers_enabled": False,
            **extra,
        }
    )


@pytest.fixture(scope="module")
async def env(qlp_infra: TestInfra) -> AsyncIterator[Env]:
    await provision(qlp_infra.kafka)
    tag = uuid.uuid4().hex[:8]
    async with (
        running_app(
            fake_identity, _settings(fake_identity.settings_cls, qlp_infra, f"fakeid_{tag}")
        ) as identity,
        running_app(
            fake_keyed, _settings(fake_keyed.settings_cls, qlp_infra, f"fakekeyed_{tag}")
        ) as upstream,
    ):
        settings = _settings(
            GatewaySettings,
            qlp_infra,
            f"gwidem_{tag}",
            service_urls={
                "identity": identity,
                "generation": upstream,
                "marketplace": "http://127.0.0.1:9",  # configured but down
            },
            plan_limits={"free": PlanLimit(org_per_minute=6000, key_per_minute=KEY_PER_MINUTE)},
            upstream_timeout_s=TIMEOUT_S,
            idempotency_lock_s=LOCK_S,
            idempotency_max_response_bytes=4096,
        )
        async with running_app(gateway_service, settings) as url:
            yield Env(url, settings, qlp_infra.mongodb_url)


@pytest.fixture
async def client(env: Env) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=env.url, timeout=30) as c:
        yield c


@pytest.fixture
async def records(env: Env) -> AsyncIterator[Any]:
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(env.mongodb_url)
    try:
        yield mongo[env.settings.database_name][IDEMPOTENCY]
    finally:
        await mongo.close()


def tag() -> str:
    return uuid.uuid4().hex[:12]


def problem(resp: httpx.Response, status: int, type_suffix: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = resp.json()
    assert body["status"] == status
    if type_suffix is not None:
        assert body["type"].endswith(type_suffix), body
    return body


def conflict(resp: httpx.Response, type_suffix: str) -> dict[str, Any]:
    body = problem(resp, 409, type_suffix)
    assert int(resp.headers["retry-after"]) >= 1
    assert "idempotent-replayed" not in resp.headers
    return body


async def until(check: Any, what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)
