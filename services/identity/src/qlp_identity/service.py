"""Identity domain logic: sign-up, login, refresh-token families, members, invitations,
API keys and the audit log. No HTTP or database code here: storage goes through
:class:`~qlp_identity.repository.IdentityRepository`, errors are problem documents.

Consistency without transactions: each state change and the events it causes are one
single-document write (the kit outbox). Flows that touch several documents order their
writes so that a crash in between leaves nothing unsafe (see each method).
"""

from __future__ import annotations

import asyncio
import re
import secrets
from dataclasses import dataclass
from typing import Any

import structlog
from google.protobuf.message import Message
from prometheus_client import Counter

from qlp.common.v1 import actor_pb2
from qlp.identity.v1 import events_pb2 as ev
from qlp.identity.v1 import types_pb2
from qlp_identity import errors, roles
from qlp_identity.keys import KeyRing
from qlp_identity.lockout import LockoutPolicy
from qlp_identity.passwords import Passwords, PolicyError, check_password_policy, normalize_email
from qlp_identity.repository import Conflict, IdentityRepository, membership_id, ms_to_dt
from qlp_identity.settings import IdentitySettings
from qlp_identity.tokens import (
    RefreshOutcome,
    access_claims,
    assess_refresh,
    new_api_key,
    new_invitation_token,
    new_refresh_token,
    now_ms,
    parse_api_key,
    sha256_hex,
    sign_access_token,
)
from qlp_kit import permissions as perms
from qlp_kit.auth import Principal
from qlp_kit.events import rfc3339
from qlp_kit.ids import new_id
from qlp_kit.mongo import Page
from qlp_kit.outbox import Staged, stage
from qlp_kit.problems import Problem

log = structlog.get_logger("qlp.identity")
SOURCE = "qlp/identity"
SIGNUP_RESUME_AFTER_MS = 30_000

PASSWORD_CHECKS = Counter(
    "qlp_identity_password_checks_total", "Passwords evaluated (argon2id verify)", ["outcome"]
)
LOGIN_REJECTED = Counter(
    "qlp_identity_login_rejected_total", "Logins rejected before any password check", ["reason"]
)


def iso(ms: int | None) -> str | None:
    return rfc3339(ms_to_dt(ms)) if ms else None


#: The tenant of events about the platform itself rather than an organization.
PLATFORM_TENANT = "platform"


def _stage(msg: Message, org_id: str, key: str) -> Staged:
    return stage(msg, org_id=org_id, key=key, source=SOURCE)


def _actor(kind: int, actor_id: str, org_id: str) -> actor_pb2.Actor:
    return actor_pb2.Actor(type=kind, id=actor_id, org_id=org_id)  # type: ignore[arg-type]


def _principal_actor(p: Principal) -> actor_pb2.Actor:
    kind = {
        "user": actor_pb2.ACTOR_TYPE_USER,
        "api_key": actor_pb2.ACTOR_TYPE_API_KEY,
        "service": actor_pb2.ACTOR_TYPE_SERVICE,
    }.get(p.kind, actor_pb2.ACTOR_TYPE_UNSPECIFIED)
    return _actor(kind, p.subject, p.org_id)


def _slug(name: str) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "org"
    return f"{base}-{secrets.token_hex(3)}"


def user_out(u: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": u["_id"],
        "email": u["email"],
        "display_name": u.get("display_name") or "",
        "created_at": iso(u.get("created_ms")),
    }


def org_out(o: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": o["_id"],
        "name": o["name"],
        "slug": o.get("slug", ""),
        "created_at": iso(o.get("created_ms")),
    }


def api_key_out(k: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": k["_id"],
        "name": k["name"],
        "prefix": f"qlp_{k['prefix']}",
        "scopes": list(k.get("scopes") or []),
        "user_id": k.get("user_id"),
        "created_at": iso(k.get("created_ms")),
        "expires_at": iso(k.get("expires_ms")),
        "last_used_at": iso(k.get("last_used_ms")),
        "revoked": bool(k.get("revoked")),
    }


@dataclass
class AuthResult:
    access_token: str
    refresh_token: str
    expires_in: int
    org: dict[str, Any]
    user: dict[str, Any]
    role: str
    platform_admin: bool = False

    def body(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "org": self.org,
            "user": self.user,
            "role": self.role,
            "platform_admin": self.platform_admin,
        }


def token_roles(user: dict[str, Any], role: str) -> list[str]:
    """The ``roles`` claim: the organization role, plus ``platform_admin`` for a user
    an operator made a platform admin (``qlpctl admins grant``)."""
    out = [role]
    if bool(user.get("platform_admin")):
        out.append(perms.PLATFORM_ADMIN_ROLE)
    return out


