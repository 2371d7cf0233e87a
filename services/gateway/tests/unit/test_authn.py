from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from qlp_gateway.authn import ANY_ORG, ApiKeyVerifier, Revocations, bearer_token, issued_ms
from qlp_kit.auth import verify_principal
from qlp_kit.problems import Problem

SECRET = "unit-secret"


def test_bearer_token_parsing() -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer  abc ") == "abc"
    for bad in (None, "", "Basic eDp5", "Bearer", "Bearer   "):
        with pytest.raises(Problem) as exc:
            bearer_token(bad)
        assert exc.value.status == 401
        assert exc.value.headers["WWW-Authenticate"].startswith('Bearer realm="qlp"')


def _verifier(handler: httpx.MockTransport) -> ApiKeyVerifier:
    client = httpx.AsyncClient(transport=handler)
    return ApiKeyVerifier(client, "http://identity", SECRET, ttl_s=30, negative_ttl_s=30)


async def test_api_key_answers_are_cached_and_the_gateway_signs_its_call() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        key = json.loads(request.content)["key"]
        if key == "qlp_good":
            return httpx.Response(
                200,
                json={
                    "org_id": "org_1",
                    "subject": "key_1",
                    "kind": "api_key",
                    "roles": [],
                    "scopes": ["generations:read"],
                    "user_id": "usr_1",
                },
            )
        return httpx.Response(401, json={"title": "no"})

    v = _verifier(httpx.MockTransport(answer))
    for _ in range(3):
        p = await v.verify("qlp_good")
        assert (p.org_id, p.subject, p.kind, p.scopes) == (
            "org_1",
            "key_1",
            "api_key",
            ["generations:read"],
        )
    for _ in range(3):
        with pytest.raises(Problem) as exc:
            await v.verify("qlp_bad")
        assert exc.value.status == 401
    assert len(seen) == 2  # one lookup each; the rest from the cache
    caller = verify_principal(
        {k.lower(): v for k, v in seen[0].headers.items()},
        SECRET,
        method="POST",
        target="/internal/v1/api-keys/verify",
    )
    assert (caller.kind, caller.subject) == ("service", "svc_gateway")
    assert seen[0].url.path == "/internal/v1/api-keys/verify"
    assert all("qlp_good" not in k for k in v._cache)  # only hashes are kept


async def test_identity_trouble_is_503_and_not_cached() -> None:
    calls = {"n": 0}

    def broken(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        return httpx.Response(500)

    v = _verifier(httpx.MockTransport(broken))
    for _ in range(2):
        with pytest.raises(Problem) as exc:
            await v.verify("qlp_any")
        assert exc.value.status == 503
    assert calls["n"] == 2

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    with pytest.raises(Problem) as exc:
        await _verifier(httpx.MockTransport(down)).verify("qlp_any")
    assert exc.value.status == 503
    no_identity = ApiKeyVerifier(httpx.AsyncClient(), None, SECRET)
    with pytest.raises(Problem) as exc:
        await no_identity.verify("qlp_any")
    assert exc.value.status == 503


async def test_unreachable_jwks_is_503_not_401() -> None:
    from qlp_gateway.authn import Authenticator
    from qlp_kit.jwt_verify import JwksCache, JwtVerifier

    async def down() -> dict[str, object]:
        raise ConnectionError("identity is down")

    verifier = JwtVerifier(JwksCache(fetcher=down), issuer="i", audience="a")
    auth = Authenticator(verifier, ApiKeyVerifier(httpx.AsyncClient(), None, SECRET))
    token = "eyJhbGciOiJFZERTQSIsImtpZCI6ImsxIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ1c3JfMSJ9.c2lnbmF0dXJl"
    with pytest.raises(Problem) as exc:
        await auth.authenticate(f"Bearer {token}")
    assert exc.value.status == 503


def _key_answer(expires_at: str | None = None, user_id: str = "usr_1") -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "org_id": "org_1",
            "subject": "key_1",
            "kind": "api_key",
            "roles": [],
            "scopes": ["gpu:jobs"],
            "user_id": user_id,
            "expires_at": expires_at,
        },
    )


async def test_cached_key_never_outlives_its_expiry() -> None:
    calls = {"n": 0}
    soon = (datetime.now(UTC) + timedelta(seconds=0.3)).isoformat()

    def answer(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] > 1:
            return httpx.Response(401, json={"title": "expired"})
        return _key_answer(soon)

    v = _verifier(httpx.MockTransport(answer))  # a TTL of 30 s
    await v.verify("qlp_k")
    await v.verify("qlp_k")
    assert calls["n"] == 1
    await asyncio.sleep(0.4)
    with pytest.raises(Problem) as exc:
        await v.verify("qlp_k")
    assert exc.value.status == 401 and calls["n"] == 2
    # An answer whose key has already expired is refused, not cached.
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    v2 = _verifier(httpx.MockTransport(lambda r: _key_answer(past)))
    with pytest.raises(Problem):
        await v2.verify("qlp_k")


async def test_invalidation_drops_entries_by_key_and_by_creator() -> None:
    calls = {"n": 0}

    def answer(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        return _key_answer()

    v = _verifier(httpx.MockTransport(answer))
    await v.verify("qlp_k")
    await v.verify("qlp_k")
    assert calls["n"] == 1
    v.forget_key("key_other")
    await v.verify("qlp_k")
    assert calls["n"] == 1
    v.forget_key("key_1")
    await v.verify("qlp_k")
    assert calls["n"] == 2
    v.forget_user("org_2", "usr_1")  # another org's user of the same id: untouched
    await v.verify("qlp_k")
    assert calls["n"] == 2
    v.forget_user("org_1", "usr_1")
    await v.verify("qlp_k")
    assert calls["n"] == 3


async def test_answer_fetched_across_an_invalidation_is_not_cached() -> None:
    calls = {"n": 0}
    holder: dict[str, ApiKeyVerifier] = {}

    def answer(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        holder["v"].forget_key("key_1")  # the revocation lands while identity answers
        return _key_answer()

    holder["v"] = v = _verifier(httpx.MockTransport(answer))
    await v.verify("qlp_k")
    await v.verify("qlp_k")
    assert calls["n"] == 2


def test_revocations_refuse_tokens_issued_before_the_change() -> None:
    r = Revocations(window_s=60)
    assert not r.outdated("org_1", "usr_1", 1_000)
    r.note("org_1", "usr_1", 5_000)
    r.note("org_1", "usr_1", 4_000)  # an older event changes nothing
    assert r.outdated("org_1", "usr_1", 4_999)
    assert not r.outdated("org_1", "usr_1", 5_000)
    assert not r.outdated("org_2", "usr_1", 1_000)
    r.prune(now_ms=5_000 + 61_000)
    assert not r.outdated("org_1", "usr_1", 1_000)
    assert issued_ms({"iat": 5, "iat_ms": 5_432}) == 5_432
    assert issued_ms({"iat": 5}) == 5_000
    assert issued_ms({}) == 0


def test_a_revoked_platform_role_outdates_the_users_tokens_in_every_org() -> None:
    r = Revocations(window_s=60)
    r.note(ANY_ORG, "usr_1", 5_000)
    assert r.outdated("org_1", "usr_1", 4_999) and r.outdated("org_2", "usr_1", 4_999)
    assert not r.outdated("org_1", "usr_1", 5_000)
    assert not r.outdated("org_1", "usr_2", 1_000)
