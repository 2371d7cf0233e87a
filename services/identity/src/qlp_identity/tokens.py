"""Access tokens (RS256 JWTs), signing-key rotation schedule, JWKS, refresh-token
family rules and opaque secrets. Pure code: no I/O.

RS256 rather than EdDSA: verification is what every request pays at the gateway, and
RSA-2048 verifies several times faster than Ed25519 in the ``cryptography`` backend
(see benchmarks/identity.py); signing happens once per login/refresh.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import json
import secrets
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from jwt.algorithms import RSAAlgorithm

ALGORITHM = "RS256"
REFRESH_PREFIX = "qlprt_"
API_KEY_PREFIX = "qlp_"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


# ----------------------------------------------------------------------------- keys


@dataclass(frozen=True)
class KeyMaterial:
    """A freshly generated key pair, serialized for storage."""

    kid: str
    private_pem: bytes
    encrypted: bool
    public_jwk: dict[str, Any]


@dataclass(frozen=True)
class SigningKey:
    kid: str
    generation: int
    created_ms: int
    public_jwk: dict[str, Any]
    private_key: rsa.RSAPrivateKey | None = None
    retired_ms: int | None = None  # stops signing from then on
    expires_ms: int | None = None  # unpublished from then on (nothing it signed is valid)
    activate_ms: int = 0  # published from creation, signs from then on

    def signs_at(self, at_ms: int) -> bool:
        return self.activate_ms <= at_ms and (self.retired_ms is None or at_ms < self.retired_ms)

    def published_at(self, at_ms: int) -> bool:
        return self.expires_ms is None or at_ms < self.expires_ms


def generate_key(size: int = 2048, encryption_secret: str = "") -> KeyMaterial:
    private = rsa.generate_private_key(public_exponent=65537, key_size=size)
    kid = f"k_{uuid.uuid4().hex[:16]}"
    enc: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(encryption_secret.encode())
        if encryption_secret
        else serialization.NoEncryption()
    )
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)
    return KeyMaterial(kid, pem, bool(encryption_secret), public_jwk(private.public_key(), kid))


def load_private_key(pem: bytes, encryption_secret: str, encrypted: bool) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(
        pem, password=encryption_secret.encode() if encrypted else None
    )
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("stored signing key is not an RSA key")
    return key


def public_jwk(public: rsa.RSAPublicKey, kid: str) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(public))
    jwk.update({"kid": kid, "alg": ALGORITHM, "use": "sig"})
    return jwk


@dataclass(frozen=True)
class RotationSchedule:
    """When to rotate and how long a retired key stays published.

    A new key is published ``prepublish_s`` before it signs anything, so verifiers
    that cache the JWKS (the gateway) know it before the first token arrives; the key
    it replaces signs until then. A retired key signs nothing new; it stays in the JWKS until every token it may
    have signed has expired: the access-token TTL, plus how long another replica may
    still sign with its cached copy, plus leeway for clock skew and gateway caches.
    """

    interval_s: int
    access_ttl_s: int
    cache_s: float = 30.0
    leeway_s: int = 120
    prepublish_s: int = 0

    def due(self, newest: SigningKey | None, at_ms: int) -> bool:
        """``newest``: the newest key, active or still pre-published."""
        if newest is None:
            return True
        return at_ms - newest.created_ms >= self.interval_s * 1000

    def unpublish_at(self, retired_ms: int) -> int:
        return retired_ms + int((self.access_ttl_s + self.cache_s + self.leeway_s) * 1000)


def newest_key(keys: Iterable[SigningKey]) -> SigningKey | None:
    return max(keys, key=lambda k: k.generation, default=None)


def current_signing_key(keys: Iterable[SigningKey], at_ms: int) -> SigningKey | None:
    """The newest generation that still signs."""
    signing = [k for k in keys if k.signs_at(at_ms) and k.private_key is not None]
    return max(signing, key=lambda k: k.generation, default=None)


def jwks(keys: Iterable[SigningKey], at_ms: int) -> dict[str, Any]:
    published = sorted(
        (k for k in keys if k.published_at(at_ms)), key=lambda k: k.generation, reverse=True
    )
    return {"keys": [k.public_jwk for k in published]}


# ----------------------------------------------------------------------- access tokens


def access_claims(
    *,
    issuer: str,
    audience: str,
    user_id: str,
    org_id: str,
    roles: Sequence[str],
    scopes: Sequence[str],
    ttl_s: int,
    at_s: int | None = None,
) -> dict[str, Any]:
    at = at_s if at_s is not None else time.time()
    iat = int(at)
    return {
        "iss": issuer,
        "aud": audience,
        "sub": user_id,
        "org": org_id,
        "roles": list(roles),
        "scopes": list(scopes),
        "iat": iat,
        # Milliseconds: the gateway refuses tokens issued before a role change or a
        # removal, which may fall in the same second as the token's issue.
        "iat_ms": int(at * 1000),
        "nbf": iat,
        "exp": iat + ttl_s,
        "jti": uuid.uuid4().hex,
    }


def sign_access_token(key: SigningKey, claims: Mapping[str, Any]) -> str:
    if key.private_key is None:
        raise ValueError("key has no private part")
    return jwt.encode(dict(claims), key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid})


class TokenInvalid(Exception):
    pass


_REQUIRED = ("exp", "iat", "nbf", "sub", "iss", "aud", "jti")


def _b64d(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


class JwksVerifier:
    """Offline verification against a JWKS document (what the gateway does per request).

    A direct path rather than ``jwt.decode``: split, look the key up by ``kid``, check
    the RS256 signature with ``cryptography``, then the registered claims. Only
    ``RS256`` is accepted (no ``none``, no HMAC confusion); ``iss``, ``aud``, ``exp``,
    ``nbf`` are enforced and every claim in ``_REQUIRED`` must be present.
    """

    def __init__(self, jwks_doc: Mapping[str, Any], issuer: str, audience: str) -> None:
        self.issuer = issuer
        self.audience = audience
        self.keys: dict[str, rsa.RSAPublicKey] = {}
        for jwk in jwks_doc.get("keys", []):
            if jwk.get("kty") == "RSA" and jwk.get("kid"):
                key = RSAAlgorithm.from_jwk(jwk)
                if isinstance(key, rsa.RSAPublicKey):
                    self.keys[jwk["kid"]] = key

    def verify(self, token: str, leeway_s: int = 0) -> dict[str, Any]:
        try:
            h64, p64, s64 = token.split(".")
            header = json.loads(_b64d(h64))
            signature = _b64d(s64)
        except (ValueError, TypeError):
            raise TokenInvalid("malformed token") from None
        if not isinstance(header, dict) or header.get("alg") != ALGORITHM:
            raise TokenInvalid("unsupported algorithm")
        kid = header.get("kid")
        key = self.keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise TokenInvalid(f"unknown key id {kid!r}")
        try:
            key.verify(signature, f"{h64}.{p64}".encode(), padding.PKCS1v15(), hashes.SHA256())
            claims = json.loads(_b64d(p64))
        except InvalidSignature:
            raise TokenInvalid("signature does not verify") from None
        except (ValueError, TypeError):
            raise TokenInvalid("malformed claims") from None
        if not isinstance(claims, dict) or any(c not in claims for c in _REQUIRED):
            raise TokenInvalid("a required claim is missing")
        now = time.time()
        exp, nbf = claims["exp"], claims["nbf"]
        if not isinstance(exp, int | float) or not isinstance(nbf, int | float):
            raise TokenInvalid("exp and nbf must be numbers")
        if now >= exp + leeway_s:
            raise TokenInvalid("token has expired")
        if now < nbf - leeway_s:
            raise TokenInvalid("token is not yet valid")
        if claims["iss"] != self.issuer:
            raise TokenInvalid("wrong issuer")
        aud = claims["aud"]
        if aud != self.audience and not (isinstance(aud, list) and self.audience in aud):
            raise TokenInvalid("wrong audience")
        return claims


# ---------------------------------------------------------------------- refresh tokens


def new_refresh_token() -> tuple[str, str]:
    """An opaque refresh token and the hash that is all we store."""
    token = REFRESH_PREFIX + secrets.token_urlsafe(32)
    return token, sha256_hex(token)


class RefreshOutcome(enum.Enum):
    ROTATE = "rotate"  # valid: issue the next token of the family
    REUSE = "reuse"  # an already rotated token came back: revoke the whole family
    EXPIRED = "expired"
    REVOKED = "revoked"  # the family was revoked (logout, reuse, member removed)
    UNKNOWN = "unknown"


def assess_refresh(
    *,
    claimed: bool,
    token_exists: bool,
    expires_ms: int | None,
    family_revoked: bool,
    at_ms: int,
) -> RefreshOutcome:
    """Decide a refresh. ``claimed`` says whether this call atomically flipped the
    token from unused to used (only one caller ever can)."""
    if not token_exists:
        return RefreshOutcome.UNKNOWN
    if family_revoked:
        return RefreshOutcome.REVOKED
    if not claimed:
        return RefreshOutcome.REUSE
    if expires_ms is not None and at_ms >= expires_ms:
        return RefreshOutcome.EXPIRED
    return RefreshOutcome.ROTATE


# --------------------------------------------------------------------------- API keys


@dataclass(frozen=True)
class NewApiKey:
    secret: str  # the whole presented key, shown once
    prefix: str
    secret_hash: str


_B32 = "0123456789abcdefghjkmnpqrstvwxyz"


def new_api_key() -> NewApiKey:
    prefix = "".join(secrets.choice(_B32) for _ in range(8))
    secret = secrets.token_urlsafe(32).replace("-", "A").replace("_", "B")
    full = f"{API_KEY_PREFIX}{prefix}_{secret}"
    return NewApiKey(full, prefix, sha256_hex(full))


def parse_api_key(presented: str) -> str | None:
    """The hash to look up, or None when it is not shaped like a platform key."""
    if not presented.startswith(API_KEY_PREFIX) or len(presented) > 200:
        return None
    parts = presented[len(API_KEY_PREFIX) :].split("_", 1)
    if len(parts) != 2 or len(parts[0]) != 8 or len(parts[1]) < 20:
        return None
    return sha256_hex(presented)


def new_invitation_token() -> tuple[str, str]:
    token = "qlpinv_" + secrets.token_urlsafe(32)
    return token, sha256_hex(token)
