"""Idempotency-Key: an answer given before the endpoint executed is not stored, so the
key stays usable (Stripe's rule). The kit marks validation failures with the internal
``x-qlp-not-executed`` header; 401/403/429 are never stored either. See keyed_env.py
for the gateway and the fake upstream."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from qlp_kit.problems import NOT_EXECUTED_HEADER

from .fakes import FAKE_IDENTITY
from .fakes_idempotency import STATE
from .keyed_env import BASE, KEY_PER_MINUTE, Env, client, env, problem, tag

pytestmark = pytest.mark.integration
__all__ = ["client", "env"]

VALIDATED = f"{BASE}/validated"


async def test_invalid_then_corrected_request_under_the_same_key_is_processed(
    env: Env, client: httpx.AsyncClient
) -> None:
    t, key = tag(), f"k-{uuid.uuid4().hex}"
    auth = env.auth(env.org(), key)
    for _ in range(2):  # the same invalid request twice: validated both times
        bad = await client.post(VALIDATED, params={"tag": t}, json={"name": ""}, headers=auth)
        body = problem(bad, 422, "validation-error")
        assert body["errors"]
        assert NOT_EXECUTED_HEADER not in bad.headers  # internal: never reaches the client
        assert "idempotent-replayed" not in bad.headers
    fixed = await client.post(
        VALIDATED, params={"tag": t}, json={"name": "a", "size": 1}, headers=auth
    )
    assert fixed.status_code == 201, fixed.text
    assert fixed.json()["name"] == "a" and "idempotent-replayed" not in fixed.headers
    again = await client.post(
        VALIDATED, params={"tag": t}, json={"name": "a", "size": 1}, headers=auth
    )
    assert again.headers["idempotent-replayed"] == "true" and again.json() == fixed.json()
    assert STATE.executed[t] == 1


async def test_valid_then_invalid_request_under_the_same_key_is_a_key_mismatch(
    env: Env, client: httpx.AsyncClient
) -> None:
    t, key = tag(), f"k-{uuid.uuid4().hex}"
    auth = env.auth(env.org(), key)
    first = await client.post(
        VALIDATED, params={"tag": t}, json={"name": "a", "size": 1}, headers=auth
    )
    assert first.status_code == 201
    bad = await client.post(VALIDATED, params={"tag": t}, json={"name": ""}, headers=auth)
    problem(bad, 422, "idempotency-key-mismatch")
    again = await client.post(
        VALIDATED, params={"tag": t}, json={"name": "a", "size": 1}, headers=auth
    )
    assert again.headers["idempotent-replayed"] == "true" and again.json() == first.json()
    assert STATE.executed[t] == 1


async def test_unstorable_input_refused_by_the_kit_does_not_use_up_the_key(
    env: Env, client: httpx.AsyncClient
) -> None:
    t, key = tag(), f"k-{uuid.uuid4().hex}"
    auth = env.auth(env.org(), key)
    bad = await client.post(
        VALIDATED, params={"tag": t}, json={"name": "a", "size": 2**70}, headers=auth
    )
    problem(bad, 422, "unstorable-value")
    assert NOT_EXECUTED_HEADER not in bad.headers
    fixed = await client.post(
        VALIDATED, params={"tag": t}, json={"name": "a", "size": 2}, headers=auth
    )
    assert fixed.status_code == 201, fixed.text


@pytest.mark.parametrize("code", [401, 403, 429])
async def test_refusals_of_the_service_are_not_stored(
    env: Env, client: httpx.AsyncClient, code: int
) -> None:
    t, key = tag(), f"k-{uuid.uuid4().hex}"
    auth = env.auth(env.org(), key)
    for n in (1, 2):
        r = await client.post(f"{BASE}/status", params={"tag": t, "code": code}, headers=auth)
        problem(r, code)
        assert "idempotent-replayed" not in r.headers
        assert STATE.arrived[t] == n  # asked again, not replayed


async def test_a_service_may_mark_any_refusal_as_not_executed(
    env: Env, client: httpx.AsyncClient
) -> None:
    t, key = tag(), f"k-{uuid.uuid4().hex}"
    auth = env.auth(env.org(), key)
    for n in (1, 2):
        r = await client.post(f"{BASE}/before-execution", params={"tag": t}, headers=auth)
        problem(r, 409)
        assert NOT_EXECUTED_HEADER not in r.headers
        assert STATE.arrived[t] == n


async def test_refusals_of_the_gateway_do_not_claim_the_key(
    env: Env, client: httpx.AsyncClient
) -> None:
    t, key = tag(), f"k-{uuid.uuid4().hex}"
    org = env.org()
    # 401: a bad token with the key, then the real caller with it.
    bad = {"Authorization": "Bearer qlp_not_a_key", "Idempotency-Key": key}
    problem(await client.post(f"{BASE}/create", params={"tag": t}, headers=bad), 401)
    ok = await client.post(f"{BASE}/create", params={"tag": t}, headers=env.auth(org, key))
    assert ok.status_code == 201 and "idempotent-replayed" not in ok.headers
    # 429: an API key whose bucket (60/min here) is empty, then a token later.
    _, secret = FAKE_IDENTITY.add_api_key(org)
    key2, t2 = f"k-{uuid.uuid4().hex}", tag()
    headers = {"Authorization": f"Bearer {secret}", "Idempotency-Key": key2}
    for _ in range(KEY_PER_MINUTE + 5):
        r = await client.post(f"{BASE}/create", params={"tag": t2}, headers=headers)
        if r.status_code == 429:
            break
    problem(r, 429, "rate-limited")
    assert "idempotent-replayed" not in r.headers
    executed = STATE.executed[t2]  # the first request executed (once), the rest replayed
    assert executed == 1
    # With a fresh key, refused by the limit, then (a token later) processed.
    # (a token may come back between emptying the bucket and the keyed request on a
    # slow machine: then that key was used up, and the next try takes a fresh one)
    plain = {"Authorization": f"Bearer {secret}"}
    for _ in range(10):
        for _ in range(KEY_PER_MINUTE + 5):
            if (
                await client.post(f"{BASE}/create", params={"tag": tag()}, headers=plain)
            ).status_code == 429:
                break
        key3, t3 = f"k-{uuid.uuid4().hex}", tag()
        headers["Idempotency-Key"] = key3
        first = await client.post(f"{BASE}/create", params={"tag": t3}, headers=headers)
        if first.status_code == 429:
            break
    problem(first, 429)
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        await asyncio.sleep(0.5)
        r = await client.post(f"{BASE}/create", params={"tag": t3}, headers=headers)
        if r.status_code != 429:
            break
        assert asyncio.get_running_loop().time() < deadline, "no token came back"
    assert r.status_code == 201 and "idempotent-replayed" not in r.headers
    assert STATE.executed[t3] == 1
