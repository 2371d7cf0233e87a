from __future__ import annotations

import json

import httpx
import pytest

from qlp_gateway.authn import ApiKeyVerifier, bearer_token
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
