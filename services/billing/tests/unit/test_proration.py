"""Proration follows Stripe: the unused time of the old price is credited and the
remaining time of the new one charged, each a fraction of the FULL billing period,
to the second, rounded per line."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from qlp_billing import pricing

MARCH = (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC))
MARCH_S = 31 * 24 * 3600


def _charges(old: int, new: int, at: datetime) -> list[pricing.Charge]:
    return pricing.change_charges(
        old_name="Old",
        old_price=old,
        new_name="New",
        new_price=new,
        at=at,
        period_start=MARCH[0],
        period_end=MARCH[1],
    )


def test_upgrade_14_hours_before_month_end_is_14_hours_of_the_month() -> None:
    at = MARCH[1] - timedelta(hours=14)
    lines = _charges(9_900, 49_900, at)
    assert [c.amount for c in lines] == [-186, 939]  # 9,900 and 49,900 x 14 h / 744 h
    assert lines[0].description.startswith("Unused time on Old after 2026-03-31 10:00:00")
    assert lines[1].description.startswith("Remaining time on New after 2026-03-31 10:00:00")


def test_free_to_paid_late_in_the_month_charges_only_what_is_left() -> None:
    """A subscription opened an hour before the upgrade is still prorated over the
    whole month (the old code divided by the hour since it opened: ~93 % of a month)."""
    at = MARCH[1] - timedelta(hours=14)
    assert [c.amount for c in _charges(0, 9_900, at)] == [186]


def test_each_line_is_rounded_on_its_own() -> None:
    # 1 s left: 0.0037 and 0.0186 of a cent: both round to zero, no line at all
    assert _charges(9_900, 49_900, MARCH[1] - timedelta(seconds=1)) == []
    # half a month: 4,950 credit and 24,950 charge (a net of 20,000 either way)
    at = MARCH[0] + timedelta(seconds=MARCH_S // 2)
    assert [c.amount for c in _charges(9_900, 49_900, at)] == [-4_950, 24_950]
    # to the second: 1,339,201 s of 2,678,400 left of 3 and of 5 minor units
    at = MARCH[1] - timedelta(seconds=MARCH_S // 2 + 1)
    assert [c.amount for c in _charges(3, 5, at)] == [-2, 3]  # 1.5000011 and 2.5000019


def test_a_whole_or_an_empty_remainder() -> None:
    assert [c.amount for c in _charges(9_900, 49_900, MARCH[0])] == [-9_900, 49_900]
    assert _charges(9_900, 49_900, MARCH[1]) == []
    assert _charges(9_900, 49_900, MARCH[1] + timedelta(days=1)) == []


@given(
    st.integers(0, 10**7),
    st.integers(0, 10**7),
    st.integers(0, MARCH_S),
)
def test_lines_are_bounded_by_the_prices(old: int, new: int, left_s: int) -> None:
    lines = _charges(old, new, MARCH[1] - timedelta(seconds=left_s))
    credit = sum(c.amount for c in lines if c.amount < 0)
    charge = sum(c.amount for c in lines if c.amount > 0)
    assert -old <= credit <= 0 and 0 <= charge <= new
    assert credit == -pricing.prorate(old, left_s, MARCH_S)
    assert charge == pricing.prorate(new, left_s, MARCH_S)
