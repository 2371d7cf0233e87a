"""Who is calling: a JWT verified locally against identity's JWKS, or an API key
verified by identity (cached for a short TTL: a revoked key stops working within
``api_key_cache_ttl_s``, 30 s by default)."""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from typing import Any

import httpx
import structlog

from qlp_kit.auth import Principal, sign_principal
from qlp_kit.jwt_verify import (
    InvalidToken,
    JwtVerifier,
    KeysUnavailable,
    principal_from_claims,
)
from qlp_kit.problems import Problem

log = structlog.get_logger("qlp.gateway.auth")

API_KEY_PREFIX = "qlp_"
VERIFY_PATH = "/internal/v1/api-keys/verify"
GATEWAY_PRINCIPAL = Principal(
    org_id="org_platform", subject="svc_gateway", kind="service", roles=["gateway"], scopes=[]
)


def unauthenticated(detail: str, *, error: str | None = "invalid_token") -> Problem:
    challenge = 'Bearer realm="qlp"'
    if error:
        safe = detail.replace('"', "'")
        challenge += f', error="{error}", error_description="{safe}"'
    return Problem(
        401,
        "Unauthenticated",
        detail,
        type_="unauthenticated",
        headers={"WWW-Authenticate": challenge},
    )


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise unauthenticated("an Authorization: Bearer token is required", error=None)
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise unauthenticated("use Authorization: Bearer <token>", error="invalid_request")
    return token


class ApiKeyVerifier:
    """Asks identity whether an API key is valid; answers are cached briefly (by the
    key's hash: raw keys are never kept)."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        identity_url: str | None,
        secret: str,
        *,
        ttl_s: float = 30.0,
        negative_ttl_s: float = 5.0,
        max_entries: int = 10_000,
    ) -> None:
        self.client = client
        self.identity_url = identity_url
        self.secret = secret
        self.ttl_s = ttl_s
        self.negative_ttl_s = negative_ttl_s
        self.max_entries = max_entries
        self._cache: OrderedDict[str, tuple[float, Principal | None]] = OrderedDict()
        self.lookups = 0

    def _remember(self, digest: str, principal: Principal | None) -> None:
        ttl = self.ttl_s if principal is not None else self.negative_ttl_s
        self._cache[digest] = (time.monotonic() + ttl, principal)
        self._cache.move_to_end(digest)
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)

    async def verify(self, key: str) -> Principal:
        digest = hashlib.sha256(key.encode()).hexdigest()
        hit = self._cache.get(digest)
        if hit is not None and hit[0] > time.monotonic():
            if hit[1] is None:
                raise unauthenticated("the API key is not valid")
            return hit[1]
        if not self.identity_url:
            raise Problem(503, "Service unavailable", "identity is not available")
        self.lookups += 1
        try:
            resp = await self.client.post(
                f"{self.identity_url}{VERIFY_PATH}",
                json={"key": key},
                headers=sign_principal(
                    GATEWAY_PRINCIPAL, self.secret, method="POST", target=VERIFY_PATH
                ),
            )
        except httpx.HTTPError as exc:
            log.warning("api key verification failed", error=str(exc))
            raise Problem(503, "Service unavailable", "cannot verify API keys now") from None
        if resp.status_code in (400, 401, 403, 404, 422):
            self._remember(digest, None)
            raise unauthenticated("the API key is not valid")
        if resp.status_code != 200:
            log.warning("api key verification answered", status=resp.status_code)
            raise Problem(503, "Service unavailable", "cannot verify API keys now")
        try:
            body: dict[str, Any] = resp.json()
            principal = Principal(
                org_id=body["org_id"],
                subject=body.get("subject") or body.get("key_id") or "",
                kind="api_key",
                roles=list(body.get("roles") or []),
                scopes=list(body.get("scopes") or []),
                user_id=body.get("user_id"),
            )
        except (ValueError, KeyError, TypeError):
            log.warning("api key verification returned an unexpected body")
            raise Problem(503, "Service unavailable", "cannot verify API keys now") from None
        self._remember(digest, principal)
        return principal


class Authenticator:
    def __init__(self, jwt: JwtVerifier, api_keys: ApiKeyVerifier) -> None:
        self.jwt = jwt
        self.api_keys = api_keys

    async def authenticate(self, authorization: str | None) -> Principal:
        token = bearer_token(authorization)
        if token.startswith(API_KEY_PREFIX):
            return await self.api_keys.verify(token)
        try:
            claims = await self.jwt.verify(token)
            return principal_from_claims(claims)
        except InvalidToken as exc:
            raise unauthenticated(exc.reason) from None
        except KeysUnavailable:
            raise Problem(503, "Service unavailable", "cannot verify access tokens now") from None
