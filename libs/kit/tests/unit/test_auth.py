"""Signed internal principal headers (pure logic)."""

import pytest

from qlp_kit.auth import (
    PRINCIPAL_HEADER,
    PRINCIPAL_SIG_HEADER,
    Principal,
    sign_principal,
    verify_principal,
)
from qlp_kit.problems import Problem

P = Principal(org_id="org_1", subject="usr_1", roles=["owner"], scopes=[])


def test_round_trip() -> None:
    headers = sign_principal(P, "s3cret", now=1000)
    assert verify_principal(headers, "s3cret", now=1010) == P


def test_wrong_secret_tampered_payload_and_old() -> None:
    headers = sign_principal(P, "s3cret", now=1000)
    with pytest.raises(Problem) as e:
        verify_principal(headers, "other", now=1000)
    assert e.value.status == 401
    forged = sign_principal(P.model_copy(update={"org_id": "org_2"}), "attacker", now=1000)
    mixed = {**headers, PRINCIPAL_HEADER: forged[PRINCIPAL_HEADER]}
    with pytest.raises(Problem):
        verify_principal(mixed, "s3cret", now=1000)
    with pytest.raises(Problem):
        verify_principal(headers, "s3cret", now=1000 + 3600)
    with pytest.raises(Problem):
        verify_principal({**headers, PRINCIPAL_SIG_HEADER: "0" * 64}, "s3cret", now=1000)
    with pytest.raises(Problem):
        verify_principal({}, "s3cret")


def test_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError):
        sign_principal(P, "")
    with pytest.raises(Problem):
        verify_principal(sign_principal(P, "x", now=1), "", now=1)


def test_scopes_and_roles() -> None:
    key = Principal(org_id="o", subject="key_1", kind="api_key", scopes=["gpu:jobs"])
    assert key.has_scope("gpu:jobs") and not key.has_scope("billing:read")
    assert P.has_role("owner", "admin") and not P.has_role("viewer")
