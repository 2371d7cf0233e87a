"""Pages rendered from API-shaped data, without a server (the browser tests render the
rest against the real platform; the admin views need a platform_admin token that no
organization role grants, so they are rendered here)."""

from __future__ import annotations

from typing import Any

from qlp_console.routes_more import _flat
from qlp_console.web import templates

METRICS = {
    "mrr": {"amount": 59_800, "currency": "USD"},
    "subscriptions_by_plan": {"free": 10, "starter": 2, "professional": 1},
    "paid_subscriptions": 3,
    "churn_30d": {"canceling": 1, "rate_bps": 3333},
    "usage_period": "2026-12",
    "generations_by_plan": {"starter": 40, "enterprise": 5},
    "usage_by_meter": {"api_calls": {"sum": 1200, "count": 1200}},
}
LEDGER = {"ok": True, "accounts": 12, "revenue": {"amount": 1234, "currency": "USD"}}


def _render(name: str, **ctx: Any) -> str:
    return templates.get_template(name).render(
        sess=None, csrf="t", path="/app/admin", flash=[], **ctx
    )


def test_admin_views_show_mrr_churn_plans_usage_and_the_ledger() -> None:
    html = _render("admin.html", metrics=METRICS, ledger=LEDGER, problem=None,
                   ledger_problem=None, flat=_flat)  # fmt: skip
    assert '<p class="big" id="mrr">$598.00</p>' in html
    assert "33.33 %" in html  # churn
    for plan in ("free", "starter", "professional", "enterprise"):
        assert f'<th scope="row">{plan}</th>' in html
    assert "api_calls" in html and "1,200" in html
    assert "balanced" in html and "$12.34" in html


def test_admin_ledger_problem_in_words() -> None:
    problem = {"status": 503, "title": "Service unavailable", "detail": "billing is down",
               "errors": [], "advice": "Try again later."}  # fmt: skip
    html = _render("admin.html", metrics=None, ledger=None, problem=None,
                   ledger_problem=problem, flat=_flat)  # fmt: skip
    assert "billing is down" in html and "Try again later." in html
