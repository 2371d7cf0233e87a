"""The gateway as a kit service: a catch-all proxy plus its own few routes."""

from __future__ import annotations

import logging

from qlp_gateway.api import router
from qlp_gateway.handlers import consumers
from qlp_gateway.repository import indexes
from qlp_gateway.service import Gateway
from qlp_gateway.settings import GatewaySettings
from qlp_kit.app import ServiceContext, ServiceDefinition


async def on_startup(ctx: ServiceContext) -> None:
    settings = ctx.settings
    assert isinstance(settings, GatewaySettings)
    # One line per proxied request from the HTTP client is noise (and costs latency).
    logging.getLogger("httpx").setLevel(logging.WARNING)
    ctx.extras["gateway"] = Gateway(settings, ctx.db)


async def on_shutdown(ctx: ServiceContext) -> None:
    gateway: Gateway | None = ctx.extras.get("gateway")
    if gateway is not None:
        await gateway.close()


service = ServiceDefinition(
    name="gateway",
    settings_cls=GatewaySettings,
    routers=[router],
    indexes=indexes(),
    consumers=consumers,
    consumer_admin=False,  # api.py serves /v1/admin/consumers/gateway (it authenticates)
    on_startup=on_startup,
    on_shutdown=on_shutdown,
    description="the public HTTP entry: authentication, rate limits, idempotency keys, routing",
)
