"""/docs and /redoc of every service work offline: every script and stylesheet comes
from the service itself, the start-up code is a file, and a strict CSP is sent."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from qlp_kit.app import ServiceDefinition, create_app
from qlp_kit.docs import ASSETS, assets_version
from qlp_kit.settings import ServiceSettings
from qlp_testing.pages import CONTENT_TYPES, csp_directives, page_refs


@pytest.fixture
def client() -> TestClient:
    settings = ServiceSettings.model_validate(
        {"kafka_bootstrap_servers": "127.0.0.1:9", "mongodb_url": "mongodb://127.0.0.1:9"}
    )
    app = create_app(ServiceDefinition(name="docs_test", settings_cls=ServiceSettings), settings)
    return TestClient(app)  # no lifespan: no broker or database needed


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_only_platform_assets(client: TestClient, page: str) -> None:
    r = client.get(page)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = csp_directives(r.headers["content-security-policy"])
    assert csp["default-src"] == "'self'" and csp["script-src"] == "'self'"
    assert 'data-openapi-url="/openapi.json"' in r.text
    refs = page_refs(r.text)
    assert refs.inline_scripts == 0 and refs.inline_handlers == []
    assert refs.urls and all(u.startswith("/") and not u.startswith("//") for u in refs.urls)
    assert "http://" not in r.text and "https://" not in r.text
    for url in refs.urls:
        asset = client.get(url)
        assert asset.status_code == 200, url
        ext = url[url.rindex(".") :]
        assert asset.headers["content-type"].startswith(CONTENT_TYPES[ext]), url
        assert asset.headers["x-content-type-options"] == "nosniff"
        assert len(asset.content) > 100
    assert client.get("/openapi.json").json()["info"]["title"] == "qlp-docs_test"


def test_only_known_assets_are_served(client: TestClient) -> None:
    v = assets_version()
    assert client.get(f"/docs/assets/{v}/swagger-ui-bundle.js").status_code == 200
    for bad in (
        f"/docs/assets/{v}/../app.py",
        f"/docs/assets/{v}/core.py",
        f"/docs/assets/{v}/%2e%2e%2fconsts.py",
        "/docs/assets/0000/swagger-ui-bundle.js",
    ):
        r = client.get(bad)
        assert r.status_code == 404, bad
        assert r.headers["content-type"].startswith("application/problem+json")
    assert set(ASSETS) >= {"swagger-ui-bundle.js", "redoc.standalone.js", "swagger-init.js"}
