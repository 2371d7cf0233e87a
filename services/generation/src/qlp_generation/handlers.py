"""Event consumers (thin: decode → service)."""

from __future__ import annotations

from qlp_contracts import topics
from qlp_generation.repository import Store
from qlp_generation.service import Generation
from qlp_generation.settings import GenerationSettings
from qlp_kit.app import ServiceContext
from qlp_kit.consumer import ConsumerSpec
from qlp_kit.events import Event

RESERVED = "qlp.billing.v1.QuotaReserved"
REJECTED = "qlp.billing.v1.QuotaRejected"
STARTED = "qlp.generation.v1.GenerationStarted"


def build_consumers(gen: Generation) -> list[ConsumerSpec]:
    prefix = gen.settings.consumer_group_prefix

    async def on_quota(ev: Event) -> None:
        m = ev.message
        if not m.subject_id.startswith("gen_"):
            return  # another service's reservation
        if ev.type == RESERVED:
            await gen.on_quota(m.org_id, m.subject_id, True)
        else:
            await gen.on_quota(m.org_id, m.subject_id, False, "exceeded")

    async def on_started(ev: Event) -> None:
        await gen.build(ev.message.org_id, ev.message.generation_id)

    specs = []
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
    gen = ctx.extras.get("generation")
    if gen is None:
        settings = ctx.settings
        assert isinstance(settings, GenerationSettings)
        gen = Generation(Store(ctx.db), settings)
        ctx.extras["generation"] = gen
    assert isinstance(gen, Generation)
    return gen


def consumers(ctx: ServiceContext) -> list[ConsumerSpec]:
    return build_consumers(get_generation(ctx))
