"""Payments behind one port.

- ``prepaid`` (default): a top-up is recorded in the ledger at once (the platform's
  own prepaid credits; used in development and tests).
- ``stripe``: a top-up creates a Stripe PaymentIntent (official ``stripe`` SDK) for the
  client to confirm; the ledger is credited only when the signed webhook
  ``payment_intent.succeeded`` arrives (``webhooks.verify`` + event-id dedupe), with
  the intent id as the payment id, so a redelivered webhook books nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from qlp_kit.money import Money


@dataclass(frozen=True)
class TopUpStarted:
    provider: str
    provider_payment_id: str
    status: str  # "succeeded" (booked now) or "pending" (booked by the webhook)
    client_secret: str | None = None


class PaymentPort(Protocol):
    name: str

    async def start_top_up(self, org_id: str, amount: Money, idempotency_key: str) -> TopUpStarted:
        """Start collecting ``amount``; ``succeeded`` means the caller books it now."""
        ...

    async def has_payment_method(self, org_id: str) -> bool:
        """Whether the org has a payment method on file that charges can go to."""
        ...


class PrepaidProvider:
    name = "prepaid"

    async def start_top_up(self, org_id: str, amount: Money, idempotency_key: str) -> TopUpStarted:
        return TopUpStarted(self.name, idempotency_key, "succeeded")

    async def has_payment_method(self, org_id: str) -> bool:
        return False  # prepaid credits only: the balance is what pays


class StripeProvider:
    """A thin adapter over the official SDK; ``client`` is injectable for tests."""

    name = "stripe"

    def __init__(self, api_key: str, client: Any = None) -> None:
        if client is None:
            import stripe

            client = stripe.StripeClient(api_key)
        self.client = client

    async def start_top_up(self, org_id: str, amount: Money, idempotency_key: str) -> TopUpStarted:
        intent = await self.client.v1.payment_intents.create_async(
            params={
                "amount": amount.amount,
                "currency": amount.currency.lower(),
                "metadata": {"org_id": org_id, "purpose": "qlp_prepaid_credits"},
                "automatic_payment_methods": {"enabled": True},
            },
            options={"idempotency_key": idempotency_key},
        )
        return TopUpStarted(
            self.name, str(intent["id"]), "pending", str(intent.get("client_secret") or "")
        )

    async def has_payment_method(self, org_id: str) -> bool:
        """A Stripe customer of the org (``metadata.org_id``) with a payment method."""
        safe = org_id.replace("\\", "").replace("'", "")
        found = await self.client.v1.customers.search_async(
            params={"query": f"metadata['org_id']:'{safe}'", "limit": 5}
        )
        for customer in found["data"]:
            methods = await self.client.v1.payment_methods.list_async(
                params={"customer": str(customer["id"]), "limit": 1}
            )
            if methods["data"]:
                return True
        return False


def provider_for(name: str, stripe_api_key: str = "") -> PaymentPort:
    if name == "stripe":
        if not stripe_api_key:
            raise ValueError("the stripe payment provider needs QLP_BILLING_STRIPE_API_KEY")
        return StripeProvider(stripe_api_key)
    return PrepaidProvider()
