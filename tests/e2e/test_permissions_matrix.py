"""Every route declares the permission it needs, and each role (and each API key
scope) gets exactly what the shared role → permission map says, across every service.

1. Static: each service's FastAPI app is enumerated (``app.routes``, included routers
   flattened); a route must declare a permission through ``require()`` or be declared
   public (sign-up, login, plans, JWKS, webhooks) — the kit's own health, metrics,
   AsyncAPI and docs routes, and the gateway's catch-all proxy, are the only others.
   The gateway never makes a route public that its service guards.
2. Live, through the gateway to the real services: users of each role (real JWTs)
   call every guarded route; a forbidden one answers 403 problem+json, an allowed one
   anything but 403 (dummy ids and empty bodies make allowed calls end in 404/422,
   spending nothing). Keys with a single scope are checked the same way, and internal
   routes refuse every tenant role.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest

from qlp_gateway.routes import resolve as gateway_resolve
from qlp_kit import permissions as perm
from qlp_kit.app import create_app
from qlp_kit.auth import Principal
from qlp_kit.permissions import RouteInfo, app_routes
from qlp_kit.serve import installed_services
from qlp_kit.serve import resolve as resolve_service
from qlp_testing.flows import PASSWORD, bearer, signup
from qlp_testing.principals import PrincipalAuth, principal_headers

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

#: Routes every kit service serves itself (health, metrics, AsyncAPI, docs): public.
KIT_ROUTES = frozenset(
    {"/healthz", "/readyz", "/metrics", "/asyncapi.json", "/openapi.json", "/docs", "/redoc"}
    | {"/docs/oauth2-redirect"}
)
#: The gateway's catch-all proxy: it authenticates; the services check permissions.
GATEWAY_PROXY = "/{path:path}"
TENANT_ROLES = perm.ROLES
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
#: Spending the org's money or acting as a provider: never viewer or billing.
SPENDING_ROUTES = (
    ("POST", "/v1/gpu/jobs"),
    ("POST", "/v1/gpu/jobs/job_missing/cancel"),
    ("POST", "/v1/providers"),
    ("POST", "/v1/providers/provider_missing/heartbeat"),
)
_PARAM = re.compile(r"{([a-zA-Z_][a-zA-Z0-9_]*)(?::[a-z]+)?}")


def _settings(definition: Any) -> Any:
    return definition.settings_cls.model_validate(
        {
            "internal_auth_secret": "matrix",
            "kafka_bootstrap_servers": "127.0.0.1:9",
            "mongodb_url": "mongodb://127.0.0.1:9",
        }
    )


def service_routes() -> dict[str, list[RouteInfo]]:
    """Each installed service's routes (apps built, not started)."""
    out = {}
    for name in sorted(installed_services()):
        definition = resolve_service(name)
        out[name] = app_routes(create_app(definition, _settings(definition)))
    return out


def _path(route: RouteInfo, org_id: str) -> str:
    def fill(m: re.Match[str]) -> str:
        name = m.group(1)
        return org_id if name == "org_id" else f"{name.removesuffix('_id')}_missing"

    return _PARAM.sub(fill, route.path)


def guarded(routes: dict[str, list[RouteInfo]]) -> list[tuple[str, str, RouteInfo]]:
    """(service, method, route) for every route that needs a caller."""
    out = []
    for service, items in routes.items():
        for r in items:
            if r.permission in (None, perm.PUBLIC):
                continue
            for method in sorted(r.methods - {"HEAD", "OPTIONS"}):
                out.append((service, method, r))
    return out


# --------------------------------------------------------------------------- static


