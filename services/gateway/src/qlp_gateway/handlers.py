"""Billing's subscription events → the plan cache that rate limits use."""

from __future__ import annotations

from qlp.billing.v1 import events_pb2 as billing
from qlp_contracts.catalog import event_type
from qlp_contracts.topics import BILLING
from qlp_gateway.service import Gateway
from qlp_kit.app import ServiceContext
from qlp_kit.consumer import ConsumerSpec
from qlp_kit.events import Event

GROUP = "gateway.plans"
EVENT_TYPES = (
    event_type(billing.SubscriptionActivated),
    event_type(billing.SubscriptionChanged),
    event_type(billing.SubscriptionCanceled),
)


def plan_from_event(ev: Event, default: str = "free") -> str | None:
    """The plan an event puts its org on, or None when it changes nothing now."""
    msg = ev.message
    if isinstance(msg, billing.SubscriptionActivated):
        return msg.plan_id or default
    if isinstance(msg, billing.SubscriptionChanged):
        return msg.new_plan_id or default
    if isinstance(msg, billing.SubscriptionCanceled):
        # Canceled at period end: the plan stays until billing says otherwise.
        return None if msg.at_period_end else default
    return None


def consumers(ctx: ServiceContext) -> list[ConsumerSpec]:
    async def handle(ev: Event) -> None:
        gateway: Gateway = ctx.extras["gateway"]
        plan = plan_from_event(ev, gateway.settings.default_plan)
        if plan is not None and ev.org_id:
            await gateway.set_plan(ev.org_id, plan, ev.time, ev.id)

    settings = ctx.settings
    group = getattr(settings, "plans_consumer_group", GROUP)
    return [
        ConsumerSpec(
            group,
            [BILLING.name],
            handle,
            event_types=EVENT_TYPES,
            description="keeps each org's plan for rate limits",
        )
    ]
