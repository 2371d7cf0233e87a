"""Platform admins: an operator (a service principal, ``qlpctl admins grant``) makes a
user one by e-mail; the user's next tokens carry the ``platform_admin`` role, which
grants ``platform:admin``; taking it away removes it from the next tokens. Users and
API keys cannot reach these endpoints."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from qlp_kit import permissions as perm
from qlp_kit.auth import Principal

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


async def test_grant_and_revoke_platform_admin(idp_factory: Any, unique: str) -> None:
    idp = await idp_factory()
    s = await idp.signup(unique)
    email = s["user"]["email"]
    assert s["platform_admin"] is False
    assert (await idp.verify(s["access_token"]))["roles"] == ["owner"]
    path = f"/internal/v1/platform-admins/{quote(email)}"

    # nobody but a service principal: not the user, not anonymous
    assert (await idp.http.put(path)).status_code == 401
    as_user = await idp.as_user(s)
    assert (await idp.http.put(path, headers=as_user)).status_code == 403

    r = await idp.http.put(path, headers=idp.as_service("svc_qlpctl"))
    assert r.status_code == 200, r.text
    assert r.json()["platform_admin"] is True and r.json()["changed"] is True
    again = await idp.http.put(path, headers=idp.as_service("svc_qlpctl"))
    assert again.json()["changed"] is False  # idempotent

    listed = await idp.http.get("/internal/v1/platform-admins", headers=idp.as_service())
    assert email in [u["email"] for u in listed.json()]

    login = await idp.login(email)
    tokens = login.json()
    assert tokens["platform_admin"] is True
    claims = await idp.verify(tokens["access_token"])
    assert claims["roles"] == ["owner", "platform_admin"]
    p = Principal(org_id=claims["org"], subject=claims["sub"], kind="user", roles=claims["roles"])
    assert perm.has_permission(p, perm.PLATFORM_ADMIN)
    me = await idp.http.get("/v1/me", headers=await idp.as_user(tokens))
    assert me.json()["platform_admin"] is True

    # the refreshed token keeps it; after the revoke the next one does not
    refreshed = await idp.http.post(
        "/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert "platform_admin" in (await idp.verify(refreshed.json()["access_token"]))["roles"]
    r = await idp.http.delete(path, headers=idp.as_service("svc_qlpctl"))
    assert r.status_code == 200 and r.json()["changed"] is True
    after = await idp.http.post(
        "/v1/auth/refresh", json={"refresh_token": refreshed.json()["refresh_token"]}
    )
    assert after.json()["platform_admin"] is False
    assert (await idp.verify(after.json()["access_token"]))["roles"] == ["owner"]

    # the organization's audit log says who did it
    audit = await idp.http.get(
        f"/v1/orgs/{s['org']['id']}/audit-log", headers=await idp.as_user(after.json())
    )
    types = [e["type"] for e in audit.json()["items"]]
    assert "user.platform_admin_granted" in types and "user.platform_admin_revoked" in types


async def test_unknown_or_malformed_email_is_a_problem(idp_factory: Any, unique: str) -> None:
    idp = await idp_factory()
    r = await idp.http.put(
        f"/internal/v1/platform-admins/nobody.{unique}@example.com", headers=idp.as_service()
    )
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")
    r = await idp.http.put("/internal/v1/platform-admins/not-an-address", headers=idp.as_service())
    assert r.status_code in (400, 422)
    assert r.headers["content-type"].startswith("application/problem+json")
