"""Payment-provider events (Stripe webhooks) after their signature was verified.

The effect and its dedupe record are ordered so that no money is lost: the effect is
applied first and is idempotent by itself (a ``payment_intent.succeeded`` books the
top-up under the intent id, ``topup-<pi_...>``, committed at most once by the
ledger); the event id is recorded only after the effect succeeded. A failure while
applying answers 5xx and records nothing, so the provider's retry applies it; a
redelivery after success finds the record (or, racing it, the ledger's own dedupe)
and books nothing twice. An event that can never apply (bad currency, no org) is
recorded with its reason and logged, so it is not retried for days.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import structlog

from qlp_billing.service import Billing, BillingError
from qlp_kit.money import Money

log = structlog.get_logger("qlp.billing")

PAYMENT_SUCCEEDED = "payment_intent.succeeded"


class BadEvent(ValueError):
    """The payload is not a provider event."""


@dataclass(frozen=True)
class Outcome:
    duplicate: bool
    applied: bool = False
    reason: str = ""


def parse(payload: bytes) -> dict[str, Any]:
    import json

    try:
        event = json.loads(payload)
        if not isinstance(event, dict) or not str(event["id"]):
            raise BadEvent("not a webhook event")
    except (ValueError, KeyError, TypeError):
        raise BadEvent("not a webhook event") from None
    return event


async def handle_stripe_event(billing: Billing, event: dict[str, Any]) -> Outcome:
    event_id = str(event["id"])
    event_type = str(event.get("type", ""))
    if await billing.store.webhook_seen(event_id):
        return Outcome(duplicate=True)
    applied = False
    reason = ""
    if event_type == PAYMENT_SUCCEEDED:
        obj = (event.get("data") or {}).get("object") or {}
        org_id = str((obj.get("metadata") or {}).get("org_id", ""))
        intent_id = str(obj.get("id") or "")
        try:
            amount = int(obj.get("amount_received") or obj.get("amount") or 0)
        except (TypeError, ValueError):
            amount = 0
        currency = str(obj.get("currency", "usd")).upper()
        if not (org_id and intent_id and amount > 0):
            reason = "no org, payment intent or amount"
        else:
            try:
                # raises on a transient failure: nothing is recorded, the retry applies it
                _, applied = await billing.top_up(
                    org_id, Money(amount, currency), intent_id, "stripe"
                )
            except BillingError as exc:
                reason = str(exc)
        if reason:
            log.error("stripe event not applied", event_id=event_id, reason=reason)
    else:
        reason = "ignored event type"
    await billing.store.remember_webhook(
        event_id,
        {"type": event_type, "received_at": time.time(), "applied": applied, "reason": reason},
    )
    return Outcome(duplicate=False, applied=applied, reason=reason)
