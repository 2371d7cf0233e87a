"""Billing through the gateway (services as processes): sign-up opens a Free
subscription (billing consumes identity's OrgCreated), an upgrade takes effect at
once and changes the quotas; credits and the balance; tenant isolation."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from qlp_testing.flows import bearer, signup

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

PASSWORD = "E2e-billing-pass-42"


async def _signup(c: httpx.AsyncClient, who: str) -> dict[str, Any]:
    return await signup(c, who, PASSWORD)


_bearer = bearer


async def _until(c: httpx.AsyncClient, path: str, headers: dict[str, str], pred: Any) -> Any:
    deadline = time.monotonic() + 60
    last: Any = None
    while time.monotonic() < deadline:
        r = await c.get(path, headers=headers)
        last = r
        if r.status_code == 200 and pred(r.json()):
            return r.json()
        await asyncio.sleep(0.3)
    raise AssertionError(f"{path}: condition not reached; last {last.status_code} {last.text}")


def _generations(quotas: dict[str, Any]) -> dict[str, Any]:
    return next(q for q in quotas["items"] if q["meter"] == "generations")


async def test_signup_free_then_upgrade_changes_quotas(qlp_platform: Any) -> None:
    async with httpx.AsyncClient(base_url=qlp_platform.state.gateway_url, timeout=30) as c:
        a = await _signup(c, "billing-a")
        auth = _bearer(a)
        sub = await _until(c, "/v1/billing/subscription", auth, lambda s: s["plan"] == "free")
        assert sub["org_id"] == a["org"]["id"]
        q = await _until(c, "/v1/billing/quotas", auth, lambda q: True)
        assert _generations(q)["limit"] == 10

        # an upgrade is paid for: prepaid credits first (else 402)
        r = await c.post("/v1/billing/credits", json={"amount": {"amount": 10_000}}, headers=auth)
        assert r.status_code == 201, r.text
        r = await c.put("/v1/billing/subscription", json={"plan": "starter"}, headers=auth)
        assert r.status_code == 200, r.text
        assert r.json()["plan"] == "starter"
        q = await _until(c, "/v1/billing/quotas", auth, lambda q: _generations(q)["limit"] == 100)
        assert _generations(q)["remaining"] == 100
        upcoming = (await c.get("/v1/billing/invoices/upcoming", headers=auth)).json()
        assert any(line["kind"] == "proration" for line in upcoming["lines"])

        r = await c.post(
            "/v1/billing/credits",
            json={"amount": {"amount": 2_500, "currency": "USD"}},
            headers=auth,
        )
        assert r.status_code == 201, r.text
        bal = (await c.get("/v1/billing/balance", headers=auth)).json()
        assert bal["balance"] == {"amount": 12_500, "currency": "USD"}

        # another tenant sees its own (Free) subscription and balance only
        b = await _signup(c, "billing-b")
        other = await _until(
            c, "/v1/billing/subscription", _bearer(b), lambda s: s["plan"] == "free"
        )
        assert other["org_id"] == b["org"]["id"]
        bal_b = (await c.get("/v1/billing/balance", headers=_bearer(b))).json()
        assert bal_b["balance"]["amount"] == 0
