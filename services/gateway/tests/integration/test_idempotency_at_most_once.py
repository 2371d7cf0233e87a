"""Idempotency-Key: a request that may have reached the service never runs twice
(see keyed_env.py for the gateway and fake upstream these tests run against)."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest

from qlp_gateway import idempotency as idem
from qlp_gateway import idempotent_proxy
from qlp_gateway.repository import IdempotencyRepository
from qlp_kit.mongo import utcnow

from .fakes import FAKE_IDENTITY
from .fakes_idempotency import STATE
from .keyed_env import BASE, LOCK_S, TIMEOUT_S, Env, client, env, records
from .keyed_env import conflict as _conflict
from .keyed_env import problem as _problem
from .keyed_env import tag as _tag
from .keyed_env import until as _until

pytestmark = pytest.mark.integration
__all__ = ["client", "env", "records"]


# -- item 7: never twice once it may have reached the service ----------------------


async def test_timeout_after_the_service_got_the_request_is_never_rerun(
    env: Env, client: httpx.AsyncClient
) -> None:
    tag, key = _tag(), f"k-{uuid.uuid4().hex}"
    auth = env.auth(env.org(), key)
    params = {"tag": tag, "sleep": str(TIMEOUT_S + 1.5)}
    _problem(await client.post(f"{BASE}/slow", params=params, headers=auth), 504)
    assert STATE.arrived[tag] == 1
    # The service is still working on it: the retry must not send it again.
    _conflict(await client.post(f"{BASE}/slow", params=params, headers=auth), "")
    await _until(lambda: STATE.executed[tag] == 1, "the slow request never finished")
    # It executed, but the gateway never learnt its answer: still refused, never rerun,
    # also past the lock time.
    await asyncio.sleep(LOCK_S + 0.2)
    body = _conflict(
        await client.post(f"{BASE}/slow", params=params, headers=auth),
        "idempotency-outcome-unknown",
    )
    assert "not executed again" in body["detail"]
    assert STATE.arrived[tag] == 1 and STATE.executed[tag] == 1


async def test_answer_that_breaks_off_is_never_rerun(env: Env, client: httpx.AsyncClient) -> None:
    tag, key = _tag(), f"k-{uuid.uuid4().hex}"
    auth = env.auth(env.org(), key)
    first = await client.post(f"{BASE}/broken", params={"tag": tag}, headers=auth)
    _problem(first, 502)
    for _ in range(2):
        _conflict(
            await client.post(f"{BASE}/broken", params={"tag": tag}, headers=auth),
            "idempotency-outcome-unknown",
        )
    assert STATE.arrived[tag] == 1 and STATE.executed[tag] == 1


async def test_client_that_disconnects_gets_the_stored_answer_on_retry(
    env: Env, client: httpx.AsyncClient
) -> None:
    tag, key = _tag(), f"k-{uuid.uuid4().hex}"
    auth = env.auth(env.org(), key)
    params = {"tag": tag, "sleep": "0.8"}
    with pytest.raises(httpx.ReadTimeout):  # the client gives up and hangs up
        await client.post(f"{BASE}/slow", params=params, headers=auth, timeout=0.3)
    await _until(lambda: STATE.executed[tag] == 1, "the request never executed")
    # The exchange went on without the client: its answer is stored and replayed.
    deadline = time.monotonic() + 30
    while True:
        again = await client.post(f"{BASE}/slow", params=params, headers=auth)
        if again.status_code != 409:
            break
        assert time.monotonic() < deadline, again.text
        await asyncio.sleep(0.1)
    assert again.status_code == 201, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["tag"] == tag
    assert STATE.arrived[tag] == 1 and STATE.executed[tag] == 1


async def test_failed_store_of_the_answer_is_never_taken_over(
    env: Env, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken_complete(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the database refuses the write")

    monkeypatch.setattr(idempotent_proxy, "COMPLETE_BACKOFF_S", (0.01, 0.01))
    monkeypatch.setattr(IdempotencyRepository, "complete", broken_complete)
    tag, key = _tag(), f"k-{uuid.uuid4().hex}"
    auth = env.auth(env.org(), key)
    first = await client.post(f"{BASE}/create", params={"tag": tag}, headers=auth)
    assert first.status_code == 201, first.text  # the client still gets its answer
    monkeypatch.undo()
    # The record could not be completed; it is never taken over and run again, not
    # even after the lock time.
    await asyncio.sleep(LOCK_S + 0.2)
    for _ in range(2):
        _conflict(
            await client.post(f"{BASE}/create", params={"tag": tag}, headers=auth),
            "idempotency-outcome-unknown",
        )
    assert STATE.arrived[tag] == 1 and STATE.executed[tag] == 1


async def test_store_of_the_answer_is_retried(
    env: Env, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = IdempotencyRepository.complete
    calls = 0

    async def flaky_complete(self: IdempotencyRepository, *args: Any) -> None:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise RuntimeError("transient write error")
        await real(self, *args)

    monkeypatch.setattr(idempotent_proxy, "COMPLETE_BACKOFF_S", (0.01, 0.01, 0.01))
    monkeypatch.setattr(IdempotencyRepository, "complete", flaky_complete)
    tag, key = _tag(), f"k-{uuid.uuid4().hex}"
    auth = env.auth(env.org(), key)
    first = await client.post(f"{BASE}/create", params={"tag": tag}, headers=auth)
    assert first.status_code == 201 and calls == 3
    monkeypatch.undo()
    again = await client.post(f"{BASE}/create", params={"tag": tag}, headers=auth)
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert STATE.executed[tag] == 1


async def test_request_that_never_left_the_gateway_releases_the_key(
    env: Env, client: httpx.AsyncClient, records: Any
) -> None:
    org, key = env.org(), f"k-{uuid.uuid4().hex}"
    auth = env.auth(org, key)
    for _ in range(2):  # connect refused: not sent, so the key is free again (503, not 409)
        _problem(await client.post("/v1/marketplace/listings", json={}, headers=auth), 503)
    assert await records.find_one({"_id": idem.record_id(org, "usr_fake", key)}) is None


async def test_stale_claim_that_was_never_sent_is_taken_over_but_a_sent_one_is_not(
    env: Env, client: httpx.AsyncClient, records: Any
) -> None:
    """A gateway that died after claiming but before sending left ``claimed``: taken
    over after the lock time. One that died after sending left ``sent``: never."""
    org = env.org()
    old = utcnow().replace(year=2020)
    fp_of = {}
    for state in (idem.CLAIMED, idem.SENT):
        tag, key = _tag(), f"k-{uuid.uuid4().hex}"
        path = f"{BASE}/create"
        fp = idem.fingerprint("POST", path, f"tag={tag}", b"")
        fp_of[state] = (tag, key)
        await records.insert_one(
            {
                "_id": idem.record_id(org, "usr_fake", key),
                "org_id": org,
                "subject": "usr_fake",
                "fingerprint": fp,
                "state": state,
                "token": "dead-gateway",
                "claimed_ms": idem.epoch_ms(old),
                "sent_ms": idem.epoch_ms(old) if state == idem.SENT else None,
                "created_at": utcnow(),
            }
        )
    tag, key = fp_of[idem.CLAIMED]
    taken = await client.post(f"{BASE}/create", params={"tag": tag}, headers=env.auth(org, key))
    assert taken.status_code == 201 and STATE.executed[tag] == 1
    tag, key = fp_of[idem.SENT]
    _conflict(
        await client.post(f"{BASE}/create", params={"tag": tag}, headers=env.auth(org, key)),
        "idempotency-outcome-unknown",
    )
    assert STATE.arrived[tag] == 0


async def test_records_are_per_principal_not_per_org(env: Env, client: httpx.AsyncClient) -> None:
    org, key, tag = env.org(), f"k-{uuid.uuid4().hex}", _tag()
    alice = env.auth(org, key, sub="usr_alice")
    first = await client.post(f"{BASE}/create", params={"tag": tag}, headers=alice)
    assert first.status_code == 201
    # Another user of the org with the same key never gets alice's answer (its secret).
    bob = await client.post(
        f"{BASE}/create", params={"tag": tag}, headers=env.auth(org, key, "usr_bob")
    )
    assert bob.status_code == 201 and "idempotent-replayed" not in bob.headers
    assert bob.json()["secret"] != first.json()["secret"]
    # Nor does an API key of the org.
    _, secret = FAKE_IDENTITY.add_api_key(org)
    by_key = await client.post(
        f"{BASE}/create",
        params={"tag": tag},
        headers={"Authorization": f"Bearer {secret}", "Idempotency-Key": key},
    )
    assert by_key.status_code == 201 and "idempotent-replayed" not in by_key.headers
    assert by_key.json()["secret"] not in (first.json()["secret"], bob.json()["secret"])
    # Alice's own retry replays hers.
    again = await client.post(f"{BASE}/create", params={"tag": tag}, headers=alice)
    assert again.headers["idempotent-replayed"] == "true" and again.json() == first.json()
    assert STATE.executed[tag] == 3


async def test_answer_too_large_to_store_is_not_rerun(env: Env, client: httpx.AsyncClient) -> None:
    tag, key = _tag(), f"k-{uuid.uuid4().hex}"
    auth = env.auth(env.org(), key)
    first = await client.post(f"{BASE}/big", params={"tag": tag}, headers=auth)
    assert first.status_code == 201 and len(first.content) > 4096
    body = _conflict(
        await client.post(f"{BASE}/big", params={"tag": tag}, headers=auth),
        "idempotency-response-not-stored",
    )
    assert body["executed_status"] == 201
    assert STATE.executed[tag] == 1


async def test_server_errors_of_the_service_are_stored_and_replayed(
    env: Env, client: httpx.AsyncClient
) -> None:
    """A 500 came after the endpoint started: it may have done part of its work, so a
    retry replays the 500 instead of running it again (use a new key to try again)."""
    tag, key = _tag(), f"k-{uuid.uuid4().hex}"
    auth = env.auth(env.org(), key)
    params = {"tag": tag, "code": "500"}
    first = await client.post(f"{BASE}/status", params=params, headers=auth)
    _problem(first, 500)
    again = await client.post(f"{BASE}/status", params=params, headers=auth)
    _problem(again, 500)
    assert again.headers["idempotent-replayed"] == "true"
    assert STATE.executed[tag] == 1


@pytest.mark.parametrize("step", ["claim", "mark_sent"])
async def test_store_down_before_sending_is_503_and_nothing_runs(
    env: Env, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    async def down(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the database is unreachable")

    monkeypatch.setattr(IdempotencyRepository, step, down)
    tag, key = _tag(), f"k-{uuid.uuid4().hex}"
    auth = env.auth(env.org(), key)
    refused = await client.post(f"{BASE}/create", params={"tag": tag}, headers=auth)
    _problem(refused, 503, "service-unavailable")
    assert refused.headers["retry-after"] == "1"
    assert STATE.arrived[tag] == 0
    monkeypatch.undo()
    # Nothing was sent, so nothing is held: the retry runs.
    ok = await client.post(f"{BASE}/create", params={"tag": tag}, headers=auth)
    assert ok.status_code == 201 and STATE.executed[tag] == 1


@pytest.mark.parametrize(
    ("state", "type_suffix"),
    [
        ("pending", "idempotency-outcome-unknown"),
        ("done", "idempotency-response-not-stored"),
    ],
)
async def test_records_of_the_former_org_scoped_layout_are_never_rerun(
    env: Env, client: httpx.AsyncClient, records: Any, state: str, type_suffix: str
) -> None:
    """Before the upgrade a record was ``<org>:<key>`` for the whole org; one left from
    then (up to 24 h) is neither replayed (whose was it?) nor run again."""
    org, tag, key = env.org(), _tag(), f"k-{uuid.uuid4().hex}"
    fp = idem.fingerprint("POST", f"{BASE}/create", f"tag={tag}", b"")
    legacy: dict[str, Any] = {
        "_id": f"{org}:{key}",
        "org_id": org,
        "key": key,
        "fingerprint": fp,
        "state": state,
        "claimed_at": utcnow(),
        "created_at": utcnow(),
    }
    if state == "done":
        legacy.update(status=201, headers="{}", body="e30=")
    await records.insert_one(legacy)
    auth = env.auth(org, key)
    for _ in range(2):
        _conflict(
            await client.post(f"{BASE}/create", params={"tag": tag}, headers=auth), type_suffix
        )
    assert STATE.arrived[tag] == 0
    # Another request under the same key is not that request: it runs.
    other = await client.post(f"{BASE}/create", params={"tag": tag, "n": "2"}, headers=auth)
    assert other.status_code == 201 and STATE.executed[tag] == 1
