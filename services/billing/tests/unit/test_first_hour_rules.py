"""What a new user meets in billing, as pure rules: plan ids, invoice lines in words,
signed invoice links, the invoice page, and the payment-method check of the Stripe
adapter (no servers)."""

from __future__ import annotations

from typing import Any

import pytest

from qlp_billing import ledger as L
from qlp_billing import pricing
from qlp_billing.invoice_docs import (
    LinkError,
    bill_to,
    invoice_html,
    link_key,
    sign_link,
    verify_link,
)
from qlp_billing.metering import MeterAggregate
from qlp_billing.payments import PrepaidProvider, StripeProvider
from qlp_billing.plans import PLANS, UnknownPlan, get_plan
from qlp_kit.money import Money


def test_plan_ids_are_case_insensitive_and_unknown_ones_list_the_valid_ones() -> None:
    assert get_plan("Starter").id == "starter"
    assert get_plan(" PROFESSIONAL ").id == "professional"
    with pytest.raises(UnknownPlan) as e:
        get_plan("gold")
    assert str(e.value) == (
        "there is no plan 'gold'; the plans are free, starter, professional, enterprise"
    )
    assert list(PLANS) == ["free", "starter", "professional", "enterprise"]


def test_usage_lines_say_in_words_what_was_included_and_billed() -> None:
    plan = get_plan("starter")
    aggs = {
        "api_calls": MeterAggregate("api_calls", sum=101_200),
        "generations.t2": MeterAggregate("generations.t2", sum=120),
        "compute_minutes": MeterAggregate("compute_minutes", sum=30),
    }
    lines = {x.meter: x for x in pricing.usage_lines(plan, aggs)}
    assert lines["api_calls"].description == (
        "API calls: 101,200 calls, 100,000 included in the Starter plan, "
        "1,200 billed at 0.001 USD each"
    )
    assert lines["api_calls"].amount == 120
    assert lines["generations.t2"].description == (
        "Generations T2: 120 generations, 100 included in the Starter plan, "
        "20 billed at 0.50 USD each"
    )
    assert lines["compute_minutes"].description == "Compute: 30 minutes at 0.05 USD per minute"


def _settle_txn(
    org: str, job: str, held: int, minutes: int, rate: int, model: str = "A100", count: int = 2
) -> dict[str, Any]:
    s = L.compute_settlement(
        Money(held), [L.ProviderUse("prv_1", "org_p", minutes, rate, model, count)], fee_bps=500
    )
    return L.escrow_settle(org, f"esc_{job}", job, "USD", s).to_doc()


def test_gpu_jobs_say_minutes_and_rate_and_free_failed_jobs_are_left_out() -> None:
    plan = get_plan("free")
    ran = _settle_txn("org_a", "job_ran", held=10_000, minutes=90, rate=120)
    failed = _settle_txn("org_a", "job_failed", held=10_000, minutes=0, rate=120)
    lines = pricing.invoice_lines(
        plan_at_start=plan,
        trial=False,
        plan_for_usage=plan,
        charges=[],
        aggs={},
        ledger_txns=[ran, failed],
    )
    assert [x.description for x in lines] == [
        "Free plan, monthly subscription",
        "GPU job job_ran (2 x A100): 90 GPU-minutes at 1.20 USD per GPU-hour",
    ]
    assert lines[1].amount == 180 and lines[1].prepaid
    assert pricing.totals(lines) == (180, 0)


def test_a_gpu_job_across_a_failover_names_the_model_only_when_both_providers_ran_it() -> None:
    same = L.compute_settlement(
        Money(10_000),
        [
            L.ProviderUse("prv_1", "org_p", 30, 120, "A100", 2),
            L.ProviderUse("prv_2", "org_q", 60, 120, "A100", 2),
        ],
        fee_bps=500,
    )
    mixed = L.compute_settlement(
        Money(10_000),
        [
            L.ProviderUse("prv_1", "org_p", 30, 120, "A100", 2),
            L.ProviderUse("prv_2", "org_q", 60, 150, "H100", 2),
        ],
        fee_bps=500,
    )
    old = L.compute_settlement(  # a settlement from before the model was on the event
        Money(10_000), [L.ProviderUse("prv_1", "org_p", 90, 120)], fee_bps=500
    )
    refs = [
        L.escrow_settle("org_a", f"esc_{i}", "job_1", "USD", s).refs
        for i, s in enumerate((same, mixed, old))
    ]
    assert [pricing.gpu_job_description(r) for r in refs] == [
        "GPU job job_1 (2 x A100): 90 GPU-minutes at 1.20 USD per GPU-hour",
        "GPU job job_1: 90 GPU-minutes",
        "GPU job job_1: 90 GPU-minutes at 1.20 USD per GPU-hour",
    ]


