"""A bought template feeds generation, through the gateway (services as processes):
org A publishes a template (a pattern pack), org B buys it, sees it in its patterns
and generates a T0 project from it (`template_listing_id`); the project passes its
gate and the listing shows 1 project built, 1 passed. Org C, which holds nothing,
is refused (404) and sees no pack."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from qlp_testing.flows import bearer, eventually, signup
from qlp_testing.templates import tiny_pack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

M = "/v1/marketplace"


async def _json(c: httpx.AsyncClient, path: str, auth: dict[str, str]) -> Any:
    r = await c.get(path, headers=auth)
    assert r.status_code == 200, r.text
    return r.json()


async def test_bought_template_generates_and_its_listing_shows_the_outcome(
    qlp_platform: Any,
) -> None:
    async with httpx.AsyncClient(base_url=qlp_platform.state.gateway_url, timeout=60) as c:
        a = bearer(await signup(c, "tpl-creator"))
        b = bearer(await signup(c, "tpl-buyer"))
        other = bearer(await signup(c, "tpl-other"))
        r = await c.post(
            f"{M}/listings",
            json={
                "kind": "template",
                "title": "Tiny service template",
                "summary": "A one-module service with its own test.",
                "description": "Generate a small service from your blueprint; its test passes.",
                "category": "api",
                "tags": ["python"],
                "license": "MIT",
                "price": {"amount": 900, "currency": "USD"},
            },
            headers=a,
        )
        assert r.status_code == 201, r.text
        lid = r.json()["id"]
        r = await c.post(
            f"{M}/listings/{lid}/versions",
            params={"version": "1.0.0", "changelog": "first"},
            content=tiny_pack(),
            headers={**a, "content-type": "application/gzip"},
        )
        assert r.status_code == 201, r.text
        assert (await c.post(f"{M}/listings/{lid}/publish", headers=a)).status_code == 200

        # B buys it (prepaid credits pay for it)
        await eventually(
            lambda: _json(c, "/v1/billing/subscription", b), lambda s: s["plan"] == "free"
        )
        r = await c.post(
            "/v1/billing/credits", json={"amount": {"amount": 5000, "currency": "USD"}}, headers=b
        )
        assert r.status_code == 201, r.text
        r = await c.post(f"{M}/purchases", json={"listing_id": lid}, headers=b)
        assert r.status_code in (201, 202), r.text
        pid = r.json()["id"]
        await eventually(
            lambda: _json(c, f"{M}/purchases/{pid}", b),
            lambda p: p["status"] == "paid",
            what="paid",
        )

        def packs(body: Any) -> list[Any]:
            return [i for i in body["items"] if i.get("listing_id") == lid]

        # the entitlement reached generation: the pack is B's (and nobody else's)
        await eventually(lambda: _json(c, "/v1/patterns", b), lambda p: bool(packs(p)))
        assert packs(await _json(c, "/v1/patterns", other)) == []

        gen = {"prompt": "a CRM for a small agency", "tier": "T0", "template_listing_id": lid}
        r = await c.post("/v1/generations", json=gen, headers=other)
        assert r.status_code == 404, r.text
        r = await c.post("/v1/generations", json=gen, headers=b)
        assert r.status_code == 202, r.text
        assert lid in r.json()["blueprint"]["explanation"]
        done = await eventually(
            lambda: _json(c, f"/v1/generations/{r.json()['id']}", b),
            lambda g: g["status"] in ("completed", "failed"),
            timeout=240,
            what="generation finished",
        )
        assert done["status"] == "completed" and done["gate"]["passed"], done
        assert done["template"] == {"listing_id": lid, "version": "1.0.0"}

        listing = await eventually(
            lambda: _json(c, f"{M}/listings/{lid}", a),
            lambda d: d["template_outcomes"]["projects_built"] == 1,
            what="outcome on the listing",
        )
        assert listing["template_outcomes"] == {
            "projects_built": 1,
            "projects_passed": 1,
            "gate_pass_rate_bps": 10000,
        }
