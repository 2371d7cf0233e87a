"""The verified caller, as the gateway forwards it to services.

The gateway authenticates the client (JWT or API key) and forwards the principal in
``X-QLP-Principal`` (base64url JSON) with a timestamp and an HMAC-SHA256 signature
over the principal, the timestamp, the request's method and its target (the raw path
and query as sent), keyed by a secret only the gateway and services share. Services
verify the signature against the request they received and its age (``MAX_AGE_S``,
30 s), so headers captured from one request cannot be replayed on another path or
method, nor later; a client cannot forge them because the gateway strips any it
receives.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request
from pydantic import BaseModel, Field

from qlp_kit.problems import Problem

PRINCIPAL_HEADER = "x-qlp-principal"
PRINCIPAL_TS_HEADER = "x-qlp-principal-ts"
PRINCIPAL_SIG_HEADER = "x-qlp-principal-sig"
INTERNAL_HEADERS = (PRINCIPAL_HEADER, PRINCIPAL_TS_HEADER, PRINCIPAL_SIG_HEADER)
MAX_AGE_S = 30


class Principal(BaseModel):
    org_id: str
    subject: str = Field(description="usr_… for a user, key_… for an API key")
    kind: str = Field(default="user", pattern="^(user|api_key|service)$")
    roles: list[str] = Field(default_factory=list)
    scopes: list[str] = Field(default_factory=list)
    user_id: str | None = None

    def has_scope(self, scope: str) -> bool:
        return "*" in self.scopes or scope in self.scopes

    def has_role(self, *roles: str) -> bool:
        return any(r in self.roles for r in roles)


def _mac(secret: str, payload: str, ts: str, method: str, target: str) -> str:
    msg = f"{ts}.{method.upper()}.{target}.{payload}"
    return hmac.new(secret.encode(), msg.encode(), hashlib.sha256).hexdigest()


def encode_principal(principal: Principal) -> str:
    """The ``X-QLP-Principal`` value (base64url JSON), unsigned."""
    return base64.urlsafe_b64encode(principal.model_dump_json().encode()).decode()


def request_target(raw_path: str | bytes, query: str | bytes = b"") -> str:
    """What the signature binds besides the method: the path as sent (percent-encoded)
    plus ``?query`` when there is one."""
    path = raw_path.decode("latin-1") if isinstance(raw_path, bytes) else raw_path
    q = query.decode("latin-1") if isinstance(query, bytes) else query
    return f"{path}?{q}" if q else path


def sign_payload(
    payload: str, secret: str, *, method: str, target: str, now: float | None = None
) -> dict[str, str]:
    """Signed headers for an already encoded principal (see :func:`sign_principal`)."""
    if not secret:
        raise ValueError("internal auth secret is not configured")
    ts = str(int(now if now is not None else time.time()))
    return {
        PRINCIPAL_HEADER: payload,
        PRINCIPAL_TS_HEADER: ts,
        PRINCIPAL_SIG_HEADER: _mac(secret, payload, ts, method, target),
    }


def sign_principal(
    principal: Principal,
    secret: str,
    *,
    method: str,
    target: str,
    now: float | None = None,
) -> dict[str, str]:
    """The principal headers for one request: ``method`` and ``target`` (the raw path
    and query the receiver will see, :func:`request_target`) are part of the MAC."""
    return sign_payload(encode_principal(principal), secret, method=method, target=target, now=now)


def verify_principal(
    headers: dict[str, str],
    secret: str,
    *,
    method: str,
    target: str,
    now: float | None = None,
    max_age_s: int = MAX_AGE_S,
) -> Principal:
    payload = headers.get(PRINCIPAL_HEADER)
    ts = headers.get(PRINCIPAL_TS_HEADER)
    sig = headers.get(PRINCIPAL_SIG_HEADER)
    if not payload or not ts or not sig or not secret:
        raise Problem(401, "Unauthenticated", "no verified principal on the request")
    if not hmac.compare_digest(_mac(secret, payload, ts, method, target), sig):
        raise Problem(
            401, "Unauthenticated", "principal signature does not verify for this request"
        )
    try:
        age = (now if now is not None else time.time()) - int(ts)
    except ValueError:
        raise Problem(401, "Unauthenticated", "malformed principal timestamp") from None
    if abs(age) > max_age_s:
        raise Problem(401, "Unauthenticated", "principal is too old")
    try:
        return Principal.model_validate(json.loads(base64.urlsafe_b64decode(payload)))
    except ValueError:
        raise Problem(401, "Unauthenticated", "malformed principal") from None


def target_of(request: Request) -> str:
    """The request's target as it arrived (raw path and query)."""
    raw = request.scope.get("raw_path") or quote(request.url.path).encode()
    return request_target(raw, request.scope.get("query_string") or b"")


def get_principal(request: Request) -> Principal:
    secret: str = request.app.state.ctx.settings.internal_auth_secret
    headers = {k.lower(): v for k, v in request.headers.items()}
    return verify_principal(headers, secret, method=request.method, target=target_of(request))


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def get_tenant(principal: CurrentPrincipal) -> str:
    return principal.org_id


TenantId = Annotated[str, Depends(get_tenant)]