class IdentityService:
    def __init__(
        self,
        repo: IdentityRepository,
        settings: IdentitySettings,
        passwords: Passwords,
        keyring: KeyRing,
    ) -> None:
        self.repo = repo
        self.settings = settings
        self.passwords = passwords
        self.keyring = keyring
        self._hashing = asyncio.Semaphore(settings.argon2_max_concurrency)
        self.lockout = LockoutPolicy(
            settings.max_failed_logins,
            settings.failure_window_s,
            settings.lockout_base_s,
            settings.lockout_max_s,
        )

    # ----------------------------------------------------------------- helpers

    async def audit(
        self,
        org_id: str,
        type_: str,
        *,
        actor_type: str,
        actor_id: str,
        target: str | None = None,
        **data: Any,
    ) -> None:
        if not org_id:
            return
        await self.repo.append_audit(
            {
                "_id": new_id("aud"),
                "org_id": org_id,
                "type": type_,
                "actor_type": actor_type,
                "actor_id": actor_id,
                "target": target,
                "data": {k: v for k, v in data.items() if v is not None},
                "at_ms": now_ms(),
            }
        )

    async def _hash(self, password: str) -> str:
        async with self._hashing:
            return await asyncio.to_thread(self.passwords.hash, password)

    async def _verify(self, stored: str | None, password: str) -> bool:
        async with self._hashing:
            return await asyncio.to_thread(self.passwords.verify, stored, password)

    async def _issue(
        self,
        user: dict[str, Any],
        org: dict[str, Any],
        role: str,
        family_id: str | None = None,
        family_expires_ms: int | None = None,
    ) -> AuthResult:
        s = self.settings
        key = await self.keyring.signing_key()
        claims = access_claims(
            issuer=s.issuer,
            audience=s.audience,
            user_id=user["_id"],
            org_id=org["_id"],
            roles=token_roles(user, role),
            scopes=roles.scopes_for(role),
            ttl_s=s.access_token_ttl_s,
        )
        access = sign_access_token(key, claims)
        at = now_ms()
        if family_id is None:
            family_id = new_id("rtf")
            family_expires_ms = at + s.refresh_token_ttl_s * 1000 * 3
            await self.repo.insert_family(
                {
                    "_id": family_id,
                    "user_id": user["_id"],
                    "org_id": org["_id"],
                    "revoked": 0,
                    "created_ms": at,
                    "expires_ms": family_expires_ms,
                    "expire_at": ms_to_dt(family_expires_ms),
                }
            )
        token, token_hash = new_refresh_token()
        expires = at + s.refresh_token_ttl_s * 1000
        if family_expires_ms:
            expires = min(expires, family_expires_ms)
        await self.repo.insert_refresh_token(
            {
                "_id": token_hash,
                "family_id": family_id,
                "user_id": user["_id"],
                "org_id": org["_id"],
                "used": 0,
                "created_ms": at,
                "expires_ms": expires,
                "expire_at": ms_to_dt(expires),
            }
        )
        return AuthResult(
            access,
            token,
            s.access_token_ttl_s,
            org_out(org),
            user_out(user),
            role,
            platform_admin=bool(user.get("platform_admin")),
        )

    # -------------------------------------------------------- platform admins

    async def platform_admins(self) -> list[dict[str, Any]]:
        return [
            {**user_out(u), "admin_since": iso(u.get("platform_admin_ms"))}
            for u in await self.repo.platform_admins()
        ]

    async def set_platform_admin(self, email: str, on: bool, actor_id: str) -> dict[str, Any]:
        """Make a user a platform admin (or no longer one), by e-mail; idempotent. The
        role is in the next access token the user gets (sign in again, or the next
        refresh); PlatformAdminChanged tells the gateway, which refuses a revoked
        admin's tokens issued before the revocation. Each organization the user belongs to records it in its audit log."""
        try:
            address = normalize_email(email)
        except PolicyError as exc:
            raise errors.invalid(str(exc)) from None
        user = await self.repo.get_user_by_email(address)
        if user is None:
            raise errors.not_found("user")
        changed = bool(user.get("platform_admin")) != on
        if changed:
            at = now_ms()
            msg = ev.PlatformAdminChanged(
                org_id=PLATFORM_TENANT,
                user_id=user["_id"],
                platform_admin=on,
                actor=_actor(actor_pb2.ACTOR_TYPE_SERVICE, actor_id, PLATFORM_TENANT),
            )
            msg.changed_at.FromMilliseconds(at)
            changed = await self.repo.set_platform_admin(
                user["_id"], on, at, _stage(msg, PLATFORM_TENANT, user["_id"])
            )
        if changed:
            for m in await self.repo.memberships_of_user(user["_id"]):
                await self.audit(
                    m["org_id"],
                    "user.platform_admin_granted" if on else "user.platform_admin_revoked",
                    actor_type="service",
                    actor_id=actor_id,
                    target=user["_id"],
                )
            log.info("platform admin changed", user=user["_id"], platform_admin=on)
        return {**user_out(user), "platform_admin": on, "changed": changed}

    def _user_id(self, p: Principal) -> str:
        if p.kind != "user":
            raise errors.forbidden("only a signed-in user can do this")
        return p.user_id or p.subject

    def _same_org(self, p: Principal, org_id: str) -> None:
        if p.org_id != org_id:
            raise errors.not_found("organization")

    async def _manager(self, p: Principal, org_id: str) -> dict[str, Any]:
        """The acting user's current membership; only owners and admins manage."""
        self._same_org(p, org_id)
        uid = self._user_id(p)
        m = await self.repo.get_membership(org_id, uid)
        if m is None:
            raise errors.not_found("organization")
        if m["role"] not in roles.MANAGERS:
            raise errors.forbidden("only owners and admins manage members")
        return m

    def _policy(self, password: str, email: str) -> None:
        try:
            check_password_policy(password, email)
        except PolicyError as exc:
            raise errors.invalid(str(exc), "weak-password") from None

    @staticmethod
    def _email(raw: str) -> str:
        try:
            return normalize_email(raw)
        except PolicyError as exc:
            raise errors.invalid(str(exc), "invalid-email") from None

    def _new_user_doc(self, email: str, password_hash: str, display_name: str, org_id: str) -> Any:
        at = now_ms()
        return {
            "_id": new_id("usr"),
            "email": email,
            "password_hash": password_hash,
            "display_name": display_name,
            "default_org_id": org_id,
            "email_verified": 0,
            "created_ms": at,
            "fail_count": 0,
            "last_attempt_ms": 0,
            "locked_until_ms": 0,
            "lock_level": 0,
        }

    def _user_created(self, user: dict[str, Any], org_id: str, actor: actor_pb2.Actor) -> Staged:
        msg = ev.UserCreated(
            org_id=org_id,
            user_id=user["_id"],
            email=user["email"],
            display_name=user["display_name"],
            email_verified=False,
            actor=actor,
        )
        msg.created_at.FromMilliseconds(user["created_ms"])
        return _stage(msg, org_id, user["_id"])

    async def _add_member(
        self,
        org_id: str,
        user_id: str,
        role: str,
        actor: actor_pb2.Actor,
        invitation_id: str = "",
    ) -> None:
        at = now_ms()
        msg = ev.MemberAdded(
            org_id=org_id,
            user_id=user_id,
            role=roles.proto_role(role),
            invitation_id=invitation_id,
            actor=actor,
        )
        msg.added_at.FromMilliseconds(at)
        doc = {
            "_id": membership_id(org_id, user_id),
            "org_id": org_id,
            "user_id": user_id,
            "role": role,
            "status": "active",
            "created_ms": at,
            "updated_ms": at,
        }
        try:
            await self.repo.add_membership(doc, [_stage(msg, org_id, user_id)])
        except Conflict:
            raise errors.conflict(
                "already a member of this organization", "already-member"
            ) from None

    # ---------------------------------------------------------------- sign-up

    async def signup(
        self, org_name: str, email_raw: str, password: str, display_name: str = ""
    ) -> AuthResult:
        """User first (the unique e-mail decides a race), then the org carrying
        OrgCreated, then the owner membership. Billing opens the Free subscription
        from OrgCreated."""
        email = self._email(email_raw)
        self._policy(password, email)
        org_id = new_id("org")
        user = self._new_user_doc(email, await self._hash(password), display_name.strip(), org_id)
        actor = _actor(actor_pb2.ACTOR_TYPE_USER, user["_id"], org_id)
        try:
            await self.repo.insert_user(user, [self._user_created(user, org_id, actor)])
        except Conflict:
            resumed = await self._resume_signup(email, password)
            if resumed is None:
                raise errors.conflict("an account with this e-mail exists", "email-taken") from None
            user, existing_org = resumed
            if existing_org is not None:  # crashed after the org, before the membership
                actor = _actor(actor_pb2.ACTOR_TYPE_USER, user["_id"], existing_org["_id"])
                await self._add_member(existing_org["_id"], user["_id"], roles.OWNER, actor)
                return await self._issue(user, existing_org, roles.OWNER)
            default = str(user.get("default_org_id") or "")
            # the interrupted sign-up's org id, unless that org exists (then a new one)
            org_id = default if default and not await self.repo.get_org(default) else new_id("org")
            actor = _actor(actor_pb2.ACTOR_TYPE_USER, user["_id"], org_id)
        at = now_ms()
        org = {
            "_id": org_id,
            "name": org_name.strip(),
            "slug": _slug(org_name),
            "owner_user_id": user["_id"],
            "billing_email": email,
            "owner_count": 1,
            "created_ms": at,
        }
        created = ev.OrgCreated(
            org_id=org_id,
            name=org["name"],
            slug=org["slug"],
            owner_user_id=user["_id"],
            billing_email=email,
            actor=actor,
        )
        created.created_at.FromMilliseconds(at)
        try:
            await self.repo.insert_org(org, [_stage(created, org_id, org_id)])
        except Conflict:
            raise errors.conflict("sign-up collided with another; retry") from None
        await self._add_member(org_id, user["_id"], roles.OWNER, actor)
        await self.audit(
            org_id, "org.created", actor_type="user", actor_id=user["_id"], target=org_id
        )
        await self.audit(
            org_id, "user.signed_up", actor_type="user", actor_id=user["_id"], target=user["_id"]
        )
        return await self._issue(user, org, roles.OWNER)

    async def _resume_signup(
        self, email: str, password: str
    ) -> tuple[dict[str, Any], dict[str, Any] | None] | None:
        """A sign-up that crashed after creating the user (no transactions) left a user
        without any membership. Signing up again with the same password finishes it
        (brute-force protection applies); anything else is "e-mail taken". Users
        younger than ``SIGNUP_RESUME_AFTER_MS`` are left alone so that a double-submit
        in flight cannot create two orgs."""
        user = await self.repo.get_user_by_email(email)
        if user is None or now_ms() - int(user.get("created_ms", 0)) < SIGNUP_RESUME_AFTER_MS:
            return None
        if await self.repo.memberships_of_user(user["_id"]):
            return None
        try:
            await self._check_password(user, password, "")
        except Problem as exc:
            if exc.status == 401:
                return None
            raise
        org = await self.repo.org_owned_by(user["_id"])
        if org is not None and await self.repo.org_has_members(org["_id"]):
            org = None  # a live org they once created (and left): never rejoin it this way
        log.warning("completing a sign-up for a user without an org", user_id=user["_id"])
        return user, org

    # ------------------------------------------------------------------ login

    async def _check_password(self, user: dict[str, Any], password: str, org_id: str) -> None:
        """Reserve an attempt slot atomically, then evaluate the password."""
        at = now_ms()
        slot = await self.repo.reserve_login_attempt(user["_id"], self.lockout, at)
        if slot is None:
            current = await self.repo.get_user(user["_id"]) or user
            until = int(current.get("locked_until_ms") or 0)
            if until > at:
                LOGIN_REJECTED.labels("locked").inc()
                raise errors.locked(self.lockout.retry_after_s(until, at))
            LOGIN_REJECTED.labels("throttled").inc()
            raise errors.attempts_in_flight()
        ok = await self._verify(user.get("password_hash"), password)
        PASSWORD_CHECKS.labels("ok" if ok else "fail").inc()
        if ok:
            await self.repo.login_succeeded(user["_id"], now_ms())
            if self.passwords.needs_rehash(user["password_hash"]):
                await self.repo.set_password_hash(user["_id"], await self._hash(password))
            return
        fails = int(slot.get("fail_count", 0))
        await self.audit(
            org_id, "login.failed", actor_type="user", actor_id=user["_id"], target=user["_id"]
        )
        if self.lockout.should_lock(fails):
            level = int(slot.get("lock_level", 0))
            locked_at = now_ms()
            until = locked_at + self.lockout.lock_duration_s(level) * 1000
            msg = ev.UserLockedOut(
                org_id=org_id,
                user_id=user["_id"],
                reason=types_pb2.LOCKOUT_REASON_FAILED_LOGINS,
                failed_attempts=fails,
                actor=_actor(actor_pb2.ACTOR_TYPE_SERVICE, "identity", org_id),
            )
            msg.locked_at.FromMilliseconds(locked_at)
            msg.locked_until.FromMilliseconds(until)
            await self.repo.lock_user(user["_id"], until, [_stage(msg, org_id, user["_id"])])
            await self.audit(
                org_id,
                "user.locked_out",
                actor_type="service",
                actor_id="identity",
                target=user["_id"],
                failed_attempts=fails,
                locked_until=iso(until),
            )
        raise errors.invalid_credentials()

    async def login(self, email_raw: str, password: str, org_id: str | None) -> AuthResult:
        try:
            email = normalize_email(email_raw)
        except PolicyError:
            raise errors.invalid_credentials() from None
        user = await self.repo.get_user_by_email(email)
        if user is None:
            await self._verify(None, password)  # same cost as a real check
            PASSWORD_CHECKS.labels("unknown_user").inc()
            raise errors.invalid_credentials()
        memberships = await self.repo.memberships_of_user(user["_id"])
        membership = self._pick_membership(user, memberships, org_id)
        audit_org = membership["org_id"] if membership else str(user.get("default_org_id", ""))
        await self._check_password(user, password, audit_org)
        if membership is None:
            raise errors.forbidden("not a member of that organization")
        org = await self.repo.get_org(membership["org_id"])
        if org is None:
            raise errors.forbidden("not a member of that organization")
        await self.audit(
            org["_id"],
            "login.succeeded",
            actor_type="user",
            actor_id=user["_id"],
            target=user["_id"],
        )
        return await self._issue(user, org, membership["role"])

    @staticmethod
    def _pick_membership(
        user: dict[str, Any], memberships: list[dict[str, Any]], org_id: str | None
    ) -> dict[str, Any] | None:
        if org_id:
            return next((m for m in memberships if m["org_id"] == org_id), None)
        default = user.get("default_org_id")
        preferred = next((m for m in memberships if m["org_id"] == default), None)
        return preferred or (memberships[0] if memberships else None)

    # ------------------------------------------------------------ refresh/logout

    async def refresh(self, token: str) -> AuthResult:
        """Rotate: the presented token is flipped to used atomically and its
        successor issued in the same family. A used token presented again means it
        leaked (or a client replayed it): the whole family is revoked."""
        at = now_ms()
        token_hash = sha256_hex(token)
        claimed = await self.repo.claim_refresh_token(token_hash, at)
        doc = claimed or await self.repo.get_refresh_token(token_hash)
        family = await self.repo.get_family(doc["family_id"]) if doc else None
        outcome = assess_refresh(
            claimed=claimed is not None,
            token_exists=doc is not None,
            expires_ms=int(doc["expires_ms"]) if doc else None,
            family_revoked=family is None or bool(family.get("revoked")),
            at_ms=at,
        )
        if outcome is RefreshOutcome.REUSE:
            assert doc is not None
            await self.repo.revoke_family(doc["family_id"], "reuse", at)
            await self.audit(
                doc["org_id"],
                "refresh_token.reuse_detected",
                actor_type="user",
                actor_id=doc["user_id"],
                target=doc["family_id"],
            )
            log.warning("refresh token reuse; family revoked", family=doc["family_id"])
            raise errors.refresh_reused()
        if outcome is not RefreshOutcome.ROTATE:
            raise errors.invalid_token(f"refresh token is {outcome.value}")
        assert doc is not None and family is not None
        membership = await self.repo.get_membership(doc["org_id"], doc["user_id"])
        user = await self.repo.get_user(doc["user_id"])
        org = await self.repo.get_org(doc["org_id"])
        if membership is None or user is None or org is None:
            await self.repo.revoke_family(doc["family_id"], "membership_gone", at)
            raise errors.invalid_token("no longer a member of the organization")
        return await self._issue(
            user, org, membership["role"], doc["family_id"], int(family["expires_ms"])
        )

    async def logout(self, token: str) -> None:
        doc = await self.repo.get_refresh_token(sha256_hex(token))
        if doc is None:
            return
        if await self.repo.revoke_family(doc["family_id"], "logout", now_ms()):
            await self.audit(
                doc["org_id"], "logout", actor_type="user", actor_id=doc["user_id"], target=None
            )

    # --------------------------------------------------------------------- me

    async def me(self, p: Principal) -> dict[str, Any]:
        org = await self.repo.get_org(p.org_id)
        if org is None:
            raise errors.not_found("organization")
        if p.kind != "user":
            return {
                "kind": p.kind,
                "subject": p.subject,
                "org": org_out(org),
                "scopes": p.scopes,
                "user": None,
                "role": None,
                "memberships": [],
            }
        uid = p.user_id or p.subject
        user = await self.repo.get_user(uid)
        membership = await self.repo.get_membership(p.org_id, uid)
        if user is None or membership is None:
            raise errors.not_found("user")
        mine = await self.repo.memberships_of_user(uid)
        names = await self.repo.orgs_by_ids([m["org_id"] for m in mine])
        return {
            "kind": "user",
            "subject": uid,
            "user": user_out(user),
            "org": org_out(org),
            "role": membership["role"],
            "scopes": roles.scopes_for(membership["role"]),
            "platform_admin": bool(user.get("platform_admin")),
            "memberships": [
                {
                    "org_id": m["org_id"],
                    "org_name": names.get(m["org_id"], {}).get("name", ""),
                    "role": m["role"],
                }
                for m in mine
            ],
        }

    # ---------------------------------------------------------------- members

    async def list_members(
        self, p: Principal, org_id: str, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        self._same_org(p, org_id)
        try:
            page: Page = await self.repo.page_members(org_id, limit, cursor)
        except ValueError:
            raise errors.invalid("malformed cursor") from None
        users = await self.repo.users_by_ids([m["user_id"] for m in page.items])
        items = [
            {
                "user_id": m["user_id"],
                "email": users.get(m["user_id"], {}).get("email", ""),
                "display_name": users.get(m["user_id"], {}).get("display_name", ""),
                "role": m["role"],
                "joined_at": iso(m.get("created_ms")),
            }
            for m in page.items
        ]
        return items, page.next_cursor

    async def change_role(
        self, p: Principal, org_id: str, user_id: str, new_role: str
    ) -> dict[str, Any]:
        actor_m = await self._manager(p, org_id)
        target = await self.repo.get_membership(org_id, user_id)
        if target is None:
            raise errors.not_found("member")
        old = target["role"]
        if not roles.can_manage_member(actor_m["role"], old) or not roles.can_grant(
            actor_m["role"], new_role
        ):
            raise errors.forbidden("your role cannot grant or change this role")
        if old != new_role:
            demoting_owner = old == roles.OWNER
            if demoting_owner and not await self.repo.take_owner_slot(org_id):
                raise errors.conflict("an organization needs at least one owner", "last-owner")
            at = now_ms()
            msg = ev.RoleChanged(
                org_id=org_id,
                user_id=user_id,
                old_role=roles.proto_role(old),
                new_role=roles.proto_role(new_role),
                actor=_principal_actor(p),
            )
            msg.changed_at.FromMilliseconds(at)
            changed = await self.repo.change_role(
                org_id, user_id, old, new_role, at, _stage(msg, org_id, user_id)
            )
            if not changed:
                if demoting_owner:
                    await self.repo.add_owner_slot(org_id)
                raise errors.conflict("the member changed meanwhile; retry")
            if new_role == roles.OWNER:
                await self.repo.add_owner_slot(org_id)
            await self.audit(
                org_id,
                "member.role_changed",
                actor_type=p.kind,
                actor_id=p.subject,
                target=user_id,
                old_role=old,
                new_role=new_role,
            )
        users = await self.repo.users_by_ids([user_id])
        return {
            "user_id": user_id,
            "email": users.get(user_id, {}).get("email", ""),
            "display_name": users.get(user_id, {}).get("display_name", ""),
            "role": new_role,
            "joined_at": iso(target.get("created_ms")),
        }

    async def remove_member(self, p: Principal, org_id: str, user_id: str) -> None:
        self._same_org(p, org_id)
        self_removal = p.kind == "user" and (p.user_id or p.subject) == user_id
        if self_removal:
            actor_role = roles.VIEWER
        else:
            actor_role = (await self._manager(p, org_id))["role"]
        target = await self.repo.get_membership(org_id, user_id)
        if target is None:
            raise errors.not_found("member")
        role = target["role"]
        if not self_removal and not roles.can_manage_member(actor_role, role):
            raise errors.forbidden("admins cannot remove owners")
        if role == roles.OWNER and not await self.repo.take_owner_slot(org_id):
            raise errors.conflict("an organization needs at least one owner", "last-owner")
        at = now_ms()
        msg = ev.MemberRemoved(
            org_id=org_id,
            user_id=user_id,
            role=roles.proto_role(role),
            reason="left" if self_removal else "removed by admin",
            actor=_principal_actor(p),
        )
        msg.removed_at.FromMilliseconds(at)
        removed = await self.repo.remove_membership(
            org_id, user_id, role, at, _stage(msg, org_id, user_id)
        )
        if not removed:
            if role == roles.OWNER:
                await self.repo.add_owner_slot(org_id)
            raise errors.conflict("the member changed meanwhile; retry")
        await self.repo.revoke_families_of(org_id, user_id, "member_removed", at)
        await self.audit(
            org_id,
            "member.removed",
            actor_type=p.kind,
            actor_id=p.subject,
            target=user_id,
            role=role,
        )

    # ------------------------------------------------------------ invitations

    async def invite(self, p: Principal, org_id: str, email_raw: str, role: str) -> dict[str, Any]:
        actor_m = await self._manager(p, org_id)
        if not roles.can_grant(actor_m["role"], role):
            raise errors.forbidden("your role cannot grant this role")
        email = self._email(email_raw)
        existing = await self.repo.get_user_by_email(email)
        if existing and await self.repo.get_membership(org_id, existing["_id"]):
            raise errors.conflict("already a member of this organization", "already-member")
        token, token_hash = new_invitation_token()
        at = now_ms()
        doc: dict[str, Any] = {
            "_id": new_id("inv"),
            "org_id": org_id,
            "email": email,
            "role": role,
            "token_hash": token_hash,
            "status": "pending",
            "invited_by": p.subject,
            "created_ms": at,
            "expires_ms": at + self.settings.invitation_ttl_s * 1000,
        }
        await self.repo.insert_invitation(doc)
        await self.audit(
            org_id,
            "invitation.created",
            actor_type=p.kind,
            actor_id=p.subject,
            target=doc["_id"],
            email=email,
            role=role,
        )
        return {**self.invitation_out(doc), "token": token}

    @staticmethod
    def invitation_out(doc: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": doc["_id"],
            "org_id": doc["org_id"],
            "email": doc["email"],
            "role": doc["role"],
            "status": doc["status"],
            "created_at": iso(doc.get("created_ms")),
            "expires_at": iso(doc.get("expires_ms")),
        }

    async def accept_invitation(self, token: str, password: str, display_name: str) -> AuthResult:
        """A new user sets a password (policy applies); an existing user proves theirs
        (with brute-force protection). The invitation is claimed with one guarded write,
        so it is used once; the membership carries MemberAdded."""
        inv = await self.repo.invitation_by_token(sha256_hex(token))
        at = now_ms()
        if inv is None or inv["status"] != "pending" or int(inv["expires_ms"]) <= at:
            raise errors.invalid_token("invitation is not valid or has expired")
        org_id = inv["org_id"]
        org = await self.repo.get_org(org_id)
        if org is None:
            raise errors.invalid_token("invitation is not valid or has expired")
        user = await self.repo.get_user_by_email(inv["email"])
        if user is None:
            self._policy(password, inv["email"])
            user = self._new_user_doc(
                inv["email"], await self._hash(password), display_name.strip(), org_id
            )
            actor = _actor(actor_pb2.ACTOR_TYPE_USER, user["_id"], org_id)
            try:
                await self.repo.insert_user(user, [self._user_created(user, org_id, actor)])
            except Conflict:
                raise errors.conflict("retry: the account was created meanwhile") from None
        else:
            await self._check_password(user, password, org_id)
        if not await self.repo.claim_invitation(inv, user["_id"], now_ms()):
            raise errors.invalid_token("invitation was already used")
        await self._add_member(
            org_id,
            user["_id"],
            inv["role"],
            _actor(actor_pb2.ACTOR_TYPE_USER, user["_id"], org_id),
            invitation_id=inv["_id"],
        )
        if inv["role"] == roles.OWNER:  # the count grows only after the owner exists
            await self.repo.add_owner_slot(org_id)
        await self.audit(
            org_id,
            "invitation.accepted",
            actor_type="user",
            actor_id=user["_id"],
            target=inv["_id"],
            role=inv["role"],
        )
        return await self._issue(user, org, inv["role"])

    # --------------------------------------------------------------- API keys

    async def create_api_key(
        self, p: Principal, name: str, scopes: list[str], expires_ms: int | None
    ) -> dict[str, Any]:
        uid = self._user_id(p)
        m = await self.repo.get_membership(p.org_id, uid)
        if m is None:
            raise errors.not_found("organization")
        if m["role"] not in roles.KEY_CREATORS:
            raise errors.forbidden("your role cannot create API keys")
        unknown = sorted(set(scopes) - set(roles.SCOPES))
        if unknown or not scopes:
            raise errors.invalid(
                f"scopes must be a non-empty subset of {list(roles.SCOPES)}; unknown: {unknown}",
                "invalid-scope",
            )
        beyond = sorted(set(scopes) - set(roles.scopes_for(m["role"])))
        if beyond:
            raise errors.forbidden(f"your role cannot grant the scopes {beyond}")
        at = now_ms()
        if expires_ms is not None and expires_ms <= at:
            raise errors.invalid("expires_at must be in the future")
        key = new_api_key()
        doc: dict[str, Any] = {
            "_id": new_id("key"),
            "org_id": p.org_id,
            "name": name,
            "prefix": key.prefix,
            "secret_hash": key.secret_hash,
            "scopes": sorted(set(scopes)),
            "user_id": uid,
            "created_ms": at,
            "expires_ms": expires_ms,
            "revoked": 0,
            "revoked_ms": 0,
            "last_used_ms": 0,
        }
        msg = ev.ApiKeyCreated(
            org_id=p.org_id,
            api_key_id=doc["_id"],
            name=name,
            prefix=f"qlp_{key.prefix}",
            scopes=doc["scopes"],
            user_id=uid,
            actor=_principal_actor(p),
        )
        msg.created_at.FromMilliseconds(at)
        if expires_ms is not None:
            msg.expires_at.FromMilliseconds(expires_ms)
        await self.repo.insert_api_key(doc, [_stage(msg, p.org_id, doc["_id"])])
        await self.audit(
            p.org_id,
            "api_key.created",
            actor_type=p.kind,
            actor_id=p.subject,
            target=doc["_id"],
            scopes=doc["scopes"],
        )
        return {**api_key_out(doc), "key": key.secret}

    async def list_api_keys(
        self, p: Principal, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        uid = self._user_id(p)
        m = await self.repo.get_membership(p.org_id, uid)
        if m is None or m["role"] not in roles.KEY_CREATORS:
            raise errors.forbidden("only owners, admins and developers see API keys")
        try:
            page = await self.repo.page_api_keys(p.org_id, limit, cursor)
        except ValueError:
            raise errors.invalid("malformed cursor") from None
        return [api_key_out(k) for k in page.items], page.next_cursor

    async def revoke_api_key(self, p: Principal, key_id: str) -> None:
        doc = await self.repo.get_api_key(p.org_id, key_id)
        if doc is None or doc.get("revoked"):
            raise errors.not_found("API key")
        if p.kind == "api_key" and p.subject != key_id:
            raise errors.forbidden("an API key can only revoke itself")
        if p.kind == "user":
            uid = p.user_id or p.subject
            m = await self.repo.get_membership(p.org_id, uid)
            if m is None:
                raise errors.not_found("API key")
            if m["role"] not in roles.MANAGERS and doc.get("user_id") != uid:
                raise errors.forbidden("only owners, admins and the key's creator revoke it")
        at = now_ms()
        msg = ev.ApiKeyRevoked(
            org_id=p.org_id, api_key_id=key_id, reason="revoked", actor=_principal_actor(p)
        )
        msg.revoked_at.FromMilliseconds(at)
        if not await self.repo.revoke_api_key(p.org_id, key_id, at, _stage(msg, p.org_id, key_id)):
            raise errors.not_found("API key")
        await self.audit(
            p.org_id, "api_key.revoked", actor_type=p.kind, actor_id=p.subject, target=key_id
        )

    async def verify_api_key(self, presented: str) -> dict[str, Any]:
        """For the gateway: the principal an API key stands for, or 401."""
        secret_hash = parse_api_key(presented)
        doc = await self.repo.api_key_by_hash(secret_hash) if secret_hash else None
        at = now_ms()
        if doc is None or doc.get("revoked"):
            raise errors.invalid_token("API key is not valid")
        if doc.get("expires_ms") and int(doc["expires_ms"]) <= at:
            raise errors.invalid_token("API key has expired")
        creator = doc.get("user_id")
        creator_role: str | None = None
        if creator:
            membership = await self.repo.get_membership(doc["org_id"], creator)
            if membership is None:
                raise errors.invalid_token("API key's creator is no longer a member")
            creator_role = str(membership["role"])
        # A key never does more than its creator may do now: demoting the creator
        # narrows the key (and promoting them back widens it again, up to its scopes).
        scopes = perms.effective_scopes(doc.get("scopes") or [], creator_role)
        if (
            at - int(doc.get("last_used_ms") or 0)
            >= self.settings.api_key_last_used_throttle_s * 1000
        ):
            await self.repo.touch_api_key(
                doc["org_id"], doc["_id"], at, self.settings.api_key_last_used_throttle_s * 1000
            )
        return {
            "org_id": doc["org_id"],
            "subject": doc["_id"],
            "kind": "api_key",
            "roles": [],
            "scopes": scopes,
            "user_id": creator,
            "expires_at": iso(doc.get("expires_ms")),
        }

    # -------------------------------------------------------------- audit log

    async def audit_log(
        self, p: Principal, org_id: str, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        await self._manager(p, org_id)
        try:
            page = await self.repo.page_audit(org_id, limit, cursor)
        except ValueError:
            raise errors.invalid("malformed cursor") from None
        items = [
            {
                "id": d["_id"],
                "type": d["type"],
                "actor": {"type": d.get("actor_type"), "id": d.get("actor_id")},
                "target": d.get("target"),
                "data": d.get("data") or {},
                "at": iso(d.get("at_ms")),
            }
            for d in page.items
        ]
        return items, page.next_cursor