def test_signed_links_open_only_their_invoice_until_they_expire() -> None:
    key = link_key("", "internal-secret")
    assert key != b"internal-secret" and key == link_key("", "internal-secret")
    path = sign_link(key, "org_a", "inv_1", exp=2_000)
    assert path.startswith("/v1/billing/shared/invoices/inv_1?org=org_a&exp=2000&sig=")
    sig = path.rsplit("sig=", 1)[1]
    verify_link(key, "org_a", "inv_1", "2000", sig, now=1_999)
    bad = [
        ("org_b", "inv_1", "2000", sig, 1_999, "signature"),  # another org
        ("org_a", "inv_2", "2000", sig, 1_999, "signature"),  # another invoice
        ("org_a", "inv_1", "9999", sig, 1_999, "signature"),  # a later expiry
        ("org_a", "inv_1", "2000", sig, 2_000, "expired"),
        ("org_a", "inv_1", "", sig, 1_999, "incomplete"),
    ]
    for org, inv, exp, s, now, reason in bad:
        with pytest.raises(LinkError, match=reason):
            verify_link(key, org, inv, exp, s, now=now)
    with pytest.raises(LinkError):
        verify_link(link_key("", "other-secret"), "org_a", "inv_1", "2000", sig, now=1_999)


def test_invoice_page_has_parties_number_dates_lines_and_totals() -> None:
    sub = {
        "org_name": "Acme <Robotics>",
        "profile": {
            "name": "",
            "email": "billing@acme.example",
            "address": {"line1": "1 Main Street", "city": "Berlin", "postal_code": "10115"},
            "tax_id": "DE123",
        },
    }
    page = invoice_html(
        {
            "_id": "inv_1",
            "org_id": "org_a",
            "number": "QLP-2026-000001",
            "period": "2026-03",
            "period_start": 1_772_323_200_000,  # 2026-03-01
            "period_end": 1_775_001_600_000,  # 2026-04-01
            "issued_at": 1_775_260_800_000,  # 2026-04-04
            "due_at": 1_776_470_400_000,  # 2026-04-18
            "status": "finalized",
            "bill_to": bill_to(sub, "org_a"),
            "issuer": {"name": "QuantumLayer Platform, Inc.", "address": ["1 Road"], "email": ""},
            "lines": [
                {
                    "kind": "subscription",
                    "description": "Starter plan, monthly subscription",
                    "quantity": 1,
                    "amount": {"amount": 9_900, "currency": "USD"},
                }
            ],
            "subtotal": {"amount": 9_900, "currency": "USD"},
            "tax": {"amount": 0, "currency": "USD"},
            "total": {"amount": 9_900, "currency": "USD"},
            "amount_due": {"amount": 9_900, "currency": "USD"},
        }
    )
    for text in (
        "Invoice QLP-2026-000001",
        "QuantumLayer Platform, Inc.",
        "Acme &lt;Robotics&gt;",
        "1 Main Street",
        "10115 Berlin",
        "Tax ID: DE123",
        "Issue date</th><td>2026-04-04",
        "Due date</th><td>2026-04-18",
        "2026-03-01 to 2026-04-01",
        "Starter plan, monthly subscription",
        "Amount due",
        "99.00 USD",
    ):
        assert text in page, text
    assert "<Robotics>" not in page


class _FakeStripe:
    def __init__(self, methods: dict[str, list[str]]) -> None:
        self.methods = methods
        self.queries: list[str] = []
        self.v1 = self
        self.customers = self
        self.payment_methods = _Methods(methods)

    async def search_async(self, params: dict[str, Any]) -> dict[str, Any]:
        self.queries.append(params["query"])
        return {"data": [{"id": cid} for cid in self.methods]}


class _Methods:
    def __init__(self, methods: dict[str, list[str]]) -> None:
        self.methods = methods

    async def list_async(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"data": [{"id": m} for m in self.methods[params["customer"]]]}


async def test_payment_method_on_file() -> None:
    assert not await PrepaidProvider().has_payment_method("org_a")
    none = _FakeStripe({"cus_1": []})
    assert not await StripeProvider("sk", none).has_payment_method("org_a")
    assert none.queries == ["metadata['org_id']:'org_a'"]
    card = _FakeStripe({"cus_1": [], "cus_2": ["pm_card"]})
    assert await StripeProvider("sk", card).has_payment_method("org_a")


class _DownStripe:
    def __init__(self) -> None:
        self.v1 = self
        self.customers = self

    async def search_async(self, params: dict[str, Any]) -> dict[str, Any]:
        raise ConnectionError("stripe is down")


async def test_an_unreachable_provider_is_503_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    from qlp_billing import subscriptions
    from qlp_billing.base import ProviderUnavailable
    from qlp_billing.service import Billing
    from qlp_billing.settings import BillingSettings

    class _Store:
        async def get_wallet(self, org_id: str) -> dict[str, Any]:
            return {"bal": {}}

    monkeypatch.setattr(
        subscriptions, "provider_for", lambda *_: StripeProvider("sk", _DownStripe())
    )
    b = Billing(_Store(), BillingSettings(kafka_bootstrap_servers="k:1", mongodb_url="m://x"))  # type: ignore[arg-type]
    with pytest.raises(ProviderUnavailable) as e:
        await b._require_payable("org_a", get_plan("starter"), 100)
    assert e.value.status == 503
