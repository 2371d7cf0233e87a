"""The marketplace service definition."""

from __future__ import annotations

from qlp_contracts import topics
from qlp_kit.app import ServiceContext, ServiceDefinition
from qlp_marketplace.api import router
from qlp_marketplace.handlers import consumers, get_marketplace, get_offer_book
from qlp_marketplace.offers_api import router as offers_router
from qlp_marketplace.offers_store import INDEXES as OFFER_INDEXES
from qlp_marketplace.repository import INDEXES, OUTBOX_COLLECTIONS, TENANT_COLLECTIONS
from qlp_marketplace.settings import MarketplaceSettings


async def on_startup(ctx: ServiceContext) -> None:
    m = get_marketplace(ctx)
    if m.index is not None:
        # the read model is rebuilt from the listings, then followed from the events
        await m.rebuild_index()
    # the offer catalogue likewise, from the gpu_offers read model
    await get_offer_book(ctx).rebuild()


service = ServiceDefinition(
    name="marketplace",
    settings_cls=MarketplaceSettings,
    routers=[router, offers_router],
    indexes=[*INDEXES, *OFFER_INDEXES],
    outbox_collections=list(OUTBOX_COLLECTIONS),
    tenant_collections=list(TENANT_COLLECTIONS),
    consumers=consumers,
    publishes=[topics.MARKETPLACE.name],
    on_startup=on_startup,
    description="listings, versions, search, purchases, entitlements, refunds, reviews, "
    "creator earnings, the GPU offer catalogue",
)
