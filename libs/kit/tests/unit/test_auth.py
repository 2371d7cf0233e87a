"""Signed internal principal headers (pure logic)."""

import pytest

from qlp_kit.auth import (
    MAX_AGE_S,
    PRINCIPAL_HEADER,
    PRINCIPAL_SIG_HEADER,
    Principal,
    request_target,
    verify_principal,
)
from qlp_kit.auth import sign_principal as _sign
from qlp_kit.problems import Problem

P = Principal(org_id="org_1", subject="usr_1", roles=["owner"], scopes=[])
REQ = {"method": "GET", "target": "/v1/gpu/jobs?limit=5"}


def sign_principal(p: Principal, secret: str, now: float | None = None) -> dict[str, str]:
    return _sign(p, secret, now=now, **REQ)


def verify(headers: dict[str, str], secret: str, now: float | None = None) -> Principal:
    return verify_principal(headers, secret, now=now, **REQ)


def test_round_trip() -> None:
    headers = sign_principal(P, "s3cret", now=1000)
    assert verify(headers, "s3cret", now=1010) == P


def test_wrong_secret_tampered_payload_and_old() -> None:
    headers = sign_principal(P, "s3cret", now=1000)
    with pytest.raises(Problem) as e:
        verify(headers, "other", now=1000)
    assert e.value.status == 401
    forged = sign_principal(P.model_copy(update={"org_id": "org_2"}), "attacker", now=1000)
    mixed = {**headers, PRINCIPAL_HEADER: forged[PRINCIPAL_HEADER]}
    with pytest.raises(Problem):
        verify(mixed, "s3cret", now=1000)
    with pytest.raises(Problem):
        verify(headers, "s3cret", now=1000 + 3600)
    with pytest.raises(Problem):
        verify({**headers, PRINCIPAL_SIG_HEADER: "0" * 64}, "s3cret", now=1000)
    with pytest.raises(Problem):
        verify({}, "s3cret")


def test_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError):
        sign_principal(P, "")
    with pytest.raises(Problem):
        verify(sign_principal(P, "x", now=1), "", now=1)


def test_scopes_and_roles() -> None:
    key = Principal(org_id="o", subject="key_1", kind="api_key", scopes=["gpu:jobs"])
    assert key.has_scope("gpu:jobs") and not key.has_scope("billing:read")
    assert P.has_role("owner", "admin") and not P.has_role("viewer")


def test_bound_to_method_and_target() -> None:
    """A captured header set cannot be replayed on another method, path or query."""
    headers = sign_principal(P, "s3cret", now=1000)
    assert verify(headers, "s3cret", now=1000) == P
    for method, target in [
        ("POST", "/v1/gpu/jobs?limit=5"),
        ("DELETE", "/v1/gpu/jobs?limit=5"),
        ("GET", "/v1/gpu/jobs"),
        ("GET", "/v1/gpu/jobs?limit=500"),
        ("GET", "/v1/billing/balance?limit=5"),
        ("GET", "/v1/gpu/jobs/?limit=5"),
    ]:
        with pytest.raises(Problem) as e:
            verify_principal(headers, "s3cret", method=method, target=target, now=1000)
        assert e.value.status == 401
    # The method is not case-sensitive (HTTP methods are upper-case on the wire).
    assert (
        verify_principal(headers, "s3cret", method="get", target="/v1/gpu/jobs?limit=5", now=1000)
        == P
    )


def test_short_lifetime() -> None:
    headers = sign_principal(P, "s3cret", now=1000)
    assert MAX_AGE_S <= 30
    assert verify(headers, "s3cret", now=1000 + MAX_AGE_S) == P
    with pytest.raises(Problem) as e:
        verify(headers, "s3cret", now=1000 + MAX_AGE_S + 1)
    assert e.value.status == 401 and "too old" in str(e.value.detail)
    with pytest.raises(Problem):  # from the future just as much
        verify(headers, "s3cret", now=1000 - MAX_AGE_S - 1)


def test_request_target() -> None:
    assert request_target(b"/a%20b", b"x=1&y=2") == "/a%20b?x=1&y=2"
    assert request_target("/a", "") == "/a"
