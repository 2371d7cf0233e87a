"""The gateway's /docs and /redoc work without internet: every script, stylesheet and
icon the pages load is served by the gateway itself (fetched here: 200, right content
type), none is external, nothing runs inline, and a strict CSP is sent. See
keyed_env.py for the gateway."""

from __future__ import annotations

import httpx
import pytest

from qlp_testing.pages import CONTENT_TYPES, csp_directives, page_refs

from .keyed_env import Env, client, env

pytestmark = pytest.mark.integration
__all__ = ["client", "env"]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_through_the_gateway_load_only_platform_assets(
    env: Env, client: httpx.AsyncClient, page: str
) -> None:
    r = await client.get(page)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = csp_directives(r.headers["content-security-policy"])
    assert csp["default-src"] == "'self'"
    assert csp["script-src"] == "'self'"  # no inline or external script
    assert "unsafe-eval" not in r.headers["content-security-policy"]
    assert "http://" not in r.text and "https://" not in r.text
    refs = page_refs(r.text)
    assert refs.inline_scripts == 0 and refs.inline_handlers == []
    scripts = [u for u in refs.urls if u.endswith(".js")]
    assert len(scripts) == 2 and any(u.endswith("-init.js") for u in scripts)
    for url in refs.urls:
        assert url.startswith("/") and not url.startswith("//"), url
        asset = await client.get(url)
        assert asset.status_code == 200, url
        ext = url[url.rindex(".") :]
        assert asset.headers["content-type"].startswith(CONTENT_TYPES[ext]), url
        assert "max-age" in asset.headers["cache-control"]
    # The page points at the merged public document, which the gateway serves too.
    assert 'data-openapi-url="/openapi.json"' in r.text
    doc = (await client.get("/openapi.json")).json()
    assert doc["info"]["title"] == "QuantumLayer Platform API"
