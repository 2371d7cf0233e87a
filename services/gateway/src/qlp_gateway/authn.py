"""Who is calling: a JWT verified locally against identity's JWKS, or an API key
verified by identity.

Identity's answers about API keys are cached (by the key's hash) for at most
``api_key_cache_ttl_s`` and never past the key's ``expires_at``; identity's events
(key revoked, member removed, role changed; see handlers.py) drop the entries they
concern at once, on every replica. Access tokens live up to 15 minutes and carry the
roles of when they were issued: :class:`Revocations` remembers, per (org, user), when
the membership last changed, and a token issued before that is refused ("token
outdated, refresh")."""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Mapping
from datetime import datetime
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


#: The org key of a change that holds in every org (a platform admin revoked).
ANY_ORG = "*"


class Revocations:
    """When each (org, user)'s membership last changed (removed, role changed), or a
    user's platform role was revoked (org ``ANY_ORG``), from identity's events. A token
    issued before that carries what no longer holds.

    Entries older than ``window_s`` (the longest an access token lives, with leeway)
    are forgotten: every token issued before them has expired anyway."""

    def __init__(self, window_s: float = 3600.0, max_entries: int = 200_000) -> None:
        self.window_s = window_s
        self.max_entries = max_entries
        self._changed_ms: dict[tuple[str, str], int] = {}

    def note(self, org_id: str, user_id: str, at_ms: int) -> None:
        k = (org_id, user_id)
        if at_ms > self._changed_ms.get(k, 0):
            self._changed_ms[k] = at_ms
        if len(self._changed_ms) > self.max_entries:
            self.prune()

    def prune(self, now_ms: int | None = None) -> None:
        now = now_ms if now_ms is not None else int(time.time() * 1000)
        horizon = now - int(self.window_s * 1000)
        self._changed_ms = {k: v for k, v in self._changed_ms.items() if v >= horizon}

    def outdated(self, org_id: str, user_id: str, issued_ms: int) -> bool:
        changed = max(
            self._changed_ms.get((org_id, user_id), 0), self._changed_ms.get((ANY_ORG, user_id), 0)
        )
        return issued_ms < changed


def issued_ms(claims: Mapping[str, Any]) -> int:
    """When a token was issued, in ms: identity's ``iat_ms`` claim, else ``iat``."""
    precise = claims.get("iat_ms")
    if isinstance(precise, int) and not isinstance(precise, bool):
        return precise
    iat = claims.get("iat")
    return int(iat * 1000) if isinstance(iat, int | float) else 0


def _expires_in(raw: Any) -> float | None:
    """Seconds until an RFC 3339 ``expires_at`` (None when unset or unreadable)."""
    if not isinstance(raw, str) or not raw:
        return None
    try:
        at = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    if at.tzinfo is None:
        return 0.0
    return at.timestamp() - time.time()


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
        # Which cached entries an event concerns: by key id, and by the key's creator.
        self._by_key: dict[str, str] = {}
        self._by_user: dict[tuple[str, str], set[str]] = {}
        # Bumped by every invalidation: an answer fetched across one is not cached.
        self.generation = 0
        self.lookups = 0

    def _drop(self, digest: str) -> None:
        hit = self._cache.pop(digest, None)
        if hit is None or hit[1] is None:
            return
        p = hit[1]
        if self._by_key.get(p.subject) == digest:
            del self._by_key[p.subject]
        if p.user_id:
            digests = self._by_user.get((p.org_id, p.user_id))
            if digests is not None:
                digests.discard(digest)
                if not digests:
                    del self._by_user[(p.org_id, p.user_id)]

    def _remember(
        self, digest: str, principal: Principal | None, expires_in_s: float | None = None
    ) -> None:
        ttl = self.ttl_s if principal is not None else self.negative_ttl_s
        if expires_in_s is not None:
            ttl = min(ttl, expires_in_s)
        if ttl <= 0:
            return
        self._drop(digest)
        self._cache[digest] = (time.monotonic() + ttl, principal)
        if principal is not None:
            self._by_key[principal.subject] = digest
            if principal.user_id:
                self._by_user.setdefault((principal.org_id, principal.user_id), set()).add(digest)
        while len(self._cache) > self.max_entries:
            self._drop(next(iter(self._cache)))

    def forget_key(self, key_id: str) -> None:
        """The key was revoked: its cached answer goes now."""
        self.generation += 1
        digest = self._by_key.get(key_id)
        if digest is not None:
            self._drop(digest)

    def forget_user(self, org_id: str, user_id: str) -> None:
        """The user's membership changed: the keys they created are asked about again
        (their effective scopes follow the creator's role)."""
        self.generation += 1
        for digest in list(self._by_user.get((org_id, user_id), ())):
            self._drop(digest)

    async def verify(self, key: str) -> Principal:
        digest = hashlib.sha256(key.encode()).hexdigest()
        hit = self._cache.get(digest)
        if hit is not None and hit[0] > time.monotonic():
            if hit[1] is None:
                raise unauthenticated("the API key is not valid")
            return hit[1]
        if hit is not None:
            self._drop(digest)
        generation = self.generation
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
            if generation == self.generation:
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
            expires_in = _expires_in(body.get("expires_at"))
        except (ValueError, KeyError, TypeError):
            log.warning("api key verification returned an unexpected body")
            raise Problem(503, "Service unavailable", "cannot verify API keys now") from None
        if expires_in is not None and expires_in <= 0:
            raise unauthenticated("the API key has expired")
        # An invalidation that arrived while identity was answering may concern this
        # key: use the answer once, but do not keep it.
        if generation == self.generation:
            self._remember(digest, principal, expires_in)
        return principal


class Authenticator:
    def __init__(
        self,
        jwt: JwtVerifier,
        api_keys: ApiKeyVerifier,
        revocations: Revocations | None = None,
    ) -> None:
        self.jwt = jwt
        self.api_keys = api_keys
        self.revocations = revocations or Revocations()

    async def authenticate(self, authorization: str | None) -> Principal:
        token = bearer_token(authorization)
        if token.startswith(API_KEY_PREFIX):
            return await self.api_keys.verify(token)
        try:
            claims = await self.jwt.verify(token)
            principal = principal_from_claims(claims)
        except InvalidToken as exc:
            raise unauthenticated(exc.reason) from None
        except KeysUnavailable:
            raise Problem(503, "Service unavailable", "cannot verify access tokens now") from None
        user = principal.user_id or principal.subject
        if self.revocations.outdated(principal.org_id, user, issued_ms(claims)):
            raise unauthenticated("token outdated (membership or role changed), refresh")
        return principal

    # -- identity's events ------------------------------------------------------------

    def key_revoked(self, key_id: str) -> None:
        self.api_keys.forget_key(key_id)

    def membership_changed(self, org_id: str, user_id: str, at_ms: int) -> None:
        """The user was removed from the org or their role changed at ``at_ms``."""
        self.revocations.note(org_id, user_id, at_ms)
        self.api_keys.forget_user(org_id, user_id)

    def user_changed(self, user_id: str, at_ms: int) -> None:
        """The user's platform role was taken away at ``at_ms``: their tokens of every
        org issued before it are outdated."""
        self.revocations.note(ANY_ORG, user_id, at_ms)
