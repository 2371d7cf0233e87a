"""The gateway's request pipeline: route → authenticate → rate-limit → (idempotency)
→ forward with the signed principal. Routes in api.py only call :meth:`Gateway.handle`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import structlog
from starlette.requests import Request
from starlette.responses import Response

from qlp_gateway import idempotency as idem
from qlp_gateway.authn import ApiKeyVerifier, Authenticator
from qlp_gateway.idempotent_proxy import IdempotentForwarder
from qlp_gateway.metrics import REJECTED, UPSTREAM_LATENCY, UPSTREAM_REQUESTS
from qlp_gateway.openapi import OpenApiCache
from qlp_gateway.proxy import (
    LimitedBody,
    Upstreams,
    request_headers,
    too_large,
    upstream_response,
    upstream_target,
)
from qlp_gateway.ratelimit import Decision, RateLimiter
from qlp_gateway.repository import IdempotencyRepository, PlanRepository
from qlp_gateway.routes import GATEWAY, Route, body_limit, resolve
from qlp_gateway.settings import GatewaySettings
from qlp_kit.aio import within
from qlp_kit.auth import Principal, sign_principal
from qlp_kit.jwt_verify import JwksCache, JwtVerifier
from qlp_kit.problems import Problem

log = structlog.get_logger("qlp.gateway")

PLANS = ("free", "starter", "professional", "enterprise")


@dataclass
class PlanCache:
    """The plan of each org: billing's events (via MongoDB) with a short memory cache."""

    repo: PlanRepository
    default: str = "free"
    ttl_s: float = 5.0
    _memo: dict[str, tuple[float, str]] = field(default_factory=dict)

    async def plan_of(self, org_id: str) -> str:
        hit = self._memo.get(org_id)
        now = time.monotonic()
        if hit is not None and hit[0] > now:
            return hit[1]
        try:
            plan = await within(self.repo.get(org_id), 1.0) or self.default
        except Exception as exc:  # the cache's store is down or slow: fall back, do not fail
            log.warning("plan lookup failed", org_id=org_id, error=str(exc))
            plan = hit[1] if hit else self.default
        if len(self._memo) > 100_000:
            self._memo.clear()
        self._memo[org_id] = (now + self.ttl_s, plan)
        return plan

    def remember(self, org_id: str, plan: str) -> None:
        self._memo[org_id] = (time.monotonic() + self.ttl_s, plan)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


