from __future__ import annotations

from typing import Any

import pytest

from qlp_billing.payments import PrepaidProvider, StripeProvider, provider_for
from qlp_kit.money import Money


class _Intents:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def create_async(self, params: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
        self.calls.append({"params": params, "options": options})
        return {"id": "pi_123", "client_secret": "pi_123_secret"}


class _V1:
    def __init__(self) -> None:
        self.payment_intents = _Intents()


class _Client:
    def __init__(self) -> None:
        self.v1 = _V1()


async def test_stripe_top_up_creates_an_intent_with_org_metadata() -> None:
    client = _Client()
    started = await StripeProvider("sk_test", client).start_top_up("org_1", Money(2_500), "pay_abc")
    assert (started.provider_payment_id, started.status) == ("pi_123", "pending")
    call = client.v1.payment_intents.calls[0]
    assert call["params"]["amount"] == 2_500 and call["params"]["currency"] == "usd"
    assert call["params"]["metadata"]["org_id"] == "org_1"
    assert call["options"] == {"idempotency_key": "pay_abc"}


async def test_prepaid_books_at_once_and_provider_selection() -> None:
    started = await PrepaidProvider().start_top_up("org_1", Money(1), "pay_1")
    assert started.status == "succeeded" and started.provider_payment_id == "pay_1"
    assert provider_for("prepaid").name == "prepaid"
    assert provider_for("stripe", "sk_test_x").name == "stripe"
    with pytest.raises(ValueError):
        provider_for("stripe")
