"""A read model of each org's prepaid balance, built from the events billing emits
today, so that submit can refuse a GPU job the balance cannot cover (402) instead of
accepting it and failing it when billing rejects the hold.

Billing stays the authority: its escrow hold is what reserves the money. This model
only answers "would the hold obviously fail?". What moves the customer balance, as
billing's events tell it:

- ``SubscriptionActivated``: the org exists in billing (balance 0 until money comes);
- ``PaymentSucceeded`` without an invoice or purchase: a top-up (+amount);
- ``PaymentSucceeded`` of an invoice or purchase paid by ``prepaid``: (-amount);
- ``EscrowHeld``: (-amount); ``EscrowSettled``: the unused rest comes back
  (+refunded); ``EscrowRefunded``: (+amount).

What it can miss (said in the README): a top-up made a moment ago (events arrive in
seconds; the 402 says so and a retry succeeds), balance changes billing makes without
one of these events, and orgs whose opening or top-up events were never consumed (an org the
model does not know is not checked at all: billing's hold decides, as before).
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from qlp.billing.v1 import events_pb2 as billing
from qlp_kit.events import Event
from qlp_kit.mongo import utcnow
from qlp_scheduler.repository import Repository

log = structlog.get_logger("qlp.scheduler.balances")

EVENT_TYPES = [
    "qlp.billing.v1.SubscriptionActivated",
    "qlp.billing.v1.PaymentSucceeded",
    "qlp.billing.v1.EscrowHeld",
    "qlp.billing.v1.EscrowSettled",
    "qlp.billing.v1.EscrowRefunded",
]


@dataclass(frozen=True)
class Change:
    org_id: str
    delta: int
    currency: str
    # the event shows where the org's balance starts (its billing account opened, or
    # money came in): only then does the model know enough to refuse anything
    opens: bool = False


def change_of(ev: Event) -> Change | None:
    """How one billing event moves the org's available prepaid balance (None: it
    does not)."""
    msg = ev.message
    org = getattr(msg, "org_id", "") or ev.org_id
    if not org:
        return None
    if isinstance(msg, billing.SubscriptionActivated):
        return Change(org, 0, "USD", opens=True)
    if isinstance(msg, billing.PaymentSucceeded):
        ref = msg.WhichOneof("reference")
        amt = int(msg.amount.amount)
        cur = msg.amount.currency or "USD"
        if ref is None:
            return Change(org, amt, cur, opens=True)
        if msg.provider == "prepaid":
            return Change(org, -amt, cur)
        return None  # paid by card: the prepaid balance did not move
    if isinstance(msg, billing.EscrowHeld):
        return Change(org, -int(msg.amount.amount), msg.amount.currency or "USD")
    if isinstance(msg, billing.EscrowSettled):
        return Change(org, int(msg.refunded.amount), msg.refunded.currency or "USD")
    if isinstance(msg, billing.EscrowRefunded):
        return Change(org, int(msg.amount.amount), msg.amount.currency or "USD")
    return None


async def apply(repo: Repository, ev: Event) -> bool:
    """Idempotent per event id."""
    ch = change_of(ev)
    if ch is None:
        return False
    applied = await repo.apply_balance(
        ch.org_id, ev.id, ch.delta, ch.currency, utcnow(), opens=ch.opens
    )
    if not applied:
        log.info("balance event seen before", event_id=ev.id, type=ev.type)
    return applied


async def available(repo: Repository, org_id: str) -> int | None:
    """The prepaid balance the org has for new holds as far as the scheduler knows:
    the read model minus the holds its own jobs requested and billing has not
    answered yet. None when billing never told about the org (then nothing is
    checked, nor while it has only seen holds and their settlement: the start of the
    balance is missing)."""
    seen = await repo.balance_of(org_id)
    if seen is None:
        return None
    return seen - await repo.pending_escrow(org_id)
