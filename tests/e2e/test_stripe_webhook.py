"""A Stripe-signed ``payment_intent.succeeded`` through the gateway, as ``make up``
runs the platform: the runtime generated billing's development webhook secret, the
official SDK signs the event, the balance rises once; a redelivery changes nothing.
Tolerance and rotation (several ``v1=`` values) as Stripe sends them."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import pytest
import stripe

from qlp_testing.flows import bearer, eventually, signup

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

URL = "/v1/billing/webhooks/stripe"


def _event(org_id: str, amount: int) -> str:
    return json.dumps(
        {
            "id": f"evt_{uuid.uuid4().hex}",
            "object": "event",
            "type": "payment_intent.succeeded",
            "data": {
                "object": {
                    "id": f"pi_{uuid.uuid4().hex[:24]}",
                    "object": "payment_intent",
                    "amount": amount,
                    "amount_received": amount,
                    "currency": "usd",
                    "status": "succeeded",
                    "metadata": {"org_id": org_id, "purpose": "qlp_prepaid_credits"},
                }
            },
        }
    )


async def _balance(c: httpx.AsyncClient, auth: dict[str, str]) -> int:
    r = await c.get("/v1/billing/balance", headers=auth)
    assert r.status_code == 200, r.text
    return int(r.json()["balance"]["amount"])


async def _post(c: httpx.AsyncClient, payload: str, header: str) -> httpx.Response:
    return await c.post(
        URL,
        content=payload.encode(),
        headers={"Stripe-Signature": header, "Content-Type": "application/json"},
    )


async def test_sdk_signed_top_up_through_the_gateway_books_once(qlp_platform: Any) -> None:
    secret = qlp_platform.webhook_secret()
    assert secret.startswith("whsec_")
    async with httpx.AsyncClient(base_url=qlp_platform.state.gateway_url, timeout=30) as c:
        owner = await signup(c, "stripe-webhook")
        org, auth = owner["org"]["id"], bearer(owner)
        await eventually(lambda: _balance(c, auth), lambda b: b == 0, what="a wallet")

        payload = _event(org, 4_200)
        header = stripe.WebhookSignature.generate_signature_header(payload, secret)
        r = await _post(c, payload, header)
        assert r.status_code == 200, r.text
        assert r.json() == {"received": True, "duplicate": False}
        assert await _balance(c, auth) == 4_200

        r = await _post(c, payload, header)  # Stripe redelivers the same event
        assert r.status_code == 200 and r.json()["duplicate"] is True
        assert await _balance(c, auth) == 4_200

        # a different signing secret is refused with a problem, not a 500
        forged = stripe.WebhookSignature.generate_signature_header(payload, "whsec_wrong")
        r = await _post(c, _event(org, 999), forged)
        assert r.status_code == 400, r.text
        assert r.headers["content-type"].startswith("application/problem+json")

        # within the 5-minute tolerance: accepted; older: refused (a replay)
        fresh = _event(org, 100)
        ts = int(time.time()) - 240
        r = await _post(
            c, fresh, stripe.WebhookSignature.generate_signature_header(fresh, secret, ts)
        )
        assert r.status_code == 200, r.text
        stale = _event(org, 10_000)
        ts = int(time.time()) - 400
        r = await _post(
            c, stale, stripe.WebhookSignature.generate_signature_header(stale, secret, ts)
        )
        assert r.status_code == 400 and "tolerance" in r.json()["detail"]

        # during a secret rotation Stripe signs with each secret: one match is enough
        rotated = _event(org, 50)
        ts = int(time.time())
        good = stripe.WebhookSignature.generate_signature_header(rotated, secret, ts)
        old = stripe.WebhookSignature.generate_signature_header(rotated, "whsec_retired", ts)
        header = f"{old},{good.split(',', 1)[1]}"  # t=..,v1=<old>,v1=<current>
        assert header.count("v1=") == 2
        r = await _post(c, rotated, header)
        assert r.status_code == 200 and r.json()["duplicate"] is False
        assert await _balance(c, auth) == 4_200 + 100 + 50


async def test_the_development_secret_is_stable_across_restarts(tmp_path: Any) -> None:
    from qlp_infra.runtime import Runtime

    a = Runtime(dir_=tmp_path).webhook_secret()
    assert a.startswith("whsec_") and len(a) > 30
    assert Runtime(dir_=tmp_path).webhook_secret() == a
    given = Runtime(dir_=tmp_path, extra_env={"QLP_BILLING_STRIPE_WEBHOOK_SECRETS": "whsec_given"})
    assert given.webhook_secret() == "whsec_given"
