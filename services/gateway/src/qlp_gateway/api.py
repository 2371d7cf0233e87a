"""Thin routes: the merged OpenAPI, identity's JWKS, and the catch-all proxy.

``/docs`` (Swagger UI) and ``/redoc`` are the kit's pages (assets served by the gateway
itself, no CDN) pointed at ``/openapi.json``, which here is the merged public document,
not the gateway's own.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.routing import Route as StarletteRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qlp_gateway.service import Gateway
from qlp_gateway.settings import GatewaySettings
from qlp_kit import consumer_admin
from qlp_kit import permissions as perm
from qlp_kit.app import Ctx
from qlp_kit.permissions import public
from qlp_kit.problems import NOT_EXECUTED_HEADER, Problem

_NOT_EXECUTED = NOT_EXECUTED_HEADER.encode()

EXPOSED_HEADERS = [
    "RateLimit",
    "RateLimit-Policy",
    "Retry-After",
    "X-Request-ID",
    "Idempotent-Replayed",
    "Location",
    "WWW-Authenticate",
]


class DropInternalResponseHeaders:
    """ASGI wrapper: answers leave without the kit's internal ``x-qlp-not-executed``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    (k, v) for k, v in message.get("headers", ()) if k.lower() != _NOT_EXECUTED
                ]
            await send(message)

        await self.app(scope, receive, sending)


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Runs inside the kit's lifespan (FastAPI merges router lifespans): serve the
    merged document at /openapi.json instead of the gateway's own, and answer CORS."""
    app.router.routes[:] = [
        r
        for r in app.router.routes
        if not (
            isinstance(r, StarletteRoute)
            and r.path == app.openapi_url
            and r.endpoint is not merged_openapi
        )
    ]
    settings = app.state.ctx.settings
    if app.middleware_stack:
        # The kit marks its own validation answers for the gateway: never to clients.
        app.middleware_stack = DropInternalResponseHeaders(app.middleware_stack)
    if isinstance(settings, GatewaySettings) and settings.cors_origins and app.middleware_stack:
        # The kit builds the app; its middleware stack exists once the server runs, so
        # CORS wraps it here (outermost: errors get CORS headers too).
        app.middleware_stack = CORSMiddleware(
            app.middleware_stack,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "Idempotency-Key",
                "X-Request-ID",
                "Accept",
            ],
            expose_headers=EXPOSED_HEADERS,
            max_age=600,
        )
    yield


router = APIRouter(lifespan=_lifespan)


def _gateway(ctx: Any) -> Gateway:
    gateway: Gateway = ctx.extras["gateway"]
    return gateway


@router.get("/openapi.json", include_in_schema=False, dependencies=[public()])
async def merged_openapi(ctx: Ctx, request: Request) -> JSONResponse:
    return JSONResponse(await _gateway(ctx).openapi.document(own=request.app.openapi()))


@router.get("/.well-known/jwks.json", include_in_schema=False, dependencies=[public()])
async def jwks(ctx: Ctx) -> JSONResponse:
    doc = await _gateway(ctx).jwks.document()
    if not doc.get("keys"):
        raise Problem(503, "Service unavailable", "the signing keys are not available")
    return JSONResponse(doc, headers={"Cache-Control": "public, max-age=300"})


def _admitted_admin() -> Any:
    """Dependency of the gateway's own operator routes: the gateway authenticates and
    rate-limits the caller itself (nothing forwards a principal to it) and answers 403
    unless it holds ``platform:admin``."""

    async def dep(request: Request, ctx: Ctx) -> Response | None:
        principal, headers = await _gateway(ctx).admit(request, public=False)
        assert principal is not None
        if not perm.has_permission(principal, perm.PLATFORM_ADMIN):
            raise perm.forbidden(principal, perm.PLATFORM_ADMIN)
        request.state.limit_headers = headers
        return None

    setattr(dep, perm.PERMISSION_ATTR, perm.PLATFORM_ADMIN)
    dep.__name__ = "require_platform_admin"
    return Depends(dep)


@router.get(
    consumer_admin.PATH.format(service="gateway"),
    response_model=consumer_admin.ConsumersOut,
    summary=consumer_admin.SUMMARY,
    description=consumer_admin.describe("gateway"),
    operation_id="gateway_consumers",
    tags=["Platform admin"],
    dependencies=[_admitted_admin()],
)
async def gateway_consumers(ctx: Ctx, request: Request, response: Response) -> Any:
    response.headers.update(getattr(request.state, "limit_headers", {}))
    return await consumer_admin.report(ctx, "gateway")


async def proxy(request: Request) -> Response:
    return await _gateway(request.app.state.ctx).handle(request)


# A plain Starlette route, last: no dependency solving or body inspection on the hot path.
# It declares no permission of its own: it authenticates (routes.py says which paths
# are public) and the service behind it checks the permission of each route.
router.routes.append(
    StarletteRoute(
        "/{path:path}",
        proxy,
        methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"],
        include_in_schema=False,
    )
)
