"""The route table: which service answers a public path, whether it needs a caller,
and how large its request body may be. Pure; no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass

from qlp_kit.consumer_admin import CONSUMER_SERVICES

#: The gateway's own name in the table: its routes are served by itself (api.py).
GATEWAY = "gateway"


#: Public path prefixes and the service behind each (first match wins).
ROUTE_PREFIXES: tuple[tuple[str, str], ...] = (
    *((f"/v1/admin/consumers/{s}", s) for s in CONSUMER_SERVICES),
    ("/v1/auth", "identity"),
    ("/v1/me", "identity"),
    ("/v1/orgs", "identity"),
    ("/v1/api-keys", "identity"),
    ("/v1/billing", "billing"),
    ("/v1/admin/failovers", "failover"),
    ("/v1/generations", "generation"),
    ("/v1/projects", "generation"),
    ("/v1/patterns", "generation"),
    ("/v1/marketplace", "marketplace"),
    ("/v1/providers", "scheduler"),
    # the public offer catalogue is the marketplace's read model of the scheduler's
    # offer events; the scheduler keeps its own index for placement
    ("/v1/gpu/offers", "marketplace"),
    ("/v1/gpu", "scheduler"),
)

#: Paths that need no caller (exact match; any method, the service decides the rest).
PUBLIC_PATHS = frozenset(
    {
        "/v1/auth/signup",
        "/v1/auth/login",
        "/v1/auth/refresh",
        "/v1/auth/logout",
        "/v1/auth/invitations/accept",
        # plans and prices are public
        "/v1/billing/plans",
    }
)

#: Path prefixes that need no caller: payment-provider webhooks (the service checks
#: the provider's signature), one plan, and invoices opened by a signed, expiring link
#: (the service checks the link's HMAC and expiry).
PUBLIC_PREFIXES: tuple[str, ...] = (
    "/v1/billing/webhooks/",
    "/v1/billing/plans/",
    "/v1/billing/shared/",
)

#: The web console's pages (served by the console service; it signs people in with its
#: own session cookie and calls the API above with their token). The gateway's own
#: pages (/docs, /openapi.json, /healthz, /metrics ...) are matched before the proxy.
CONSOLE = "console"
CONSOLE_PATHS = frozenset({"/", "/login", "/signup", "/logout", "/invite"})
CONSOLE_PREFIXES: tuple[str, ...] = ("/app", "/static")

#: Paths whose bodies may be large (checkpoint uploads from provider agents; marketplace
#: artifacts, which the marketplace itself limits to 25 MiB).
_LARGE_BODY = re.compile(
    r"^(/v1/providers/.+/checkpoints(/.*)?|/v1/marketplace/listings/[^/]+/versions)$"
)


@dataclass(frozen=True, slots=True)
class Route:
    service: str
    public: bool
    large_body: bool


def resolve(path: str) -> Route | None:
    """The route for a request path, or None when no service exposes it."""
    if "//" in path or "/../" in path or path.endswith("/.."):
        return None
    for prefix, service in ROUTE_PREFIXES:
        if path == prefix or path.startswith(prefix + "/"):
            return Route(
                service=service,
                public=path.rstrip("/") in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES),
                large_body=bool(_LARGE_BODY.match(path)),
            )
    if path in CONSOLE_PATHS or any(
        path == p or path.startswith(p + "/") for p in CONSOLE_PREFIXES
    ):
        return Route(service=CONSOLE, public=True, large_body=False)
    return None


def body_limit(route: Route, default: int, large: int) -> int:
    return large if route.large_body else default
