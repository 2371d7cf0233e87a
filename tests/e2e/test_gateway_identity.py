"""Through the gateway to the real identity service (processes, like `make up`):
sign-up → login → /v1/me with the JWT; an API key works through the gateway and stops
revoked through the gateway; forged principal
headers authenticate nothing; JWKS and the merged OpenAPI are served."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from qlp_kit.auth import Principal, sign_principal
from qlp_testing.flows import eventually

pytestmark = pytest.mark.e2e


def _problem(resp: httpx.Response, status: int) -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")


async def _signup(client: httpx.AsyncClient) -> tuple[dict[str, Any], str, str]:
    email = f"gw-{uuid.uuid4().hex[:10]}@example.com"
    password = "correct horse battery staple 42"
    resp = await client.post(
        "/v1/auth/signup",
        json={"org_name": "Gateway E2E", "email": email, "password": password},
    )
    assert resp.status_code == 201, resp.text
    return resp.json(), email, password


async def test_signup_login_me_through_the_gateway(qlp_platform: Any) -> None:
    async with httpx.AsyncClient(base_url=qlp_platform.state.gateway_url, timeout=30) as client:
        created, email, password = await _signup(client)
        org_id = created["org"]["id"]
        assert created["token_type"].lower() == "bearer"

        login = await client.post("/v1/auth/login", json={"email": email, "password": password})
        assert login.status_code == 200, login.text
        token = login.json()["access_token"]

        me = await client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200, me.text
        assert me.json()["org"]["id"] == org_id
        assert me.headers["ratelimit"].startswith('"default";r=')
        assert me.headers["x-request-id"]

        # Without a token, with a tampered one, or with forged principal headers: 401.
        _problem(await client.get("/v1/me"), 401)
        _problem(await client.get("/v1/me", headers={"Authorization": f"Bearer {token}x"}), 401)
        forged = sign_principal(
            Principal(org_id=org_id, subject=created["user"]["id"], roles=["owner"]),
            "guessed-secret",
            method="GET",
            target="/v1/me",
        )
        _problem(await client.get("/v1/me", headers=forged), 401)

        jwks = await client.get("/.well-known/jwks.json")
        assert jwks.status_code == 200 and jwks.json()["keys"]
        doc = (await client.get("/openapi.json")).json()
        assert "/v1/me" in doc["paths"] and "/v1/auth/signup" in doc["paths"]
        assert not any(p.startswith("/internal") for p in doc["paths"])


async def test_api_key_through_the_gateway(qlp_platform: Any) -> None:
    async with httpx.AsyncClient(base_url=qlp_platform.state.gateway_url, timeout=30) as client:
        created, _, _ = await _signup(client)
        bearer = {"Authorization": f"Bearer {created['access_token']}"}
        made = await client.post(
            "/v1/api-keys",
            json={"name": "ci", "scopes": ["generations:read"]},
            headers={**bearer, "Idempotency-Key": uuid.uuid4().hex},
        )
        assert made.status_code == 201, made.text
        key = made.json()["key"]
        assert key.startswith("qlp_")
        with_key = {"Authorization": f"Bearer {key}"}
        me = await client.get("/v1/me", headers=with_key)
        assert me.status_code == 200, me.text
        assert me.json()["org"]["id"] == created["org"]["id"]
        assert me.json()["kind"] == "api_key"

        # Revocation through identity reaches the gateway's API-key cache by identity's
        # event (services/gateway/tests/integration/test_revocation.py pins that with a
        # cache that would otherwise keep the key for an hour).
        revoke = await client.delete(f"/v1/api-keys/{made.json()['id']}", headers=bearer)
        assert revoke.status_code == 204, revoke.text
        await eventually(
            lambda: client.get("/v1/me", headers=with_key),
            lambda r: r.status_code == 401,
            timeout=30,
            what="the revoked key refused",
            interval=0.1,
        )
        _problem(await client.get("/v1/me", headers={"Authorization": "Bearer qlp_nope_x"}), 401)
