"""Who may do what: one permission per route, granted by a user's role or an API
key's scopes. The one place the role → permission map lives (identity issues tokens
and keys from it; every service's routes check it through :func:`require`).

    @router.post("/jobs", dependencies=[require(GPU_JOBS)])

A route's declared permission is visible on its dependency (``PERMISSION_ATTR``), so
a test can enumerate an app's routes and find one that declares none.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, Request

from qlp_kit.auth import CurrentPrincipal, Principal
from qlp_kit.problems import Problem

# -- permissions ---------------------------------------------------------------------

#: Any verified caller (a user of any role, an API key with any scope).
AUTHENTICATED = "authenticated"
#: Internal endpoints: the gateway's (or another service's) own principal only.
INTERNAL = "internal"
#: Platform operators (role ``platform_admin``), never a tenant role.
PLATFORM_ADMIN = "platform:admin"

MEMBERS_READ = "members:read"
MEMBERS_MANAGE = "members:manage"  # invite, change roles, remove others
AUDIT_READ = "audit:read"
API_KEYS_READ = "api_keys:read"
API_KEYS_WRITE = "api_keys:write"  # create and revoke

BILLING_READ = "billing:read"
BILLING_WRITE = "billing:write"  # plans, credits, payouts: spends or moves money

GENERATIONS_READ = "generations:read"
GENERATIONS_WRITE = "generations:write"
MARKETPLACE_WRITE = "marketplace:write"

GPU_READ = "gpu:read"  # jobs, their logs and metrics, offers
GPU_JOBS = "gpu:jobs"  # submit and cancel jobs: spends the org's money
PROVIDER_READ = "provider:read"  # providers, their earnings
PROVIDER_AGENT = "provider:agent"  # register providers, the agent's API

# -- roles ---------------------------------------------------------------------------

OWNER = "owner"
ADMIN = "admin"
DEVELOPER = "developer"
BILLING = "billing"
VIEWER = "viewer"
ROLES = (OWNER, ADMIN, DEVELOPER, BILLING, VIEWER)
PLATFORM_ADMIN_ROLE = "platform_admin"

#: The fixed set of API key scopes (each is also a permission).
SCOPES = (
    GENERATIONS_WRITE,
    GENERATIONS_READ,
    BILLING_READ,
    BILLING_WRITE,
    GPU_JOBS,
    PROVIDER_AGENT,
    MARKETPLACE_WRITE,
)

#: A scope (or permission) that carries others with it.
IMPLIES: dict[str, tuple[str, ...]] = {
    BILLING_WRITE: (BILLING_READ,),
    GENERATIONS_WRITE: (GENERATIONS_READ,),
    GPU_JOBS: (GPU_READ,),
    PROVIDER_AGENT: (PROVIDER_READ,),
}

_READS = (MEMBERS_READ, GENERATIONS_READ, BILLING_READ, GPU_READ, PROVIDER_READ)
_ALL = (
    *_READS,
    MEMBERS_MANAGE,
    AUDIT_READ,
    API_KEYS_READ,
    API_KEYS_WRITE,
    BILLING_WRITE,
    GENERATIONS_WRITE,
    MARKETPLACE_WRITE,
    GPU_JOBS,
    PROVIDER_AGENT,
)

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    OWNER: frozenset(_ALL),
    ADMIN: frozenset(_ALL),
    DEVELOPER: frozenset(
        (
            *_READS,
            API_KEYS_READ,
            API_KEYS_WRITE,
            GENERATIONS_WRITE,
            MARKETPLACE_WRITE,
            GPU_JOBS,
            PROVIDER_AGENT,
        )
    ),
    BILLING: frozenset((*_READS, BILLING_WRITE)),
    VIEWER: frozenset(_READS),
}


def expand(perms: Iterable[str]) -> frozenset[str]:
    """``perms`` with everything they imply."""
    out = set(perms)
    for p in list(out):
        out.update(IMPLIES.get(p, ()))
    return frozenset(out)


def _role_name(role: str) -> str:
    return role.lower().removeprefix("role_")


def role_permissions(role: str) -> frozenset[str]:
    return ROLE_PERMISSIONS.get(_role_name(role), frozenset())


def scopes_for(role: str) -> list[str]:
    """The API key scopes a role may grant (and the ``scopes`` claim of its tokens)."""
    granted = role_permissions(role)
    return [s for s in SCOPES if s in granted]


def effective_scopes(scopes: Iterable[str], creator_role: str | None) -> list[str]:
    """An API key's scopes limited to what its creator may do now (``None``: no
    creator, the key's own scopes)."""
    own = sorted(set(scopes))
    if creator_role is None:
        return own
    allowed = role_permissions(creator_role)
    return [s for s in own if s in allowed]


