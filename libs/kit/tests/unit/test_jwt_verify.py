"""JWT verification: the attack matrix (every forged or wrong token is rejected) and
the JWKS cache (refetch on unknown kid, rate-limited)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from jwt.algorithms import OKPAlgorithm, RSAAlgorithm

from qlp_kit.jwt_verify import (
    InvalidToken,
    JwksCache,
    JwtVerifier,
    KeysUnavailable,
    StaticKeys,
    principal_from_claims,
)

ISS = "https://qlp.local/identity"
AUD = "qlp-api"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def ed_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def jwks(ed_key: ed25519.Ed25519PrivateKey, rsa_key: rsa.RSAPrivateKey) -> dict[str, Any]:
    ed = json.loads(OKPAlgorithm.to_jwk(ed_key.public_key()))
    ed.update(kid="ed1", use="sig", alg="EdDSA")
    rs = json.loads(RSAAlgorithm.to_jwk(rsa_key.public_key()))
    rs.update(kid="rs1", use="sig", alg="RS256")
    return {"keys": [ed, rs]}


def claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "iss": ISS,
        "aud": AUD,
        "sub": "usr_1",
        "org": "org_1",
        "roles": ["owner"],
        "scopes": [],
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": "j1",
    }
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def verifier(jwks: dict[str, Any]) -> JwtVerifier:
    return JwtVerifier(StaticKeys(jwks), issuer=ISS, audience=AUD)


def sign_ed(key: ed25519.Ed25519PrivateKey, kid: str = "ed1", **over: Any) -> str:
    return jwt.encode(claims(**over), key, algorithm="EdDSA", headers={"kid": kid})


async def test_valid_eddsa_and_rs256_tokens_verify(
    jwks: dict[str, Any], ed_key: ed25519.Ed25519PrivateKey, rsa_key: rsa.RSAPrivateKey
) -> None:
    v = verifier(jwks)
    got = await v.verify(sign_ed(ed_key))
    assert got["sub"] == "usr_1"
    rs = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "rs1"})
    assert (await v.verify(rs))["org"] == "org_1"
    p = principal_from_claims(got)
    assert (p.org_id, p.subject, p.kind, p.roles, p.user_id) == (
        "org_1",
        "usr_1",
        "user",
        ["owner"],
        "usr_1",
    )


async def test_alg_none_is_rejected(jwks: dict[str, Any]) -> None:
    header = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": "ed1"}).encode())
    body = _b64(json.dumps(claims()).encode())
    for token in (f"{header}.{body}.", f"{header}.{body}"):
        with pytest.raises(InvalidToken):
            await verifier(jwks).verify(token)


async def test_hs256_signed_with_the_public_key_is_rejected(
    jwks: dict[str, Any], rsa_key: rsa.RSAPrivateKey
) -> None:
    """Algorithm confusion: HMAC keyed by the (public) RSA PEM or the JWK bytes."""
    pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for kid, secret in (("rs1", pem), ("rs1", json.dumps(jwks["keys"][1]).encode())):
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
        body = _b64(json.dumps(claims()).encode())
        sig = hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256).digest()
        with pytest.raises(InvalidToken, match="not allowed"):
            await verifier(jwks).verify(f"{header}.{body}.{_b64(sig)}")


def test_symmetric_algorithms_cannot_be_configured(jwks: dict[str, Any]) -> None:
    for algs in (["HS256"], ["none"], ["EdDSA", "HS512"], []):
        with pytest.raises(ValueError):
            JwtVerifier(StaticKeys(jwks), issuer=ISS, audience=AUD, algorithms=algs)


@pytest.mark.parametrize(
    ("over", "reason"),
    [
        ({"exp": int(time.time()) - 3600}, "expired"),
        ({"nbf": int(time.time()) + 3600}, "not valid yet"),
        ({"aud": "someone-else"}, "audience"),
        ({"iss": "https://evil.example"}, "issuer"),
        ({"exp": None}, "exp"),
    ],
)
async def test_wrong_claims_are_rejected(
    jwks: dict[str, Any], ed_key: ed25519.Ed25519PrivateKey, over: dict[str, Any], reason: str
) -> None:
    with pytest.raises(InvalidToken, match=reason):
        await verifier(jwks).verify(sign_ed(ed_key, **over))


async def test_unknown_kid_is_rejected(
    jwks: dict[str, Any], ed_key: ed25519.Ed25519PrivateKey
) -> None:
    with pytest.raises(InvalidToken, match="unknown"):
        await verifier(jwks).verify(sign_ed(ed_key, kid="nope"))


async def test_kid_of_another_key_type_is_rejected(
    jwks: dict[str, Any], ed_key: ed25519.Ed25519PrivateKey
) -> None:
    with pytest.raises(InvalidToken, match="does not match"):
        await verifier(jwks).verify(sign_ed(ed_key, kid="rs1"))


async def test_tampered_and_truncated_signatures_are_rejected(
    jwks: dict[str, Any], ed_key: ed25519.Ed25519PrivateKey
) -> None:
    token = sign_ed(ed_key)
    header, body, sig = token.split(".")
    forged_body = _b64(json.dumps(claims(org="org_victim")).encode())
    other = ed25519.Ed25519PrivateKey.generate()
    for bad in (
        f"{header}.{body}.{sig[:-6]}",
        f"{header}.{body}.",
        f"{header}.{forged_body}.{sig}",
        f"{header}.{body}",
        sign_ed(other),  # right kid, wrong key
        "not-a-token",
        "",
    ):
        with pytest.raises(InvalidToken):
            await verifier(jwks).verify(bad)


async def test_principal_needs_org() -> None:
    with pytest.raises(InvalidToken):
        principal_from_claims({"sub": "usr_1"})


async def test_jwks_cache_refetches_unknown_kid_rate_limited(
    jwks: dict[str, Any], ed_key: ed25519.Ed25519PrivateKey
) -> None:
    served: dict[str, Any] = {"keys": []}

    async def fetch() -> dict[str, Any]:
        return served

    cache = JwksCache(fetcher=fetch, ttl_s=300, min_refetch_interval_s=60)
    v = JwtVerifier(cache, issuer=ISS, audience=AUD)
    with pytest.raises(InvalidToken, match="unknown"):
        await v.verify(sign_ed(ed_key))
    first = cache.fetches
    # The issuer rotates in the key, but a refetch was just made: still unknown.
    served = jwks
    for _ in range(20):
        with pytest.raises(InvalidToken):
            await v.verify(sign_ed(ed_key, kid="made-up"))
    assert cache.fetches == first
    # After the interval the unknown kid causes one refetch and verifies.
    cache._attempted_at -= 61
    assert (await v.verify(sign_ed(ed_key)))["sub"] == "usr_1"
    assert cache.fetches == first + 1
    assert {k["kid"] for k in (await cache.document())["keys"]} == {"ed1", "rs1"}


async def test_jwks_fetch_failure_keeps_known_keys(
    jwks: dict[str, Any], ed_key: ed25519.Ed25519PrivateKey
) -> None:
    calls = {"n": 0}

    async def fetch() -> dict[str, Any]:
        calls["n"] += 1
        if calls["n"] > 1:
            raise ConnectionError("identity is down")
        return jwks

    cache = JwksCache(fetcher=fetch, ttl_s=0, min_refetch_interval_s=0)
    v = JwtVerifier(cache, issuer=ISS, audience=AUD)
    assert await v.verify(sign_ed(ed_key, jti="a"))
    # Stale and the refetch fails: the known keys are kept.
    assert await v.verify(sign_ed(ed_key, jti="b"))
    assert calls["n"] >= 2


async def test_verified_tokens_are_cached_until_they_expire(
    jwks: dict[str, Any], ed_key: ed25519.Ed25519PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}
    keys = StaticKeys(jwks)

    class Counting:
        async def key_for(self, kid: str) -> Any:
            calls["n"] += 1
            return await keys.key_for(kid)

    v = JwtVerifier(Counting(), issuer=ISS, audience=AUD, leeway_s=0)
    token = sign_ed(ed_key, exp=int(time.time()) + 60)
    for _ in range(5):
        assert (await v.verify(token))["sub"] == "usr_1"
    assert calls["n"] == 1
    # Once past exp the cached entry is dropped and the token verified (and refused) anew.
    import qlp_kit.jwt_verify as mod

    real = time.time
    monkeypatch.setattr(mod.time, "time", lambda: real() + 120)
    assert v._cached(token) is None
    # A failed verification is never cached.
    bad = sign_ed(ed_key, aud="other")
    for _ in range(3):
        with pytest.raises(InvalidToken):
            await v.verify(bad)
    assert bad not in v._verified


async def test_unreachable_issuer_is_not_an_invalid_token(
    ed_key: ed25519.Ed25519PrivateKey,
) -> None:
    async def down() -> dict[str, Any]:
        raise ConnectionError("identity is down")

    v = JwtVerifier(JwksCache(fetcher=down), issuer=ISS, audience=AUD)
    with pytest.raises(KeysUnavailable):
        await v.verify(sign_ed(ed_key))
