"""JWT verification against a JWKS, for the gateway and any service that needs it.

Only asymmetric algorithms are ever accepted (``EdDSA``, ``RS256`` by default), so a
token with ``alg: none`` or one signed with HS256 using the public key as the HMAC
secret ("algorithm confusion") is rejected before any key is touched. The key is
chosen by the token's ``kid`` from a cached JWKS; an unknown ``kid`` triggers one
refetch (rate-limited, so a flood of made-up kids cannot hammer the issuer) and is
rejected if the key is still unknown. Issuer, audience, ``exp``, ``nbf`` and ``iat``
are always checked.

    jwks = JwksCache("http://identity:8000/.well-known/jwks.json")
    verifier = JwtVerifier(jwks, issuer="https://qlp.local/identity", audience="qlp-api")
    claims = await verifier.verify(token)  # InvalidToken, or KeysUnavailable
    principal = principal_from_claims(claims)
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

import httpx
import jwt
import structlog

from qlp_kit.auth import Principal

log = structlog.get_logger("qlp.jwt")

#: Asymmetric algorithms only; symmetric (HS*) and ``none`` can never be allowed.
ASYMMETRIC_ALGORITHMS = frozenset(
    {"EdDSA", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}
)
DEFAULT_ALGORITHMS = ("EdDSA", "RS256")

#: Which JWK key types an algorithm may use (a token cannot pick a key of another kind).
_KTY_FOR_ALG = {
    "EdDSA": "OKP",
    "RS256": "RSA",
    "RS384": "RSA",
    "RS512": "RSA",
    "PS256": "RSA",
    "PS384": "RSA",
    "PS512": "RSA",
    "ES256": "EC",
    "ES384": "EC",
    "ES512": "EC",
}


class InvalidToken(Exception):
    """The token is not acceptable; ``reason`` is safe to show to the client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class KeysUnavailable(Exception):
    """No key set could be fetched yet: the issuer is unreachable (not the token's fault)."""


class KeySource(Protocol):
    async def key_for(self, kid: str) -> Mapping[str, Any] | None:
        """The JWK for ``kid``, or None when it is (still) unknown."""
        ...


Fetcher = Callable[[], Awaitable[Mapping[str, Any]]]


