"""HTTP routes: parse, call the service, shape the response."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response

from qlp_identity.schemas import (
    AcceptInvitationIn,
    ApiKeyCreated,
    ApiKeyIn,
    ApiKeyList,
    AuditList,
    InvitationIn,
    InvitationOut,
    LoginIn,
    MemberList,
    MemberOut,
    MeOut,
    RefreshIn,
    RoleIn,
    RotatedOut,
    SignupIn,
    TokensOut,
    VerifiedPrincipal,
    VerifyKeyIn,
)
from qlp_identity.service import IdentityService
from qlp_kit import permissions as perm
from qlp_kit.app import Ctx
from qlp_kit.auth import CurrentPrincipal, Principal
from qlp_kit.permissions import public as public_route
from qlp_kit.permissions import require
from qlp_kit.problems import Problem


def get_service(ctx: Ctx) -> IdentityService:
    svc: IdentityService = ctx.extras["identity"]
    return svc


Svc = Annotated[IdentityService, Depends(get_service)]
Limit = Annotated[int, Query(ge=1, le=200)]

auth = APIRouter(prefix="/v1/auth", tags=["auth"], dependencies=[public_route()])
me_router = APIRouter(prefix="/v1", tags=["me"])
orgs = APIRouter(prefix="/v1/orgs/{org_id}", tags=["members"])
keys = APIRouter(prefix="/v1/api-keys", tags=["api-keys"])
public = APIRouter(tags=["jwks"], dependencies=[public_route()])
internal = APIRouter(
    prefix="/internal/v1", tags=["internal"], dependencies=[require(perm.INTERNAL)]
)


@auth.post("/signup", status_code=201, response_model=TokensOut)
async def signup(body: SignupIn, svc: Svc) -> dict[str, Any]:
    res = await svc.signup(body.org_name, body.email, body.password, body.display_name)
    return res.body()


@auth.post("/login", response_model=TokensOut)
async def login(body: LoginIn, svc: Svc) -> dict[str, Any]:
    return (await svc.login(body.email, body.password, body.org_id)).body()


@auth.post("/refresh", response_model=TokensOut)
async def refresh(body: RefreshIn, svc: Svc) -> dict[str, Any]:
    return (await svc.refresh(body.refresh_token)).body()


@auth.post("/logout", status_code=204)
async def logout(body: RefreshIn, svc: Svc) -> Response:
    await svc.logout(body.refresh_token)
    return Response(status_code=204)


@auth.post("/invitations/accept", response_model=TokensOut)
async def accept_invitation(body: AcceptInvitationIn, svc: Svc) -> dict[str, Any]:
    return (await svc.accept_invitation(body.token, body.password, body.display_name)).body()


@me_router.get("/me", response_model=MeOut, dependencies=[require(perm.AUTHENTICATED)])
async def me(principal: CurrentPrincipal, svc: Svc) -> dict[str, Any]:
    return await svc.me(principal)


@orgs.get("/members", response_model=MemberList, dependencies=[require(perm.MEMBERS_READ)])
async def list_members(
    org_id: str, principal: CurrentPrincipal, svc: Svc, limit: Limit = 50, cursor: str | None = None
) -> dict[str, Any]:
    items, nxt = await svc.list_members(principal, org_id, limit, cursor)
    return {"items": items, "next_cursor": nxt}


@orgs.patch(
    "/members/{user_id}",
    response_model=MemberOut,
    dependencies=[require(perm.MEMBERS_MANAGE)],
)
async def change_role(
    org_id: str, user_id: str, body: RoleIn, principal: CurrentPrincipal, svc: Svc
) -> dict[str, Any]:
    return await svc.change_role(principal, org_id, user_id, body.role)


@orgs.delete(
    "/members/{user_id}",
    status_code=204,
    # a member may always leave: removing oneself needs no permission
    dependencies=[require(perm.MEMBERS_MANAGE, or_self="user_id")],
)
async def remove_member(
    org_id: str, user_id: str, principal: CurrentPrincipal, svc: Svc
) -> Response:
    await svc.remove_member(principal, org_id, user_id)
    return Response(status_code=204)


@orgs.post(
    "/invitations",
    status_code=201,
    response_model=InvitationOut,
    dependencies=[require(perm.MEMBERS_MANAGE)],
)
async def invite(
    org_id: str, body: InvitationIn, principal: CurrentPrincipal, svc: Svc
) -> dict[str, Any]:
    return await svc.invite(principal, org_id, body.email, body.role)


@orgs.get("/audit-log", response_model=AuditList, dependencies=[require(perm.AUDIT_READ)])
async def audit_log(
    org_id: str, principal: CurrentPrincipal, svc: Svc, limit: Limit = 50, cursor: str | None = None
) -> dict[str, Any]:
    items, nxt = await svc.audit_log(principal, org_id, limit, cursor)
    return {"items": items, "next_cursor": nxt}


@keys.post(
    "",
    status_code=201,
    response_model=ApiKeyCreated,
    dependencies=[require(perm.API_KEYS_WRITE)],
)
async def create_api_key(body: ApiKeyIn, principal: CurrentPrincipal, svc: Svc) -> dict[str, Any]:
    if body.expires_at is not None and body.expires_at.tzinfo is None:
        raise Problem(422, "Request is not valid", "expires_at needs a time zone (RFC 3339)")
    expires_ms = int(body.expires_at.timestamp() * 1000) if body.expires_at else None
    return await svc.create_api_key(principal, body.name, list(body.scopes), expires_ms)


@keys.get("", response_model=ApiKeyList, dependencies=[require(perm.API_KEYS_READ)])
async def list_api_keys(
    principal: CurrentPrincipal, svc: Svc, limit: Limit = 50, cursor: str | None = None
) -> dict[str, Any]:
    items, nxt = await svc.list_api_keys(principal, limit, cursor)
    return {"items": items, "next_cursor": nxt}


@keys.delete(
    "/{key_id}",
    status_code=204,
    # an API key may revoke itself
    dependencies=[require(perm.API_KEYS_WRITE, or_self="key_id")],
)
async def revoke_api_key(key_id: str, principal: CurrentPrincipal, svc: Svc) -> Response:
    await svc.revoke_api_key(principal, key_id)
    return Response(status_code=204)


@public.get("/.well-known/jwks.json")
async def jwks(svc: Svc, response: Response) -> dict[str, Any]:
    response.headers["Cache-Control"] = "public, max-age=60"
    return await svc.keyring.jwks()


def require_service(principal: CurrentPrincipal) -> Principal:
    if principal.kind != "service":
        raise Problem(403, "Forbidden", "internal endpoint: service principals only")
    return principal


ServicePrincipal = Annotated[Principal, Depends(require_service)]


@internal.post("/api-keys/verify", response_model=VerifiedPrincipal)
async def verify_api_key(body: VerifyKeyIn, _: ServicePrincipal, svc: Svc) -> dict[str, Any]:
    return await svc.verify_api_key(body.key)


@internal.post("/signing-keys/rotate", response_model=RotatedOut)
async def rotate_signing_key(
    _: ServicePrincipal, svc: Svc, immediate: bool = True
) -> dict[str, Any]:
    """Force a rotation. ``immediate=false`` pre-publishes the new key as the schedule
    does; the default signs with it at once (e.g. after a suspected compromise)."""
    return {"kid": await svc.keyring.rotate(immediate=immediate)}


routers = [auth, me_router, orgs, keys, public, internal]