def test_every_route_of_every_service_declares_a_permission() -> None:
    routes = service_routes()
    assert {"identity", "billing", "scheduler", "gateway"} <= set(routes)
    undeclared = []
    for service, items in routes.items():
        for r in items:
            if (r.path in KIT_ROUTES or r.path.startswith("/docs/")) and r.permission is None:
                continue  # the kit's own pages and their assets
            if service == "gateway" and r.path == GATEWAY_PROXY and not r.is_api_route:
                continue
            if r.permission is None:
                undeclared.append(f"{service} {sorted(r.methods)} {r.path}")
            else:
                known = {
                    perm.PUBLIC,
                    perm.AUTHENTICATED,
                    perm.INTERNAL,
                    perm.PLATFORM_ADMIN,
                    *perm.ROLE_PERMISSIONS[perm.OWNER],
                }
                assert r.permission in known, (service, r.path, r.permission)
    assert not undeclared, "routes without a declared permission:\n" + "\n".join(undeclared)
    # The routes that spend money or act as a provider are never open to every role.
    by_path = {(r.path, m): r.permission for rs in routes.values() for r in rs for m in r.methods}
    assert by_path[("/v1/gpu/jobs", "POST")] == perm.GPU_JOBS
    assert by_path[("/v1/gpu/jobs/{job_id}/cancel", "POST")] == perm.GPU_JOBS
    assert by_path[("/v1/providers", "POST")] == perm.PROVIDER_AGENT
    for role in (perm.VIEWER, perm.BILLING):
        granted = perm.role_permissions(role)
        assert perm.GPU_JOBS not in granted and perm.PROVIDER_AGENT not in granted


def test_the_gateway_opens_no_guarded_route() -> None:
    for service, items in service_routes().items():
        for r in items:
            if r.permission in (None, perm.PUBLIC):
                continue
            resolved = gateway_resolve(_path(r, "org_x"))
            assert resolved is None or not resolved.public, (service, r.path, r.permission)


def test_identity_issues_scopes_from_the_shared_map() -> None:
    from qlp_identity import roles

    for role in TENANT_ROLES:
        assert roles.scopes_for(role) == perm.scopes_for(role)
        assert set(roles.ROLE_SCOPES[role]) <= perm.role_permissions(role)
    assert set(roles.MANAGERS) == {perm.OWNER, perm.ADMIN}


# ----------------------------------------------------------------------------- live


async def _member(c: httpx.AsyncClient, owner: dict[str, Any], role: str) -> dict[str, Any]:
    org = owner["org"]["id"]
    inv = await c.post(
        f"/v1/orgs/{org}/invitations",
        json={"email": f"{role}-{uuid.uuid4().hex[:10]}@example.com", "role": role},
        headers=bearer(owner),
    )
    assert inv.status_code == 201, inv.text
    acc = await c.post(
        "/v1/auth/invitations/accept", json={"token": inv.json()["token"], "password": PASSWORD}
    )
    assert acc.status_code == 200, acc.text
    out: dict[str, Any] = acc.json()
    return out


def _check(
    resp: httpx.Response, allowed: bool, who: str, method: str, path: str, permission: str
) -> str | None:
    """The mismatch, or None."""
    if allowed:
        if resp.status_code == 403:
            return f"{who} {method} {path} ({permission}): allowed but 403 {resp.text[:200]}"
        # 401 or 429 would mean the check never reached the service's permission.
        # (A 5xx is the route's own failure past the permission check: not this test's.)
        if resp.status_code in (401, 429):
            return f"{who} {method} {path} ({permission}): {resp.status_code} {resp.text[:200]}"
        return None
    if resp.status_code != 403:
        return f"{who} {method} {path} ({permission}): expected 403, got {resp.status_code}"
    if not resp.headers.get("content-type", "").startswith("application/problem+json"):
        return f"{who} {method} {path}: 403 is not problem+json"
    return None


async def _call(
    c: httpx.AsyncClient, method: str, path: str, headers: dict[str, str]
) -> httpx.Response:
    kwargs: dict[str, Any] = {"headers": headers}
    if method in BODY_METHODS:
        kwargs["json"] = {}
    return await c.request(method, path, **kwargs)


