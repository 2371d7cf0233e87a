"""Brute-force protection arithmetic. Pure code; the atomic reservation that uses it
lives in the repository (one conditional ``find_one_and_update``).

Model: a user document holds ``fail_count`` (attempts reserved since the last success
or lockout), ``last_attempt_ms``, ``locked_until_ms`` and ``lock_level``. An attempt
is evaluated only after reserving a slot: ``fail_count < max`` and not locked. The slot
counts as a failure until the password proves right (then everything resets). The
attempt that fills the last slot and fails locks the account for
``base * 2**level`` seconds (capped) and raises the level, so repeated lockouts back
off exponentially; a success resets the level.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LockoutPolicy:
    max_failures: int = 5
    window_s: int = 900
    base_s: int = 60
    max_s: int = 3600

    def lock_duration_s(self, level: int) -> int:
        """Seconds a lockout at ``level`` (0 for the first) lasts."""
        level = max(0, level)
        if level >= 32:
            return self.max_s
        return int(min(self.max_s, self.base_s * (2**level)))

    def window_expired(self, last_attempt_ms: int, now_ms: int) -> bool:
        return now_ms - last_attempt_ms >= self.window_s * 1000

    def should_lock(self, fail_count_after_reservation: int) -> bool:
        """The failed attempt holding the last slot locks the account."""
        return fail_count_after_reservation >= self.max_failures

    def retry_after_s(self, locked_until_ms: int, now_ms: int) -> int:
        return max(1, -(-(locked_until_ms - now_ms) // 1000))
