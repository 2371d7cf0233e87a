"""The billing service definition."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

from qlp_billing.api import admin_router, router, webhook_router
from qlp_billing.api_invoices import router as invoice_router
from qlp_billing.api_invoices import shared_router
from qlp_billing.handlers import consumers, get_billing
from qlp_billing.repository import INDEXES, OUTBOX_COLLECTIONS, TENANT_COLLECTIONS
from qlp_billing.settings import BillingSettings
from qlp_contracts import topics
from qlp_kit.app import ServiceContext, ServiceDefinition

log = structlog.get_logger("qlp.billing")


def background(ctx: ServiceContext) -> list[Callable[[], Coroutine[Any, Any, None]]]:
    settings = ctx.settings
    assert isinstance(settings, BillingSettings)
    if not settings.background_enabled:
        return []
    billing = get_billing(ctx)

    async def loop() -> None:
        while True:
            await asyncio.sleep(settings.sweep_interval_s)
            for name, job in (
                ("ledger flush", billing.flush_ledger),
                ("reservation sweep", billing.sweep_reservations),
                ("period roll", billing.roll_due),
                ("invoicing", billing.run_invoicing),
            ):
                try:
                    await job()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # next round retries; every job is idempotent
                    log.warning("background job failed", job=name, error=str(exc))

    return [loop]


service = ServiceDefinition(
    name="billing",
    settings_cls=BillingSettings,
    routers=[router, invoice_router, admin_router, webhook_router, shared_router],
    indexes=INDEXES,
    outbox_collections=list(OUTBOX_COLLECTIONS),
    tenant_collections=list(TENANT_COLLECTIONS),
    consumers=consumers,
    publishes=[topics.BILLING.name],
    background=background,
    description="plans, subscriptions, metering, quotas, ledger, escrow, invoices, payouts",
)
