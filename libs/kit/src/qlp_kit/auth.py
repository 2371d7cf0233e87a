"""The verified caller, as the gateway forwards it to services.

The gateway authenticates the client (JWT or API key) and forwards the principal in
``X-QLP-Principal`` (base64url JSON) with a timestamp and an HMAC-SHA256 signature
over both, keyed by a secret only the gateway and services share. Services verify
the signature and age; a client cannot forge these headers because the gateway
strips any it receives.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Annotated

from fastapi import Depends, Request
from pydantic import BaseModel, Field

from qlp_kit.problems import Problem

PRINCIPAL_HEADER = "x-qlp-principal"
PRINCIPAL_TS_HEADER = "x-qlp-principal-ts"
PRINCIPAL_SIG_HEADER = "x-qlp-principal-sig"
INTERNAL_HEADERS = (PRINCIPAL_HEADER, PRINCIPAL_TS_HEADER, PRINCIPAL_SIG_HEADER)
MAX_AGE_S = 300


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


def _mac(secret: str, payload: str, ts: str) -> str:
    return hmac.new(secret.encode(), f"{ts}.{payload}".encode(), hashlib.sha256).hexdigest()


def sign_principal(principal: Principal, secret: str, now: float | None = None) -> dict[str, str]:
    if not secret:
        raise ValueError("internal auth secret is not configured")
    payload = base64.urlsafe_b64encode(principal.model_dump_json().encode()).decode()
    ts = str(int(now if now is not None else time.time()))
    return {
        PRINCIPAL_HEADER: payload,
        PRINCIPAL_TS_HEADER: ts,
        PRINCIPAL_SIG_HEADER: _mac(secret, payload, ts),
    }


def verify_principal(
    headers: dict[str, str], secret: str, now: float | None = None, max_age_s: int = MAX_AGE_S
) -> Principal:
    payload = headers.get(PRINCIPAL_HEADER)
    ts = headers.get(PRINCIPAL_TS_HEADER)
    sig = headers.get(PRINCIPAL_SIG_HEADER)
    if not payload or not ts or not sig or not secret:
        raise Problem(401, "Unauthenticated", "no verified principal on the request")
    if not hmac.compare_digest(_mac(secret, payload, ts), sig):
        raise Problem(401, "Unauthenticated", "principal signature does not verify")
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


def get_principal(request: Request) -> Principal:
    secret: str = request.app.state.ctx.settings.internal_auth_secret
    headers = {k.lower(): v for k, v in request.headers.items()}
    return verify_principal(headers, secret)


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def get_tenant(principal: CurrentPrincipal) -> str:
    return principal.org_id


TenantId = Annotated[str, Depends(get_tenant)]


def require_scope(scope: str):  # type: ignore[no-untyped-def]
    """Dependency: API keys need the scope; users are governed by roles instead."""

    def dep(principal: CurrentPrincipal) -> Principal:
        if principal.kind == "api_key" and not principal.has_scope(scope):
            raise Problem(403, "Forbidden", f"this API key lacks the {scope!r} scope")
        return principal

    return Depends(dep)


def require_role(*roles: str):  # type: ignore[no-untyped-def]
    def dep(principal: CurrentPrincipal) -> Principal:
        if principal.kind == "user" and not principal.has_role(*roles):
            raise Problem(403, "Forbidden", f"needs one of the roles {list(roles)}")
        return principal

    return Depends(dep)
