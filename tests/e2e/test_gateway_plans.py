"""Through the gateway: an org's rate limit follows its billing plan. Sign-up puts the
org on Free; changing the plan in billing emits SubscriptionChanged, which the gateway
consumes, and the org's quota in RateLimit-Policy rises accordingly."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.e2e


def _org_quota(policy: str) -> int:
    """``q`` of the org's item in ``RateLimit-Policy: "default";q=<quota>;w=60, ...``."""
    org = next(item for item in policy.split(",") if item.strip().startswith('"default"'))
    return int(org.split(";q=", 1)[1].split(";", 1)[0])


async def test_plan_upgrade_raises_the_rate_limit(qlp_platform: Any) -> None:
    if "billing" not in qlp_platform.state.services:
        pytest.skip("billing is not part of this platform run (QLP_E2E_SERVICES)")
    async with httpx.AsyncClient(base_url=qlp_platform.state.gateway_url, timeout=30) as client:
        signup = await client.post(
            "/v1/auth/signup",
            json={
                "org_name": "Gateway plans",
                "email": f"gw-plan-{uuid.uuid4().hex[:10]}@example.com",
                "password": "correct horse battery staple 42",
            },
        )
        assert signup.status_code == 201, signup.text
        auth = {"Authorization": f"Bearer {signup.json()['access_token']}"}
        me = await client.get("/v1/me", headers=auth)
        assert me.status_code == 200, me.text
        free_limit = _org_quota(me.headers["ratelimit-policy"])

        # an upgrade is paid for: prepaid credits first (else 402)
        credits = await client.post(
            "/v1/billing/credits", json={"amount": {"amount": 50_000}}, headers=auth
        )
        assert credits.status_code == 201, credits.text
        change = await client.put(
            "/v1/billing/subscription", json={"plan": "professional"}, headers=auth
        )
        assert change.status_code == 200, change.text

        deadline = time.monotonic() + 60
        while True:
            me = await client.get("/v1/me", headers=auth)
            assert me.status_code == 200, me.text
            if _org_quota(me.headers["ratelimit-policy"]) > free_limit:
                break
            assert time.monotonic() < deadline, "the plan change never reached the gateway"
            await asyncio.sleep(0.5)
