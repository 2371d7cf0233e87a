"""Consumers: billing's answers to escrow hold requests move jobs on.

Idempotent by state: a hold only moves a job still ``submitted`` with the same
escrow id, so a redelivered ``EscrowHeld`` / ``EscrowRejected`` changes nothing.
Events for jobs this scheduler does not know are skipped (logged), not retried.
"""

from __future__ import annotations

import structlog

from qlp.billing.v1 import events_pb2 as billing
from qlp.billing.v1 import types_pb2 as billing_types
from qlp_contracts import topics
from qlp_kit.app import ServiceContext
from qlp_kit.consumer import ConsumerSpec
from qlp_kit.events import Event
from qlp_scheduler import balances
from qlp_scheduler.engine import Scheduler
from qlp_scheduler.settings import SchedulerSettings

log = structlog.get_logger("qlp.scheduler.handlers")

ESCROW_HELD = "qlp.billing.v1.EscrowHeld"
ESCROW_REJECTED = "qlp.billing.v1.EscrowRejected"


async def handle_escrow(sched: Scheduler, ev: Event) -> None:
    msg = ev.message
    if isinstance(msg, billing.EscrowHeld):
        out = await sched.on_escrow_held(msg.org_id or ev.org_id, msg.job_id, msg.escrow_id)
    elif isinstance(msg, billing.EscrowRejected):
        reason = (
            billing_types.EscrowRejectionReason.Name(msg.reason)
            .removeprefix("ESCROW_REJECTION_REASON_")
            .lower()
        )
        if msg.message:
            reason = f"{reason}: {msg.message}"
        out = await sched.on_escrow_rejected(
            msg.org_id or ev.org_id, msg.job_id, msg.escrow_id, reason
        )
    else:  # pragma: no cover - filtered by event_types
        return
    if out is None:
        log.info("escrow answer changed nothing", event_id=ev.id, type=ev.type)


def consumers(ctx: ServiceContext) -> list[ConsumerSpec]:
    settings = ctx.settings
    assert isinstance(settings, SchedulerSettings)

    async def handle(ev: Event) -> None:
        await handle_escrow(ctx.extras["scheduler"], ev)

    async def on_balance(ev: Event) -> None:
        await balances.apply(ctx.extras["scheduler"].repo, ev)

    return [
        ConsumerSpec(
            settings.escrow_consumer_group,
            [topics.BILLING.name],
            handle,
            event_types=[ESCROW_HELD, ESCROW_REJECTED],
            description="escrow held/rejected moves GPU jobs to placement or failure",
        ),
        ConsumerSpec(
            f"{settings.escrow_consumer_group}.balances",
            [topics.BILLING.name],
            on_balance,
            event_types=balances.EVENT_TYPES,
            description="prepaid balance read model: submit refuses jobs it cannot cover",
        ),
    ]
