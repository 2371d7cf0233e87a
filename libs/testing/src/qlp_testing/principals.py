"""Playing the gateway in tests: signed principal headers for each request.

The signature binds the request's method and target, so headers cannot be built once
and reused. Give a client ``auth=PrincipalAuth(secret)`` and pass the unsigned
principal (``principal_headers(p)``) per request, or ``PrincipalAuth(secret, p)`` to
sign every request as ``p``; either way each outgoing request is signed for itself.

    async with httpx.AsyncClient(base_url=url, auth=PrincipalAuth(SECRET)) as c:
        await c.get("/v1/gpu/jobs", headers=principal_headers(user))
"""

from __future__ import annotations

from collections.abc import Generator

import httpx

from qlp_kit.auth import (
    PRINCIPAL_HEADER,
    PRINCIPAL_SIG_HEADER,
    PRINCIPAL_TS_HEADER,
    Principal,
    encode_principal,
    request_target,
    sign_payload,
)


def principal_headers(principal: Principal) -> dict[str, str]:
    """The principal, unsigned: a client with :class:`PrincipalAuth` signs it for the
    request it goes with."""
    return {PRINCIPAL_HEADER: encode_principal(principal)}


def target(request: httpx.Request) -> str:
    """The target the receiving service sees (the raw path and query as sent)."""
    path, _, query = request.url.raw_path.partition(b"?")
    return request_target(path, query)


def sign_request(request: httpx.Request, secret: str, principal: Principal | None = None) -> None:
    """Sign ``request`` (in place) for its own method and target: as ``principal``, or
    as the unsigned principal already on it. A request with neither is left alone."""
    payload = encode_principal(principal) if principal else request.headers.get(PRINCIPAL_HEADER)
    if not payload:
        return
    for name in (PRINCIPAL_TS_HEADER, PRINCIPAL_SIG_HEADER):
        request.headers.pop(name, None)
    request.headers.update(
        sign_payload(payload, secret, method=request.method, target=target(request))
    )


class PrincipalAuth(httpx.Auth):
    """Signs each outgoing request's principal for that request (see module doc)."""

    def __init__(self, secret: str, principal: Principal | None = None) -> None:
        self.secret = secret
        self.principal = principal

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        sign_request(request, self.secret, self.principal)
        yield request
