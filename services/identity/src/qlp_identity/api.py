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
    PlatformAdminChangeOut,
    PlatformAdminOut,
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
from qlp_kit.openapi_docs import problems
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


@auth.post(
    "/signup",
    status_code=201,
    response_model=TokensOut,
    summary="Sign up: create an organization and its owner",
    responses=problems(409),
)
async def signup(body: SignupIn, svc: Svc) -> dict[str, Any]:
    """Creates an organization and its first user (the owner) and answers an access token
    (valid 15 minutes) with a refresh token. Send the access token as
    `Authorization: Bearer <token>`; when it expires, POST the refresh token to
    /v1/auth/refresh, or create an API key for scripts. 409 when the e-mail already
    has an account."""
    res = await svc.signup(body.org_name, body.email, body.password, body.display_name)
    return res.body()


@auth.post(
    "/login",
    response_model=TokensOut,
    summary="Log in with e-mail and password",
    responses=problems(401),
)
async def login(body: LoginIn, svc: Svc) -> dict[str, Any]:
    """Answers a new access token (15 minutes) and refresh token. A user in several
    organizations names one with `org_id`. Repeated wrong passwords lock the account
    for a while (429 with Retry-After)."""
    return (await svc.login(body.email, body.password, body.org_id)).body()


@auth.post(
    "/refresh",
    response_model=TokensOut,
    summary="Exchange a refresh token for new tokens",
    responses=problems(401),
)
async def refresh(body: RefreshIn, svc: Svc) -> dict[str, Any]:
    """Answers a fresh access token and a new refresh token; the one sent is used up.
    Reusing a spent refresh token revokes the whole session (401): log in again."""
    return (await svc.refresh(body.refresh_token)).body()


@auth.post("/logout", status_code=204, summary="Log out: revoke a refresh token")
async def logout(body: RefreshIn, svc: Svc) -> Response:
    """Revokes the refresh token and its session. Access tokens already issued stay valid
    until they expire (at most 15 minutes)."""
    await svc.logout(body.refresh_token)
    return Response(status_code=204)


@auth.post(
    "/invitations/accept",
    response_model=TokensOut,
    summary="Accept an invitation to an organization",
    responses=problems(401, 409),
)
async def accept_invitation(body: AcceptInvitationIn, svc: Svc) -> dict[str, Any]:
    """Joins the organization that sent the invitation token (by e-mail), creating the
    account with the given password when the e-mail has none, and answers tokens for
    that organization. 401 for an unknown or expired token; 409 when already a
    member."""
    return (await svc.accept_invitation(body.token, body.password, body.display_name)).body()


@me_router.get(
    "/me",
    response_model=MeOut,
    dependencies=[require(perm.AUTHENTICATED)],
    summary="Who am I: the caller's user or API key, organization and permissions",
)
async def me(principal: CurrentPrincipal, svc: Svc) -> dict[str, Any]:
    """Answers the verified caller: user or API key id, organization, roles and the
    permissions they grant. Handy to check a token or key before using it."""
    return await svc.me(principal)


@orgs.get(
    "/members",
    response_model=MemberList,
    dependencies=[require(perm.MEMBERS_READ)],
    summary="List the organization's members",
)
async def list_members(
    org_id: str, principal: CurrentPrincipal, svc: Svc, limit: Limit = 50, cursor: str | None = None
) -> dict[str, Any]:
    """Members of the organization with their roles, paginated with `limit`
    and `cursor` (pass `next_cursor` of the previous page)."""
    items, nxt = await svc.list_members(principal, org_id, limit, cursor)
    return {"items": items, "next_cursor": nxt}


@orgs.patch(
    "/members/{user_id}",
    response_model=MemberOut,
    dependencies=[require(perm.MEMBERS_MANAGE)],
    summary="Change a member's role",
    responses=problems(409),
)
async def change_role(
    org_id: str, user_id: str, body: RoleIn, principal: CurrentPrincipal, svc: Svc
) -> dict[str, Any]:
    """Gives a member another role (owner, admin, developer, billing or viewer). An
    organization keeps at least one owner (409 otherwise)."""
    return await svc.change_role(principal, org_id, user_id, body.role)


@orgs.delete(
    "/members/{user_id}",
    status_code=204,
    # a member may always leave: removing oneself needs no permission
    dependencies=[require(perm.MEMBERS_MANAGE, or_self="user_id")],
    summary="Remove a member (or leave the organization)",
    responses=problems(409),
)
async def remove_member(
    org_id: str, user_id: str, principal: CurrentPrincipal, svc: Svc
) -> Response:
    """Removes the member from the organization; any member may remove themselves. The last
    owner cannot leave (409)."""
    await svc.remove_member(principal, org_id, user_id)
    return Response(status_code=204)


@orgs.post(
    "/invitations",
    status_code=201,
    response_model=InvitationOut,
    dependencies=[require(perm.MEMBERS_MANAGE)],
    summary="Invite someone by e-mail",
    responses=problems(409),
)
async def invite(
    org_id: str, body: InvitationIn, principal: CurrentPrincipal, svc: Svc
) -> dict[str, Any]:
    """Creates an invitation with a role; the invitee accepts it with the token at POST
    /v1/auth/invitations/accept. 409 when the person is already a member."""
    return await svc.invite(principal, org_id, body.email, body.role)


