"""Roles, the scopes they carry, and who may do what. Pure code; the role →
permission map itself lives in :mod:`qlp_kit.permissions`, shared by every service."""

from __future__ import annotations

from qlp.identity.v1 import types_pb2
from qlp_kit import permissions as perms
from qlp_kit.permissions import ADMIN, BILLING, DEVELOPER, OWNER, ROLES, SCOPES, VIEWER

__all__ = ["ADMIN", "BILLING", "DEVELOPER", "OWNER", "ROLES", "SCOPES", "VIEWER"]

MANAGERS = tuple(r for r in ROLES if perms.MEMBERS_MANAGE in perms.role_permissions(r))
KEY_CREATORS = tuple(r for r in ROLES if perms.API_KEYS_WRITE in perms.role_permissions(r))

#: The API key scopes each role may grant (the shared role → permission map decides).
ROLE_SCOPES: dict[str, tuple[str, ...]] = {r: tuple(perms.scopes_for(r)) for r in ROLES}

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
    return perms.scopes_for(role)


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
