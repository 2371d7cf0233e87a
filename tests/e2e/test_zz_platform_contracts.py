"""Platform-wide checks over every installed service, run after the other
end-to-end flows (the file name sorts last) so the tenant guard has seen their queries."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from qlp_testing.flows import tenant_guard_violations

pytestmark = pytest.mark.e2e


async def test_every_service_is_ready_and_publishes_asyncapi(qlp_platform: Any) -> None:
    async with httpx.AsyncClient(timeout=10) as c:
        for name, svc in qlp_platform.state.services.items():
            url = svc["url"]
            assert (await c.get(f"{url}/readyz")).status_code == 200, name
            doc = (await c.get(f"{url}/asyncapi.json")).json()
            assert doc.get("asyncapi", "").startswith(("2.", "3.")), name
            assert doc["info"]["title"] == f"qlp-{name}"


async def test_gateway_openapi_merges_every_service(qlp_platform: Any) -> None:
    gw = qlp_platform.state.gateway_url
    if gw is None:
        pytest.fail("no gateway installed")
    async with httpx.AsyncClient(timeout=10) as c:
        merged = (await c.get(f"{gw}/openapi.json")).json()
        paths = set(merged["paths"])
        for name, svc in qlp_platform.state.services.items():
            if name == "gateway":
                continue
            own = (await c.get(f"{svc['url']}/openapi.json")).json()
            public = {p for p in own["paths"] if p.startswith("/v1/")}
            assert public <= paths, f"{name}: {sorted(public - paths)[:5]} missing from the gateway"


async def test_no_query_crossed_a_tenant(qlp_platform: Any) -> None:
    """Every query on a tenant collection during the suite carried the tenant
    (``QLP_TENANT_GUARD`` is on for the test platform)."""
    bad: dict[str, list[str]] = {}
    async with httpx.AsyncClient(timeout=10) as c:
        for name, svc in qlp_platform.state.services.items():
            text = (await c.get(f"{svc['url']}/metrics")).text
            hits = tenant_guard_violations(text)
            if hits:
                bad[name] = hits
    assert not bad, bad
