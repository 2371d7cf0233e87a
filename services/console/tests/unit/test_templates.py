"""Pages rendered from API-shaped data, without a server (the browser tests render
them against the real platform too; here every branch of the data is covered)."""

from __future__ import annotations

from typing import Any

from qlp_console.routes_more import _flat, revenue_split, usage_per_tier
from qlp_console.web import templates

METRICS = {
    "mrr": {"amount": 59_800, "currency": "USD"},
    "subscriptions_by_plan": {"free": 10, "starter": 2, "professional": 1},
    "paid_subscriptions": 3,
    "churn_30d": {"canceling": 1, "rate_bps": 3333},
    "usage_period": "2026-12",
    "generations_by_plan": {"starter": 40, "enterprise": 5},
    "usage_by_meter": {
        "api_calls": {"sum": 1200, "count": 1200},
        "generations.T2": {"sum": 7, "count": 7},
        "generations.T0": {"sum": 38, "count": 38},
    },
}
LEDGER = {
    "ok": True,
    "transactions": 12,
    "unbalanced": [],
    "totals_by_kind": {"platform_revenue": 1234, "creator_payable": 2879, "receivable": 0},
}


def _render(name: str, **ctx: Any) -> str:
    return templates.get_template(name).render(
        sess=None, csrf="t", path="/app/admin", flash=[], **ctx
    )


def test_admin_views_show_mrr_churn_plans_usage_and_the_ledger() -> None:
    html = _render("admin.html", metrics=METRICS, ledger=LEDGER, problem=None,
                   ledger_problem=None, flat=_flat, tiers=usage_per_tier(METRICS),
                   split=revenue_split(LEDGER))  # fmt: skip
    assert '<p class="big" id="mrr">$598.00</p>' in html
    assert "33.33 %" in html  # churn
    for plan in ("free", "starter", "professional", "enterprise"):
        assert f'<th scope="row">{plan}</th>' in html
    assert "api_calls" in html and "1,200" in html
    assert "balanced" in html and "$12.34" in html and "$28.79" in html
    assert "Platform revenue" in html and "Owed to creators" in html
    assert "qlpctl status" in html  # what no API reports says where to look


def test_usage_per_tier_and_revenue_split() -> None:
    assert usage_per_tier(METRICS) == [
        {"tier": "T0", "sum": 38, "count": 38},
        {"tier": "T2", "sum": 7, "count": 7},
    ]
    assert usage_per_tier(None) == [] and revenue_split(None) == []
    assert [r["kind"] for r in revenue_split(LEDGER)] == ["platform_revenue", "creator_payable"]
    assert revenue_split(LEDGER)[0]["amount"] == {"amount": 1234, "currency": "USD"}


def test_admin_empty_states() -> None:
    empty = {
        **METRICS,
        "usage_by_meter": {},
        "subscriptions_by_plan": {},
        "generations_by_plan": {},
    }
    ledger = {"ok": True, "transactions": 0, "totals_by_kind": {}}
    html = _render("admin.html", metrics=empty, ledger=ledger, problem=None,
                   ledger_problem=None, flat=_flat, tiers=[], split=[])  # fmt: skip
    for text in ("No subscriptions yet.", "No generations this period.",
                 "No usage this period.", "No money has moved yet."):  # fmt: skip
        assert text in html


def test_admin_ledger_problem_in_words() -> None:
    problem = {"status": 503, "title": "Service unavailable", "detail": "billing is down",
               "errors": [], "advice": "Try again later."}  # fmt: skip
    html = _render("admin.html", metrics=None, ledger=None, problem=None,
                   ledger_problem=problem, flat=_flat, tiers=[], split=[])  # fmt: skip
    assert "billing is down" in html and "Try again later." in html


def test_admin_failovers_per_hour_busy_hours_newest_first_and_empty() -> None:
    hour = {"primary": 0, "standby": 0, "completed": 0, "recovery_ms_p50": None}
    stats = {
        "total": 3,
        "providers_lost": 1,
        "hours": [
            {**hour, "hour": "01 Dec 10:00", "failovers": 2, "primary": 2, "completed": 2,
             "recovery_ms_p50": 1500},
            {**hour, "hour": "01 Dec 11:00", "failovers": 0},
            {**hour, "hour": "01 Dec 12:00", "failovers": 1, "standby": 1},
        ],
    }  # fmt: skip
    html = _render("admin.html", metrics=None, ledger=None, problem=None, ledger_problem=None,
                   flat=_flat, tiers=[], split=[], failovers=stats,
                   failovers_problem=None)  # fmt: skip
    assert "3 failovers in 24 h; 1 providers lost now." in html
    assert html.index("01 Dec 12:00") < html.index("01 Dec 10:00")  # newest first
    assert "01 Dec 11:00" not in html  # quiet hours are not rows
    assert "1.5 s" in html
    quiet = {**stats, "total": 0, "hours": [{**hour, "hour": "x", "failovers": 0}]}
    html = _render("admin.html", metrics=None, ledger=None, problem=None, ledger_problem=None,
                   flat=_flat, tiers=[], split=[], failovers=quiet,
                   failovers_problem=None)  # fmt: skip
    assert "No failovers in the last 24 hours." in html
