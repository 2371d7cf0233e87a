"""A Stripe top-up survives a failure while it is applied: the event is recorded as
handled only after the credit, so the provider's retry books it (once)."""

from __future__ import annotations

from typing import Any

import pytest

from qlp_billing import provider_events as P
from qlp_billing.service import Billing

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _event(unique: str, org: str, amount: int = 4_200, currency: str = "usd") -> dict[str, Any]:
    return {
        "id": f"evt_{unique}",
        "type": "payment_intent.succeeded",
        "data": {
            "object": {
                "id": f"pi_{unique}",
                "amount_received": amount,
                "currency": currency,
                "metadata": {"org_id": org},
            }
        },
    }


async def test_failed_apply_is_retried_not_answered_duplicate(
    billing: Billing, mongo_db: Any, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    org = f"org_wh{unique}"
    real = billing.store.commit_txn
    calls = {"n": 0}

    async def flaky(*args: Any, **kw: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("database went away mid-write")
        return await real(*args, **kw)

    monkeypatch.setattr(billing.store, "commit_txn", flaky)
    event = _event(unique, org)
    with pytest.raises(ConnectionError):  # the route answers 5xx; the provider retries
        await P.handle_stripe_event(billing, event)
    assert await mongo_db["webhook_events"].count_documents({"_id": event["id"]}) == 0
    out = await P.handle_stripe_event(billing, event)  # the retry
    assert (out.duplicate, out.applied) == (False, True)
    assert (await billing.balance(org))["balance"]["amount"] == 4_200
    again = await P.handle_stripe_event(billing, event)  # a redelivery after success
    assert again.duplicate
    assert (await billing.balance(org))["balance"]["amount"] == 4_200
    assert (await billing.ledger_check()).ok


async def test_same_intent_under_two_event_ids_books_once(billing: Billing, unique: str) -> None:
    org = f"org_wi{unique}"
    a = _event(unique, org)
    b = {**_event(unique, org), "id": f"evt_{unique}_b"}
    assert (await P.handle_stripe_event(billing, a)).applied
    out = await P.handle_stripe_event(billing, b)
    assert (out.duplicate, out.applied) == (False, False)
    assert (await billing.balance(org))["balance"]["amount"] == 4_200


async def test_an_event_that_can_never_apply_is_recorded_with_its_reason(
    billing: Billing, mongo_db: Any, unique: str
) -> None:
    org = f"org_wr{unique}"
    out = await P.handle_stripe_event(billing, _event(unique, org, currency="eur"))
    assert not out.applied and "USD" in out.reason
    doc = await mongo_db["webhook_events"].find_one({"_id": f"evt_{unique}"})
    assert doc["applied"] is False and "USD" in doc["reason"]
    assert (await billing.balance(org))["balance"]["amount"] == 0
