"""What a new user meets in billing, against the real database (and the in-process
app for the HTTP answers): plan-change previews, upgrades the org cannot pay,
cancelling a trial, public plans, and invoices a person would accept."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from qlp_billing import ledger as L
from qlp_billing.repository import Store
from qlp_billing.service import Billing, PaymentRequired
from qlp_billing.settings import BillingSettings
from qlp_billing.timeutil import dt
from qlp_kit.money import Money

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def _charges(sub: dict[str, Any]) -> list[int]:
    cs = sorted(sub["charges"].values(), key=lambda c: (dt(c["at"]), c.get("seq", 0)))
    return [int(c["amount"]) for c in cs]


async def test_preview_shows_the_proration_and_changes_nothing(
    clocked: Billing, clock: Any, unique: str
) -> None:
    org = f"org_pv{unique}"
    clock.now = datetime(2026, 3, 1, tzinfo=UTC)
    await clocked.open_subscription(org, plan_id="starter")
    clock.now = datetime(2026, 3, 17, tzinfo=UTC)  # 15 of 31 days left
    before = await clocked.store.get_subscription(org)
    p = await clocked.preview_change(org, "Professional")
    assert p["effect"] == "now" and p["plan"] == "professional"
    assert [(x["description"], x["amount"]["amount"]) for x in p["lines"]] == [
        ("Unused time on Starter after 2026-03-17 00:00:00 UTC", -4_790),
        ("Remaining time on Professional after 2026-03-17 00:00:00 UTC", 24_145),
    ]
    assert p["amount_due_now"] == {"amount": 19_355, "currency": "USD"}
    assert p["payable"] is False and p["balance"]["amount"] == 0
    down = await clocked.preview_change(org, "free")
    assert down["effect"] == "period_end" and down["lines"] == []
    assert down["effective_at"] == datetime(2026, 4, 1, tzinfo=UTC)
    after = await clocked.store.get_subscription(org)
    assert after is not None and before is not None
    assert after["version"] == before["version"] and after["plan_id"] == "starter"
    # what the preview said is what the change does
    await clocked.top_up(org, Money(20_000), f"pay_{unique}")
    sub = await clocked.change_plan(org, "professional", require_payment=True)
    assert _charges(sub) == [-4_790, 24_145]


async def test_an_upgrade_the_org_cannot_pay_is_refused_before_anything_changes(
    clocked: Billing, clock: Any, unique: str
) -> None:
    org = f"org_np{unique}"
    clock.now = datetime(2026, 3, 17, tzinfo=UTC)
    await clocked.open_subscription(org)
    with pytest.raises(PaymentRequired) as e:
        await clocked.change_plan(org, "starter", require_payment=True)
    assert "top up at least 47.90 USD with POST /v1/billing/credits" in str(e.value)
    assert e.value.extensions["shortfall"] == {"amount": 4_790, "currency": "USD"}
    sub = await clocked.store.get_subscription(org)
    assert sub is not None and sub["plan_id"] == "free" and not sub["charges"]
    await clocked.top_up(org, Money(4_790), f"pay_{unique}")
    sub = await clocked.change_plan(org, "starter", require_payment=True)
    assert sub["plan_id"] == "starter"


async def test_cancelling_a_trial_keeps_the_paid_plan_until_the_period_ends(
    clocked: Billing, clock: Any, unique: str
) -> None:
    org = f"org_ct{unique}"
    clock.now = datetime(2026, 3, 1, tzinfo=UTC)
    await clocked.open_subscription(org, plan_id="starter")
    await clocked.top_up(org, Money(100_000), f"pay_{unique}")
    clock.now = datetime(2026, 3, 10, tzinfo=UTC)
    sub = await clocked.change_plan(org, "professional", trial=True)
    assert sub["status"] == "trialing" and _charges(sub) == [-7_026]
    clock.now = datetime(2026, 3, 12, tzinfo=UTC)
    sub = await clocked.cancel(org)
    # back on what was paid for (Starter, its credit taken back), Free at the period end
    assert sub["plan_id"] == "starter" and sub["status"] == "active"
    assert sub["cancel_at_period_end"] and sub["scheduled_plan_id"] == "free"
    assert _charges(sub) == []
    gen = sub["quotas"]["generations"]
    assert gen["limit"] == 100
    # the trial's end comes and goes without a charge for Professional
    clock.now = datetime(2026, 3, 24, 0, 0, 1, tzinfo=UTC)
    sub = await clocked.subscription(org)
    assert sub["plan_id"] == "starter" and _charges(sub) == []
    clock.now = datetime(2026, 4, 2, tzinfo=UTC)
    await clocked.roll_due()
    sub = await clocked.subscription(org)
    assert sub["plan_id"] == "free"
    await clocked.run_invoicing()
    clock.now = datetime(2026, 4, 4, 0, 0, 1, tzinfo=UTC)
    await clocked.run_invoicing()
    inv = await clocked.store.invoice_for(org, "2026-03")
    assert inv is not None
    assert [x["amount"]["amount"] for x in inv["lines"]] == [9_900]
    assert inv["status"] == "paid"


async def test_cancelling_a_trial_started_on_free_returns_to_free_at_once(
    clocked: Billing, clock: Any, unique: str
) -> None:
    org = f"org_cf{unique}"
    clock.now = datetime(2026, 3, 2, tzinfo=UTC)
    await clocked.open_subscription(org)
    await clocked.change_plan(org, "starter", trial=True)
    clock.now = datetime(2026, 3, 5, tzinfo=UTC)
    sub = await clocked.cancel(org)
    assert sub["plan_id"] == "free" and sub["status"] == "active"
    assert not sub["cancel_at_period_end"] and _charges(sub) == []
    assert sub["quotas"]["generations"]["limit"] == 10
    clock.now = datetime(2026, 3, 20, tzinfo=UTC)  # past the trial's end: nothing billed
    sub = await clocked.subscription(org)
    assert sub["plan_id"] == "free" and _charges(sub) == []


async def test_issued_invoice_names_parties_dates_and_lines_in_words(
    clocked: Billing, clock: Any, unique: str
) -> None:
    org = f"org_iv{unique}"
    clock.now = datetime(2026, 3, 1, tzinfo=UTC)
    await clocked.open_subscription(org, plan_id="starter")
    await clocked.record_org(org, "Acme Robotics", "ops@acme.example")
    await clocked.set_billing_profile(
        org,
        {
            "email": "billing@acme.example",
            "address": {"line1": "1 Main Street", "city": "Berlin", "country": "Germany"},
            "tax_id": "DE123456789",
        },
    )
    await clocked.top_up(org, Money(50_000), f"pay_{unique}")
    # a GPU job that ran 90 minutes and one that failed before costing anything
    for job, minutes in (("job_ran", 90), ("job_failed", 0)):
        await clocked.escrow_hold(org, f"esc_{job}{unique}", job, Money(5_000), 500)
        await clocked.escrow_settle(
            org,
            f"esc_{job}{unique}",
            job,
            [L.ProviderUse("prv_1", "org_prov", minutes, 120, "RTX 4090", 1)],
        )
    clock.now = datetime(2026, 4, 2, tzinfo=UTC)
    await clocked.roll_due()
    await clocked.run_invoicing()
    clock.now = datetime(2026, 4, 4, 0, 0, 1, tzinfo=UTC)
    await clocked.run_invoicing()
    # the profile changes after issue: the issued invoice keeps what it was issued with
    await clocked.set_billing_profile(org, {"name": "Someone Else Ltd"})
    issued = await clocked.store.invoice_for(org, "2026-03")
    assert issued is not None
    inv = await clocked.invoice(org, issued["_id"])
    assert inv["number"].startswith("QLP-2026-")
    assert dt(inv["issued_at"]) == clock.now
    assert dt(inv["due_at"]) == datetime(2026, 4, 18, 0, 0, 1, tzinfo=UTC)
    assert inv["bill_to"]["name"] == "Acme Robotics"
    assert inv["bill_to"]["email"] == "billing@acme.example"
    assert inv["bill_to"]["address"]["city"] == "Berlin"
    assert inv["bill_to"]["tax_id"] == "DE123456789"
    assert inv["issuer"]["name"] == "QuantumLayer Platform, Inc."
    assert [x["description"] for x in inv["lines"]] == [
        "Starter plan, monthly subscription",
        "GPU job job_ran (1 x RTX 4090): 90 GPU-minutes at 1.20 USD per GPU-hour",
    ]
    assert inv["total"]["amount"] == 9_900 + 180 and inv["amount_due"]["amount"] == 9_900
    assert inv["subtotal"] == inv["total"] and inv["tax"]["amount"] == 0
    assert (await clocked.billing_profile(org))["name"] == "Someone Else Ltd"


async def test_api_plans_are_public_ids_any_case_and_payment_required(
    app_url: str, h: Any, unique: str
) -> None:
    async with httpx.AsyncClient(base_url=app_url, timeout=10) as c:  # no principal
        r = await c.get("/v1/billing/plans")
        assert r.status_code == 200 and len(r.json()["items"]) == 4
        r = await c.get("/v1/billing/plans/STARTER")
        assert r.status_code == 200 and r.json()["price"] == {"amount": 9_900, "currency": "USD"}
        r = await c.get("/v1/billing/plans/gold")
        assert r.status_code == 404 and "free, starter, professional, enterprise" in r.text
    org = f"org_ap{unique}"
    r = await h.api(app_url, "PUT", "/v1/billing/subscription", org, json={"plan": "Gold"})
    assert r.status_code == 422 and r.json()["plans"] == [
        "free",
        "starter",
        "professional",
        "enterprise",
    ]
    assert "the plans are free, starter" in r.json()["detail"]
    r = await h.api(app_url, "GET", "/v1/billing/subscription/preview", org, params={"plan": "x"})
    assert r.status_code == 422
    r = await h.api(
        app_url, "GET", "/v1/billing/subscription/preview", org, params={"plan": "Starter"}
    )
    assert r.status_code == 200, r.text
    preview = r.json()
    assert preview["effect"] == "now" and preview["payable"] is False
    due = preview["amount_due_now"]["amount"]
    assert due > 0 and preview["lines"][0]["amount"]["amount"] == due
    r = await h.api(app_url, "PUT", "/v1/billing/subscription", org, json={"plan": "STARTER"})
    assert r.status_code == 402, r.text
    doc = r.json()
    assert doc["title"] == "Payment required" and doc["type"].endswith("/insufficient-funds")
    assert "POST /v1/billing/credits" in doc["detail"] and doc["shortfall"]["amount"] >= due - 1
    assert r.headers["x-qlp-not-executed"] == "1"  # nothing changed: a retry may run it
    r = await h.api(app_url, "GET", "/v1/billing/subscription", org)
    assert r.json()["plan"] == "free"
    r = await h.api(
        app_url,
        "POST",
        "/v1/billing/credits",
        org,
        json={"amount": {"amount": 10_000, "currency": "USD"}},
    )
    assert r.status_code == 201, r.text
    r = await h.api(app_url, "PUT", "/v1/billing/subscription", org, json={"plan": "STARTER"})
    assert r.status_code == 200 and r.json()["plan"] == "starter"
    for bad in ("50.00", 50.5):
        r = await h.api(
            app_url, "POST", "/v1/billing/credits", org, json={"amount": {"amount": bad}}
        )
        assert r.status_code == 422
        assert r.json()["detail"] == (
            "amount.amount: amount is an integer in minor units (cents): 50.00 USD is 5000"
        )
    r = await h.api(
        app_url,
        "POST",
        "/v1/billing/credits",
        org,
        json={"amount": {"amount": 100, "currency": "EUR"}},
    )
    assert r.status_code == 422 and "settles USD" in r.json()["detail"]


async def test_api_invoice_html_and_signed_links(
    app_url: str, app_db: Any, h: Any, unique: str
) -> None:
    org = f"org_sl{unique}"
    r = await h.api(
        app_url,
        "PUT",
        "/v1/billing/profile",
        org,
        json={"name": "Linked Org", "address": {"city": "Lisbon"}},
    )
    assert r.status_code == 200 and r.json()["name"] == "Linked Org"
    r = await h.api(app_url, "GET", "/v1/billing/invoices/upcoming/html", org)
    assert r.status_code == 200 and "Linked Org" in r.text and "Invoice preview" in r.text
    # an issued invoice of this org, issued by the service over the app's database
    past = _Clock(datetime(2026, 1, 1, tzinfo=UTC))
    settings = BillingSettings(
        kafka_bootstrap_servers="unused:9092",
        mongodb_url="mongodb://unused",
        usage_grace_s=3 * 24 * 3600,
    )
    b = Billing(Store(app_db), settings, past)
    await b.open_subscription(org + "_old", plan_id="starter")
    past.now = datetime(2026, 2, 5, tzinfo=UTC)
    await b.roll_due()
    await b.run_invoicing()
    await b.run_invoicing()
    issued = await b.store.invoice_for(org + "_old", "2026-01")
    assert issued is not None and issued["status"] == "finalized"
    old = org + "_old"
    r = await h.api(app_url, "POST", f"/v1/billing/invoices/{issued['_id']}/link", old)
    assert r.status_code == 201, r.text
    link = r.json()
    assert dt(link["expires_at"]) > datetime.now(UTC)
    async with httpx.AsyncClient(base_url=app_url, timeout=10) as c:  # no bearer, no principal
        r = await c.get(link["url"])
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/html")
        assert issued["number"] in r.text and "Starter plan, monthly subscription" in r.text
        parts = urlsplit(link["url"])
        q = {k: v[0] for k, v in parse_qs(parts.query).items()}
        tampered = f"{parts.path}?org={org}&exp={q['exp']}&sig={q['sig']}"
        r = await c.get(tampered)  # the link of one org does not open another's
        assert r.status_code == 403 and "signature" in r.text
        r = await c.get(f"{parts.path}?org={old}&exp=1000&sig={q['sig']}")
        assert r.status_code == 403
    r = await h.api(app_url, "POST", "/v1/billing/invoices/inv_nope/link", org)
    assert r.status_code == 404
    r = await h.api(app_url, "POST", "/v1/billing/invoices/upcoming/link", org)
    assert r.status_code == 201
    async with httpx.AsyncClient(base_url=app_url, timeout=10) as c:
        r = await c.get(r.json()["url"])
        assert r.status_code == 200 and "Linked Org" in r.text


class _Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now