@orgs.get(
    "/audit-log",
    response_model=AuditList,
    dependencies=[require(perm.AUDIT_READ)],
    summary="Read the organization's audit log",
)
async def audit_log(
    org_id: str, principal: CurrentPrincipal, svc: Svc, limit: Limit = 50, cursor: str | None = None
) -> dict[str, Any]:
    """Who did what in the organization (sign-ins, role changes, API keys, billing
    changes), paginated with `limit` and `cursor`."""
    items, nxt = await svc.audit_log(principal, org_id, limit, cursor)
    return {"items": items, "next_cursor": nxt}


@keys.post(
    "",
    status_code=201,
    response_model=ApiKeyCreated,
    dependencies=[require(perm.API_KEYS_WRITE)],
    summary="Create an API key",
)
async def create_api_key(body: ApiKeyIn, principal: CurrentPrincipal, svc: Svc) -> dict[str, Any]:
    """Creates a long-lived key with the scopes it may use (never more than your role
    allows) and an optional expiry. The secret (`qlp_…`) is shown once in this
    answer: store it. Use it as `Authorization: Bearer qlp_…` wherever a token is
    accepted; it does not expire after 15 minutes as access tokens do."""
    if body.expires_at is not None and body.expires_at.tzinfo is None:
        raise Problem(422, "Request is not valid", "expires_at needs a time zone (RFC 3339)")
    expires_ms = int(body.expires_at.timestamp() * 1000) if body.expires_at else None
    return await svc.create_api_key(principal, body.name, list(body.scopes), expires_ms)


@keys.get(
    "",
    response_model=ApiKeyList,
    dependencies=[require(perm.API_KEYS_READ)],
    summary="List the organization's API keys",
)
async def list_api_keys(
    principal: CurrentPrincipal, svc: Svc, limit: Limit = 50, cursor: str | None = None
) -> dict[str, Any]:
    """Every key's id, name, prefix, scopes, expiry and last use, never the secret;
    paginated with `limit` and `cursor`."""
    items, nxt = await svc.list_api_keys(principal, limit, cursor)
    return {"items": items, "next_cursor": nxt}


@keys.delete(
    "/{key_id}",
    status_code=204,
    # an API key may revoke itself
    dependencies=[require(perm.API_KEYS_WRITE, or_self="key_id")],
    summary="Revoke an API key",
)
async def revoke_api_key(key_id: str, principal: CurrentPrincipal, svc: Svc) -> Response:
    """Revokes the key at once at every gateway; a key may revoke itself. Requests with it
    then answer 401."""
    await svc.revoke_api_key(principal, key_id)
    return Response(status_code=204)


@public.get("/.well-known/jwks.json", summary="The public keys that verify access tokens (JWKS)")
async def jwks(svc: Svc, response: Response) -> dict[str, Any]:
    """The JSON Web Key Set whose keys sign access tokens; served publicly by the gateway
    at /.well-known/jwks.json."""
    response.headers["Cache-Control"] = "public, max-age=60"
    return await svc.keyring.jwks()


def require_service(principal: CurrentPrincipal) -> Principal:
    if principal.kind != "service":
        raise Problem(403, "Forbidden", "internal endpoint: service principals only")
    return principal


ServicePrincipal = Annotated[Principal, Depends(require_service)]


@internal.post(
    "/api-keys/verify", response_model=VerifiedPrincipal, summary="Verify an API key (gateway only)"
)
async def verify_api_key(body: VerifyKeyIn, _: ServicePrincipal, svc: Svc) -> dict[str, Any]:
    """Internal: the gateway resolves an API key to its principal here. Service principals
    only; never routed to clients."""
    return await svc.verify_api_key(body.key)


@internal.post(
    "/signing-keys/rotate",
    response_model=RotatedOut,
    summary="Rotate the token signing key (operators)",
)
async def rotate_signing_key(
    _: ServicePrincipal, svc: Svc, immediate: bool = True
) -> dict[str, Any]:
    """Force a rotation. ``immediate=false`` pre-publishes the new key as the schedule
    does; the default signs with it at once (e.g. after a suspected compromise)."""
    return {"kid": await svc.keyring.rotate(immediate=immediate)}


@internal.get(
    "/platform-admins",
    response_model=list[PlatformAdminOut],
    summary="List the platform admins (operators)",
)
async def list_platform_admins(_: ServicePrincipal, svc: Svc) -> list[dict[str, Any]]:
    """The users whose tokens carry the ``platform_admin`` role. Service principals
    only (``qlpctl admins list``); never routed to clients."""
    return await svc.platform_admins()


@internal.put(
    "/platform-admins/{email}",
    response_model=PlatformAdminChangeOut,
    summary="Make a user a platform admin (operators)",
    responses=problems(404),
)
async def grant_platform_admin(email: str, principal: ServicePrincipal, svc: Svc) -> dict[str, Any]:
    """Idempotent; the user's next access token (sign in again) carries the role.
    Service principals only (``qlpctl admins grant``); never routed to clients."""
    return await svc.set_platform_admin(email, True, principal.subject)


@internal.delete(
    "/platform-admins/{email}",
    response_model=PlatformAdminChangeOut,
    summary="Take the platform admin role away (operators)",
    responses=problems(404),
)
async def revoke_platform_admin(
    email: str, principal: ServicePrincipal, svc: Svc
) -> dict[str, Any]:
    """Idempotent. PlatformAdminChanged tells the gateway, which then refuses the
    user's access tokens issued before it (the next refresh has no admin role).
    Service principals only (``qlpctl admins revoke``)."""
    return await svc.set_platform_admin(email, False, principal.subject)


routers = [auth, me_router, orgs, keys, public, internal]