async def test_every_role_against_every_guarded_route(qlp_platform: Any) -> None:
    running = set(qlp_platform.state.services)
    routes = {s: r for s, r in service_routes().items() if s in running and s != "gateway"}
    cases = guarded(routes)
    assert cases
    mismatches: list[str] = []
    async with httpx.AsyncClient(base_url=qlp_platform.state.gateway_url, timeout=60) as c:
        owner = await signup(c, "matrix roles")
        org = owner["org"]["id"]
        users = {perm.OWNER: owner}
        for role in TENANT_ROLES:
            if role != perm.OWNER:
                users[role] = await _member(c, owner, role)
        checked = 0
        for service, method, r in cases:
            path = _path(r, org)
            if gateway_resolve(path) is None:
                continue  # internal: below, straight at the service
            assert r.permission is not None
            for role in TENANT_ROLES:
                resp = await _call(c, method, path, bearer(users[role]))
                allowed = r.permission == perm.AUTHENTICATED or (
                    r.permission in perm.role_permissions(role)
                )
                bad = _check(resp, allowed, role, method, path, r.permission)
                if bad:
                    mismatches.append(f"[{service}] {bad}")
                checked += 1
        assert checked >= 5 * 40, checked
        # Independently of what the routes declare: the issue's own cases.
        for method, path in SPENDING_ROUTES:
            for role in (perm.VIEWER, perm.BILLING):
                resp = await _call(c, method, path, bearer(users[role]))
                if resp.status_code != 403:
                    mismatches.append(f"{role} {method} {path}: {resp.status_code}, not 403")
            resp = await _call(c, method, path, bearer(users[perm.DEVELOPER]))
            if resp.status_code == 403:
                mismatches.append(f"developer {method} {path}: 403")

    # Internal routes are not routed by the gateway; called directly with a signed
    # principal of any tenant role they refuse.
    secret = qlp_platform.extra_env["QLP_INTERNAL_AUTH_SECRET"]
    for service, method, r in cases:
        path = _path(r, org)
        if gateway_resolve(path) is not None:
            continue
        assert r.permission in (perm.INTERNAL, perm.PLATFORM_ADMIN), (service, r.path)
        async with httpx.AsyncClient(
            base_url=qlp_platform.url(service), timeout=60, auth=PrincipalAuth(secret)
        ) as direct:
            for role in TENANT_ROLES:
                p = Principal(
                    org_id=org,
                    subject=users[role]["user"]["id"],
                    roles=[role],
                    user_id=users[role]["user"]["id"],
                )
                resp = await _call(direct, method, path, principal_headers(p))
                bad = _check(resp, False, role, method, path, r.permission or "")
                if bad:
                    mismatches.append(f"[{service} direct] {bad}")
    assert not mismatches, f"{len(mismatches)} mismatches:\n" + "\n".join(mismatches)


async def test_api_keys_get_permissions_from_their_scopes(qlp_platform: Any) -> None:
    running = set(qlp_platform.state.services)
    routes = {s: r for s, r in service_routes().items() if s in running and s != "gateway"}
    cases = [(s, m, r) for s, m, r in guarded(routes) if gateway_resolve(_path(r, "o"))]
    mismatches: list[str] = []
    async with httpx.AsyncClient(base_url=qlp_platform.state.gateway_url, timeout=60) as c:
        owner = await signup(c, "matrix keys")
        org = owner["org"]["id"]
        keys = {}
        for scope in perm.SCOPES:
            made = await c.post(
                "/v1/api-keys", json={"name": scope, "scopes": [scope]}, headers=bearer(owner)
            )
            assert made.status_code == 201, made.text
            keys[scope] = made.json()["key"]
        for service, method, r in cases:
            path = _path(r, org)
            assert r.permission is not None
            for scope, key in keys.items():
                resp = await _call(c, method, path, bearer(key))
                allowed = r.permission == perm.AUTHENTICATED or (
                    r.permission in perm.expand([scope])
                )
                bad = _check(resp, allowed, f"key[{scope}]", method, path, r.permission)
                if bad:
                    mismatches.append(f"[{service}] {bad}")
    assert not mismatches, f"{len(mismatches)} mismatches:\n" + "\n".join(mismatches)
