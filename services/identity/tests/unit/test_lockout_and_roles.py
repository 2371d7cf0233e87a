from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from qlp_identity import roles
from qlp_identity.lockout import LockoutPolicy


def test_lock_duration_backs_off_and_caps() -> None:
    p = LockoutPolicy(max_failures=5, window_s=900, base_s=60, max_s=3600)
    assert [p.lock_duration_s(n) for n in range(8)] == [60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert p.lock_duration_s(1000) == 3600 and p.lock_duration_s(-3) == 60


@given(st.integers(1, 20), st.integers(1, 600), st.integers(0, 40))
def test_duration_monotone_and_bounded(max_f: int, base: int, level: int) -> None:
    p = LockoutPolicy(max_failures=max_f, base_s=base, max_s=base * 64)
    d, nxt = p.lock_duration_s(level), p.lock_duration_s(level + 1)
    assert base <= d <= nxt <= base * 64


def test_last_slot_locks_and_window() -> None:
    p = LockoutPolicy(max_failures=3, window_s=10)
    assert [p.should_lock(n) for n in (1, 2, 3)] == [False, False, True]
    assert not p.window_expired(last_attempt_ms=1000, now_ms=10_999)
    assert p.window_expired(last_attempt_ms=1000, now_ms=11_000)
    assert p.retry_after_s(locked_until_ms=5001, now_ms=1000) == 5
    assert p.retry_after_s(locked_until_ms=1000, now_ms=1000) == 1


@given(st.integers(1, 10), st.integers(1, 200))
def test_reservation_model_never_evaluates_more_than_allowed(max_f: int, attempts: int) -> None:
    """A model of the atomic reservation: slots are taken in any order, each one only
    while the count is below the limit; the count never exceeds it."""
    p = LockoutPolicy(max_failures=max_f)
    count = evaluated = 0
    for _ in range(attempts):
        if count < p.max_failures:  # the guarded, atomic $inc
            count += 1
            evaluated += 1
    assert evaluated == min(attempts, max_f)


def test_roles_and_scopes() -> None:
    assert set(roles.ROLES) == {"owner", "admin", "developer", "billing", "viewer"}
    for r in roles.ROLES:
        assert set(roles.scopes_for(r)) <= set(roles.SCOPES)
        assert roles.proto_role(r) != 0
    assert roles.can_grant("owner", "owner") and not roles.can_grant("admin", "owner")
    assert roles.can_grant("admin", "developer") and not roles.can_grant("developer", "viewer")
    assert not roles.can_manage_member("admin", "owner") and roles.can_manage_member(
        "owner", "owner"
    )
    assert "billing:write" not in roles.scopes_for("developer")


def test_login_picks_the_requested_then_the_default_org() -> None:
    from qlp_identity.service import IdentityService

    user = {"_id": "usr_1", "default_org_id": "org_b"}
    ms = [{"org_id": "org_a", "role": "viewer"}, {"org_id": "org_b", "role": "owner"}]
    pick = IdentityService._pick_membership
    assert pick(user, ms, "org_a") == ms[0]
    assert pick(user, ms, None) == ms[1]
    assert pick(user, ms, "org_zzz") is None
    assert pick({"_id": "usr_1", "default_org_id": "org_gone"}, ms, None) == ms[0]
    assert pick(user, [], None) is None