class Gateway:
    def __init__(self, settings: GatewaySettings, db: Any) -> None:
        self.settings = settings
        self.services = settings.upstreams()
        self.upstreams = Upstreams(
            settings.upstream_connect_timeout_s,
            settings.upstream_timeout_s,
            settings.upstream_max_connections,
        )
        client = self.upstreams.client
        jwks_url = settings.jwks_endpoint()
        self.jwks = JwksCache(
            jwks_url or "http://identity.invalid/.well-known/jwks.json",
            ttl_s=settings.jwks_ttl_s,
            min_refetch_interval_s=settings.jwks_min_refetch_interval_s,
            client=client,
        )
        self.authenticator = Authenticator(
            JwtVerifier(
                self.jwks,
                issuer=settings.jwt_issuer,
                audience=settings.jwt_audience,
                algorithms=settings.jwt_algorithms,
                leeway_s=settings.jwt_leeway_s,
            ),
            ApiKeyVerifier(
                client,
                self.services.get("identity"),
                settings.internal_auth_secret,
                ttl_s=settings.api_key_cache_ttl_s,
                negative_ttl_s=settings.api_key_negative_cache_ttl_s,
                max_entries=settings.api_key_cache_size,
            ),
        )
        self.limiter = RateLimiter(60.0, settings.rate_limit_max_buckets)
        self.plans = PlanCache(PlanRepository(db), settings.default_plan, settings.plan_cache_ttl_s)
        self.idempotency = IdempotencyRepository(db)
        self.keyed = IdempotentForwarder(
            self.idempotency,
            client,
            lock_s=settings.idempotency_lock_s,
            max_response_bytes=settings.idempotency_max_response_bytes,
        )
        self.openapi = OpenApiCache(
            client,
            self.services,
            ttl_s=settings.openapi_ttl_s,
            timeout_s=settings.openapi_fetch_timeout_s,
        )

    async def close(self) -> None:
        await self.keyed.drain()
        await self.upstreams.close()

    # -- the pipeline ---------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        try:
            return await self._handle(request)
        except Problem as exc:
            REJECTED.labels(exc.type.rsplit("/", 1)[-1]).inc()
            raise

    async def _send(
        self,
        route: Route,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        content: bytes | Any,
        body: LimitedBody | None,
    ) -> Any:
        start = time.perf_counter()
        resp = await self.upstreams.send(method, url, headers, content, body, route.service)
        UPSTREAM_LATENCY.labels(route.service).observe(time.perf_counter() - start)
        UPSTREAM_REQUESTS.labels(route.service, str(resp.status_code)).inc()
        return resp

    async def _handle(self, request: Request) -> Response:
        path = request.url.path
        route = resolve(path)
        if route is None:
            raise Problem(404, "Not found", f"no public API at {path}")
        if route.service == GATEWAY:  # its own routes answered before the proxy: not this method
            raise Problem(
                405, "Method not allowed", f"{path} answers GET only", headers={"Allow": "GET"}
            )
        principal, limit_headers = await self.admit(request, public=route.public)
        base = self.services.get(route.service)
        if base is None:
            raise Problem(
                503,
                "Service unavailable",
                f"the {route.service} service is not available",
                type_="service-unavailable",
                service=route.service,
                headers=limit_headers,
            )
        limit = body_limit(route, self.settings.max_body_bytes, self.settings.max_upload_bytes)
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise too_large(limit)
        headers = self.forward_headers(request, route, principal)
        # Forward the path as the client encoded it (routing used the decoded one).
        raw_path = request.scope.get("raw_path")
        url = base + (raw_path.decode("latin-1") if raw_path else path)
        if request.url.query:
            url += f"?{request.url.query}"
        if principal is not None:
            headers += self.sign_for(principal, request.method, url)
        key = request.headers.get(idem.HEADER)
        if key is not None and request.method == "POST" and principal is not None:
            return await self.idempotent(
                request, route, url, headers, principal, key, limit, limit_headers
            )
        body = LimitedBody(request, limit)
        has_body = request.method not in ("GET", "HEAD", "OPTIONS", "DELETE") or bool(
            declared and declared != "0"
        )
        resp = await self._send(
            route, request.method, url, headers, body.stream() if has_body else None, body
        )
        return await upstream_response(resp, limit_headers)

    async def admit(
        self, request: Request, *, public: bool
    ) -> tuple[Principal | None, dict[str, str]]:
        """Authenticate (unless the path is public) and rate-limit a request: the
        caller and the rate-limit headers of the answer (429 past the limit)."""
        principal = None if public else await self.authenticate(request)
        decision = await self.rate_limit(request, principal)
        limit_headers = decision.headers() if decision else {}
        if decision is not None and not decision.allowed:
            raise Problem(
                429,
                "Too many requests",
                f"rate limit of {decision.limit} requests per minute reached ({decision.scope})",
                type_="rate-limited",
                headers=limit_headers,
                retry_after_s=decision.retry_after_s,
            )
        return principal, limit_headers

    async def authenticate(self, request: Request) -> Principal:
        """The caller; a client address with too many failures is refused up front
        (guessing API keys or flooding bad tokens costs identity calls and CPU)."""
        key = f"authfail:{client_address(request)}"
        limit = self.settings.auth_failures_per_minute
        if self.settings.rate_limit_enabled and self.limiter.exhausted(key, limit):
            raise Problem(
                429,
                "Too many failed authentications",
                "too many failed authentications from this address; try again later",
                type_="rate-limited",
                headers={"Retry-After": "60"},
            )
        try:
            return await self.authenticator.authenticate(request.headers.get("authorization"))
        except Problem as exc:
            if exc.status == 401 and self.settings.rate_limit_enabled:
                self.limiter.check([(key, limit)])
            raise

    def forward_headers(
        self, request: Request, route: Route, principal: Principal | None
    ) -> list[tuple[str, str]]:
        headers = request_headers(
            request.headers.items(), keep_authorization=route.service == "identity"
        )
        rid = getattr(request.state, "request_id", None)
        if rid:
            headers = [(k, v) for k, v in headers if k.lower() != "x-request-id"]
            headers.append(("x-request-id", rid))
        headers.append(("x-forwarded-for", client_address(request)))
        headers.append(("x-forwarded-proto", request.url.scheme))
        if request.headers.get("host"):
            headers.append(("x-forwarded-host", request.headers["host"]))
        return headers

    def sign_for(self, principal: Principal, method: str, url: str) -> list[tuple[str, str]]:
        """The principal headers for this one upstream request (bound to its method and
        target as the service will receive them)."""
        signed = sign_principal(
            principal,
            self.settings.internal_auth_secret,
            method=method,
            target=upstream_target(url),
        )
        return list(signed.items())

    async def rate_limit(self, request: Request, principal: Principal | None) -> Decision | None:
        if not self.settings.rate_limit_enabled:
            return None
        if principal is None:
            return self.limiter.check(
                [(f"ip:{client_address(request)}", self.settings.anonymous_per_minute)]
            )
        plan = await self.plans.plan_of(principal.org_id)
        limits = self.settings.plan_limits.get(plan) or self.settings.plan_limits.get(
            self.settings.default_plan
        )
        if limits is None:
            return None
        checks = [(f"org:{principal.org_id}", limits.org_per_minute)]
        if principal.kind == "api_key":
            checks.append((f"key:{principal.subject}", limits.key_per_minute))
        return self.limiter.check(checks)

    async def idempotent(
        self,
        request: Request,
        route: Route,
        url: str,
        headers: list[tuple[str, str]],
        principal: Principal,
        key: str,
        limit: int,
        limit_headers: dict[str, str],
    ) -> Response:
        return await self.keyed.forward(
            request, route, url, headers, principal, key, limit, limit_headers
        )

    # -- plans from billing's events -------------------------------------------------

    async def set_plan(self, org_id: str, plan_id: str, at: Any, event_id: str) -> None:
        if await self.plans.repo.apply(org_id, plan_id, at, event_id):
            self.plans.remember(org_id, plan_id)
