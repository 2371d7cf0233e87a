"""MongoDB access with PyMongo's async client, index bootstrapping and tenant scoping.

Every repository reaches its collections through :class:`TenantCollection`, which
adds the tenant to every filter and every inserted document, so no query can forget
it. Correctness rests on single-document atomicity and unique indexes only: no
multi-document transactions (see LOCAL_INFRA.md).
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, AsyncMongoClient, ReturnDocument, monitoring
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from qlp_kit.problems import Problem

Doc = dict[str, Any]

__all__ = [
    "DuplicateKeyError",
    "IndexSpec",
    "Mongo",
    "Page",
    "TenantCollection",
    "decode_cursor",
    "encode_cursor",
    "utcnow",
]


def utcnow() -> datetime:
    """Now in UTC, truncated to milliseconds (what BSON dates keep)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=(now.microsecond // 1000) * 1000)


def as_utc(value: datetime) -> datetime:
    """Stored dates come back naive; they are always UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class IndexSpec:
    """One index on one collection; names are left to the server (custom names are
    not supported by the embedded database)."""

    collection: str
    keys: Sequence[tuple[str, int]]
    unique: bool = False
    expire_after_seconds: int | None = None
    sparse: bool = False

    def kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"unique": self.unique}
        if self.expire_after_seconds is not None:
            kw["expireAfterSeconds"] = self.expire_after_seconds
        if self.sparse:
            kw["sparse"] = True
        return kw


CROSS_TENANT = "cross-tenant"
"""Pass ``comment="cross-tenant: <why>"`` on a query that must span tenants (a sweeper,
a platform-admin report, the outbox relay); the tenant guard then lets it through."""


class TenantGuard(monitoring.CommandListener):
    """Watches every command on the tenant collections and counts those whose filter
    (or inserted documents) lack the tenant field. Enabled in tests and development
    (``tenant_guard`` setting); the end-to-end suite asserts the count stays zero."""

    FILTER_OF: dict[str, Callable[[Any], list[Any]]] = {
        "find": lambda c: [c.get("filter") or {}],
        "count": lambda c: [c.get("query") or {}],
        "distinct": lambda c: [c.get("query") or {}],
        "findAndModify": lambda c: [c.get("query") or {}],
        "update": lambda c: [u.get("q") or {} for u in c.get("updates", [])],
        "delete": lambda c: [d.get("q") or {} for d in c.get("deletes", [])],
        "aggregate": lambda c: [
            (c.get("pipeline") or [{}])[0].get("$match", {}) if c.get("pipeline") else {}
        ],
        "insert": lambda c: list(c.get("documents", [])),
    }

    def __init__(self, database: str, collections: Sequence[str], field: str = "org_id") -> None:
        self.database = database
        self.collections = set(collections)
        self.field = field
        self.violations: list[str] = []

    def _scoped(self, doc: Any) -> bool:
        if not isinstance(doc, dict):
            return False
        if self.field in doc:
            return True
        return any(self._scoped(d) for d in doc.get("$and", []))

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        name = event.command_name
        if event.database_name != self.database or name not in self.FILTER_OF:
            return
        coll = event.command.get(name)
        if coll not in self.collections:
            return
        if str(event.command.get("comment", "")).startswith(CROSS_TENANT):
            return
        if all(self._scoped(f) for f in self.FILTER_OF[name](event.command)):
            return
        from qlp_kit.metrics import TENANT_GUARD_VIOLATIONS

        self.violations.append(f"{name} {coll}")
        TENANT_GUARD_VIOLATIONS.labels(self.database, coll, name).inc()
        import structlog

        structlog.get_logger("qlp.tenant_guard").error(
            "query without tenant scope", collection=coll, command=name
        )

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        return None

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        return None


class Mongo:
    """One client per process; ``db`` is the service's own database."""

    def __init__(
        self, url: str, database: str, *, tenant_guard: Sequence[str] | None = None
    ) -> None:
        from qlp_kit.outbox import OutboxWakeup  # here: the outbox module imports this one

        self.outbox_wakeup = OutboxWakeup()  # wakes this process's relay on outbox writes
        listeners: list[monitoring.CommandListener] = [self.outbox_wakeup]
        self.guard: TenantGuard | None = None
        if tenant_guard:
            self.guard = TenantGuard(database, tenant_guard)
            listeners.append(self.guard)
        self.client: AsyncMongoClient[Doc] = AsyncMongoClient(
            url,
            tz_aware=True,
            serverSelectionTimeoutMS=5000,
            uuidRepresentation="standard",
            event_listeners=listeners,
        )
        self.db: AsyncDatabase[Doc] = self.client[database]

    async def ping(self) -> bool:
        try:
            await self.client.admin.command("ping")
        except Exception:
            return False
        return True

    async def ensure_indexes(self, specs: Sequence[IndexSpec]) -> None:
        for spec in specs:
            await self.db[spec.collection].create_index(list(spec.keys), **spec.kwargs())

    def collection(self, name: str) -> AsyncCollection[Doc]:
        return self.db[name]

    def tenant(self, name: str, org_id: str) -> TenantCollection:
        return TenantCollection(self.db[name], org_id)

    async def close(self) -> None:
        await self.client.close()


def encode_cursor(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


class MalformedCursor(Problem, ValueError):
    """A list cursor that is not one the API gave: 422 wherever a route leaves it
    uncaught (a ValueError still, for routes that map it themselves)."""

    def __init__(self) -> None:
        super().__init__(
            422,
            "Request is not valid",
            "query parameter cursor: malformed cursor; pass the next_cursor of the previous"
            " page, or leave it out for the first page",
            type_="validation-error",
        )


def decode_cursor(cursor: str) -> str:
    pad = "=" * (-len(cursor) % 4)
    try:
        return base64.urlsafe_b64decode(cursor + pad).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedCursor() from exc


@dataclass
class Page:
    items: list[Doc] = field(default_factory=list)
    next_cursor: str | None = None


class TenantCollection:
    """A collection seen through one tenant: every call is scoped by ``org_id``."""

    TENANT_FIELD = "org_id"

    def __init__(self, collection: AsyncCollection[Doc], org_id: str) -> None:
        if not org_id:
            raise ValueError("a tenant-scoped collection needs an org id")
        self.raw = collection
        self.org_id = org_id

    def scoped(self, filter_: Mapping[str, Any] | None = None) -> Doc:
        f = dict(filter_ or {})
        if self.TENANT_FIELD in f and f[self.TENANT_FIELD] != self.org_id:
            raise PermissionError("filter names another tenant")
        f[self.TENANT_FIELD] = self.org_id
        return f

    async def insert_one(self, doc: Doc) -> Doc:
        doc = {**doc, self.TENANT_FIELD: self.org_id}
        await self.raw.insert_one(doc)
        return doc

    async def find_one(self, filter_: Mapping[str, Any], **kw: Any) -> Doc | None:
        return await self.raw.find_one(self.scoped(filter_), **kw)

    async def find(
        self,
        filter_: Mapping[str, Any] | None = None,
        *,
        sort: Sequence[tuple[str, int]] | None = None,
        limit: int = 0,
    ) -> list[Doc]:
        cur = self.raw.find(self.scoped(filter_))
        if sort:
            cur = cur.sort(list(sort))
        if limit:
            cur = cur.limit(limit)
        return [d async for d in cur]

    async def page(self, filter_: Mapping[str, Any] | None, limit: int, cursor: str | None) -> Page:
        """Keyset pagination on ``_id`` (ids are time ordered)."""
        f = self.scoped(filter_)
        if cursor:
            f["_id"] = {"$gt": decode_cursor(cursor)}
        docs = [d async for d in self.raw.find(f).sort([("_id", ASCENDING)]).limit(limit + 1)]
        more = len(docs) > limit
        docs = docs[:limit]
        return Page(docs, encode_cursor(str(docs[-1]["_id"])) if more and docs else None)

    async def update_one(
        self, filter_: Mapping[str, Any], update: Mapping[str, Any], *, upsert: bool = False
    ) -> int:
        res = await self.raw.update_one(self.scoped(filter_), dict(update), upsert=upsert)
        return res.modified_count

    async def find_one_and_update(
        self,
        filter_: Mapping[str, Any],
        update: Mapping[str, Any],
        *,
        upsert: bool = False,
        return_new: bool = True,
    ) -> Doc | None:
        return await self.raw.find_one_and_update(
            self.scoped(filter_),
            dict(update),
            upsert=upsert,
            return_document=ReturnDocument.AFTER if return_new else ReturnDocument.BEFORE,
        )

    async def delete_one(self, filter_: Mapping[str, Any]) -> int:
        res = await self.raw.delete_one(self.scoped(filter_))
        return res.deleted_count

    async def count(self, filter_: Mapping[str, Any] | None = None) -> int:
        return await self.raw.count_documents(self.scoped(filter_))


async def await_document(
    read: Callable[[], Awaitable[dict[str, Any] | None]],
    settled: Callable[[dict[str, Any]], bool],
    timeout_s: float,
    interval_s: float = 0.05,
) -> dict[str, Any]:
    """Re-read a document until ``settled`` holds for it or ``timeout_s`` passed, and
    return it as last read: how a request waits a moment for the answer of a saga it
    started (another service's event, applied by a consumer in any replica), so that a
    refusal can be its 4xx answer. The document must exist."""
    deadline = time.monotonic() + timeout_s
    while True:
        doc = await read()
        assert doc is not None, "await_document: the document is gone"
        if settled(doc) or time.monotonic() >= deadline:
            return doc
        await asyncio.sleep(interval_s)
