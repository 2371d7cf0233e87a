"""Pages rendered from API-shaped data, without a server (the browser tests render
them against the real platform too; here every branch of the data is covered)."""

from __future__ import annotations

from typing import Any

from qlp_console.client import ApiError
from qlp_console.routes_more import _flat, consumer_rows, revenue_split, usage_per_tier
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
    if name == "admin.html":
        ctx.setdefault("consumers", consumer_rows([]))
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
    assert "qlpctl status" in html  # the same numbers on the command line


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


def _report(service: str, *groups: dict[str, Any]) -> dict[str, Any]:
    return {"service": service, "replica": "host-1", "measured_at_ms": 1_764_590_400_000,
            "groups": list(groups)}  # fmt: skip


def _group(name: str, lag: dict[str, int], dead: int = 0, waiting: int = 0) -> dict[str, Any]:
    return {"group": name, "description": f"{name} consumer",
            "topics": [{"topic": t, "lag": n} for t, n in lag.items()],
            "lag": sum(lag.values()), "dead_letters": dead, "not_replayed": waiting}  # fmt: skip


def test_consumer_rows_worst_first_with_totals_and_the_services_that_failed() -> None:
    down = ApiError(503, {"title": "Broker unavailable", "detail": "the broker did not answer"})
    c = consumer_rows(
        [
            ("billing", (_report("billing", _group("qlp-billing", {"a": 0, "b": 7})), None)),
            ("failover", (None, down)),
            ("scheduler", (_report("scheduler", _group("qlp-sched", {"c": 2}, 3, 1)), None)),
            ("gateway", (_report("gateway", _group("qlp-gw", {"d": 0})), None)),
        ]
    )
    # dead letters waiting come first, then the larger lag
    assert [r["group"] for r in c["rows"]] == ["qlp-sched", "qlp-billing", "qlp-gw"]
    assert [t["topic"] for t in c["rows"][1]["topics"]] == ["b", "a"]  # busiest topic first
    assert (c["lag"], c["dead_letters"], c["not_replayed"]) == (9, 3, 1)
    assert c["services"] == ["billing", "failover", "scheduler", "gateway"]
    assert [f["service"] for f in c["failed"]] == ["failover"]
    html = _render("admin.html", metrics=None, ledger=None, problem=None, ledger_problem=None,
                   flat=_flat, tiers=[], split=[], consumers=c)  # fmt: skip
    assert "3 consumer groups: 9 records not consumed yet, 3 dead letters (1 not replayed)." in html
    assert "qlpctl dlq replay" in html  # what to do about the waiting dead letter
    assert 'id="ops-problem-failover"' in html and "the broker did not answer" in html
    assert html.index("qlp-sched") < html.index("qlp-billing") < html.index("qlp-gw")
    assert "<code>b</code> 7" in html and "12:00:00" in html


def test_consumer_table_empty_states() -> None:
    html = _render("admin.html", metrics=None, ledger=None, problem=None, ledger_problem=None,
                   flat=_flat, tiers=[], split=[])  # fmt: skip
    assert "No consumer groups." in html and "qlpctl dlq replay" not in html
    down = ApiError(401, {"title": "Not signed in"})
    c = consumer_rows([("billing", (None, down))])
    html = _render("admin.html", metrics=None, ledger=None, problem=None, ledger_problem=None,
                   flat=_flat, tiers=[], split=[], consumers=c)  # fmt: skip
    assert "No service reported its consumer groups." in html