class JwksCache:
    """A JWKS fetched over HTTP (or from ``fetcher``) and kept for ``ttl_s``.

    A ``kid`` that is not in the cached set causes a refetch, at most once per
    ``min_refetch_interval_s``; concurrent misses share one fetch. A failed fetch keeps
    the keys already known (they stay usable until the issuer is reachable again).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        fetcher: Fetcher | None = None,
        ttl_s: float = 300.0,
        min_refetch_interval_s: float = 10.0,
        timeout_s: float = 3.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        if url is None and fetcher is None:
            raise ValueError("JwksCache needs a url or a fetcher")
        self.url = url
        self._fetcher = fetcher
        self.ttl_s = ttl_s
        self.min_refetch_interval_s = min_refetch_interval_s
        self.timeout_s = timeout_s
        self._client = client
        self._keys: dict[str, dict[str, Any]] = {}
        self._fetched_at = 0.0
        self._attempted_at = float("-inf")
        self._lock = asyncio.Lock()
        self.fetches = 0
        self.last_document: dict[str, Any] | None = None

    async def _fetch(self) -> Mapping[str, Any]:
        if self._fetcher is not None:
            return await self._fetcher()
        assert self.url is not None
        if self._client is not None:
            resp = await self._client.get(self.url, timeout=self.timeout_s)
        else:
            async with httpx.AsyncClient(timeout=self.timeout_s) as client:
                resp = await client.get(self.url)
        resp.raise_for_status()
        doc: Mapping[str, Any] = resp.json()
        return doc

    async def refresh(self, *, force: bool = False) -> bool:
        """Fetch the key set unless one was attempted too recently. True if fetched."""
        async with self._lock:
            now = time.monotonic()
            if not force and now - self._attempted_at < self.min_refetch_interval_s:
                return False
            self._attempted_at = now
            self.fetches += 1
            try:
                doc = await self._fetch()
                keys = doc.get("keys", [])
                if not isinstance(keys, list):
                    raise ValueError("JWKS has no key list")
            except Exception as exc:
                log.warning("jwks fetch failed", url=self.url, error=str(exc))
                return False
            self._keys = {
                str(k["kid"]): dict(k) for k in keys if isinstance(k, dict) and k.get("kid")
            }
            self._fetched_at = time.monotonic()
            self.last_document = {"keys": list(self._keys.values())}
            return True

    def _fresh(self) -> bool:
        return bool(self._keys) and time.monotonic() - self._fetched_at < self.ttl_s

    async def document(self) -> dict[str, Any]:
        """The cached JWKS document (refreshed when stale), e.g. to serve it again."""
        if not self._fresh():
            await self.refresh()
        return self.last_document or {"keys": []}

    async def key_for(self, kid: str) -> Mapping[str, Any] | None:
        """The key for ``kid``; None when unknown; :class:`KeysUnavailable` when no key
        set was ever fetched."""
        if not self._fresh():
            await self.refresh()
        key = self._keys.get(kid)
        if key is None:
            await self.refresh()
            key = self._keys.get(kid)
        if key is None and self.last_document is None:
            raise KeysUnavailable(f"cannot fetch the JWKS from {self.url or 'the fetcher'}")
        return key


class StaticKeys:
    """A fixed key set (tests, or keys distributed by configuration)."""

    def __init__(self, jwks: Mapping[str, Any]) -> None:
        self._keys = {str(k["kid"]): dict(k) for k in jwks.get("keys", []) if k.get("kid")}

    async def key_for(self, kid: str) -> Mapping[str, Any] | None:
        return self._keys.get(kid)


class JwtVerifier:
    """Verifies signature, algorithm, issuer, audience and times of access tokens."""

    def __init__(
        self,
        keys: KeySource,
        *,
        issuer: str,
        audience: str,
        algorithms: Sequence[str] = DEFAULT_ALGORITHMS,
        leeway_s: float = 30.0,
        required_claims: Sequence[str] = ("exp", "iat", "sub", "iss", "aud"),
        cache_size: int = 10_000,
    ) -> None:
        unsafe = [a for a in algorithms if a not in ASYMMETRIC_ALGORITHMS]
        if unsafe:
            raise ValueError(f"only asymmetric algorithms may be allowed, not {unsafe}")
        if not algorithms:
            raise ValueError("at least one algorithm must be allowed")
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.algorithms = tuple(algorithms)
        self.leeway_s = leeway_s
        self.required_claims = list(required_claims)
        self.cache_size = cache_size
        self._verified: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def _cached(self, token: str) -> dict[str, Any] | None:
        """Claims of a token that verified before, if its times still hold.

        The same token string has the same signature, so only ``exp``/``nbf`` can
        change the answer; a key removed from the JWKS does not revoke tokens already
        seen (they expire as usual).
        """
        claims = self._verified.get(token)
        if claims is None:
            return None
        now = time.time()
        if float(claims["exp"]) + self.leeway_s <= now or (
            "nbf" in claims and float(claims["nbf"]) - self.leeway_s > now
        ):
            self._verified.pop(token, None)
            return None
        self._verified.move_to_end(token)
        return claims

    async def verify(self, token: str) -> dict[str, Any]:
        """The token's claims, or :class:`InvalidToken` with the reason."""
        cached = self._cached(token)
        if cached is not None:
            return cached
        claims = await self._verify(token)
        if self.cache_size > 0 and "exp" in claims:
            self._verified[token] = claims
            while len(self._verified) > self.cache_size:
                self._verified.popitem(last=False)
        return claims

    async def _verify(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("malformed token") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise InvalidToken(f"algorithm {alg!r} is not allowed")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("token has no key id")
        jwk = await self.keys.key_for(kid)
        if jwk is None:
            raise InvalidToken("unknown signing key")
        if jwk.get("kty") != _KTY_FOR_ALG[alg] or jwk.get("alg") not in (None, alg):
            raise InvalidToken("signing key does not match the algorithm")
        if jwk.get("use") not in (None, "sig"):
            raise InvalidToken("key is not a signing key")
        try:
            key = jwt.PyJWK(dict(jwk), algorithm=alg)
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_s,
                options={
                    "require": self.required_claims,
                    "verify_signature": True,
                    "verify_exp": True,
                    "verify_nbf": True,
                    "verify_iat": True,
                    "verify_aud": True,
                    "verify_iss": True,
                },
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("token has expired") from None
        except jwt.ImmatureSignatureError:
            raise InvalidToken("token is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken("token is for another audience") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("token is from another issuer") from None
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken(f"token lacks the {exc.claim!r} claim") from None
        except jwt.InvalidSignatureError:
            raise InvalidToken("signature does not verify") from None
        except (jwt.PyJWTError, ValueError, TypeError):
            raise InvalidToken("token is not valid") from None
        return claims


def principal_from_claims(claims: Mapping[str, Any]) -> Principal:
    """The caller an access token stands for (kind ``user``)."""
    org = claims.get("org")
    sub = claims.get("sub")
    if not isinstance(org, str) or not org or not isinstance(sub, str) or not sub:
        raise InvalidToken("token lacks org or subject")
    roles = claims.get("roles") or []
    scopes = claims.get("scopes") or []
    if isinstance(scopes, str):
        scopes = scopes.split()
    if not isinstance(roles, list) or not isinstance(scopes, list):
        raise InvalidToken("malformed roles or scopes")
    return Principal(
        org_id=org,
        subject=sub,
        kind="user",
        roles=[str(r) for r in roles],
        scopes=[str(s) for s in scopes],
        user_id=sub,
    )
