"""Sign-up writes user, org and membership one after another (no transactions). A
crash in between leaves a user without an org; signing up again finishes the job."""

from __future__ import annotations

from typing import Any

import pytest
from pymongo import AsyncMongoClient

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

PASSWORD = "Correct-Horse-42!"


async def _signup(idp: Any, email: str, password: str = PASSWORD) -> Any:
    return await idp.http.post(
        "/v1/auth/signup", json={"org_name": "Again", "email": email, "password": password}
    )


async def test_interrupted_signup_is_completed_by_signing_up_again(idp: Any, unique: str) -> None:
    s = await idp.signup(unique)
    email, uid, org_id = s["user"]["email"], s["user"]["id"], s["org"]["id"]
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(idp.settings.mongodb_url)
    db = client[idp.settings.mongodb_database]
    try:
        # crash after the org was written, before the membership
        await db["memberships"].delete_many({"org_id": org_id})
        await db["users"].update_one({"_id": uid}, {"$inc": {"created_ms": -60_000}})
        assert (await _signup(idp, email, "Not-the-password-1")).status_code == 409
        again = await _signup(idp, email)
        assert again.status_code == 201, again.text
        assert again.json()["user"]["id"] == uid and again.json()["org"]["id"] == org_id

        # crash after the user, before the org
        await db["memberships"].delete_many({"org_id": org_id})
        await db["orgs"].delete_one({"_id": org_id})
        third = await _signup(idp, email)
        assert third.status_code == 201, third.text
        assert third.json()["user"]["id"] == uid
        assert (await idp.login(email)).status_code == 200
        # a complete account is never "resumed"
        assert (await _signup(idp, email)).status_code == 409
    finally:
        await client.close()


async def test_removed_member_never_rejoins_their_old_org(idp: Any, unique: str) -> None:
    a = await idp.signup(unique, who="creator")
    org = a["org"]["id"]
    inv = await idp.http.post(
        f"/v1/orgs/{org}/invitations",
        json={"email": f"next.{unique}@example.com", "role": "owner"},
        headers=await idp.as_user(a),
    )
    b = await idp.http.post(
        "/v1/auth/invitations/accept", json={"token": inv.json()["token"], "password": PASSWORD}
    )
    assert b.status_code == 200
    r = await idp.http.delete(
        f"/v1/orgs/{org}/members/{a['user']['id']}", headers=await idp.as_user(b.json())
    )
    assert r.status_code == 204
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(idp.settings.mongodb_url)
    try:
        await client[idp.settings.mongodb_database]["users"].update_one(
            {"_id": a["user"]["id"]}, {"$inc": {"created_ms": -60_000}}
        )
    finally:
        await client.close()
    fresh = await _signup(idp, a["user"]["email"])
    assert fresh.status_code == 201, fresh.text
    assert fresh.json()["org"]["id"] != org  # a new org of their own, not the old one
