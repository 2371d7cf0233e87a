from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qlp_console import format as fmt


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ({"amount": 123456, "currency": "USD"}, "$1,234.56"),
        ({"amount": 5, "currency": "usd"}, "$0.05"),
        ({"amount": -250, "currency": "EUR"}, "-€2.50"),
        ({"amount": 100, "currency": "CHF"}, "1.00 CHF"),
        (None, "—"),
    ],
)
def test_money(value: dict[str, object] | None, text: str) -> None:
    assert fmt.money(value) == text


@pytest.mark.parametrize(
    ("text", "minor"),
    [("25", 2500), ("25.5", 2550), ("25.05", 2505), ("$1,000.00", 100000), (".5", 50)],
)
def test_parse_money(text: str, minor: int) -> None:
    assert fmt.parse_money(text) == minor


@pytest.mark.parametrize("text", ["", "-5", "0", "0.00", "1.234", "abc", "1.a", "1e3"])
def test_parse_money_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        fmt.parse_money(text)


@given(st.integers(min_value=1, max_value=10**12))
def test_money_round_trips(minor: int) -> None:
    assert fmt.parse_money(fmt.money({"amount": minor, "currency": "USD"})) == minor


def test_quota_bar_levels() -> None:
    assert fmt.quota_bar(10, 100) == {"value": 10, "max": 100, "pct": 10.0, "level": "ok"}
    assert fmt.quota_bar(85, 100)["level"] == "warn"
    over = fmt.quota_bar(150, 100)
    assert over["level"] == "over" and over["value"] == 100 and over["pct"] == 150.0
    assert fmt.quota_bar(5, None)["max"] is None


def test_problem_words_say_what_to_do() -> None:
    w = fmt.problem_words(
        422,
        {
            "title": "Unprocessable content",
            "detail": "gpu_count must be at least 1",
            "errors": [{"loc": ["body", "gpu_count"], "msg": "too small"}],
        },
    )
    assert w["title"] == "Unprocessable content" and w["detail"].startswith("gpu_count")
    assert w["errors"] == ["gpu_count: too small"]
    assert "not valid" in w["advice"]
    assert "balance" in fmt.problem_words(402, None)["advice"]
    assert fmt.problem_words(404, {})["title"] == "Not found"
    assert "another organization" in fmt.problem_words(404, {})["advice"]


def test_when_and_duration() -> None:
    assert fmt.when("2026-12-02T10:15:30Z") == "2026-12-02 10:15 UTC"
    assert fmt.when("2026-12-02T11:15:30+01:00") == "2026-12-02 10:15 UTC"
    assert fmt.when(None) == "—"
    assert fmt.duration(45) == "45 s"
    assert fmt.duration(125) == "2 min 5 s"
    assert fmt.duration(7260) == "2 h 1 min"


def test_json_for_html_cannot_close_its_script_element() -> None:
    import json

    evil = {"labels": ["</script><script>alert(1)</script> & more"]}
    text = fmt.json_for_html(evil)
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == evil
