"""Roles, the scopes they carry, and who may do what. Pure code."""

from __future__ import annotations

from qlp.identity.v1 import types_pb2

OWNER = "owner"
ADMIN = "admin"
DEVELOPER = "developer"
BILLING = "billing"
VIEWER = "viewer"
ROLES = (OWNER, ADMIN, DEVELOPER, BILLING, VIEWER)
MANAGERS = (OWNER, ADMIN)
KEY_CREATORS = (OWNER, ADMIN, DEVELOPER)

# The fixed set of API key scopes.
SCOPES = (
    "generations:write",
    "generations:read",
    "billing:read",
    "billing:write",
    "gpu:jobs",
    "provider:agent",
    "marketplace:write",
)

ROLE_SCOPES: dict[str, tuple[str, ...]] = {
    OWNER: SCOPES,
    ADMIN: SCOPES,
    DEVELOPER: (
        "generations:write",
        "generations:read",
        "billing:read",
        "gpu:jobs",
        "provider:agent",
        "marketplace:write",
    ),
    BILLING: ("billing:read", "billing:write", "generations:read"),
    VIEWER: ("generations:read", "billing:read"),
}

# The event contract's Role enum has no separate "developer": the product-using role
# is ROLE_MEMBER ("Uses the product: generations, jobs, purchases").
_PROTO_ROLE = {
    OWNER: types_pb2.ROLE_OWNER,
    ADMIN: types_pb2.ROLE_ADMIN,
    DEVELOPER: types_pb2.ROLE_MEMBER,
    BILLING: types_pb2.ROLE_BILLING,
    VIEWER: types_pb2.ROLE_VIEWER,
}


def proto_role(role: str) -> types_pb2.Role:
    return _PROTO_ROLE.get(role, types_pb2.ROLE_UNSPECIFIED)


def scopes_for(role: str) -> list[str]:
    return list(ROLE_SCOPES.get(role, ()))


def can_grant(actor_role: str, target_role: str) -> bool:
    """Owners grant anything; admins grant anything but owner."""
    if actor_role == OWNER:
        return True
    return actor_role == ADMIN and target_role != OWNER


def can_manage_member(actor_role: str, member_role: str) -> bool:
    """Admins cannot change or remove owners; owners can."""
    if actor_role == OWNER:
        return True
    return actor_role == ADMIN and member_role != OWNER
