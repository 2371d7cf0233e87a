"""Event consumers (thin: decode → service)."""

from __future__ import annotations

from datetime import UTC

from qlp.billing.v1 import types_pb2 as bt
from qlp.marketplace.v1 import types_pb2 as mt
from qlp_contracts import topics
from qlp_generation.repository import Store
from qlp_generation.service import Generation
from qlp_generation.settings import GenerationSettings
from qlp_kit.app import ServiceContext
from qlp_kit.consumer import ConsumerSpec
from qlp_kit.events import Event

#: billing's QuotaRejectionReason → the code the API maps to 429 / 402
_REJECTIONS: dict[int, str] = {
    bt.QUOTA_REJECTION_REASON_EXCEEDED: "exceeded",
    bt.QUOTA_REJECTION_REASON_NO_SUBSCRIPTION: "no_subscription",
    bt.QUOTA_REJECTION_REASON_METER_NOT_IN_PLAN: "meter_not_in_plan",
    bt.QUOTA_REJECTION_REASON_ORG_SUSPENDED: "org_suspended",
}
RESERVED = "qlp.billing.v1.QuotaReserved"
REJECTED = "qlp.billing.v1.QuotaRejected"
STARTED = "qlp.generation.v1.GenerationStarted"
VERSION_ADDED = "qlp.marketplace.v1.ListingVersionAdded"
GRANTED = "qlp.marketplace.v1.EntitlementGranted"
REVOKED = "qlp.marketplace.v1.EntitlementRevoked"
REVIEWED = "qlp.marketplace.v1.ReviewPosted"


def build_consumers(gen: Generation) -> list[ConsumerSpec]:
    prefix = gen.settings.consumer_group_prefix

    async def on_quota(ev: Event) -> None:
        m = ev.message
        if not m.subject_id.startswith("gen_"):
            return  # another service's reservation
        if ev.type == RESERVED:
            await gen.on_quota(m.org_id, m.subject_id, True)
        else:
            why = _REJECTIONS.get(int(m.reason), "unspecified")
            await gen.on_quota(m.org_id, m.subject_id, False, why, int(m.limit), int(m.remaining))

    async def on_started(ev: Event) -> None:
        await gen.build(ev.message.org_id, ev.message.generation_id)

    async def on_template(ev: Event) -> None:
        m = ev.message
        if ev.type == VERSION_ADDED:
            if int(m.kind) == mt.LISTING_KIND_TEMPLATE:
                await gen.keep_template(
                    m.org_id,
                    m.listing_id,
                    m.version,
                    bytes(m.template_archive),
                    m.generation_version_id,
                )
        elif ev.type == REVIEWED:
            await gen.on_review(
                m.review_id, m.listing_id, int(m.rating), m.posted_at.ToDatetime(UTC)
            )
        elif ev.type == GRANTED:
            if int(m.kind) == mt.LISTING_KIND_TEMPLATE:
                await gen.on_entitlement(
                    m.org_id, m.entitlement_id, m.listing_id, True, m.granted_at.ToDatetime(UTC)
                )
        else:
            # a revocation does not name the kind: one of a non-template changes nothing
            await gen.on_entitlement(
                m.org_id, m.entitlement_id, m.listing_id, False, m.revoked_at.ToDatetime(UTC)
            )

    specs = [
        ConsumerSpec(
            f"{prefix}.templates",
            [topics.MARKETPLACE.name],
            on_template,
            event_types=[VERSION_ADDED, GRANTED, REVOKED, REVIEWED],
            description="marketplace templates become pattern packs; entitlements to use "
            "them; their ratings become the evidence of the patterns they came from",
        )
    ]
    if gen.settings.worker_enabled:
        specs.append(
            ConsumerSpec(
                f"{prefix}.workers",
                [topics.GENERATION.name],
                on_started,
                event_types=[STARTED],
                description="builds and gates one generation at a time; replicas add workers",
            )
        )
    if gen.settings.quota_enabled:
        specs.append(
            ConsumerSpec(
                f"{prefix}.quota",
                [topics.BILLING.name],
                on_quota,
                event_types=[RESERVED, REJECTED],
                description="billing's answers to quota reservations",
            )
        )
    return specs


def get_generation(ctx: ServiceContext) -> Generation:
    """The process's one :class:`Generation` (created on first use)."""
    return ctx.singleton(
        "generation",
        Generation,
        lambda: Generation(Store(ctx.db), ctx.settings_as(GenerationSettings)),
    )


def consumers(ctx: ServiceContext) -> list[ConsumerSpec]:
    return build_consumers(get_generation(ctx))
