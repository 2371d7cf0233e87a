"""Operators read consumer lag and dead letters of every service's groups through the
gateway (the whole platform as processes, like `make up`): platform admins only; the
numbers come from the real broker; the routes are in the merged OpenAPI."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import pytest

from qlp_contracts.topics import IDENTITY
from qlp_kit.auth import Principal
from qlp_kit.consumer_admin import CONSUMER_SERVICES
from qlp_testing.flows import PASSWORD, bearer, eventually, signup
from qlp_testing.principals import PrincipalAuth

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

QLPCTL = Principal(org_id="platform", subject="svc_qlpctl", kind="service")


async def _grant(platform: Any, email: str) -> None:
    url = platform.state.services["identity"]["url"]
    async with httpx.AsyncClient(
        base_url=str(url), auth=PrincipalAuth("e2e-internal-secret", QLPCTL), timeout=30
    ) as c:
        r = await c.put(f"/internal/v1/platform-admins/{quote(email)}")
    assert r.status_code == 200 and r.json()["platform_admin"] is True, r.text


async def test_consumer_lag_and_dead_letters_of_every_service(qlp_platform: Any) -> None:
    async with httpx.AsyncClient(base_url=qlp_platform.state.gateway_url, timeout=60) as c:
        customer = await signup(c, "lag customer")
        olga = await signup(c, "lag operator")
        await _grant(qlp_platform, olga["user"]["email"])
        login = await c.post(
            "/v1/auth/login", json={"email": olga["user"]["email"], "password": PASSWORD}
        )
        assert login.status_code == 200 and login.json()["platform_admin"] is True, login.text
        admin = bearer(login.json())

        for service in CONSUMER_SERVICES:
            path = f"/v1/admin/consumers/{service}"
            refused = await c.get(path, headers=bearer(customer))
            assert refused.status_code == 403, (service, refused.text)
            assert refused.headers["content-type"].startswith("application/problem+json")
            assert (await c.get(path)).status_code == 401, service

            r = await c.get(path, headers=admin)
            assert r.status_code == 200, (service, r.text)
            body = r.json()
            assert body["service"] == service and body["replica"], body
            assert body["groups"], f"{service} reports no consumer groups"
            for g in body["groups"]:
                assert g["topics"], g  # every group reads a provisioned topic
                assert g["lag"] == sum(t["lag"] for t in g["topics"]) >= 0
                assert 0 <= g["not_replayed"] <= g["dead_letters"], g
            if service == "gateway":
                assert r.headers["ratelimit"].startswith('"default";r='), r.headers
                put = await c.put(path, headers=admin)  # its own route: not a proxied 503
                assert put.status_code == 405 and put.headers["allow"] == "GET", put.text

        # billing follows identity's sign-ups: its group on the identity topic catches up
        async def billing() -> dict[str, Any]:
            r = await c.get("/v1/admin/consumers/billing", headers=admin)
            assert r.status_code == 200, r.text
            out: dict[str, Any] = r.json()
            return out

        def identity_read(b: dict[str, Any]) -> list[int]:
            return [
                t["lag"] for g in b["groups"] for t in g["topics"] if t["topic"] == IDENTITY.name
            ]

        caught_up = await eventually(
            billing, lambda b: identity_read(b) == [0] * len(identity_read(b)) != [],
            timeout=90, what="billing caught up with identity's events",
        )  # fmt: skip
        assert caught_up["measured_at_ms"] > 0

        doc = (await c.get("/openapi.json")).json()
        for service in CONSUMER_SERVICES:
            op = doc["paths"][f"/v1/admin/consumers/{service}"]["get"]
            assert "Platform admin" in op["tags"], (service, op)
