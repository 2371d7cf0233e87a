"""A new user's first hour with billing, through the gateway (services as processes):
plans and prices without a token, money input that says how it is meant, a plan
change previewed and refused with 402 until it can be paid, and an invoice opened in
a browser from a signed link without a bearer header."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from qlp_testing.flows import bearer, eventually, signup

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

HINT = "amount is an integer in minor units (cents): 50.00 USD is 5000"


def _needs_billing(platform: Any) -> None:
    if "billing" not in platform.state.services:
        pytest.skip("billing is not part of this platform run (QLP_E2E_SERVICES)")


async def test_plans_and_prices_need_no_token(qlp_platform: Any) -> None:
    _needs_billing(qlp_platform)
    async with httpx.AsyncClient(base_url=qlp_platform.state.gateway_url, timeout=30) as c:
        r = await c.get("/v1/billing/plans")
        assert r.status_code == 200, r.text
        assert [p["id"] for p in r.json()["items"]] == [
            "free",
            "starter",
            "professional",
            "enterprise",
        ]
        r = await c.get("/v1/billing/plans/Starter")
        assert r.status_code == 200 and r.json()["price"] == {"amount": 9_900, "currency": "USD"}
        r = await c.get("/v1/billing/plans/gold")
        assert r.status_code == 404 and r.json()["plans"][0] == "free"
        # everything else of billing still needs a caller
        assert (await c.get("/v1/billing/subscription")).status_code == 401


async def test_money_input_and_paying_for_an_upgrade(qlp_platform: Any) -> None:
    _needs_billing(qlp_platform)
    async with httpx.AsyncClient(base_url=qlp_platform.state.gateway_url, timeout=30) as c:
        auth = bearer(await signup(c, "first-hour-money"))
        await eventually(
            lambda: c.get("/v1/billing/subscription", headers=auth),
            lambda r: r.status_code == 200 and r.json()["plan"] == "free",
            what="the Free subscription",
        )
        r = await c.post(
            "/v1/billing/credits",
            content=b'{"amount": {"amount": 50',
            headers={**auth, "content-type": "application/json"},
        )
        assert r.status_code == 400, r.text
        assert r.json()["title"] == "Malformed JSON"
        for bad in ("50.00", 50.5):
            r = await c.post("/v1/billing/credits", json={"amount": {"amount": bad}}, headers=auth)
            assert r.status_code == 422, r.text
            assert r.json()["detail"] == f"amount.amount: {HINT}"
            assert r.json()["errors"][0]["loc"] == ["body", "amount", "amount"]
        r = await c.post(
            "/v1/billing/credits",
            json={"amount": {"amount": 5000, "currency": "EUR"}},
            headers=auth,
        )
        assert r.status_code == 422 and "settles USD" in r.json()["detail"]

        r = await c.get("/v1/billing/subscription/preview?plan=STARTER", headers=auth)
        assert r.status_code == 200, r.text
        preview = r.json()
        assert preview["effect"] == "now" and preview["payable"] is False
        due = preview["amount_due_now"]["amount"]
        assert 0 < due <= 9_900 and preview["lines"]
        r = await c.put("/v1/billing/subscription", json={"plan": "Starter"}, headers=auth)
        assert r.status_code == 402, r.text
        problem = r.json()
        assert r.headers["content-type"].startswith("application/problem+json")
        assert "POST /v1/billing/credits" in problem["detail"]
        assert problem["shortfall"]["amount"] >= due - 1  # a second later: a cent less
        r = await c.put("/v1/billing/subscription", json={"plan": "gold"}, headers=auth)
        assert r.status_code == 422 and "free, starter, professional, enterprise" in r.text

        r = await c.post("/v1/billing/credits", json={"amount": {"amount": 10_000}}, headers=auth)
        assert r.status_code == 201, r.text
        r = await c.put("/v1/billing/subscription", json={"plan": "Starter"}, headers=auth)
        assert r.status_code == 200 and r.json()["plan"] == "starter"


async def test_invoice_opens_from_a_signed_link_without_a_bearer(qlp_platform: Any) -> None:
    _needs_billing(qlp_platform)
    async with httpx.AsyncClient(base_url=qlp_platform.state.gateway_url, timeout=30) as c:
        tokens = await signup(c, "first-hour-invoice")
        auth = bearer(tokens)
        org_name = "E2E first-hour-invoice"
        # the org's name from identity is who the invoice is addressed to
        await eventually(
            lambda: c.get("/v1/billing/profile", headers=auth),
            lambda r: r.status_code == 200 and r.json()["name"] == org_name,
            what="the org's name in its billing profile",
        )
        r = await c.put(
            "/v1/billing/profile",
            json={"name": org_name, "address": {"line1": "1 Main Street", "city": "Porto"}},
            headers=auth,
        )
        assert r.status_code == 200, r.text
        r = await c.get("/v1/billing/invoices/upcoming", headers=auth)
        inv = r.json()
        assert inv["bill_to"]["name"] == org_name and inv["issuer"]["name"]
        assert inv["lines"][0]["description"] == "Free plan, monthly subscription"
        r = await c.get("/v1/billing/invoices/upcoming/html", headers=auth)
        assert r.status_code == 200 and "1 Main Street" in r.text

        r = await c.post("/v1/billing/invoices/upcoming/link", headers=auth)
        assert r.status_code == 201, r.text
        url = r.json()["url"]
        assert url.startswith("/v1/billing/shared/invoices/upcoming?")
    # a browser: no bearer header, no cookies
    async with httpx.AsyncClient(base_url=qlp_platform.state.gateway_url, timeout=30) as browser:
        r = await browser.get(url)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/html")
        assert org_name in r.text and "Porto" in r.text
        parts = urlsplit(url)
        q = {k: v[0] for k, v in parse_qs(parts.query).items()}
        r = await browser.get(f"{parts.path}?org={q['org']}&exp={q['exp']}&sig={'0' * 64}")
        assert r.status_code == 403 and "ask for a new one" in r.text
        r = await browser.get(f"{parts.path}?org={q['org']}&exp=1000&sig={q['sig']}")
        assert r.status_code == 403
        r = await browser.get(f"/v1/billing/shared/invoices/upcoming?org={q['org']}")
        assert r.status_code == 403 and "incomplete" in r.text
