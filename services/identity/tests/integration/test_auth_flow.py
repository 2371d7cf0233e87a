"""Sign-up, login, refresh rotation with reuse detection, logout, /v1/me."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def test_signup_login_refresh_rotation_and_reuse_revokes_family(
    idp: Any, unique: str
) -> None:
    s = await idp.signup(unique)
    assert s["token_type"] == "Bearer" and s["expires_in"] == 900
    assert s["org"]["id"].startswith("org_") and s["user"]["id"].startswith("usr_")
    assert s["user"]["email"] == f"owner.{unique}@example.com"  # normalized
    claims = await idp.verify(s["access_token"])
    assert claims["sub"] == s["user"]["id"] and claims["org"] == s["org"]["id"]
    assert claims["roles"] == ["owner"] and "billing:write" in claims["scopes"]
    assert claims["iss"] == "https://qlp.local/identity" and claims["aud"] == "qlp-api"
    assert {"exp", "iat", "nbf", "jti"} <= claims.keys()

    login = await idp.login(f"OWNER.{unique}@example.com ")
    assert login.status_code == 200, login.text
    r1 = login.json()["refresh_token"]

    rot = await idp.http.post("/v1/auth/refresh", json={"refresh_token": r1})
    assert rot.status_code == 200, rot.text
    r2 = rot.json()["refresh_token"]
    assert r2 != r1
    rot2 = await idp.http.post("/v1/auth/refresh", json={"refresh_token": r2})
    assert rot2.status_code == 200
    r3 = rot2.json()["refresh_token"]

    # r1 was rotated already: presenting it again is reuse -> whole family revoked
    reuse = await idp.http.post("/v1/auth/refresh", json={"refresh_token": r1})
    assert reuse.status_code == 401
    assert reuse.json()["type"].endswith("/refresh-token-reused")
    dead = await idp.http.post("/v1/auth/refresh", json={"refresh_token": r3})
    assert dead.status_code == 401

    # the sign-up session is another family and still works
    other = await idp.http.post("/v1/auth/refresh", json={"refresh_token": s["refresh_token"]})
    assert other.status_code == 200

    audit = await idp.http.get(f"/v1/orgs/{s['org']['id']}/audit-log", headers=await idp.as_user(s))
    types = [e["type"] for e in audit.json()["items"]]
    assert "refresh_token.reuse_detected" in types and "login.succeeded" in types


async def test_concurrent_refresh_of_one_token_rotates_once(idp: Any, unique: str) -> None:
    s = await idp.signup(unique)
    results = await asyncio.gather(
        *[
            idp.http.post("/v1/auth/refresh", json={"refresh_token": s["refresh_token"]})
            for _ in range(5)
        ]
    )
    assert sum(r.status_code == 200 for r in results) <= 1
    assert sum(r.status_code == 401 for r in results) >= 4


async def test_logout_revokes_the_session(idp: Any, unique: str) -> None:
    s = await idp.signup(unique)
    r = await idp.http.post("/v1/auth/logout", json={"refresh_token": s["refresh_token"]})
    assert r.status_code == 204
    r = await idp.http.post("/v1/auth/refresh", json={"refresh_token": s["refresh_token"]})
    assert r.status_code == 401


async def test_me_and_login_errors(idp: Any, unique: str) -> None:
    s = await idp.signup(unique)
    me = await idp.http.get("/v1/me", headers=await idp.as_user(s))
    assert me.status_code == 200
    body = me.json()
    assert body["user"]["id"] == s["user"]["id"] and body["role"] == "owner"
    assert body["memberships"][0]["org_id"] == s["org"]["id"]
    assert (await idp.http.get("/v1/me")).status_code == 401

    wrong = await idp.login(s["user"]["email"], "Wrong-password-123")
    assert wrong.status_code == 401 and wrong.json()["type"].endswith("/invalid-credentials")
    unknown = await idp.login(f"nobody.{unique}@example.com")
    assert unknown.status_code == 401

    dup = await idp.http.post(
        "/v1/auth/signup",
        json={"org_name": "x", "email": s["user"]["email"], "password": "Another-pass-99"},
    )
    assert dup.status_code == 409
    weak = await idp.http.post(
        "/v1/auth/signup",
        json={"org_name": "x", "email": f"w.{unique}@example.com", "password": "password1234"},
    )
    assert weak.status_code == 422 and weak.json()["type"].endswith("/weak-password")
    bad_email = await idp.http.post(
        "/v1/auth/signup",
        json={"org_name": "x", "email": "not-an-email", "password": "Fine-password-99"},
    )
    assert bad_email.status_code == 422
