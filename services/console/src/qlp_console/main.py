"""The console service definition: server-rendered pages over the public API."""

from __future__ import annotations

import httpx

from qlp_console.repository import INDEXES, SessionRepository
from qlp_console.routes_auth import router as auth_router
from qlp_console.routes_editors import router as editors_router
from qlp_console.routes_gpu import router as gpu_router
from qlp_console.routes_more import router as more_router
from qlp_console.routes_portal import router as portal_router
from qlp_console.settings import ConsoleSettings
from qlp_kit.app import ServiceContext, ServiceDefinition


async def on_startup(ctx: ServiceContext) -> None:
    settings = ctx.settings
    assert isinstance(settings, ConsoleSettings)
    ctx.extras["http"] = httpx.AsyncClient(
        base_url=settings.gateway_url.rstrip("/"),
        timeout=httpx.Timeout(settings.gateway_timeout_s, connect=3.0),
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        follow_redirects=False,
        trust_env=False,
    )
    ctx.extras["sessions"] = SessionRepository(ctx.db)


async def on_shutdown(ctx: ServiceContext) -> None:
    http = ctx.extras.get("http")
    if http is not None:
        await http.aclose()


service = ServiceDefinition(
    name="console",
    settings_cls=ConsoleSettings,
    # the catch-all 404 of /app/... is in more_router: it goes last
    routers=[auth_router, portal_router, gpu_router, editors_router, more_router],
    indexes=INDEXES,
    on_startup=on_startup,
    on_shutdown=on_shutdown,
    description="the web console: customer portal, GPU console, provider dashboard, admin views",
)
