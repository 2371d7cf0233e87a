from __future__ import annotations

import time
from collections.abc import Callable

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qlp_identity.tokens import (
    JwksVerifier,
    RefreshOutcome,
    RotationSchedule,
    SigningKey,
    TokenInvalid,
    access_claims,
    assess_refresh,
    current_signing_key,
    generate_key,
    jwks,
    load_private_key,
    new_api_key,
    new_refresh_token,
    parse_api_key,
    sha256_hex,
    sign_access_token,
)

ISS, AUD = "https://qlp.local/identity", "qlp-api"


def _key(gen: int, created_ms: int, secret: str = "") -> SigningKey:
    m = generate_key(2048, secret)
    priv = load_private_key(m.private_pem, secret, m.encrypted)
    return SigningKey(m.kid, gen, created_ms, m.public_jwk, priv)


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return _key(1, 0, "at-rest-secret")


def _claims(**kw: object) -> dict[str, object]:
    base = access_claims(
        issuer=ISS,
        audience=AUD,
        user_id="usr_1",
        org_id="org_1",
        roles=["owner"],
        scopes=["gpu:jobs"],
        ttl_s=900,
    )
    base.update(kw)
    return base


def test_private_key_is_encrypted_at_rest() -> None:
    m = generate_key(2048, "s3cret")
    assert m.encrypted and b"ENCRYPTED PRIVATE KEY" in m.private_pem
    with pytest.raises((TypeError, ValueError)):
        load_private_key(m.private_pem, "wrong", True)
    assert "d" not in m.public_jwk and m.public_jwk["alg"] == "RS256"


def test_sign_and_verify_against_jwks(key: SigningKey) -> None:
    token = sign_access_token(key, _claims())
    assert jwt.get_unverified_header(token)["kid"] == key.kid
    claims = JwksVerifier(jwks([key], 0), ISS, AUD).verify(token)
    assert claims["sub"] == "usr_1" and claims["org"] == "org_1"
    assert claims["exp"] - claims["iat"] == 900 and claims["nbf"] == claims["iat"]


@pytest.mark.parametrize(
    "bad",
    [
        lambda now: {"aud": "other"},
        lambda now: {"iss": "https://evil"},
        lambda now: {"exp": now - 10},
        lambda now: {"nbf": now + 600},
    ],
    ids=["aud", "iss", "expired", "not-yet-valid"],
)
def test_verify_rejects(key: SigningKey, bad: Callable[[int], dict[str, object]]) -> None:
    # times are taken when the test runs, not when it was collected (a long session
    # would otherwise turn "600 s from now" into the past)
    token = sign_access_token(key, _claims(**bad(int(time.time()))))
    with pytest.raises(TokenInvalid):
        JwksVerifier(jwks([key], 0), ISS, AUD).verify(token)


def test_unknown_kid_and_tampering(key: SigningKey) -> None:
    other = _key(2, 0)
    token = sign_access_token(other, _claims())
    with pytest.raises(TokenInvalid, match="unknown key"):
        JwksVerifier(jwks([key], 0), ISS, AUD).verify(token)
    good = sign_access_token(key, _claims())
    head, _body, sig = good.split(".")
    forged = jwt.utils.base64url_encode(b'{"sub":"usr_2"}').decode()
    with pytest.raises(TokenInvalid):
        JwksVerifier(jwks([key], 0), ISS, AUD).verify(f"{head}.{forged}.{sig}")
    with pytest.raises(TokenInvalid):
        JwksVerifier(jwks([key], 0), ISS, AUD).verify("not-a-jwt")
    # alg "none" and HMAC-with-the-public-key confusion are refused
    none_head = jwt.utils.base64url_encode(b'{"alg":"none","kid":"%s"}' % key.kid.encode())
    with pytest.raises(TokenInvalid, match="algorithm"):
        JwksVerifier(jwks([key], 0), ISS, AUD).verify(f"{none_head.decode()}.{body_of(good)}.")
    hs = jwt.encode(
        _claims(), "secret-key-of-32-bytes-or-more!!", algorithm="HS256", headers={"kid": key.kid}
    )
    with pytest.raises(TokenInvalid, match="algorithm"):
        JwksVerifier(jwks([key], 0), ISS, AUD).verify(hs)
    # a required claim missing
    partial = _claims()
    del partial["jti"]
    with pytest.raises(TokenInvalid, match="required"):
        JwksVerifier(jwks([key], 0), ISS, AUD).verify(sign_access_token(key, partial))


