from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from qlp_billing import metering as M
from qlp_billing import pricing
from qlp_billing.metering import MeterAggregate
from qlp_billing.plans import PLANS, UnitPrice, get_plan, quota_meter

GRACE = timedelta(days=3)


def test_plans_are_data() -> None:
    assert set(PLANS) == {"free", "starter", "professional", "enterprise"}
    assert get_plan("starter").price.amount == 9_900
    assert get_plan("professional").price.amount == 49_900
    assert get_plan("enterprise").price.amount == 249_900
    assert get_plan("free").generations_included == 10
    assert get_plan("starter").quota("projects").limit == 5  # type: ignore[union-attr]
    assert get_plan("professional").quota("projects").unlimited  # type: ignore[union-attr]
    assert quota_meter("generations.t2") == "generations"
    assert quota_meter("api_calls") == "api_calls"


def test_period_keys_and_bounds() -> None:
    ts = datetime(2026, 12, 31, 23, 59, tzinfo=UTC)
    assert M.period_key(ts) == "2026-12"
    start, end = M.period_bounds("2026-12")
    assert start == datetime(2026, 12, 1, tzinfo=UTC) and end == datetime(2027, 1, 1, tzinfo=UTC)
    assert M.next_period_key("2026-12") == "2027-01"


def test_late_events_within_grace_land_in_their_period() -> None:
    occurred = datetime(2026, 3, 31, 23, 0, tzinfo=UTC)
    now = datetime(2026, 4, 2, tzinfo=UTC)
    v = M.classify(occurred, 5, now, GRACE)
    assert (v.status, v.period) == (M.ACCEPTED, "2026-03")


def test_events_after_grace_are_rejected_visibly() -> None:
    occurred = datetime(2026, 3, 31, 23, 0, tzinfo=UTC)
    v = M.classify(occurred, 5, datetime(2026, 4, 4, 0, 1, tzinfo=UTC), GRACE)
    assert (v.status, v.reason, v.period) == (M.REJECTED, "late", "2026-03")
    assert M.classify(occurred, -1, occurred, GRACE).reason == "invalid"
    assert M.classify(occurred + timedelta(hours=1), 1, occurred, GRACE).reason == "future"


def test_usage_prices() -> None:
    assert UnitPrice(1, 10).cost(1_000) == 100  # 1,000 API calls = $1.00
    assert UnitPrice(10, 730).cost(730) == 10  # 1 GB-month = $0.10
    assert UnitPrice(5).cost(3, 2) == 30


def test_generation_lines_waive_included_and_price_tiers() -> None:
    plan = get_plan("free")  # 10 included
    aggs = {
        "generations.t0": MeterAggregate("generations.t0", sum=8),
        "generations.t3": MeterAggregate("generations.t3", sum=5, premium_sum=1),
    }
    lines = pricing.generation_lines(plan, aggs)
    by_meter = {x.meter: x.amount for x in lines}
    # t3 first: 5 waived (incl. the premium one); t0: 5 waived, 3 billed at $0.10
    assert by_meter == {"generations.t3": 0, "generations.t0": 30}


def test_api_calls_beyond_free_tier() -> None:
    lines = pricing.usage_lines(
        get_plan("free"), {"api_calls": MeterAggregate("api_calls", sum=3_000)}
    )
    assert lines[0].amount == 200  # 2,000 beyond 1,000 included at $0.001


def test_invoice_lines_and_totals() -> None:
    lines = pricing.invoice_lines(
        plan_at_start=get_plan("free"),
        trial=False,
        plan_for_usage=get_plan("starter"),
        charges=[{"kind": "proration", "description": "Proration", "amount": 4_950}],
        aggs={"compute_minutes": MeterAggregate("compute_minutes", sum=10, premium_sum=2)},
        ledger_txns=[
            {
                "kind": "sale",
                "refs": {"purchase_id": "pur_1"},
                "legs": [
                    {"account": "customer_balance:o", "amount": 1_000},
                    {"account": "creator_payable:s", "amount": -700},
                    {"account": "platform_revenue:platform", "amount": -300},
                ],
            }
        ],
    )
    kinds = [x.kind for x in lines]
    assert kinds == ["subscription", "proration", "usage", "marketplace"]
    total, due = pricing.totals(lines)
    assert lines[2].amount == 60  # 8 x 5 + 2 x 10
    assert total == 4_950 + 60 + 1_000 and due == 4_950 + 60


@given(st.integers(-(10**9), 10**9), st.integers(0, 3_000_000), st.integers(1, 3_000_000))
def test_prorate_is_bounded(amount: int, remaining: int, period: int) -> None:
    remaining = min(remaining, period)
    p = pricing.prorate(amount, remaining, period)
    assert abs(p) <= abs(amount)
    assert pricing.prorate(amount, period, period) == amount
    assert pricing.prorate(amount, 0, period) == 0


def test_invoice_html_escapes_and_lists_lines() -> None:
    from qlp_billing.service import invoice_html

    page = invoice_html(
        {
            "_id": "inv_1",
            "org_id": "org_<x>",
            "number": "QLP-2026-000001",
            "period": "2026-03",
            "status": "finalized",
            "lines": [
                {
                    "kind": "subscription",
                    "description": "Starter plan",
                    "quantity": 1,
                    "amount": {"amount": 9_900, "currency": "USD"},
                }
            ],
            "total": {"amount": 9_900, "currency": "USD"},
            "amount_due": {"amount": 9_900, "currency": "USD"},
        }
    )
    assert "QLP-2026-000001" in page and "99.00 USD" in page
    assert "org_&lt;x&gt;" in page and "<x>" not in page


def test_late_usage_is_priced_as_the_difference_to_what_was_billed() -> None:
    plan = get_plan("starter")  # 100,000 API calls and 100 generations included
    before = {"api_calls": MeterAggregate("api_calls", sum=90_000)}
    after = {
        "api_calls": MeterAggregate("api_calls", sum=130_000),
        "generations.t1": MeterAggregate("generations.t1", sum=20),
    }
    lines = pricing.late_usage_lines("2026-03", plan, before, after)
    # 10,000 of the 40,000 late calls were still included: 30,000 x $0.001
    assert [(x.meter, x.quantity, x.amount) for x in lines] == [
        ("generations.t1", 20, 0),
        ("api_calls", 40_000, 3_000),
    ]
    assert all(x.description.startswith("Late usage for 2026-03: ") for x in lines)
    assert pricing.late_usage_lines("2026-03", plan, after, after) == []
