"""Every MongoDB call of the identity service.

Tenant data (memberships, invitations, API keys, audit entries) is reached through
:class:`qlp_kit.mongo.TenantCollection`; users, orgs, refresh tokens and signing keys
are global by nature (a user spans orgs) and are addressed by their ids or hashes.

Times that are ever updated are stored as integer epoch milliseconds (``*_ms``): the
embedded database stores a top-level ``$set`` of a date as a string. Dates used by TTL
indexes are only ever written on insert.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from qlp_identity.lockout import LockoutPolicy
from qlp_kit.mongo import CROSS_TENANT, IndexSpec, Page, TenantCollection
from qlp_kit.outbox import Staged, outbox_update, with_outbox

Doc = dict[str, Any]

ORGS = "orgs"
USERS = "users"
MEMBERSHIPS = "memberships"
INVITATIONS = "invitations"
API_KEYS = "api_keys"
REFRESH_TOKENS = "refresh_tokens"
REFRESH_FAMILIES = "refresh_families"
SIGNING_KEYS = "signing_keys"
AUDIT = "audit_log"

OUTBOX_COLLECTIONS = [ORGS, USERS, MEMBERSHIPS, API_KEYS]
# Every document of these carries org_id and every query names it (or says why not).
TENANT_COLLECTIONS = [MEMBERSHIPS, INVITATIONS, API_KEYS, AUDIT]

INDEXES = [
    IndexSpec(USERS, [("email", ASCENDING)], unique=True),
    IndexSpec(ORGS, [("slug", ASCENDING)], unique=True),
    IndexSpec(ORGS, [("owner_user_id", ASCENDING)]),
    IndexSpec(MEMBERSHIPS, [("org_id", ASCENDING), ("user_id", ASCENDING)], unique=True),
    IndexSpec(MEMBERSHIPS, [("user_id", ASCENDING)]),
    IndexSpec(INVITATIONS, [("token_hash", ASCENDING)], unique=True),
    IndexSpec(INVITATIONS, [("org_id", ASCENDING)]),
    IndexSpec(API_KEYS, [("secret_hash", ASCENDING)], unique=True),
    IndexSpec(API_KEYS, [("org_id", ASCENDING)]),
    IndexSpec(REFRESH_TOKENS, [("family_id", ASCENDING)]),
    IndexSpec(REFRESH_TOKENS, [("expire_at", ASCENDING)], expire_after_seconds=0),
    IndexSpec(REFRESH_FAMILIES, [("expire_at", ASCENDING)], expire_after_seconds=0),
    IndexSpec(SIGNING_KEYS, [("generation", ASCENDING)], unique=True),
    IndexSpec(AUDIT, [("org_id", ASCENDING)]),
]


def ms_to_dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


class Conflict(Exception):
    """A unique constraint or a guard held (someone else got there first)."""


def membership_id(org_id: str, user_id: str) -> str:
    return f"{org_id}:{user_id}"


class IdentityRepository:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.db = db

    def tenant(self, name: str, org_id: str) -> TenantCollection:
        return TenantCollection(self.db[name], org_id)

    # ------------------------------------------------------------------ users / orgs

    async def insert_user(self, doc: Doc, events: Sequence[Staged]) -> None:
        try:
            await self.db[USERS].insert_one(with_outbox(doc, events))
        except DuplicateKeyError:
            raise Conflict("email") from None

    async def get_user(self, user_id: str) -> Doc | None:
        return await self.db[USERS].find_one({"_id": user_id})

    async def get_user_by_email(self, email: str) -> Doc | None:
        return await self.db[USERS].find_one({"email": email})

    async def users_by_ids(self, ids: Sequence[str]) -> dict[str, Doc]:
        docs = self.db[USERS].find({"_id": {"$in": list(ids)}}, {"email": 1, "display_name": 1})
        return {d["_id"]: d async for d in docs}

    async def set_platform_admin(self, user_id: str, on: bool, at_ms: int, ev: Staged) -> bool:
        """Mark (or unmark) a user as a platform operator: a flag on the user, not a
        role in any organization; ``ev`` (PlatformAdminChanged) in the same write. False
        when the flag already had that value (nothing written)."""
        # the flag as read, or absent (never an admin): a concurrent change of the same
        # user makes this one a no-op rather than a second event
        was: Any = {"$in": [False, None]} if on else True
        res = await self.db[USERS].update_one(
            {"_id": user_id, "platform_admin": was},
            outbox_update([ev], {"$set": {"platform_admin": on, "platform_admin_ms": at_ms}}),
        )
        return res.modified_count == 1

    async def platform_admins(self) -> list[Doc]:
        docs = self.db[USERS].find(
            {"platform_admin": True},
            {"email": 1, "display_name": 1, "created_ms": 1, "platform_admin_ms": 1},
            comment=f"{CROSS_TENANT}: platform operators",
        )
        return sorted([d async for d in docs], key=lambda d: d["email"])

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        await self.db[USERS].update_one(
            {"_id": user_id}, {"$set": {"password_hash": password_hash}}
        )

    async def insert_org(self, doc: Doc, events: Sequence[Staged]) -> None:
        try:
            await self.db[ORGS].insert_one(with_outbox(doc, events))
        except DuplicateKeyError:
            raise Conflict("slug") from None

    async def get_org(self, org_id: str) -> Doc | None:
        return await self.db[ORGS].find_one({"_id": org_id})

    async def org_owned_by(self, user_id: str) -> Doc | None:
        return await self.db[ORGS].find_one({"owner_user_id": user_id})

    async def org_has_members(self, org_id: str) -> bool:
        return await self.tenant(MEMBERSHIPS, org_id).count({"status": "active"}) > 0

    async def orgs_by_ids(self, ids: Sequence[str]) -> dict[str, Doc]:
        docs = self.db[ORGS].find({"_id": {"$in": list(ids)}}, {"name": 1, "slug": 1})
        return {d["_id"]: d async for d in docs}

    async def take_owner_slot(self, org_id: str) -> bool:
        """Guard before demoting/removing an owner: succeeds only while another owner
        remains. ``owner_count`` never exceeds the real number of owners (it grows
        after a promotion is written, shrinks before a demotion is written)."""
        doc = await self.db[ORGS].find_one_and_update(
            {"_id": org_id, "owner_count": {"$gt": 1}}, {"$inc": {"owner_count": -1}}
        )
        return doc is not None

    async def add_owner_slot(self, org_id: str) -> None:
        await self.db[ORGS].update_one({"_id": org_id}, {"$inc": {"owner_count": 1}})

    # ---------------------------------------------------------- brute-force protection

    async def reserve_login_attempt(
        self, user_id: str, policy: LockoutPolicy, now_ms: int
    ) -> Doc | None:
        """Reserve one password evaluation, atomically, before the password is checked.

        One conditional ``find_one_and_update`` holds the slot: it only matches while
        fewer than ``max_failures`` attempts are counted in the window and the user
        is not locked, and it counts the attempt in the same write. N parallel
        attempts therefore evaluate at most ``max_failures`` passwords. When the last
        attempt is older than the window, the count restarts at this attempt (again
        one guarded write that only one caller can win). Returns the user after the
        reservation, or None when no slot is free.
        """
        users = self.db[USERS]
        window_start = now_ms - policy.window_s * 1000
        for _ in range(2):
            doc = await users.find_one_and_update(
                {
                    "_id": user_id,
                    "fail_count": {"$lt": policy.max_failures},
                    "locked_until_ms": {"$lte": now_ms},
                    "last_attempt_ms": {"$gt": window_start},
                },
                {"$inc": {"fail_count": 1}, "$set": {"last_attempt_ms": now_ms}},
                return_document=ReturnDocument.AFTER,
            )
            if doc is not None:
                return doc
            doc = await users.find_one_and_update(
                {
                    "_id": user_id,
                    "locked_until_ms": {"$lte": now_ms},
                    "last_attempt_ms": {"$lte": window_start},
                },
                {"$set": {"fail_count": 1, "last_attempt_ms": now_ms}},
                return_document=ReturnDocument.AFTER,
            )
            if doc is not None:
                return doc
        return None

    async def login_succeeded(self, user_id: str, now_ms: int) -> None:
        await self.db[USERS].update_one(
            {"_id": user_id},
            {"$set": {"fail_count": 0, "lock_level": 0, "last_login_ms": now_ms}},
        )

    async def lock_user(self, user_id: str, locked_until_ms: int, events: Sequence[Staged]) -> None:
        await self.db[USERS].update_one(
            {"_id": user_id},
            outbox_update(
                events,
                {
                    "$set": {"locked_until_ms": locked_until_ms, "fail_count": 0},
                    "$inc": {"lock_level": 1},
                },
            ),
        )

    # ------------------------------------------------------------------- memberships

    async def add_membership(self, doc: Doc, events: Sequence[Staged]) -> None:
        """Insert, or re-activate a removed membership; Conflict when already active."""
        fields = {k: v for k, v in doc.items() if k not in ("_id", "org_id")}
        try:
            await self.db[MEMBERSHIPS].update_one(
                {"_id": doc["_id"], "org_id": doc["org_id"], "status": "removed"},
                outbox_update(events, {"$set": fields}),
                upsert=True,
            )
        except DuplicateKeyError:
            raise Conflict("member") from None

    async def get_membership(self, org_id: str, user_id: str) -> Doc | None:
        return await self.tenant(MEMBERSHIPS, org_id).find_one(
            {"_id": membership_id(org_id, user_id), "status": "active"}
        )

    async def memberships_of_user(self, user_id: str) -> list[Doc]:
        docs = self.db[MEMBERSHIPS].find(
            {"user_id": user_id, "status": "active"},
            comment=f"{CROSS_TENANT}: the orgs a user belongs to",
        )
        return sorted([d async for d in docs], key=lambda d: d.get("created_ms", 0))

    async def page_members(self, org_id: str, limit: int, cursor: str | None) -> Page:
        return await self.tenant(MEMBERSHIPS, org_id).page({"status": "active"}, limit, cursor)

    async def change_role(
        self, org_id: str, user_id: str, old_role: str, new_role: str, now_ms: int, ev: Staged
    ) -> bool:
        doc = await self.tenant(MEMBERSHIPS, org_id).find_one_and_update(
            {"_id": membership_id(org_id, user_id), "status": "active", "role": old_role},
            outbox_update([ev], {"$set": {"role": new_role, "updated_ms": now_ms}}),
        )
        return doc is not None

    async def remove_membership(
        self, org_id: str, user_id: str, role: str, now_ms: int, ev: Staged
    ) -> bool:
        doc = await self.tenant(MEMBERSHIPS, org_id).find_one_and_update(
            {"_id": membership_id(org_id, user_id), "status": "active", "role": role},
            outbox_update([ev], {"$set": {"status": "removed", "updated_ms": now_ms}}),
        )
        return doc is not None

    # ------------------------------------------------------------------- invitations

    async def insert_invitation(self, doc: Doc) -> None:
        await self.tenant(INVITATIONS, doc["org_id"]).insert_one(doc)

    async def invitation_by_token(self, token_hash: str) -> Doc | None:
        return await self.db[INVITATIONS].find_one(
            {"token_hash": token_hash}, comment=f"{CROSS_TENANT}: invitation token lookup"
        )

    async def claim_invitation(self, inv: Doc, user_id: str, now_ms: int) -> bool:
        doc = await self.tenant(INVITATIONS, inv["org_id"]).find_one_and_update(
            {"_id": inv["_id"], "status": "pending"},
            {"$set": {"status": "accepted", "accepted_ms": now_ms, "accepted_by": user_id}},
        )
        return doc is not None

    # ---------------------------------------------------------------------- API keys

    async def insert_api_key(self, doc: Doc, events: Sequence[Staged]) -> None:
        await self.tenant(API_KEYS, doc["org_id"]).insert_one(with_outbox(doc, events))

    async def page_api_keys(self, org_id: str, limit: int, cursor: str | None) -> Page:
        return await self.tenant(API_KEYS, org_id).page({"revoked": 0}, limit, cursor)

    async def get_api_key(self, org_id: str, key_id: str) -> Doc | None:
        return await self.tenant(API_KEYS, org_id).find_one({"_id": key_id})

    async def api_key_by_hash(self, secret_hash: str) -> Doc | None:
        return await self.db[API_KEYS].find_one(
            {"secret_hash": secret_hash}, comment=f"{CROSS_TENANT}: API key verification"
        )

    async def revoke_api_key(self, org_id: str, key_id: str, now_ms: int, ev: Staged) -> bool:
        doc = await self.tenant(API_KEYS, org_id).find_one_and_update(
            {"_id": key_id, "revoked": 0},
            outbox_update([ev], {"$set": {"revoked": 1, "revoked_ms": now_ms}}),
        )
        return doc is not None

    async def touch_api_key(self, org_id: str, key_id: str, now_ms: int, throttle_ms: int) -> None:
        """Record use at most once per throttle interval (a guarded write)."""
        await self.db[API_KEYS].update_one(
            {"_id": key_id, "org_id": org_id, "last_used_ms": {"$lte": now_ms - throttle_ms}},
            {"$set": {"last_used_ms": now_ms}},
        )

    # ---------------------------------------------------------------- refresh tokens

    async def insert_family(self, doc: Doc) -> None:
        await self.db[REFRESH_FAMILIES].insert_one(doc)

    async def get_family(self, family_id: str) -> Doc | None:
        return await self.db[REFRESH_FAMILIES].find_one({"_id": family_id})

    async def revoke_family(self, family_id: str, reason: str, now_ms: int) -> bool:
        res = await self.db[REFRESH_FAMILIES].update_one(
            {"_id": family_id, "revoked": 0},
            {"$set": {"revoked": 1, "revoked_reason": reason, "revoked_ms": now_ms}},
        )
        return res.modified_count > 0

    async def revoke_families_of(self, org_id: str, user_id: str, reason: str, now_ms: int) -> None:
        await self.db[REFRESH_FAMILIES].update_many(
            {"org_id": org_id, "user_id": user_id, "revoked": 0},
            {"$set": {"revoked": 1, "revoked_reason": reason, "revoked_ms": now_ms}},
        )

    async def insert_refresh_token(self, doc: Doc) -> None:
        await self.db[REFRESH_TOKENS].insert_one(doc)

    async def claim_refresh_token(self, token_hash: str, now_ms: int) -> Doc | None:
        """Atomically flip an unused token to used; only one caller can win."""
        return await self.db[REFRESH_TOKENS].find_one_and_update(
            {"_id": token_hash, "used": 0},
            {"$set": {"used": 1, "used_ms": now_ms}},
            return_document=ReturnDocument.AFTER,
        )

    async def get_refresh_token(self, token_hash: str) -> Doc | None:
        return await self.db[REFRESH_TOKENS].find_one({"_id": token_hash})

    # ------------------------------------------------------------------ signing keys

    async def signing_keys(self) -> list[Doc]:
        return [d async for d in self.db[SIGNING_KEYS].find({}).sort([("generation", ASCENDING)])]

    async def insert_signing_key(self, doc: Doc) -> bool:
        """False when another replica already created this generation."""
        try:
            await self.db[SIGNING_KEYS].insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    async def retire_signing_keys(
        self, below_generation: int, now_ms: int, expires_ms: int
    ) -> None:
        await self.db[SIGNING_KEYS].update_many(
            {"generation": {"$lt": below_generation}, "retired_ms": 0},
            {"$set": {"retired_ms": now_ms, "expires_ms": expires_ms}},
        )

    async def delete_expired_signing_keys(self, now_ms: int) -> int:
        res = await self.db[SIGNING_KEYS].delete_many({"expires_ms": {"$gt": 0, "$lt": now_ms}})
        return res.deleted_count

    # --------------------------------------------------------------------- audit log

    async def append_audit(self, doc: Doc) -> None:
        """Append-only: the repository offers no update or delete of entries."""
        await self.tenant(AUDIT, doc["org_id"]).insert_one(doc)

    async def page_audit(self, org_id: str, limit: int, cursor: str | None) -> Page:
        return await self.tenant(AUDIT, org_id).page({}, limit, cursor)

    async def latest_audit(self, org_id: str, n: int) -> list[Doc]:
        return await self.tenant(AUDIT, org_id).find({}, sort=[("_id", DESCENDING)], limit=n)
