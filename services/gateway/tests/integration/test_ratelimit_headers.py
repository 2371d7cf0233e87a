"""Rate-limit headers through the gateway (IETF draft): ``RateLimit-Policy`` lists the
quota policies that apply, ``RateLimit`` the binding one's remaining units and reset
time; a refusal is 429 problem+json with ``Retry-After``. See keyed_env.py for the
gateway (API keys: 60 requests per minute there)."""

from __future__ import annotations

import re

import httpx
import pytest

from .fakes import FAKE_IDENTITY
from .keyed_env import BASE, KEY_PER_MINUTE, Env, client, env, problem, tag

pytestmark = pytest.mark.integration
__all__ = ["client", "env"]

LIMIT = re.compile(r'^"(?P<name>[a-z-]+)";r=(?P<r>\d+);t=(?P<t>\d+)$')
OLD = ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset", "x-ratelimit-limit")


def _limit(resp: httpx.Response) -> tuple[str, int, int]:
    m = LIMIT.match(resp.headers["ratelimit"])
    assert m, resp.headers["ratelimit"]
    return m["name"], int(m["r"]), int(m["t"])


async def test_api_key_bucket_counts_down_then_429_with_retry_after(
    env: Env, client: httpx.AsyncClient
) -> None:
    org = env.org()
    _, secret = FAKE_IDENTITY.add_api_key(org)
    auth = {"Authorization": f"Bearer {secret}"}
    policy = f'"default";q=6000;w=60, "api-key";q={KEY_PER_MINUTE};w=60'
    seen = []
    for _ in range(KEY_PER_MINUTE * 2):  # refill is one per second: never far past 60
        r = await client.post(f"{BASE}/create", params={"tag": tag()}, headers=auth)
        assert r.headers["ratelimit-policy"] == policy
        assert not any(h in r.headers for h in OLD)
        if r.status_code == 429:
            break
        assert r.status_code == 201
        name, remaining, reset = _limit(r)
        assert name == "api-key" and 1 <= reset <= 60
        seen.append(remaining)
    assert seen[0] == KEY_PER_MINUTE - 1 and min(seen) <= 1
    body = problem(r, 429, "rate-limited")
    assert "api-key" in body["detail"]
    assert int(r.headers["retry-after"]) >= 1
    assert _limit(r)[:2] == ("api-key", 0)
    # A user of the same org is bound by the org's bucket, which has plenty left.
    user = await client.post(
        f"{BASE}/create", params={"tag": tag()}, headers=env.auth(org, "k-user")
    )
    assert user.status_code == 201
    assert user.headers["ratelimit-policy"] == '"default";q=6000;w=60'
    assert _limit(user)[0] == "default"


async def test_anonymous_routes_have_their_own_policy(env: Env, client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/auth/login", json={})
    assert r.status_code == 200, r.text
    assert r.headers["ratelimit-policy"] == '"anonymous";q=600;w=60'
    assert _limit(r)[0] == "anonymous"
