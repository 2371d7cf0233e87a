"""Identity through the gateway (services as processes): invitations, roles and
tenant isolation; refresh-token rotation with reuse detection; signing-key rotation
with tokens signed before and after both accepted by the gateway."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest

from qlp_kit.auth import Principal, sign_principal
from qlp_testing.flows import bearer, signup

pytestmark = pytest.mark.e2e

PASSWORD = "E2e-identity-pass-42"


async def _signup(c: httpx.AsyncClient, who: str) -> dict[str, Any]:
    return await signup(c, who, PASSWORD)


_bearer = bearer


async def test_invitation_roles_and_isolation_through_gateway(qlp_platform: Any) -> None:
    async with httpx.AsyncClient(base_url=qlp_platform.state.gateway_url, timeout=30) as c:
        a = await _signup(c, "alpha")
        b = await _signup(c, "beta")
        org = a["org"]["id"]
        inv = await c.post(
            f"/v1/orgs/{org}/invitations",
            json={"email": f"dev-{uuid.uuid4().hex[:8]}@example.com", "role": "developer"},
            headers=_bearer(a),
        )
        assert inv.status_code == 201, inv.text
        acc = await c.post(
            "/v1/auth/invitations/accept",
            json={"token": inv.json()["token"], "password": "Dev-e2e-password-1"},
        )
        assert acc.status_code == 200, acc.text
        dev = acc.json()
        assert dev["org"]["id"] == org and dev["role"] == "developer"

        members = await c.get(f"/v1/orgs/{org}/members", headers=_bearer(dev))
        assert members.status_code == 200
        assert {m["role"] for m in members.json()["items"]} == {"owner", "developer"}
        denied = await c.patch(
            f"/v1/orgs/{org}/members/{a['user']['id']}",
            json={"role": "viewer"},
            headers=_bearer(dev),
        )
        assert denied.status_code == 403
        promoted = await c.patch(
            f"/v1/orgs/{org}/members/{dev['user']['id']}",
            json={"role": "admin"},
            headers=_bearer(a),
        )
        assert promoted.status_code == 200 and promoted.json()["role"] == "admin"

        for path in (f"/v1/orgs/{org}/members", f"/v1/orgs/{org}/audit-log"):
            assert (await c.get(path, headers=_bearer(b))).status_code == 404
        audit = await c.get(f"/v1/orgs/{org}/audit-log", headers=_bearer(a))
        types = {e["type"] for e in audit.json()["items"]}
        assert {"org.created", "invitation.accepted", "member.role_changed"} <= types


async def test_refresh_rotation_and_reuse_through_gateway(qlp_platform: Any) -> None:
    async with httpx.AsyncClient(base_url=qlp_platform.state.gateway_url, timeout=30) as c:
        s = await _signup(c, "refresh")
        r1 = s["refresh_token"]
        rot = await c.post("/v1/auth/refresh", json={"refresh_token": r1})
        assert rot.status_code == 200, rot.text
        r2 = rot.json()["refresh_token"]
        assert (await c.get("/v1/me", headers=_bearer(rot.json()))).status_code == 200
        reuse = await c.post("/v1/auth/refresh", json={"refresh_token": r1})
        assert reuse.status_code == 401
        assert reuse.json()["type"].endswith("/refresh-token-reused")
        assert (await c.post("/v1/auth/refresh", json={"refresh_token": r2})).status_code == 401


async def test_signing_key_rotation_through_gateway(qlp_platform: Any) -> None:
    secret = qlp_platform.extra_env["QLP_INTERNAL_AUTH_SECRET"]
    svc = sign_principal(
        Principal(org_id="platform", subject="svc_e2e", kind="service"),
        secret,
        method="POST",
        target="/internal/v1/signing-keys/rotate",
    )
    async with httpx.AsyncClient(base_url=qlp_platform.state.gateway_url, timeout=30) as c:
        s = await _signup(c, "rotate")
        assert (await c.get("/v1/me", headers=_bearer(s))).status_code == 200
        rotated = await c.post(
            f"{qlp_platform.url('identity')}/internal/v1/signing-keys/rotate", headers=svc
        )
        assert rotated.status_code == 200, rotated.text
        login = await c.post(
            "/v1/auth/login", json={"email": s["user"]["email"], "password": PASSWORD}
        )
        after = login.json()
        assert jwt.get_unverified_header(after["access_token"])["kid"] == rotated.json()["kid"]
        # The gateway refetches the JWKS on an unknown kid (rate-limited), so the new
        # key is accepted within its refetch interval.
        deadline = time.monotonic() + 20
        while True:
            me = await c.get("/v1/me", headers=_bearer(after))
            if me.status_code == 200 or time.monotonic() > deadline:
                break
            await asyncio.sleep(1)
        assert me.status_code == 200, me.text
        # ...and the token signed before the rotation still verifies.
        assert (await c.get("/v1/me", headers=_bearer(s))).status_code == 200
