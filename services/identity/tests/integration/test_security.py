"""Brute-force protection under concurrency, lockout with backoff, signing-key
rotation, and the events on qlp.identity.events.v1."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import jwt
import pytest
from aiokafka import AIOKafkaConsumer
from prometheus_client import REGISTRY

from qlp_contracts import topics
from qlp_identity.tokens import JwksVerifier
from qlp_kit.events import decode_record

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def _checks(outcome: str) -> float:
    v = REGISTRY.get_sample_value("qlp_identity_password_checks_total", {"outcome": outcome})
    return v or 0.0


async def test_50_concurrent_wrong_passwords_evaluate_at_most_the_allowed(
    idp_factory: Any, unique: str
) -> None:
    idp = await idp_factory(max_failed_logins=5, lockout_base_s=600)
    s = await idp.signup(unique)
    email = s["user"]["email"]
    before = _checks("fail")
    results = await asyncio.gather(
        *[idp.login(email, f"Wrong-password-{i:03d}") for i in range(50)]
    )
    codes = [r.status_code for r in results]
    evaluated = _checks("fail") - before
    assert codes.count(401) <= 5, codes
    assert evaluated <= 5
    assert codes.count(401) + codes.count(429) == 50
    assert all(
        r.json()["type"].endswith(("/account-locked", "/login-throttled"))
        for r in results
        if r.status_code == 429
    )
    # locked now: even the right password is not evaluated
    ok_before = _checks("ok")
    right = await idp.login(email)
    assert right.status_code == 429 and int(right.headers["retry-after"]) > 0
    assert right.json()["type"].endswith("/account-locked")
    assert _checks("ok") == ok_before


async def test_lockout_expires_then_backs_off(idp_factory: Any, unique: str) -> None:
    idp = await idp_factory(max_failed_logins=3, lockout_base_s=1, lockout_max_s=60)
    s = await idp.signup(unique)
    email = s["user"]["email"]
    for _ in range(3):
        assert (await idp.login(email, "Wrong-password-1")).status_code == 401
    first = await idp.login(email)
    assert first.status_code == 429
    await asyncio.sleep(1.1)
    # second lockout in a row lasts twice as long
    for _ in range(3):
        assert (await idp.login(email, "Wrong-password-1")).status_code == 401
    locked = await idp.login(email)
    assert locked.status_code == 429 and locked.json()["retry_after_s"] == 2
    await asyncio.sleep(2.1)
    ok = await idp.login(email)
    assert ok.status_code == 200, ok.text
    audit = await idp.http.get(
        f"/v1/orgs/{s['org']['id']}/audit-log",
        params={"limit": 200},
        headers=await idp.as_user(ok.json()),
    )
    types = [e["type"] for e in audit.json()["items"]]
    assert types.count("user.locked_out") == 2 and types.count("login.failed") == 6


async def test_rotation_old_and_new_tokens_both_verify(idp_factory: Any, unique: str) -> None:
    a = await idp_factory()
    b = await idp_factory()  # a second replica on the same database
    s = await a.signup(unique)
    jwks1 = await a.jwks()
    kid1 = jwks1["keys"][0]["kid"]
    r = await a.http.post("/internal/v1/signing-keys/rotate", headers=a.as_service())
    assert r.status_code == 200
    kid2 = r.json()["kid"]
    assert kid2 != kid1
    assert (await a.http.post("/internal/v1/signing-keys/rotate")).status_code == 401

    after = await b.login(s["user"]["email"])  # the other replica signs with the new key
    assert after.status_code == 200
    jwks2 = await b.jwks()
    assert {k["kid"] for k in jwks2["keys"]} >= {kid1, kid2}
    assert all(k["kty"] == "RSA" and k["alg"] == "RS256" and "d" not in k for k in jwks2["keys"])
    verifier = JwksVerifier(jwks2, a.settings.issuer, a.settings.audience)
    old_claims = verifier.verify(s["access_token"])
    new_claims = verifier.verify(after.json()["access_token"])
    assert old_claims["sub"] == new_claims["sub"]
    assert jwt.get_unverified_header(s["access_token"])["kid"] == kid1
    assert jwt.get_unverified_header(after.json()["access_token"])["kid"] == kid2


async def test_scheduled_style_rotation_prepublishes(idp: Any, unique: str) -> None:
    s = await idp.signup(unique)
    kid1 = jwt.get_unverified_header(s["access_token"])["kid"]
    r = await idp.http.post(
        "/internal/v1/signing-keys/rotate", params={"immediate": "false"}, headers=idp.as_service()
    )
    kid2 = r.json()["kid"]
    assert kid2 != kid1 and kid2 in {k["kid"] for k in (await idp.jwks())["keys"]}
    later = await idp.login(s["user"]["email"])
    assert jwt.get_unverified_header(later.json()["access_token"])["kid"] == kid1


async def test_password_hash_is_upgraded_when_parameters_change(
    idp_factory: Any, unique: str
) -> None:
    weak = await idp_factory(argon2_memory_kib=256)
    s = await weak.signup(unique)
    strong = await idp_factory(argon2_memory_kib=512)  # same database, new parameters
    assert (await strong.login(s["user"]["email"])).status_code == 200
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(strong.settings.mongodb_url)
    try:
        doc = await client[strong.settings.mongodb_database]["users"].find_one(
            {"_id": s["user"]["id"]}
        )
    finally:
        await client.close()
    assert doc is not None and "m=512," in doc["password_hash"]
    assert (await weak.login(s["user"]["email"])).status_code == 200  # still verifies


async def test_events_emitted_to_identity_topic(idp_factory: Any, unique: str) -> None:
    idp = await idp_factory(relay_enabled=True)
    owner = await idp.signup(unique)
    org = owner["org"]["id"]
    h = await idp.as_user(owner)
    key = await idp.http.post("/v1/api-keys", json={"name": "k", "scopes": ["gpu:jobs"]}, headers=h)
    await idp.http.delete(f"/v1/api-keys/{key.json()['id']}", headers=h)
    inv = await idp.http.post(
        f"/v1/orgs/{org}/invitations",
        json={"email": f"v.{unique}@example.com", "role": "viewer"},
        headers=h,
    )
    acc = await idp.http.post(
        "/v1/auth/invitations/accept",
        json={"token": inv.json()["token"], "password": "Viewer-pass-2024"},
    )
    viewer_id = acc.json()["user"]["id"]
    await idp.http.patch(f"/v1/orgs/{org}/members/{viewer_id}", json={"role": "billing"}, headers=h)
    await idp.http.delete(f"/v1/orgs/{org}/members/{viewer_id}", headers=h)
    for _ in range(5):
        await idp.login(owner["user"]["email"], "Wrong-password-99")

    consumer = AIOKafkaConsumer(
        topics.IDENTITY.name,
        bootstrap_servers=idp.settings.kafka_bootstrap_servers,
        group_id=f"test-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    wanted = {
        "OrgCreated",
        "UserCreated",
        "MemberAdded",
        "ApiKeyCreated",
        "ApiKeyRevoked",
        "RoleChanged",
        "MemberRemoved",
        "UserLockedOut",
    }
    seen: dict[str, list[Any]] = {}
    deadline = time.monotonic() + 30
    try:
        while not wanted <= seen.keys() and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for tp, records in batch.items():
                for rec in records:
                    e = decode_record(
                        tp.topic, tp.partition, rec.offset, rec.key, rec.value, rec.headers
                    )
                    if e.org_id == org:
                        seen.setdefault(e.type.rsplit(".", 1)[-1], []).append(e)
    finally:
        await consumer.stop()
    assert wanted <= seen.keys(), sorted(seen)
    assert len(seen["OrgCreated"]) == 1
    created = seen["OrgCreated"][0]
    assert created.message.org_id == org and created.key == org
    assert created.message.owner_user_id == owner["user"]["id"]
    assert created.message.billing_email == owner["user"]["email"]
    assert created.source == "qlp/identity"
    locked = seen["UserLockedOut"][0].message
    assert locked.user_id == owner["user"]["id"] and locked.failed_attempts == 5
    emails = {e.message.email for e in seen["UserCreated"]}
    assert owner["user"]["email"] in emails
