"""Events the gateway keeps caches by: billing's subscription events → the plan cache
that rate limits use; identity's key, membership and role events → the API key cache
and the outdated-token map (one consumer group per process: every replica must see
every invalidation)."""

from __future__ import annotations

import os
import socket
import uuid

from qlp.billing.v1 import events_pb2 as billing
from qlp.identity.v1 import events_pb2 as identity
from qlp_contracts.catalog import event_type
from qlp_contracts.topics import BILLING, IDENTITY
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


INVALIDATIONS_GROUP = "gateway.invalidations"
INVALIDATION_TYPES = (
    event_type(identity.ApiKeyRevoked),
    event_type(identity.MemberRemoved),
    event_type(identity.RoleChanged),
    event_type(identity.PlatformAdminChanged),
)


def replica_group(prefix: str) -> str:
    """A consumer group of this process alone (host, pid and a random part): Kafka
    gives each group every message, so each replica gets every invalidation. The group
    reads from the topic's start (the kit's policy), which rebuilds the outdated-token
    map after a restart; entries older than any token are dropped as they come."""
    host = socket.gethostname().split(".")[0] or "host"
    return f"{prefix}.{host}.{os.getpid()}.{uuid.uuid4().hex[:8]}"


def apply_invalidation(gateway: Gateway, ev: Event) -> None:
    msg = ev.message
    auth = gateway.authenticator
    if isinstance(msg, identity.ApiKeyRevoked):
        auth.key_revoked(msg.api_key_id)
        return
    if isinstance(msg, identity.PlatformAdminChanged):
        if not msg.platform_admin and msg.user_id:  # a grant needs a new token anyway
            at = msg.changed_at if msg.HasField("changed_at") else None
            at_ms = at.ToMilliseconds() if at is not None else int(ev.time.timestamp() * 1000)
            auth.user_changed(msg.user_id, at_ms)
        return
    if isinstance(msg, identity.MemberRemoved):
        stamp = msg.removed_at if msg.HasField("removed_at") else None
    elif isinstance(msg, identity.RoleChanged):
        stamp = msg.changed_at if msg.HasField("changed_at") else None
    else:
        return
    at_ms = stamp.ToMilliseconds() if stamp is not None else int(ev.time.timestamp() * 1000)
    if msg.org_id and msg.user_id:
        auth.membership_changed(msg.org_id, msg.user_id, at_ms)


def consumers(ctx: ServiceContext) -> list[ConsumerSpec]:
    async def handle(ev: Event) -> None:
        gateway: Gateway = ctx.extras["gateway"]
        plan = plan_from_event(ev, gateway.settings.default_plan)
        if plan is not None and ev.org_id:
            await gateway.set_plan(ev.org_id, plan, ev.time, ev.id)

    async def invalidate(ev: Event) -> None:
        apply_invalidation(ctx.extras["gateway"], ev)

    settings = ctx.settings
    group = getattr(settings, "plans_consumer_group", GROUP)
    prefix = getattr(settings, "invalidations_consumer_group", INVALIDATIONS_GROUP)
    return [
        ConsumerSpec(
            group,
            [BILLING.name],
            handle,
            event_types=EVENT_TYPES,
            description="keeps each org's plan for rate limits",
        ),
        ConsumerSpec(
            replica_group(prefix),
            [IDENTITY.name],
            invalidate,
            event_types=INVALIDATION_TYPES,
            description="drops cached API keys and outdated tokens on identity's events "
            "(a group per replica)",
        ),
    ]
