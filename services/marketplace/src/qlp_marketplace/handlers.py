"""Event consumers (thin: decode → service). Each effect is idempotent by itself.

- ``<prefix>.payments`` (billing topic): PaymentSucceeded / PaymentFailed that name a
  purchase → the purchase is paid (entitlement granted) or failed.
- ``<prefix>.refunds`` (marketplace topic): billing's PurchaseRefunded /
  PurchaseRefundFailed answers to a RefundRequested.
- ``<prefix>.template-outcomes`` (generation topic): TemplateOutcomeRecorded → the
  template listing's projects built / passed (the larger total wins).
- ``<prefix>.search.<replica>`` (marketplace topic, one group per replica so every
  replica sees every event): ListingPublished / ListingUpdated → re-read the listing
  and re-index (or drop) it in this replica's search index.
- ``<prefix>.offers.<replica>`` (scheduling topic, one group per replica):
  OfferPublished / OfferAvailabilityChanged / OfferWithdrawn → the ``gpu_offers``
  read model and this replica's in-memory offer catalogue (stale revisions dropped).
"""

from __future__ import annotations

import os
import re
import socket

from qlp_contracts import topics
from qlp_kit.app import ServiceContext
from qlp_kit.consumer import ConsumerSpec
from qlp_kit.events import Event
from qlp_marketplace.offers_store import OfferBook, OfferStore
from qlp_marketplace.repository import Store
from qlp_marketplace.search import SearchIndex
from qlp_marketplace.service import Marketplace
from qlp_marketplace.settings import MarketplaceSettings

PAID = "qlp.billing.v1.PaymentSucceeded"
PAY_FAILED = "qlp.billing.v1.PaymentFailed"
REFUNDED = "qlp.marketplace.v1.PurchaseRefunded"
REFUND_FAILED = "qlp.marketplace.v1.PurchaseRefundFailed"
TEMPLATE_OUTCOME = "qlp.generation.v1.TemplateOutcomeRecorded"
OFFER_PUBLISHED = "qlp.scheduling.v1.OfferPublished"
OFFER_CHANGED = "qlp.scheduling.v1.OfferAvailabilityChanged"
OFFER_WITHDRAWN = "qlp.scheduling.v1.OfferWithdrawn"
LISTING_EVENTS = ("qlp.marketplace.v1.ListingPublished", "qlp.marketplace.v1.ListingUpdated")


def replica_name(settings: MarketplaceSettings) -> str:
    raw = settings.replica or f"{socket.gethostname()}-{os.getpid()}"
    return re.sub(r"[^A-Za-z0-9_-]", "-", raw)[:80]


def build_consumers(m: Marketplace) -> list[ConsumerSpec]:
    prefix = m.settings.consumer_group_prefix

    async def on_payment(ev: Event) -> None:
        msg = ev.message
        if msg.WhichOneof("reference") != "purchase_id":
            return
        if ev.type == PAID:
            await m.on_payment_succeeded(msg.org_id, msg.purchase_id, msg.payment_id)
        else:
            await m.on_payment_failed(
                msg.org_id, msg.purchase_id, msg.payment_id, msg.failure_code, msg.failure_message
            )

    async def on_refund(ev: Event) -> None:
        msg = ev.message
        if ev.type == REFUNDED:
            await m.on_refunded(msg.org_id, msg.purchase_id)
        else:
            await m.on_refund_failed(msg.org_id, msg.purchase_id, msg.message)

    async def on_template_outcome(ev: Event) -> None:
        msg = ev.message
        await m.on_template_outcome(
            msg.org_id, msg.listing_id, int(msg.projects_built), int(msg.projects_passed)
        )

    async def on_listing(ev: Event) -> None:
        await m.reindex([ev.message.listing_id])

    async def on_listings(evs: list[Event]) -> None:
        await m.reindex([ev.message.listing_id for ev in evs])

    specs = [
        ConsumerSpec(
            f"{prefix}.payments",
            [topics.BILLING.name],
            on_payment,
            event_types=[PAID, PAY_FAILED],
            description="marks purchases paid (granting the entitlement) or failed",
        ),
        ConsumerSpec(
            f"{prefix}.refunds",
            [topics.MARKETPLACE.name],
            on_refund,
            event_types=[REFUNDED, REFUND_FAILED],
            description="completes refunds billing reversed (or restores the entitlement)",
        ),
        ConsumerSpec(
            f"{prefix}.template-outcomes",
            [topics.GENERATION.name],
            on_template_outcome,
            event_types=[TEMPLATE_OUTCOME],
            description="gate pass counts of projects generation built from templates",
        ),
    ]
    if m.index is not None:
        specs.append(
            ConsumerSpec(
                f"{prefix}.search.{replica_name(m.settings)}",
                [topics.MARKETPLACE.name],
                on_listing,
                on_listings,
                event_types=list(LISTING_EVENTS),
                description="keeps this replica's search index current",
            )
        )
    return specs


def offer_consumer(book: OfferBook, settings: MarketplaceSettings) -> ConsumerSpec:
    async def on_offer(ev: Event) -> None:
        if ev.type == OFFER_PUBLISHED:
            await book.on_published(ev.message)
        elif ev.type == OFFER_CHANGED:
            await book.on_changed(ev.message)
        else:
            await book.on_withdrawn(ev.message)

    return ConsumerSpec(
        f"{settings.consumer_group_prefix}.offers.{replica_name(settings)}",
        [topics.SCHEDULING.name],
        on_offer,
        event_types=[OFFER_PUBLISHED, OFFER_CHANGED, OFFER_WITHDRAWN],
        description="keeps the GPU offer read model and this replica's catalogue current",
    )


def get_offer_book(ctx: ServiceContext) -> OfferBook:
    """The process's one :class:`OfferBook` (created on first use)."""
    b = ctx.extras.get("offer_book")
    if b is None:
        b = OfferBook(OfferStore(ctx.mongo))
        ctx.extras["offer_book"] = b
    assert isinstance(b, OfferBook)
    return b


def get_marketplace(ctx: ServiceContext) -> Marketplace:
    """The process's one :class:`Marketplace` (created on first use)."""
    m = ctx.extras.get("marketplace")
    if m is None:
        settings = ctx.settings
        assert isinstance(settings, MarketplaceSettings)
        m = Marketplace(
            Store(ctx.mongo), settings, SearchIndex() if settings.search_enabled else None
        )
        ctx.extras["marketplace"] = m
    assert isinstance(m, Marketplace)
    return m


def consumers(ctx: ServiceContext) -> list[ConsumerSpec]:
    m = get_marketplace(ctx)
    return [*build_consumers(m), offer_consumer(get_offer_book(ctx), m.settings)]
