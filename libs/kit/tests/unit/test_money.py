"""Money rules (pure logic, no servers)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qlp_kit.money import CurrencyMismatch, Money


def test_of_parses_exact_minor_units() -> None:
    assert Money.of("12.34").amount == 1234
    assert Money.of("0.05").amount == 5
    assert Money.of("-1.5").amount == -150
    assert Money.of("2499").amount == 249_900
    with pytest.raises(ValueError):
        Money.of("1.234")
    with pytest.raises(ValueError):
        Money.of("abc")


def test_rejects_floats_and_unknown_currency() -> None:
    with pytest.raises(TypeError):
        Money(1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Money(1, "XXX")


def test_currency_mismatch() -> None:
    with pytest.raises(CurrencyMismatch):
        Money(1, "USD") + Money(1, "EUR")


def test_platform_fees() -> None:
    fee, rest = Money(10_000).split(500)  # GPU: 5 % platform
    assert (fee.amount, rest.amount) == (500, 9_500)
    fee, rest = Money(999).split(3000)  # marketplace: 30 % platform
    assert (fee.amount, rest.amount) == (300, 699)


@given(st.integers(-(10**12), 10**12), st.integers(0, 10_000))
def test_split_never_creates_or_loses_a_cent(amount: int, bps: int) -> None:
    fee, rest = Money(amount).split(bps)
    assert fee + rest == Money(amount)
    assert abs(fee.amount) <= abs(amount)


@given(st.integers(0, 10**12), st.lists(st.integers(0, 1000), min_size=1, max_size=8))
def test_allocate_sums_to_whole(amount: int, weights: list[int]) -> None:
    if sum(weights) == 0:
        return
    parts = Money(amount).allocate(weights)
    assert sum(p.amount for p in parts) == amount
    assert all(p.amount >= 0 for p in parts)


def test_dict_round_trip_and_format() -> None:
    m = Money(123_456, "USD")
    assert Money.from_dict(m.to_dict()) == m
    assert m.format() == "1234.56 USD"
    assert Money(-5).format() == "-0.05 USD"
