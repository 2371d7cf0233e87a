"""Persistence: generation jobs, projects, immutable versions and content-addressed
file blobs (one blob per tenant and SHA-256, so unchanged files are stored once)."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Sequence
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.errors import DuplicateKeyError

from qlp_kit.mongo import CROSS_TENANT, IndexSpec, TenantCollection
from qlp_kit.outbox import Staged, outbox_update, with_outbox

Doc = dict[str, Any]

GENERATIONS = "generations"
PROJECTS = "projects"
VERSIONS = "versions"
BLOBS = "blobs"
OUTCOMES = "pattern_outcomes"
#: Marketplace templates: one pack per (listing, version), owned by the creator's org
#: (its files are blobs of that org); entitlements per holder org (from marketplace
#: events); outcome counts per listing (counts only, like pattern outcomes).
PACKS = "template_packs"
ENTITLEMENTS = "template_entitlements"
TEMPLATE_OUTCOMES = "template_outcomes"
#: Marketplace ratings of template listings (review id → listing, stars; no tenant): the
#: evidence "the marketplace rating of templates built on a pattern".
TEMPLATE_RATINGS = "template_ratings"
OUTBOX_COLLECTIONS = (GENERATIONS, VERSIONS)
TENANT_COLLECTIONS = (GENERATIONS, PROJECTS, VERSIONS, BLOBS, PACKS, ENTITLEMENTS)
#: A buyer's generation reads the creator's pack once it found the buyer's entitlement.
PACK_READ = f"{CROSS_TENANT}: a template's pack is used by the orgs entitled to it"

INDEXES = [
    IndexSpec(GENERATIONS, [("org_id", ASCENDING), ("created_at", DESCENDING)]),
    IndexSpec(PROJECTS, [("org_id", ASCENDING), ("created_at", DESCENDING)]),
    IndexSpec(VERSIONS, [("org_id", ASCENDING), ("project_id", ASCENDING), ("number", ASCENDING)]),
    IndexSpec(PACKS, [("listing_id", ASCENDING)]),
    IndexSpec(ENTITLEMENTS, [("org_id", ASCENDING), ("listing_id", ASCENDING)]),
]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Store:
    def __init__(self, db: Any) -> None:
        self.db = db

    def t(self, name: str, org_id: str) -> TenantCollection:
        return TenantCollection(self.db[name], org_id)

    # ------------------------------------------------------------ jobs
    async def insert_job(self, doc: Doc, events: Sequence[Staged]) -> None:
        await self.t(GENERATIONS, doc["org_id"]).insert_one(with_outbox(doc, events))

    async def job(self, org_id: str, job_id: str) -> Doc | None:
        return await self.t(GENERATIONS, org_id).find_one({"_id": job_id})

    async def transition(
        self, org_id: str, job_id: str, guard: Doc, set_: Doc, events: Sequence[Staged] = ()
    ) -> Doc | None:
        """One guarded write: the job moves only from the state the guard names."""
        update: Doc = {"$set": set_}
        if events:
            update = outbox_update(list(events), update)
        return await self.t(GENERATIONS, org_id).find_one_and_update(
            {"_id": job_id, **guard}, update
        )

    # ------------------------------------------------------------ projects
    async def ensure_project(self, org_id: str, project_id: str, name: str, now: Any) -> Doc:
        coll = self.t(PROJECTS, org_id)
        found = await coll.find_one({"_id": project_id})
        if found is not None:
            return found
        doc = {"_id": project_id, "name": name, "created_at": now, "versions": 0}
        try:
            await coll.insert_one(doc)
        except DuplicateKeyError:
            pass
        got = await coll.find_one({"_id": project_id})
        assert got is not None
        return got

    async def projects(self, org_id: str, limit: int, cursor: str | None) -> Any:
        return await self.t(PROJECTS, org_id).page(None, limit, cursor)

    async def project(self, org_id: str, project_id: str) -> Doc | None:
        return await self.t(PROJECTS, org_id).find_one({"_id": project_id})

    # ------------------------------------------------------------ versions and files
    async def put_files(self, org_id: str, files: dict[str, bytes]) -> dict[str, str]:
        """Store each file once per (tenant, content); path → sha256."""
        coll = self.t(BLOBS, org_id)
        manifest = {}
        for path, data in sorted(files.items()):
            digest = sha256(data)
            manifest[path] = digest
            key = f"{org_id}|{digest}"
            if await coll.find_one({"_id": key}, projection={"_id": 1}) is None:
                try:
                    await coll.insert_one(
                        {"_id": key, "sha256": digest, "size": len(data), "data": data}
                    )
                except DuplicateKeyError:
                    pass
        return manifest

    async def files(self, org_id: str, manifest: dict[str, str]) -> dict[str, bytes]:
        keys = [f"{org_id}|{d}" for d in set(manifest.values())]
        blobs = {
            b["sha256"]: bytes(b["data"])
            for b in await self.t(BLOBS, org_id).find({"_id": {"$in": keys}})
        }
        return {p: blobs[d] for p, d in manifest.items()}

    async def blob_count(self, org_id: str) -> int:
        n: int = await self.db[BLOBS].count_documents({"org_id": org_id})
        return n

    async def add_version(self, org_id: str, doc: Doc, events: Sequence[Staged]) -> Doc:
        """Append a version (number = the project's next); idempotent by version id."""
        coll = self.t(VERSIONS, org_id)
        existing = await coll.find_one({"_id": doc["_id"]})
        if existing is not None:
            return existing
        proj = await self.t(PROJECTS, org_id).find_one_and_update(
            {"_id": doc["project_id"]}, {"$inc": {"versions": 1}}
        )
        assert proj is not None
        doc = {**doc, "number": int(proj["versions"])}
        try:
            await coll.insert_one(with_outbox(doc, events))
        except DuplicateKeyError:
            got = await coll.find_one({"_id": doc["_id"]})
            assert got is not None
            return got
        return doc

    async def version(self, org_id: str, project_id: str, version_id: str) -> Doc | None:
        return await self.t(VERSIONS, org_id).find_one(
            {"_id": version_id, "project_id": project_id}
        )

    async def version_by_id(self, org_id: str, version_id: str) -> Doc | None:
        return await self.t(VERSIONS, org_id).find_one({"_id": version_id})

    async def versions(self, org_id: str, project_id: str) -> list[Doc]:
        docs = await self.t(VERSIONS, org_id).find({"project_id": project_id})
        return sorted(docs, key=lambda d: int(d["number"]))

    async def set_feedback(self, org_id: str, version_id: str, rating: int, comment: str) -> bool:
        n = await self.t(VERSIONS, org_id).update_one(
            {"_id": version_id}, {"$set": {"feedback": {"rating": rating, "comment": comment}}}
        )
        return n > 0

    # ------------------------------------------------------------ pattern outcomes
    async def record_outcome(self, pattern_id: str, key: str, field: str, inc: int = 1) -> None:
        """Counts only (shared across tenants: no prompt, no code, no tenant); once per
        ``key`` (a generation or version id) and field."""
        # the marker is a digest: the shared document names no tenant, job or version
        marker = sha256(f"{field}|{key}".encode())[:24]
        try:
            await self.db[OUTCOMES].update_one(
                {"_id": pattern_id, "seen": {"$ne": marker}},
                {"$inc": {field: inc}, "$push": {"seen": marker}},
                upsert=True,
            )
        except DuplicateKeyError:
            pass  # counted before (the upsert met the document that holds the marker)

    async def outcomes(self) -> dict[str, Doc]:
        return {d["_id"]: d async for d in self.db[OUTCOMES].find({}, projection={"seen": 0})}

    # ------------------------------------------------------------ marketplace templates
    async def put_pack(self, doc: Doc) -> bool:
        """Keep one (listing, version) pack; False when it was kept before."""
        try:
            await self.t(PACKS, doc["org_id"]).insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    async def put_rating(self, review_id: str, listing_id: str, rating: int, at: Any) -> None:
        """A review's stars; the later post (an edit) wins over redelivered older ones."""
        with contextlib.suppress(DuplicateKeyError):  # a newer one is kept already
            await self.db[TEMPLATE_RATINGS].update_one(
                {"_id": review_id, "$or": [{"at": {"$lt": at}}, {"at": {"$exists": False}}]},
                {"$set": {"listing_id": listing_id, "rating": int(rating), "at": at}},
                upsert=True,
            )

    async def ratings(self) -> dict[str, tuple[int, int]]:
        """Listing id → (sum of stars, reviews)."""
        out: dict[str, tuple[int, int]] = {}
        async for d in self.db[TEMPLATE_RATINGS].find(
            {}, projection={"listing_id": 1, "rating": 1}
        ):
            total, n = out.get(str(d["listing_id"]), (0, 0))
            out[str(d["listing_id"])] = (total + int(d["rating"]), n + 1)
        return out

    async def pattern_of_packs(self) -> dict[str, str]:
        """Listing id → the library pattern its pack was exported from (packs made from a
        generation version say so in their manifest's provenance)."""
        docs = self.db[PACKS].find(
            {"source.kind": "generation_version"},
            projection={"listing_id": 1, "manifest": 1},
            comment=PACK_READ,
        )
        out: dict[str, str] = {}
        async for d in docs:
            pid = str(((d.get("manifest") or {}).get("source") or {}).get("pattern_id") or "")
            if pid:
                out[str(d["listing_id"])] = pid
        return out

    async def packs_of(self, listing_id: str) -> list[Doc]:
        return [d async for d in self.db[PACKS].find({"listing_id": listing_id}, comment=PACK_READ)]

    async def set_entitlement(
        self, org_id: str, entitlement_id: str, listing_id: str, active: bool, at: Any
    ) -> None:
        """Granted or revoked; the later change wins, so redelivered or reordered events
        leave the newest state."""
        coll = self.t(ENTITLEMENTS, org_id)
        doc = {"listing_id": listing_id, "active": active, "changed_at": at}
        got = await coll.find_one_and_update(
            {"_id": entitlement_id, "changed_at": {"$lt": at}}, {"$set": doc}
        )
        if got is None and await coll.find_one({"_id": entitlement_id}) is None:
            try:
                await coll.insert_one({"_id": entitlement_id, **doc})
            except DuplicateKeyError:
                await coll.find_one_and_update(
                    {"_id": entitlement_id, "changed_at": {"$lt": at}}, {"$set": doc}
                )

    async def entitled_listings(self, org_id: str) -> list[str]:
        docs = await self.t(ENTITLEMENTS, org_id).find({"active": True})
        return sorted({str(d["listing_id"]) for d in docs})

    async def entitled(self, org_id: str, listing_id: str) -> bool:
        doc = await self.t(ENTITLEMENTS, org_id).find_one(
            {"listing_id": listing_id, "active": True}
        )
        return doc is not None

    async def count_template_outcome(self, listing_id: str, gen_id: str, passed: bool) -> Doc:
        """One more project built from the template (once per generation, and passed
        once when it passed); the totals after it. Counts only: the markers are digests."""
        for field, on in (("projects_built", True), ("projects_passed", passed)):
            if not on:
                continue
            marker = sha256(f"{field}|{gen_id}".encode())[:24]
            try:
                await self.db[TEMPLATE_OUTCOMES].update_one(
                    {"_id": listing_id, "seen": {"$ne": marker}},
                    {"$inc": {field: 1}, "$push": {"seen": marker}},
                    upsert=True,
                )
            except DuplicateKeyError:
                pass
        got = await self.db[TEMPLATE_OUTCOMES].find_one({"_id": listing_id}, {"seen": 0})
        return got or {}

    async def template_outcomes(self, listing_ids: Sequence[str]) -> dict[str, Doc]:
        cur = self.db[TEMPLATE_OUTCOMES].find({"_id": {"$in": list(listing_ids)}}, {"seen": 0})
        return {d["_id"]: d async for d in cur}
