"""Property tests over random sequences of top-ups, holds, settlements, refunds, sales,
payouts and reversals on the pure ledger: every transaction balances, no account goes
below what its rules allow, cached wallets equal the ledger, settling twice equals
settling once."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from qlp_billing import ledger as L
from qlp_kit.money import Money

ORGS = ["org_a", "org_b", "org_c"]
PROVIDERS = ["org_p1", "org_p2"]

amount = st.integers(min_value=1, max_value=50_000)
org = st.sampled_from(ORGS)
usage = st.lists(
    st.tuples(
        st.sampled_from(PROVIDERS), st.integers(0, 600), st.integers(0, 5_000)
    ),  # org, minutes, price per hour
    min_size=0,
    max_size=3,
)
op = st.one_of(
    st.tuples(st.just("topup"), org, amount),
    st.tuples(st.just("hold"), org, amount),
    st.tuples(st.just("settle"), st.integers(0, 30), usage, st.integers(0, 10_000)),
    st.tuples(st.just("sale"), org, st.sampled_from(ORGS), amount, st.integers(0, 10_000)),
    st.tuples(st.just("reverse"), st.integers(0, 60)),
    st.tuples(st.just("payout"), st.sampled_from(ORGS + PROVIDERS), st.booleans()),
)


def _snapshot(led: L.MemoryLedger) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    wallets = {o: {k: v for k, v in w.items() if v} for o, w in led.wallets.items()}
    return L.balances(led.txns.values()), {o: w for o, w in wallets.items() if w}


@settings(max_examples=300, deadline=None)
@given(st.lists(op, min_size=1, max_size=60))
def test_random_sequences_keep_every_invariant(ops: list[tuple]) -> None:  # type: ignore[type-arg]
    led = L.MemoryLedger()
    holds: list[tuple[str, str, Money]] = []
    n = 0
    for o in ops:
        n += 1
        before = _snapshot(led)
        try:
            if o[0] == "topup":
                led.post(L.topup(o[1], f"p{n}", Money(o[2])))
            elif o[0] == "hold":
                eid = f"e{n}"
                led.post(L.escrow_hold(o[1], eid, f"job{n}", Money(o[2])))
                holds.append((o[1], eid, Money(o[2])))
            elif o[0] == "settle" and holds:
                payer, eid, held = holds[o[1] % len(holds)]
                use = [L.ProviderUse(p, p, m, price) for p, m, price in o[2]]
                s = L.compute_settlement(held, use, o[3])
                assert s.charged + s.refunded == s.held
                assert sum(x.net for x in s.shares) + s.platform_fee == s.charged
                assert 0 <= s.charged <= s.held
                txn = L.escrow_settle(payer, eid, "job", "USD", s)
                first = led.post(txn)
                after_first = _snapshot(led)
                # settling twice equals settling once
                assert led.post(txn) is False
                assert _snapshot(led) == after_first
                if not first:
                    assert after_first == before
            elif o[0] == "sale":
                txn, creator, fee = L.sale(o[1], f"pur{n}", o[2], Money(o[3]), o[4])
                assert creator.amount + fee.amount == o[3]
                led.post(txn)
            elif o[0] == "reverse" and led.txns:
                ids = sorted(led.txns)
                original = led.txns[ids[o[1] % len(ids)]]
                led.post(L.reversal(original))
            elif o[0] == "payout":
                kind = L.PROVIDER_PAYABLE if o[2] else L.CREATOR_PAYABLE
                have = led.balance(L.account(kind, o[1]))
                if have > 0:
                    led.post(L.payout(o[1], f"po{n}", kind, Money(have)))
        except L.LedgerError:
            # a refused transaction changes nothing
            assert _snapshot(led) == before
        report = led.check()
        assert report.ok, report.to_dict()
    # every transaction balances and the system as a whole sums to zero
    for t in led.txns.values():
        assert sum(leg.amount for leg in t.legs) == 0
    raw = sum(leg.amount for t in led.txns.values() for leg in t.legs)
    assert raw == 0


def test_escrow_settles_95_5_and_refunds_the_rest() -> None:
    held = Money(10_000)
    use = [L.ProviderUse("prv_1", "org_p1", 60, 6_000)]  # 60 minutes at $60/h = $60
    s = L.compute_settlement(held, use, 500)
    assert (s.charged, s.platform_fee, s.refunded) == (6_000, 300, 4_000)
    assert s.shares[0].net == 5_700


def test_failover_settles_per_provider() -> None:
    use = [L.ProviderUse("prv_1", "org_p1", 30, 6_000), L.ProviderUse("prv_2", "org_p2", 30, 3_000)]
    s = L.compute_settlement(Money(10_000), use, 500)
    assert [x.gross for x in s.shares] == [3_000, 1_500]
    assert [x.net for x in s.shares] == [2_850, 1_425]
    assert s.platform_fee == 225 and s.refunded == 5_500


def test_settlement_is_capped_at_the_hold() -> None:
    use = [L.ProviderUse("prv_1", "org_p1", 600, 6_000), L.ProviderUse("prv_2", "o2", 600, 6_000)]
    s = L.compute_settlement(Money(1_001), use, 500)
    assert s.charged == 1_001 and s.refunded == 0
    assert sum(x.gross for x in s.shares) == 1_001


def test_unbalanced_transactions_are_refused() -> None:
    import pytest

    with pytest.raises(L.Unbalanced):
        L.Txn(
            "t1",
            "x",
            "org_a",
            (L.Leg("customer_balance:org_a", 5), L.Leg("platform_revenue:platform", -4)),
        )


def test_hold_beyond_balance_is_refused() -> None:
    import pytest

    led = L.MemoryLedger()
    led.post(L.topup("org_a", "p1", Money(100)))
    with pytest.raises(L.InsufficientFunds):
        led.post(L.escrow_hold("org_a", "e1", "j1", Money(101)))
    assert led.check().ok


def test_check_reports_problems() -> None:
    docs = [
        {
            "_id": "t1",
            "legs": [
                {"account": "customer_balance:o", "amount": 5},
                {"account": "payment_clearing:platform", "amount": -4},
            ],
        },
    ]
    rep = L.check(docs, {"o": {"customer_balance": 3}})
    assert not rep.ok
    assert rep.unbalanced == ["t1"]
    assert rep.negative == {"customer_balance:o": -5}
    assert "o" in rep.wallet_mismatch
