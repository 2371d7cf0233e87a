"""The identity service in-process (``running_app``) against the session's real broker
and database, with a helper that plays the gateway: it verifies access tokens against
the JWKS and forwards the principal, which the client signs for each request (the
signature binds method and path, as the gateway's does)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from qlp_identity.main import service
from qlp_identity.settings import IdentitySettings
from qlp_identity.tokens import JwksVerifier
from qlp_infra.topics import provision
from qlp_kit.auth import Principal
from qlp_testing.principals import PrincipalAuth, principal_headers
from qlp_testing.services import running_app

SECRET = "test-internal-secret"
PASSWORD = "Correct-Horse-42!"


def make_settings(infra: Any, db: str, **overrides: Any) -> IdentitySettings:
    values: dict[str, Any] = {
        "kafka_bootstrap_servers": infra.kafka,
        "mongodb_url": infra.mongodb_url,
        "mongodb_database": db,
        "internal_auth_secret": SECRET,
        "argon2_time_cost": 1,
        "argon2_memory_kib": 256,
        "key_cache_s": 0.0,
        "relay_poll_interval_s": 0.05,
        "tenant_guard": True,
        "relay_enabled": False,
    }
    values.update(overrides)
    return IdentitySettings(**values)


class Idp:
    """A client for one running identity service."""

    def __init__(self, url: str, settings: IdentitySettings) -> None:
        self.url = url
        self.settings = settings
        self.http = httpx.AsyncClient(base_url=url, timeout=30, auth=PrincipalAuth(SECRET))

    async def close(self) -> None:
        await self.http.aclose()

    async def jwks(self) -> dict[str, Any]:
        r = await self.http.get("/.well-known/jwks.json")
        r.raise_for_status()
        out: dict[str, Any] = r.json()
        return out

    async def verify(self, access_token: str) -> dict[str, Any]:
        verifier = JwksVerifier(await self.jwks(), self.settings.issuer, self.settings.audience)
        return verifier.verify(access_token)

    async def as_user(self, tokens: dict[str, Any]) -> dict[str, str]:
        """What the gateway forwards for a request bearing this access token."""
        c = await self.verify(tokens["access_token"])
        p = Principal(
            org_id=c["org"],
            subject=c["sub"],
            kind="user",
            roles=c["roles"],
            scopes=c["scopes"],
            user_id=c["sub"],
        )
        return principal_headers(p)

    @staticmethod
    def as_service(name: str = "svc_gateway") -> dict[str, str]:
        return principal_headers(Principal(org_id="platform", subject=name, kind="service"))

    async def as_key(self, key: str) -> dict[str, str]:
        r = await self.http.post(
            "/internal/v1/api-keys/verify", json={"key": key}, headers=self.as_service()
        )
        assert r.status_code == 200, r.text
        return principal_headers(Principal.model_validate(r.json()))

    async def signup(self, unique: str, who: str = "owner", org: str = "Acme") -> dict[str, Any]:
        r = await self.http.post(
            "/v1/auth/signup",
            json={
                "org_name": f"{org} {unique}",
                "email": f"  {who}.{unique}@Example.COM ",
                "password": PASSWORD,
            },
        )
        assert r.status_code == 201, r.text
        out: dict[str, Any] = r.json()
        return out

    async def login(self, email: str, password: str = PASSWORD, **extra: Any) -> httpx.Response:
        return await self.http.post(
            "/v1/auth/login", json={"email": email, "password": password, **extra}
        )


@pytest.fixture
async def idp_factory(qlp_infra: Any, mongo_db_name: str) -> AsyncIterator[Any]:
    await provision(qlp_infra.kafka)
    started: list[Any] = []
    guard_before = tenant_guard_violations()

    async def start(**overrides: Any) -> Idp:
        settings = make_settings(qlp_infra, mongo_db_name, **overrides)
        cm = running_app(service, settings)
        url = await cm.__aenter__()
        client = Idp(url, settings)
        started.append((cm, client))
        return client

    try:
        yield start
    finally:
        for cm, client in reversed(started):
            await client.close()
            await cm.__aexit__(None, None, None)
    # The tenant guard is on: no query of ours on a tenant collection may lack org_id.
    # (Only checked without the outbox relay: the kit relay's pending-scan does not yet
    # carry its cross-tenant comment.)
    if not any(client.settings.relay_enabled for _, client in started):
        assert tenant_guard_violations() == guard_before, "a tenant query lacked org_id"


def tenant_guard_violations() -> float:
    total = 0.0
    for metric in REGISTRY.collect():
        if metric.name == "qlp_tenant_guard_violations":
            total += sum(s.value for s in metric.samples if s.name.endswith("_total"))
    return total


@pytest.fixture
async def idp(idp_factory: Any) -> Idp:
    client: Idp = await idp_factory()
    return client
