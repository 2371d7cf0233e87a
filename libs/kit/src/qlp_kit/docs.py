"""API docs pages served by the platform itself: ``/docs`` (Swagger UI) and ``/redoc``
(ReDoc), for every service and the gateway.

FastAPI's own pages load their scripts and styles from a CDN, so they are blank
without internet, behind a firewall, or under a strict Content-Security-Policy. Here
the assets come from the pinned ``fastapi-offline`` wheel (Swagger UI and ReDoc
bundles) under ``/docs/assets/``, the start-up code is a served file (no inline
script), and both pages carry a CSP that allows nothing from elsewhere.
"""

from __future__ import annotations

import hashlib
import html
from dataclasses import dataclass
from functools import cache
from importlib import resources
from importlib.metadata import version

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from qlp_kit.problems import Problem

ASSETS_PATH = "/docs/assets"

#: Scripts only from the platform; styles too (ReDoc's and Swagger UI's components set
#: styles at run time, so inline styles are allowed, inline scripts never).
CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "worker-src 'self' blob:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'self'",
    ]
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@dataclass(frozen=True)
class Asset:
    package: str
    name: str
    media_type: str


#: What /docs/assets/ serves (nothing else: no path from the request reaches the disk).
ASSETS = {
    "swagger-ui-bundle.js": Asset(
        "fastapi_offline", "static/swagger-ui-bundle.js", "text/javascript"
    ),
    "swagger-ui.css": Asset("fastapi_offline", "static/swagger-ui.css", "text/css"),
    "redoc.standalone.js": Asset(
        "fastapi_offline", "static/redoc.standalone.js", "text/javascript"
    ),
    "favicon.png": Asset("fastapi_offline", "static/favicon.png", "image/png"),
    "swagger-init.js": Asset("qlp_kit", "docs_static/swagger-init.js", "text/javascript"),
    "redoc-init.js": Asset("qlp_kit", "docs_static/redoc-init.js", "text/javascript"),
}


@cache
def asset_bytes(name: str) -> bytes:
    asset = ASSETS[name]
    return resources.files(asset.package).joinpath(asset.name).read_bytes()


@cache
def assets_version() -> str:
    """Part of every asset URL (a digest of all of them), so a changed asset is never
    served from a browser's cache."""
    h = hashlib.sha256(version("fastapi-offline").encode())
    for name in sorted(ASSETS):
        h.update(asset_bytes(name))
    return h.hexdigest()[:16]


def _page(title: str, head: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n"
        f"{head}</head>\n<body>\n{body}</body>\n</html>\n"
    )


def swagger_html(title: str, openapi_url: str, assets: str) -> str:
    return _page(
        f"{title} - Swagger UI",
        f'<link rel="icon" type="image/png" href="{assets}/favicon.png">\n'
        f'<link rel="stylesheet" href="{assets}/swagger-ui.css">\n',
        f'<div id="swagger-ui" data-openapi-url="{html.escape(openapi_url)}"></div>\n'
        f'<script src="{assets}/swagger-ui-bundle.js"></script>\n'
        f'<script src="{assets}/swagger-init.js"></script>\n',
    )


def redoc_html(title: str, openapi_url: str, assets: str) -> str:
    return _page(
        f"{title} - ReDoc",
        f'<link rel="icon" type="image/png" href="{assets}/favicon.png">\n',
        f'<div id="redoc" data-openapi-url="{html.escape(openapi_url)}"></div>\n'
        f'<script src="{assets}/redoc.standalone.js"></script>\n'
        f'<script src="{assets}/redoc-init.js"></script>\n',
    )


def install_docs(app: FastAPI) -> None:
    """Serve /docs, /redoc and their assets (call with FastAPI's own pages turned off)."""

    def urls(request: Request) -> tuple[str, str]:
        root = request.scope.get("root_path", "").rstrip("/")
        openapi = f"{root}{app.openapi_url or '/openapi.json'}"
        return openapi, f"{root}{ASSETS_PATH}/{assets_version()}"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        openapi, assets = urls(request)
        return HTMLResponse(swagger_html(app.title, openapi, assets), headers=PAGE_HEADERS)

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        openapi, assets = urls(request)
        return HTMLResponse(redoc_html(app.title, openapi, assets), headers=PAGE_HEADERS)

    @app.get(ASSETS_PATH + "/{release}/{name}", include_in_schema=False)
    async def docs_asset(release: str, name: str) -> Response:
        asset = ASSETS.get(name)
        if asset is None or release != assets_version():
            raise Problem(404, "Not found", "no such docs asset")
        return Response(
            asset_bytes(name),
            media_type=asset.media_type,
            headers={
                "Cache-Control": "public, max-age=31536000, immutable",
                "X-Content-Type-Options": "nosniff",
            },
        )
