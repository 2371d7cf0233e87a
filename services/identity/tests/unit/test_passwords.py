from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qlp_identity.passwords import (
    COMMON_PASSWORDS,
    Argon2Params,
    Passwords,
    PolicyError,
    check_password_policy,
    normalize_email,
)


@pytest.mark.parametrize(
    "pw",
    ["Correct-Horse-42!", "tr0ub4dor&3xyz", "a long passphrase 7", "ALLCAPS-WITH-SYMBOLS"],
)
def test_policy_accepts(pw: str) -> None:
    check_password_policy(pw, "someone@example.com")


@pytest.mark.parametrize(
    ("pw", "why"),
    [
        ("Short-1!", "at least 12"),
        ("abcdefghijklmnop", "two kinds"),
        ("123456789012345", "two kinds"),
        ("ABCDEFGHIJKLMNOP", "two kinds"),
        ("Password1234", "too common"),
        ("QWERTY123456", "too common"),
        ("aA" * 8, "too few"),
        ("someone-Secret-99", "e-mail"),
        ("x" * 300 + "A1", "at most"),
    ],
)
def test_policy_rejects(pw: str, why: str) -> None:
    with pytest.raises(PolicyError, match=why):
        check_password_policy(pw, "someone@example.com")


def test_common_list_is_long_enough_and_all_rejected() -> None:
    assert len(COMMON_PASSWORDS) >= 30
    for pw in COMMON_PASSWORDS:
        with pytest.raises(PolicyError):
            check_password_policy(pw)


@given(st.text(alphabet=st.characters(categories=["Ll"]), min_size=12, max_size=40))
def test_single_class_always_rejected(pw: str) -> None:
    with pytest.raises(PolicyError):
        check_password_policy(pw)


@pytest.mark.parametrize(
    ("raw", "norm"),
    [
        ("  Alice@Example.COM ", "alice@example.com"),
        ("a.b+tag@sub.example.io", "a.b+tag@sub.example.io"),
    ],
)
def test_email_normalized(raw: str, norm: str) -> None:
    assert normalize_email(raw) == norm


@pytest.mark.parametrize(
    "raw", ["", "plain", "a@b", "a@@b.com", "a b@c.com", ".a@b.com", "a..b@c.com", "a@-b.com"]
)
def test_email_rejected(raw: str) -> None:
    with pytest.raises(PolicyError):
        normalize_email(raw)


def test_argon2id_hash_and_verify() -> None:
    pw = Passwords(Argon2Params(time_cost=1, memory_kib=64))
    h = pw.hash("Correct-Horse-42!")
    assert h.startswith("$argon2id$") and "m=64,t=1,p=1" in h
    assert pw.verify(h, "Correct-Horse-42!")
    assert not pw.verify(h, "correct-horse-42!")
    assert not pw.verify(None, "anything")  # unknown user: dummy verify, never true
    assert not pw.verify("garbage", "x")
    stronger = Passwords(Argon2Params(time_cost=2, memory_kib=128))
    assert stronger.needs_rehash(h) and not pw.needs_rehash(h)
