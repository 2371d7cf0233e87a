"""Event consumers (thin: decode → service). Each effect is idempotent by itself."""

from __future__ import annotations

from typing import Any

from qlp.billing.v1 import types_pb2 as bt
from qlp_billing import ledger as L
from qlp_billing.repository import Store
from qlp_billing.service import Billing
from qlp_billing.settings import BillingSettings
from qlp_contracts import topics
from qlp_kit.app import ServiceContext
from qlp_kit.consumer import ConsumerSpec, PermanentError
from qlp_kit.events import Event
from qlp_kit.money import Money

ORG_CREATED = "qlp.identity.v1.OrgCreated"
USAGE_RECORDED = "qlp.usage.v1.UsageRecorded"
RESERVE = "qlp.generation.v1.QuotaReservationRequested"
GEN_DONE = "qlp.generation.v1.GenerationCompleted"
GEN_FAILED = "qlp.generation.v1.GenerationFailed"
HOLD = "qlp.scheduling.v1.EscrowHoldRequested"
JOB_DONE = "qlp.scheduling.v1.JobCompleted"
JOB_FAILED = "qlp.scheduling.v1.JobFailed"
JOB_CANCELED = "qlp.scheduling.v1.JobCanceled"
PURCHASE = "qlp.marketplace.v1.PurchaseRequested"
REFUND = "qlp.marketplace.v1.RefundRequested"


def _money(m: Any) -> Money:
    try:
        return Money(int(m.amount), m.currency or "USD")
    except (TypeError, ValueError) as exc:
        raise PermanentError(f"bad money: {exc}") from None


def _usage(items: Any) -> list[L.ProviderUse]:
    return [
        L.ProviderUse(
            u.provider_id,
            u.provider_org_id or u.provider_id,
            int(u.gpu_minutes),
            int(u.price_per_gpu_hour.amount),
            u.gpu_model,
            int(u.gpu_count),
        )
        for u in items
    ]


def build_consumers(billing: Billing) -> list[ConsumerSpec]:
    prefix = billing.settings.consumer_group_prefix

    async def on_identity(ev: Event) -> None:
        org_id = ev.message.org_id or ev.org_id
        await billing.open_subscription(org_id)
        await billing.record_org(org_id, ev.message.name, ev.message.billing_email)

    async def on_usage(ev: Event) -> None:
        await billing.ingest_usage([ev])

    async def on_usage_batch(events: list[Event]) -> None:
        await billing.ingest_usage(events)

    async def on_generation(ev: Event) -> None:
        m = ev.message
        if ev.type == RESERVE:
            await billing.reserve(
                m.org_id, m.reservation_id, m.meter, int(m.quantity), m.generation_id
            )
        elif ev.type == GEN_DONE and m.reservation_id:
            await billing.commit_reservation(m.org_id, m.reservation_id)
        elif ev.type == GEN_FAILED and m.reservation_id:
            await billing.release_reservation(
                m.org_id, m.reservation_id, bt.QUOTA_RELEASE_REASON_FAILED
            )

    async def on_scheduling(ev: Event) -> None:
        m = ev.message
        if ev.type == HOLD:
            await billing.escrow_hold(
                m.org_id, m.escrow_id, m.job_id, _money(m.amount), int(m.platform_fee_bps)
            )
            return
        if not m.escrow_id:
            return
        reason = {
            JOB_FAILED: bt.ESCROW_REFUND_REASON_JOB_FAILED,
            JOB_CANCELED: bt.ESCROW_REFUND_REASON_JOB_CANCELED,
        }.get(ev.type, bt.ESCROW_REFUND_REASON_UNSPECIFIED)
        await billing.escrow_settle(m.org_id, m.escrow_id, m.job_id, _usage(m.usage), reason)

    async def on_marketplace(ev: Event) -> None:
        m = ev.message
        if ev.type == REFUND:
            await billing.refund_purchase(m.org_id, m.purchase_id, m.listing_id, ev.id, m.reason)
            return
        await billing.purchase(
            m.org_id, m.purchase_id, m.seller_org_id, _money(m.price), int(m.platform_fee_bps)
        )

    return [
        ConsumerSpec(
            f"{prefix}.subscriptions",
            [topics.IDENTITY.name],
            on_identity,
            event_types=[ORG_CREATED],
            description="opens a Free subscription for every new org",
        ),
        ConsumerSpec(
            f"{prefix}.metering",
            [topics.USAGE.name],
            on_usage,
            on_usage_batch,
            event_types=[USAGE_RECORDED],
            description="stores usage once per (source, id)",
        ),
        ConsumerSpec(
            f"{prefix}.quotas",
            [topics.GENERATION.name],
            on_generation,
            event_types=[RESERVE, GEN_DONE, GEN_FAILED],
            description="quota reservation saga for generations",
        ),
        ConsumerSpec(
            f"{prefix}.escrow",
            [topics.SCHEDULING.name],
            on_scheduling,
            event_types=[HOLD, JOB_DONE, JOB_FAILED, JOB_CANCELED],
            description="escrow holds and settlements for GPU jobs",
        ),
        ConsumerSpec(
            f"{prefix}.marketplace",
            [topics.MARKETPLACE.name],
            on_marketplace,
            event_types=[PURCHASE, REFUND],
            description="charges marketplace purchases (creator/platform split) and reverses "
            "refunded ones",
        ),
    ]


def get_billing(ctx: ServiceContext) -> Billing:
    """The process's one :class:`Billing` (created on first use)."""
    return ctx.singleton(
        "billing", Billing, lambda: Billing(Store(ctx.db), ctx.settings_as(BillingSettings))
    )


def consumers(ctx: ServiceContext) -> list[ConsumerSpec]:
    return build_consumers(get_billing(ctx))
