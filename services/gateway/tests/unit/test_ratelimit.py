from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from qlp_gateway.ratelimit import RateLimiter, TokenBucket


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_bucket_allows_burst_then_refuses_then_refills() -> None:
    clock = Clock()
    rl = RateLimiter(window_s=60, clock=clock)
    decisions = [rl.check([("org:a", 3)]) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    refused = decisions[-1]
    assert refused.retry_after_s == 20  # one token per 20 s
    h = refused.headers()
    assert h["RateLimit-Policy"] == '"default";q=3;w=60'
    assert h["RateLimit"] == '"default";r=0;t=60'
    assert h["Retry-After"] == "20"
    assert "Retry-After" not in decisions[0].headers()
    clock.t += 20
    assert rl.check([("org:a", 3)]).allowed
    assert not rl.check([("org:a", 3)]).allowed


def test_buckets_are_independent_per_key() -> None:
    rl = RateLimiter(clock=Clock())
    assert rl.check([("org:a", 1)]).allowed
    assert not rl.check([("org:a", 1)]).allowed
    assert rl.check([("org:b", 1)]).allowed


def test_api_key_and_org_buckets_are_all_or_nothing() -> None:
    rl = RateLimiter(clock=Clock())
    # The key's bucket (2) binds before the org's (10).
    both = [("org:a", 10), ("key:k1", 2)]
    assert rl.check(both).allowed and rl.check(both).allowed
    refused = rl.check(both)
    assert not refused.allowed and refused.scope == "api-key" and refused.limit == 2
    # A refusal takes nothing from the org: another key still has 8.
    got = [rl.check([("org:a", 10), ("key:k2", 100)]) for _ in range(9)]
    assert [d.allowed for d in got] == [True] * 8 + [False]
    assert got[-1].scope == "default"


def test_plan_upgrade_keeps_used_share_and_raises_limit() -> None:
    rl = RateLimiter(clock=Clock())
    for _ in range(3):
        rl.check([("org:a", 3)])
    assert not rl.check([("org:a", 3)]).allowed
    d = rl.check([("org:a", 100)])
    assert d.allowed and d.limit == 100 and d.remaining == 96


def test_lru_eviction_bounds_memory() -> None:
    rl = RateLimiter(max_buckets=10, clock=Clock())
    for i in range(100):
        rl.check([(f"ip:{i}", 5)])
    assert len(rl._buckets) == 10


@given(
    capacity=st.integers(1, 50),
    steps=st.lists(st.floats(0, 10, allow_nan=False), min_size=1, max_size=200),
)
def test_never_more_than_capacity_plus_refill(capacity: int, steps: list[float]) -> None:
    """Over any schedule, admitted <= capacity + elapsed * rate."""
    clock = Clock()
    rl = RateLimiter(window_s=60, clock=clock)
    start = clock.t
    admitted = 0
    for dt in steps:
        clock.t += dt
        if rl.check([("org:x", capacity)]).allowed:
            admitted += 1
    assert admitted <= capacity + (clock.t - start) * capacity / 60 + 1e-9


def test_bucket_math() -> None:
    b = TokenBucket.full(10, 60, now=0)
    assert b.take(0) and b.tokens == 9
    assert b.retry_after_s() == 0
    b.tokens = 0.5
    assert b.retry_after_s() == 3.0
    assert b.reset_s() == 57.0


def test_exhausted_peeks_without_taking() -> None:
    clock = Clock()
    rl = RateLimiter(clock=clock)
    assert not rl.exhausted("authfail:ip", 2)
    rl.check([("authfail:ip", 2)])
    assert not rl.exhausted("authfail:ip", 2)
    rl.check([("authfail:ip", 2)])
    assert rl.exhausted("authfail:ip", 2) and rl.exhausted("authfail:ip", 2)
    clock.t += 30
    assert not rl.exhausted("authfail:ip", 2)
