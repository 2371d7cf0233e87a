"""Revocation reaches the gateway at once: the REAL identity service and the gateway
in-process against the real broker and database. The gateway's API-key cache keeps
answers for an hour here, so only identity's events (key revoked, member removed,
role changed, platform admin revoked) can make a key or token stop working within
the polling timeout."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from qlp_gateway.main import service as gateway_service
from qlp_gateway.settings import GatewaySettings
from qlp_identity.main import service as identity_service
from qlp_identity.settings import IdentitySettings
from qlp_infra.topics import provision
from qlp_kit.auth import Principal
from qlp_testing.flows import bearer, eventually
from qlp_testing.infra import TestInfra
from qlp_testing.principals import PrincipalAuth
from qlp_testing.services import running_app

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SECRET = "gateway-revocation-secret"
PASSWORD = "Correct-Horse-42!"
#: Generous: the assertion is "refused eventually"; it normally takes well under 2 s.
WITHIN_S = 30.0


@dataclass
class Env:
    url: str
    identity: str
    replica: str  # a second gateway replica, same settings


@pytest.fixture(scope="module")
async def env(qlp_infra: TestInfra) -> AsyncIterator[Env]:
    await provision(qlp_infra.kafka)
    tag = uuid.uuid4().hex[:8]
    identity_settings = IdentitySettings(
        kafka_bootstrap_servers=qlp_infra.kafka,
        mongodb_url=qlp_infra.mongodb_url,
        mongodb_database=f"idrev_{tag}",
        internal_auth_secret=SECRET,
        argon2_time_cost=1,
        argon2_memory_kib=256,
        relay_enabled=True,
        relay_poll_interval_s=0.05,
    )
    async with running_app(identity_service, identity_settings) as identity:
        settings = GatewaySettings.model_validate(
            {
                "kafka_bootstrap_servers": qlp_infra.kafka,
                "mongodb_url": qlp_infra.mongodb_url,
                "mongodb_database": f"gwrev_{tag}",
                "internal_auth_secret": SECRET,
                "service_urls": {"identity": identity},
                "plans_consumer_group": f"gateway.plans.{tag}",
                "invalidations_consumer_group": f"gateway.invalidations.{tag}",
                # Without the events, a cached key would keep working for an hour.
                "api_key_cache_ttl_s": 3600.0,
                "auth_failures_per_minute": 100_000,
                "anonymous_per_minute": 100_000,
            }
        )
        async with (
            running_app(gateway_service, settings) as url,
            running_app(gateway_service, settings) as replica,
        ):
            yield Env(url, identity, replica)


@pytest.fixture
async def client(env: Env) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=env.url, timeout=30) as c:
        yield c


async def _signup(c: httpx.AsyncClient) -> dict[str, Any]:
    r = await c.post(
        "/v1/auth/signup",
        json={
            "org_name": f"Revocation {uuid.uuid4().hex[:6]}",
            "email": f"owner-{uuid.uuid4().hex[:10]}@example.com",
            "password": PASSWORD,
        },
    )
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


async def _member(c: httpx.AsyncClient, owner: dict[str, Any], role: str) -> dict[str, Any]:
    org = owner["org"]["id"]
    inv = await c.post(
        f"/v1/orgs/{org}/invitations",
        json={"email": f"{role}-{uuid.uuid4().hex[:10]}@example.com", "role": role},
        headers=bearer(owner),
    )
    assert inv.status_code == 201, inv.text
    acc = await c.post(
        "/v1/auth/invitations/accept",
        json={"token": inv.json()["token"], "password": PASSWORD},
    )
    assert acc.status_code == 200, acc.text
    out: dict[str, Any] = acc.json()
    return out


async def _key(c: httpx.AsyncClient, who: dict[str, Any], scopes: list[str]) -> dict[str, Any]:
    r = await c.post("/v1/api-keys", json={"name": "ci", "scopes": scopes}, headers=bearer(who))
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


async def _me(c: httpx.AsyncClient, token: str) -> httpx.Response:
    return await c.get("/v1/me", headers=bearer(token))


async def test_revoked_key_is_refused_at_once(client: httpx.AsyncClient) -> None:
    owner = await _signup(client)
    made = await _key(client, owner, ["generations:read"])
    key = made["key"]
    for _ in range(3):  # verified once, then answered from the gateway's cache
        assert (await _me(client, key)).status_code == 200
    r = await client.delete(f"/v1/api-keys/{made['id']}", headers=bearer(owner))
    assert r.status_code == 204, r.text
    refused = await eventually(
        lambda: _me(client, key),
        lambda resp: resp.status_code == 401,
        timeout=WITHIN_S,
        what="the revoked key refused by the gateway",
        interval=0.1,
    )
    assert refused.headers["content-type"].startswith("application/problem+json")
    # Other keys of the org are untouched.
    other = await _key(client, owner, ["generations:read"])
    assert (await _me(client, other["key"])).status_code == 200


async def test_removed_member_token_and_keys_are_refused(client: httpx.AsyncClient) -> None:
    owner = await _signup(client)
    dev = await _member(client, owner, "developer")
    made = await _key(client, dev, ["gpu:jobs"])
    assert (await _me(client, dev["access_token"])).status_code == 200
    assert (await _me(client, made["key"])).status_code == 200  # now cached
    org = owner["org"]["id"]
    r = await client.delete(f"/v1/orgs/{org}/members/{dev['user']['id']}", headers=bearer(owner))
    assert r.status_code == 204, r.text
    await eventually(
        lambda: _me(client, made["key"]),
        lambda resp: resp.status_code == 401,
        timeout=WITHIN_S,
        what="the removed member's key refused",
        interval=0.1,
    )
    # The access token is still inside its 15 minutes, but it was issued before the
    # removal: refused, and refreshing does not help.
    token = await _me(client, dev["access_token"])
    assert token.status_code == 401, token.text
    r = await client.post("/v1/auth/refresh", json={"refresh_token": dev["refresh_token"]})
    assert r.status_code == 401
    # The owner, in the same org, is not affected.
    assert (await _me(client, owner["access_token"])).status_code == 200


async def test_role_change_outdates_tokens_and_narrows_keys(client: httpx.AsyncClient) -> None:
    owner = await _signup(client)
    dev = await _member(client, owner, "developer")
    made = await _key(client, dev, ["gpu:jobs", "generations:read"])
    before = await _me(client, made["key"])
    assert before.status_code == 200, before.text
    assert sorted(before.json()["scopes"]) == ["generations:read", "gpu:jobs"]
    assert (await _me(client, dev["access_token"])).status_code == 200
    org = owner["org"]["id"]
    r = await client.patch(
        f"/v1/orgs/{org}/members/{dev['user']['id']}",
        json={"role": "viewer"},
        headers=bearer(owner),
    )
    assert r.status_code == 200, r.text
    # The old token still says "developer": refused, with a hint to refresh.
    outdated = await eventually(
        lambda: _me(client, dev["access_token"]),
        lambda resp: resp.status_code == 401,
        timeout=WITHIN_S,
        what="the demoted user's old token refused",
        interval=0.1,
    )
    assert "outdated" in outdated.json()["detail"]
    # The key's effective scopes follow its creator's new role.
    narrowed = await eventually(
        lambda: _me(client, made["key"]),
        lambda resp: resp.status_code == 200 and resp.json()["scopes"] == ["generations:read"],
        timeout=WITHIN_S,
        what="the key narrowed to the viewer's scopes",
        interval=0.1,
    )
    assert narrowed.json()["kind"] == "api_key"
    # A refreshed token carries the new role and works.
    fresh = await client.post("/v1/auth/refresh", json={"refresh_token": dev["refresh_token"]})
    assert fresh.status_code == 200, fresh.text
    me = await _me(client, fresh.json()["access_token"])
    assert me.status_code == 200, me.text
    assert me.json()["role"] == "viewer"


async def test_every_replica_gets_every_invalidation(env: Env, client: httpx.AsyncClient) -> None:
    """Two gateways with the same settings: the key cached on both is refused by both
    (a shared consumer group would give each event to one of them only)."""
    owner = await _signup(client)
    made = await _key(client, owner, ["generations:read"])
    async with httpx.AsyncClient(base_url=env.replica, timeout=30) as other:
        for c in (client, other):
            assert (await _me(c, made["key"])).status_code == 200
        r = await client.delete(f"/v1/api-keys/{made['id']}", headers=bearer(owner))
        assert r.status_code == 204, r.text
        for c in (client, other):
            await eventually(
                lambda c=c: _me(c, made["key"]),
                lambda resp: resp.status_code == 401,
                timeout=WITHIN_S,
                what=f"the revoked key refused by {c.base_url}",
                interval=0.1,
            )


async def test_revoked_platform_admin_tokens_are_refused(
    env: Env, client: httpx.AsyncClient
) -> None:
    """``qlpctl admins revoke``: identity says PlatformAdminChanged and the gateway
    refuses the user's tokens issued before it (in every org), instead of honouring the
    platform_admin role until they expire."""
    owner = await _signup(client)
    email = owner["user"]["email"]
    operator = PrincipalAuth(
        SECRET, Principal(org_id="platform", subject="svc_qlpctl", kind="service")
    )
    path = f"/internal/v1/platform-admins/{quote(email)}"
    async with httpx.AsyncClient(base_url=env.identity, auth=operator, timeout=30) as idp:
        assert (await idp.put(path)).status_code == 200
        login = await client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
        admin = login.json()
        assert admin["platform_admin"] is True
        assert (await _me(client, admin["access_token"])).status_code == 200
        # a grant outdates nothing: the token from before it still works
        assert (await _me(client, owner["access_token"])).status_code == 200

        r = await idp.delete(path)
        assert r.status_code == 200 and r.json()["changed"] is True
    refused = await eventually(
        lambda: _me(client, admin["access_token"]),
        lambda resp: resp.status_code == 401,
        timeout=WITHIN_S,
        what="the revoked admin's token refused",
        interval=0.1,
    )
    assert "outdated" in refused.json()["detail"]
    assert (await _me(client, owner["access_token"])).status_code == 401  # issued before too
    # on the other replica as well
    async with httpx.AsyncClient(base_url=env.replica, timeout=30) as other:
        await eventually(
            lambda: _me(other, admin["access_token"]),
            lambda resp: resp.status_code == 401,
            timeout=WITHIN_S,
            what="the other replica refuses it",
            interval=0.1,
        )
    fresh = await client.post("/v1/auth/refresh", json={"refresh_token": admin["refresh_token"]})
    assert fresh.status_code == 200, fresh.text
    assert fresh.json()["platform_admin"] is False
    assert (await _me(client, fresh.json()["access_token"])).status_code == 200
