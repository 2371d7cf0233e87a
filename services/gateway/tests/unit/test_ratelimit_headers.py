"""The RateLimit headers follow the IETF draft (draft-ietf-httpapi-ratelimit-headers):
structured-field lists ``RateLimit-Policy: "name";q=<quota>;w=<window>, …`` and
``RateLimit: "name";r=<remaining>;t=<seconds>``, no X-RateLimit-* or the older
RateLimit-Limit/-Remaining/-Reset."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from qlp_gateway.ratelimit import RateLimiter

POLICY_ITEM = re.compile(r'^"(?P<name>[a-z][a-z0-9-]*)";q=(?P<q>\d+);w=(?P<w>\d+)$')
LIMIT_ITEM = re.compile(r'^"(?P<name>[a-z][a-z0-9-]*)";r=(?P<r>\d+);t=(?P<t>\d+)$')


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _policies(value: str) -> dict[str, tuple[int, int]]:
    out = {}
    for item in value.split(", "):
        m = POLICY_ITEM.match(item)
        assert m, item
        out[m["name"]] = (int(m["q"]), int(m["w"]))
    return out


def _limit(value: str) -> tuple[str, int, int]:
    m = LIMIT_ITEM.match(value)
    assert m, value
    return m["name"], int(m["r"]), int(m["t"])


def test_only_the_draft_headers_are_sent() -> None:
    d = RateLimiter(clock=Clock()).check([("ip:1.2.3.4", 600)])
    h = d.headers()
    assert set(h) == {"RateLimit-Policy", "RateLimit"}
    assert h["RateLimit-Policy"] == '"anonymous";q=600;w=60'
    assert h["RateLimit"] == '"anonymous";r=599;t=1'


def test_every_applying_policy_is_listed_and_the_binding_one_named() -> None:
    rl = RateLimiter(clock=Clock())
    checks = [("org:o", 1200), ("key:k", 3)]
    d = rl.check(checks)
    h = d.headers()
    assert _policies(h["RateLimit-Policy"]) == {"default": (1200, 60), "api-key": (3, 60)}
    assert _limit(h["RateLimit"]) == ("api-key", 2, 20)
    for _ in range(2):
        rl.check(checks)
    refused = rl.check(checks)
    h = refused.headers()
    assert _limit(h["RateLimit"])[:2] == ("api-key", 0)
    assert h["Retry-After"] == "20"
    assert _policies(h["RateLimit-Policy"]) == {"default": (1200, 60), "api-key": (3, 60)}


@given(
    capacity=st.integers(1, 100),
    n=st.integers(1, 150),
    dt=st.floats(0, 5, allow_nan=False),
)
def test_headers_always_parse_and_stay_within_the_quota(capacity: int, n: int, dt: float) -> None:
    clock = Clock()
    rl = RateLimiter(clock=clock)
    for _ in range(n):
        clock.t += dt
        d = rl.check([("org:o", capacity)])
        h = d.headers()
        assert _policies(h["RateLimit-Policy"]) == {"default": (capacity, 60)}
        name, r, t = _limit(h["RateLimit"])
        assert name == "default" and 0 <= r <= capacity and 0 <= t <= 60
        assert ("Retry-After" in h) == (not d.allowed)
        if not d.allowed:
            assert r == 0 and int(h["Retry-After"]) >= 1
