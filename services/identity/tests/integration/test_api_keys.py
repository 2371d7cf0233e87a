"""API keys: created once with the secret, verified for the gateway, listed without
secrets, revoked, expired."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def test_api_key_lifecycle(idp: Any, unique: str) -> None:
    owner = await idp.signup(unique)
    h = await idp.as_user(owner)
    r = await idp.http.post(
        "/v1/api-keys",
        json={"name": "ci", "scopes": ["generations:write", "billing:read"]},
        headers=h,
    )
    assert r.status_code == 201, r.text
    created = r.json()
    key = created["key"]
    assert key.startswith(created["prefix"] + "_") and created["id"].startswith("key_")

    v = await idp.http.post(
        "/internal/v1/api-keys/verify", json={"key": key}, headers=idp.as_service()
    )
    assert v.status_code == 200, v.text
    assert v.json() == {
        "org_id": owner["org"]["id"],
        "subject": created["id"],
        "kind": "api_key",
        "roles": [],
        "scopes": ["billing:read", "generations:write"],
        "user_id": owner["user"]["id"],
        "expires_at": None,
    }
    # internal endpoint: no principal -> 401, a user principal -> 403
    assert (
        await idp.http.post("/internal/v1/api-keys/verify", json={"key": key})
    ).status_code == 401
    r = await idp.http.post("/internal/v1/api-keys/verify", json={"key": key}, headers=h)
    assert r.status_code == 403
    for bad in ("qlp_nope", key[:-1] + ("A" if key[-1] != "A" else "B"), "Bearer x"):
        r = await idp.http.post(
            "/internal/v1/api-keys/verify", json={"key": bad}, headers=idp.as_service()
        )
        assert r.status_code == 401

    listed = await idp.http.get("/v1/api-keys", headers=h)
    items = listed.json()["items"]
    assert len(items) == 1 and "key" not in items[0] and "secret_hash" not in items[0]
    assert items[0]["last_used_at"] is not None  # the verify recorded use

    # an API key principal can call /v1/me and revoke itself
    key_h = await idp.as_key(key)
    me = await idp.http.get("/v1/me", headers=key_h)
    assert me.json()["kind"] == "api_key" and me.json()["org"]["id"] == owner["org"]["id"]

    r = await idp.http.delete(f"/v1/api-keys/{created['id']}", headers=h)
    assert r.status_code == 204
    r = await idp.http.post(
        "/internal/v1/api-keys/verify", json={"key": key}, headers=idp.as_service()
    )
    assert r.status_code == 401
    assert (await idp.http.delete(f"/v1/api-keys/{created['id']}", headers=h)).status_code == 404
    assert (await idp.http.get("/v1/api-keys", headers=h)).json()["items"] == []


async def test_api_key_expiry_and_scope_rules(idp: Any, unique: str) -> None:
    owner = await idp.signup(unique)
    h = await idp.as_user(owner)
    soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    r = await idp.http.post(
        "/v1/api-keys",
        json={"name": "short", "scopes": ["gpu:jobs"], "expires_at": soon},
        headers=h,
    )
    assert r.status_code == 201, r.text
    key = r.json()["key"]
    ok = await idp.http.post(
        "/internal/v1/api-keys/verify", json={"key": key}, headers=idp.as_service()
    )
    assert ok.status_code == 200
    await asyncio.sleep(1.2)
    expired = await idp.http.post(
        "/internal/v1/api-keys/verify", json={"key": key}, headers=idp.as_service()
    )
    assert expired.status_code == 401

    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    r = await idp.http.post(
        "/v1/api-keys", json={"name": "x", "scopes": ["gpu:jobs"], "expires_at": past}, headers=h
    )
    assert r.status_code == 422
    r = await idp.http.post("/v1/api-keys", json={"name": "x", "scopes": ["root"]}, headers=h)
    assert r.status_code == 422
    r = await idp.http.post("/v1/api-keys", json={"name": "x", "scopes": []}, headers=h)
    assert r.status_code == 422


async def test_keys_of_a_removed_member_stop_working(idp: Any, unique: str) -> None:
    owner = await idp.signup(unique)
    org = owner["org"]["id"]
    inv = await idp.http.post(
        f"/v1/orgs/{org}/invitations",
        json={"email": f"dev.{unique}@example.com", "role": "developer"},
        headers=await idp.as_user(owner),
    )
    dev = (
        await idp.http.post(
            "/v1/auth/invitations/accept",
            json={"token": inv.json()["token"], "password": "Dev-password-2024"},
        )
    ).json()
    made = await idp.http.post(
        "/v1/api-keys",
        json={"name": "dev key", "scopes": ["gpu:jobs"]},
        headers=await idp.as_user(dev),
    )
    assert made.status_code == 201, made.text
    beyond = await idp.http.post(
        "/v1/api-keys",
        json={"name": "x", "scopes": ["billing:write"]},
        headers=await idp.as_user(dev),
    )
    assert beyond.status_code == 403  # not a scope the developer role has
    verify = {"json": {"key": made.json()["key"]}, "headers": idp.as_service()}
    assert (await idp.http.post("/internal/v1/api-keys/verify", **verify)).status_code == 200
    r = await idp.http.delete(
        f"/v1/orgs/{org}/members/{dev['user']['id']}", headers=await idp.as_user(owner)
    )
    assert r.status_code == 204
    assert (await idp.http.post("/internal/v1/api-keys/verify", **verify)).status_code == 401


async def test_a_keys_scopes_shrink_with_its_creators_role(idp: Any, unique: str) -> None:
    """Effective scopes = the key's scopes ∩ what its creator's current role allows."""
    owner = await idp.signup(unique)
    org = owner["org"]["id"]
    own_h = await idp.as_user(owner)
    inv = await idp.http.post(
        f"/v1/orgs/{org}/invitations",
        json={"email": f"dev.{unique}@example.com", "role": "developer"},
        headers=own_h,
    )
    dev = (
        await idp.http.post(
            "/v1/auth/invitations/accept",
            json={"token": inv.json()["token"], "password": "Dev-password-2024"},
        )
    ).json()
    made = await idp.http.post(
        "/v1/api-keys",
        json={"name": "dev key", "scopes": ["gpu:jobs", "generations:read", "provider:agent"]},
        headers=await idp.as_user(dev),
    )
    assert made.status_code == 201, made.text
    verify = {"json": {"key": made.json()["key"]}, "headers": idp.as_service()}

    async def scopes() -> list[str]:
        r = await idp.http.post("/internal/v1/api-keys/verify", **verify)
        assert r.status_code == 200, r.text
        out: list[str] = r.json()["scopes"]
        return out

    assert await scopes() == ["generations:read", "gpu:jobs", "provider:agent"]
    member = f"/v1/orgs/{org}/members/{dev['user']['id']}"
    r = await idp.http.patch(member, json={"role": "viewer"}, headers=own_h)
    assert r.status_code == 200, r.text
    assert await scopes() == ["generations:read"]  # a viewer spends nothing
    r = await idp.http.patch(member, json={"role": "billing"}, headers=own_h)
    assert r.status_code == 200, r.text
    assert await scopes() == ["generations:read"]
    r = await idp.http.patch(member, json={"role": "developer"}, headers=own_h)
    assert r.status_code == 200, r.text
    assert await scopes() == ["generations:read", "gpu:jobs", "provider:agent"]
    # The key never gains what it was not given, even when its creator is promoted.
    r = await idp.http.patch(member, json={"role": "admin"}, headers=own_h)
    assert r.status_code == 200, r.text
    assert await scopes() == ["generations:read", "gpu:jobs", "provider:agent"]