def permissions_of(principal: Principal) -> frozenset[str]:
    """What a verified caller may do: users by role, API keys by scope."""
    perms: set[str] = {AUTHENTICATED}
    if principal.kind == "service":
        perms.add(INTERNAL)
    elif principal.kind == "api_key":
        perms.update(expand(s for s in principal.scopes if s in SCOPES))
    else:
        for role in principal.roles:
            perms.update(role_permissions(role))
    if any(_role_name(r) == PLATFORM_ADMIN_ROLE for r in principal.roles):
        perms.add(PLATFORM_ADMIN)
    return frozenset(perms)


def has_permission(principal: Principal, permission: str) -> bool:
    return permission in permissions_of(principal)


#: The attribute on a :func:`require` dependency that names its permission.
PERMISSION_ATTR = "__qlp_permission__"
#: Set on dependencies of routes that need no caller at all (sign-up, JWKS, plans).
PUBLIC = "public"


def _is_self(principal: Principal, request: Request, param: str | None) -> bool:
    if not param:
        return False
    value = request.path_params.get(param)
    if not value:
        return False
    if principal.kind == "api_key":
        return bool(principal.subject == value)
    return principal.kind == "user" and (principal.user_id or principal.subject) == value


def forbidden(principal: Principal, permission: str) -> Problem:
    """The 403 problem for a caller that lacks ``permission``."""
    what = "API key" if principal.kind == "api_key" else "role"
    return Problem(
        403,
        "Forbidden",
        f"your {what} lacks the {permission!r} permission",
        type_="forbidden",
        permission=permission,
    )


def require(permission: str, *, or_self: str | None = None) -> Any:
    """Dependency: the caller needs ``permission`` (403 problem+json otherwise); it
    answers the verified :class:`Principal`. ``or_self`` names a path parameter: a
    caller acting on itself (its own user id, or an API key on its own id) needs no
    permission (leaving an org, a key revoking itself)."""

    def dep(request: Request, principal: CurrentPrincipal) -> Principal:
        if has_permission(principal, permission) or _is_self(principal, request, or_self):
            return principal
        raise forbidden(principal, permission)

    setattr(dep, PERMISSION_ATTR, permission)
    dep.__name__ = f"require_{permission.replace(':', '_')}"
    return Depends(dep)


def public() -> Any:
    """Dependency marking a route that needs no caller (declared, so it is not
    mistaken for one that forgot its permission)."""

    def dep() -> None:
        return None

    setattr(dep, PERMISSION_ATTR, PUBLIC)
    dep.__name__ = "public_route"
    return Depends(dep)


def declared_permission(route: Any) -> str | None:
    """The permission a FastAPI route declares (through :func:`require` or
    :func:`public`), or None."""
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return None
    stack = [dependant]
    while stack:
        d = stack.pop()
        call = getattr(d, "call", None)
        perm = getattr(call, PERMISSION_ATTR, None)
        if isinstance(perm, str):
            return perm
        stack.extend(d.dependencies)
    return None


@dataclass(frozen=True)
class RouteInfo:
    path: str
    methods: frozenset[str]
    permission: str | None
    is_api_route: bool  # an APIRoute (dependencies solved); plain Starlette routes are not


def app_routes(app: Any) -> list[RouteInfo]:
    """Every route of a FastAPI app (included routers flattened), with the permission
    it declares: what a test enumerates to find a route that declares none."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI: included routes are plain APIRoutes
        contexts: list[Any] = list(app.routes)
    else:
        contexts = list(iter_route_contexts(app.routes))
    out = []
    for rc in contexts:
        path = getattr(rc, "path", None)
        if not isinstance(path, str):
            continue
        api = getattr(rc, "dependant", None) is not None
        out.append(
            RouteInfo(
                path=path,
                methods=frozenset(getattr(rc, "methods", None) or ()),
                permission=declared_permission(rc) if api else None,
                is_api_route=api,
            )
        )
    return out
