"""Request and response models of the identity HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

RoleName = Literal["owner", "admin", "developer", "billing", "viewer"]
ScopeName = Literal[
    "generations:write",
    "generations:read",
    "billing:read",
    "billing:write",
    "gpu:jobs",
    "provider:agent",
    "marketplace:write",
]


class SignupIn(BaseModel):
    org_name: str = Field(min_length=1, max_length=120)
    email: str = Field(min_length=3, max_length=254)
    password: str = Field(min_length=1, max_length=1024)
    display_name: str = Field(default="", max_length=120)


class LoginIn(BaseModel):
    email: str = Field(min_length=1, max_length=254)
    password: str = Field(min_length=1, max_length=1024)
    org_id: str | None = Field(default=None, max_length=64)


class RefreshIn(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=512)


class AcceptInvitationIn(BaseModel):
    token: str = Field(min_length=1, max_length=512)
    password: str = Field(min_length=1, max_length=1024)
    display_name: str = Field(default="", max_length=120)


class OrgOut(BaseModel):
    id: str
    name: str
    slug: str
    created_at: str | None = None


class UserOut(BaseModel):
    id: str
    email: str
    display_name: str = ""
    created_at: str | None = None


class TokensOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 - the scheme name
    expires_in: int
    org: OrgOut
    user: UserOut
    role: RoleName
    #: A platform operator (``qlpctl admins grant``): the token carries ``platform_admin``.
    platform_admin: bool = False


class MembershipRef(BaseModel):
    org_id: str
    org_name: str
    role: RoleName


class MeOut(BaseModel):
    kind: str
    subject: str
    org: OrgOut
    user: UserOut | None = None
    role: RoleName | None = None
    scopes: list[str] = Field(default_factory=list)
    memberships: list[MembershipRef] = Field(default_factory=list)
    platform_admin: bool = False


class PlatformAdminOut(BaseModel):
    id: str
    email: str
    display_name: str = ""
    created_at: str | None = None
    admin_since: str | None = None


class PlatformAdminChangeOut(BaseModel):
    id: str
    email: str
    display_name: str = ""
    created_at: str | None = None
    platform_admin: bool
    #: False when the user already was (or was not) a platform admin.
    changed: bool


class MemberOut(BaseModel):
    user_id: str
    email: str
    display_name: str = ""
    role: RoleName
    joined_at: str | None = None


class MemberList(BaseModel):
    items: list[MemberOut]
    next_cursor: str | None = None


class RoleIn(BaseModel):
    role: RoleName


class InvitationIn(BaseModel):
    email: str = Field(min_length=3, max_length=254)
    role: RoleName = "developer"


class InvitationOut(BaseModel):
    id: str
    org_id: str
    email: str
    role: RoleName
    status: str
    created_at: str | None = None
    expires_at: str | None = None
    token: str = Field(
        description="Secret acceptance token. In production it is e-mailed to the invitee; "
        "returned here because the platform has no mail sender yet."
    )


class ApiKeyIn(BaseModel):
    name: str = Field(min_length=1, max_length=120)
    scopes: list[ScopeName] = Field(min_length=1, max_length=16)
    expires_at: datetime | None = None


class ApiKeyOut(BaseModel):
    id: str
    name: str
    prefix: str
    scopes: list[str]
    user_id: str | None = None
    created_at: str | None = None
    expires_at: str | None = None
    last_used_at: str | None = None
    revoked: bool = False


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The secret, shown once: qlp_<prefix>_<secret>")


class ApiKeyList(BaseModel):
    items: list[ApiKeyOut]
    next_cursor: str | None = None


class VerifyKeyIn(BaseModel):
    key: str = Field(min_length=1, max_length=512)


class VerifiedPrincipal(BaseModel):
    org_id: str
    subject: str
    kind: Literal["api_key"] = "api_key"
    roles: list[str] = Field(default_factory=list)
    scopes: list[str] = Field(
        default_factory=list,
        description="the key's scopes that its creator's current role still allows",
    )
    user_id: str | None = None
    expires_at: str | None = Field(
        default=None, description="RFC 3339; caches must not keep the answer past it"
    )


class AuditActor(BaseModel):
    type: str | None = None
    id: str | None = None


class AuditEntry(BaseModel):
    id: str
    type: str
    actor: AuditActor
    target: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    at: str | None = None


class AuditList(BaseModel):
    items: list[AuditEntry]
    next_cursor: str | None = None


class RotatedOut(BaseModel):
    kid: str
