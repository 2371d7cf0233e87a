"""Token-bucket rate limiting, in this process' memory. Pure; the clock is injected.

A bucket holds at most ``capacity`` tokens and refills at ``capacity`` per
``window_s``; each request takes one. With N gateway replicas every replica has its
own buckets, so the effective limit is up to N times the configured one (a shared
store is future work).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class TokenBucket:
    capacity: float
    refill_per_s: float
    tokens: float
    updated: float

    @classmethod
    def full(cls, capacity: int, window_s: float, now: float) -> TokenBucket:
        return cls(float(capacity), capacity / window_s, float(capacity), now)

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.refill_per_s)
            self.updated = now

    def take(self, now: float, n: float = 1.0) -> bool:
        self._refill(now)
        if self.tokens >= n:
            self.tokens -= n
            return True
        return False

    def retry_after_s(self, n: float = 1.0) -> float:
        """Seconds until ``n`` tokens are there."""
        missing = max(0.0, n - self.tokens)
        return missing / self.refill_per_s

    def reset_s(self) -> float:
        """Seconds until the bucket is full again."""
        return (self.capacity - self.tokens) / self.refill_per_s


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_s: int
    retry_after_s: int
    window_s: int
    scope: str = ""
    #: Every bucket the request was checked against: (policy name, quota).
    policies: tuple[tuple[str, int], ...] = ()

    def headers(self) -> dict[str, str]:
        """RateLimit headers of the IETF draft (draft-ietf-httpapi-ratelimit-headers,
        structured fields): ``RateLimit-Policy`` lists every quota policy that applies,
        ``RateLimit`` names the most constrained one with its remaining units ``r`` and
        the seconds ``t`` until it is full again. Plus ``Retry-After`` when refused."""
        policies = self.policies or ((self.scope or "default", self.limit),)
        h = {
            "RateLimit-Policy": ", ".join(
                f'"{name}";q={quota};w={self.window_s}' for name, quota in policies
            ),
            "RateLimit": f'"{self.scope or policies[0][0]}";r={self.remaining};t={self.reset_s}',
        }
        if not self.allowed:
            h["Retry-After"] = str(self.retry_after_s)
        return h


#: Policy names by bucket kind (the part of the bucket key before the colon).
POLICY_NAMES = {"org": "default", "key": "api-key", "ip": "anonymous", "authfail": "auth-failures"}


def policy_name(bucket_key: str) -> str:
    kind = bucket_key.split(":", 1)[0]
    return POLICY_NAMES.get(kind, kind)


class RateLimiter:
    """Buckets by key (``org:<id>``, ``key:<id>``, ``ip:<addr>``), least recently used
    evicted beyond ``max_buckets`` (an evicted bucket comes back full)."""

    def __init__(
        self,
        window_s: float = 60.0,
        max_buckets: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window_s = window_s
        self.max_buckets = max_buckets
        self.clock = clock
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def _bucket(self, key: str, capacity: int, now: float) -> TokenBucket:
        b = self._buckets.get(key)
        if b is None:
            b = TokenBucket.full(capacity, self.window_s, now)
            self._buckets[key] = b
            if len(self._buckets) > self.max_buckets:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            if b.capacity != capacity:  # the plan changed: keep the used share
                used = b.capacity - b.tokens
                b.capacity = float(capacity)
                b.refill_per_s = capacity / self.window_s
                b.tokens = max(0.0, min(b.capacity, b.capacity - used))
        return b

    def exhausted(self, key: str, capacity: int) -> bool:
        """True when the bucket has no whole token left (takes nothing)."""
        b = self._buckets.get(key)
        if b is None:
            return False
        b._refill(self.clock())
        return b.tokens < 1.0

    def check(self, limits: list[tuple[str, int]]) -> Decision:
        """Take one token from every bucket in ``limits`` (key, capacity) or from none.

        The answer describes the most constrained bucket; a refusal takes nothing.
        """
        now = self.clock()
        buckets = [(key, cap, self._bucket(key, cap, now)) for key, cap in limits]
        for _, _, b in buckets:
            b._refill(now)
        policies = tuple((policy_name(k), c) for k, c in limits)
        blocked = [(k, c, b) for k, c, b in buckets if b.tokens < 1.0]
        if blocked:
            key, cap, b = max(blocked, key=lambda t: t[2].retry_after_s())
            return Decision(
                allowed=False,
                limit=cap,
                remaining=0,
                reset_s=min(int(self.window_s), math.ceil(b.reset_s())),
                retry_after_s=max(1, math.ceil(b.retry_after_s())),
                window_s=int(self.window_s),
                scope=policy_name(key),
                policies=policies,
            )
        for _, _, b in buckets:
            b.take(now)
        key, cap, b = min(buckets, key=lambda t: t[2].tokens)
        return Decision(
            allowed=True,
            limit=cap,
            remaining=math.floor(b.tokens),
            reset_s=min(int(self.window_s), math.ceil(b.reset_s())),
            retry_after_s=0,
            window_s=int(self.window_s),
            scope=policy_name(key),
            policies=policies,
        )