def body_of(token: str) -> str:
    return token.split(".")[1]


def test_rotation_schedule() -> None:
    sched = RotationSchedule(interval_s=3600, access_ttl_s=900, cache_s=30, leeway_s=120)
    k = SigningKey("k1", 1, created_ms=0, public_jwk={"kid": "k1"}, private_key=None)
    assert sched.due(None, 0)
    assert not sched.due(k, 3_599_999)
    assert sched.due(k, 3_600_000)
    # a retired key stays published for TTL + cache + leeway
    assert sched.unpublish_at(10_000) == 10_000 + (900 + 30 + 120) * 1000


def test_prepublished_key_is_in_jwks_before_it_signs(key: SigningKey) -> None:
    old = SigningKey("old", 1, 0, {"kid": "old"}, key.private_key, retired_ms=1000, expires_ms=9000)
    new = SigningKey("new", 2, 500, {"kid": "new"}, key.private_key, activate_ms=1000)
    assert current_signing_key([old, new], 999) is old
    assert {k["kid"] for k in jwks([old, new], 600)["keys"]} == {"old", "new"}
    assert current_signing_key([old, new], 1000) is new
    sched = RotationSchedule(interval_s=3600, access_ttl_s=900, prepublish_s=360)
    assert not sched.due(new, 500 + 3_599_999)  # measured from the newest key


def test_current_key_and_published_set(key: SigningKey) -> None:
    old = SigningKey("old", 1, 0, {"kid": "old"}, key.private_key, retired_ms=100, expires_ms=500)
    new = SigningKey("new", 2, 100, {"kid": "new"}, key.private_key)
    assert current_signing_key([old, new], 50) is new  # newest generation wins
    assert current_signing_key([old], 150) is None  # retired keys never sign
    assert [k["kid"] for k in jwks([old, new], 499)["keys"]] == ["new", "old"]
    assert [k["kid"] for k in jwks([old, new], 500)["keys"]] == ["new"]


def test_refresh_family_rules() -> None:
    def outcome(**kw: object) -> RefreshOutcome:
        args: dict[str, object] = {
            "claimed": True,
            "token_exists": True,
            "expires_ms": 1000,
            "family_revoked": False,
            "at_ms": 10,
        }
        args.update(kw)
        return assess_refresh(**args)  # type: ignore[arg-type]

    assert outcome() is RefreshOutcome.ROTATE
    assert outcome(claimed=False) is RefreshOutcome.REUSE  # rotated before: reuse
    assert outcome(token_exists=False, claimed=False) is RefreshOutcome.UNKNOWN
    assert outcome(family_revoked=True) is RefreshOutcome.REVOKED
    assert outcome(family_revoked=True, claimed=False) is RefreshOutcome.REVOKED
    assert outcome(at_ms=1000) is RefreshOutcome.EXPIRED


@given(st.booleans(), st.booleans(), st.booleans(), st.integers(0, 2000))
def test_only_a_claimed_live_token_rotates(
    claimed: bool, exists: bool, revoked: bool, at: int
) -> None:
    out = assess_refresh(
        claimed=claimed, token_exists=exists, expires_ms=1000, family_revoked=revoked, at_ms=at
    )
    assert (out is RefreshOutcome.ROTATE) == (claimed and exists and not revoked and at < 1000)


def test_refresh_tokens_and_api_keys_are_opaque_and_hashed() -> None:
    t, h = new_refresh_token()
    assert t.startswith("qlprt_") and h == sha256_hex(t) and t not in h
    k = new_api_key()
    assert k.secret.startswith(f"qlp_{k.prefix}_") and len(k.prefix) == 8
    assert parse_api_key(k.secret) == k.secret_hash
    assert parse_api_key("qlp_short") is None
    assert parse_api_key("Bearer " + k.secret) is None
    assert len({new_api_key().secret for _ in range(50)}) == 50
