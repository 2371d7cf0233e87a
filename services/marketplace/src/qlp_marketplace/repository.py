"""Every MongoDB call of the marketplace.

- ``listings``: one document per listing (``org_id`` is the creator's org); ratings
  and sales counters live on it; the outbox rides on it (``ListingPublished`` /
  ``ListingUpdated`` / ``ListingVersionAdded``).
- ``versions``: one per (listing, semver); ``_id`` is ``<listing>@<version>``.
- GridFS bucket ``artifacts``: uploaded artifact bytes (metadata carries the org).
- ``purchases``: one per purchase (``org_id`` is the buyer). The entitlement is the
  purchase in status ``paid``: granting it is the same single-document write that
  records the payment, so there is never one without the other. ``active_key``
  (``<buyer>|<listing>``, set while pending, paid or refund pending; unique, sparse)
  makes a second purchase of the same listing a conflict; ``idem`` (``<buyer>|<key>``,
  unique, sparse) makes a retried request the same purchase.
- ``sales``: the creator's view of each paid purchase (``org_id`` is the seller),
  written from billing's PaymentSucceeded and marketplace PurchaseRefunded events.
- ``reviews``: one per (listing, reviewer org) (``org_id`` is the reviewer).
- ``counters``: the sequence that gives every listing its unique ``seq``.

Public listing reads span tenants (a buyer reads a creator's listing): those queries
carry the cross-tenant comment and the service checks visibility itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from gridfs import AsyncGridFSBucket
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from qlp_kit.mongo import (
    CROSS_TENANT,
    IndexSpec,
    Mongo,
    TenantCollection,
    decode_cursor,
    encode_cursor,
)
from qlp_kit.outbox import Staged, outbox_update, with_outbox

Doc = dict[str, Any]

LISTINGS = "listings"
VERSIONS = "versions"
PURCHASES = "purchases"
SALES = "sales"
REVIEWS = "reviews"
COUNTERS = "counters"
ARTIFACTS = "artifacts"
OUTBOX_COLLECTIONS = (LISTINGS, PURCHASES, REVIEWS)
TENANT_COLLECTIONS = (LISTINGS, VERSIONS, PURCHASES, SALES, REVIEWS)

PUBLIC_READ = f"{CROSS_TENANT}: a published listing is read by any org; visibility is checked"
BY_PURCHASE = f"{CROSS_TENANT}: the sale of a purchase belongs to the seller's org"
INDEXER = f"{CROSS_TENANT}: the search read model holds every org's published listings"

INDEXES = [
    IndexSpec(LISTINGS, (("org_id", ASCENDING), ("status", ASCENDING))),
    IndexSpec(LISTINGS, (("status", ASCENDING), ("seq", ASCENDING))),
    IndexSpec(VERSIONS, (("listing_id", ASCENDING), ("created_at", ASCENDING))),
    IndexSpec(PURCHASES, (("org_id", ASCENDING), ("status", ASCENDING))),
    IndexSpec(PURCHASES, (("active_key", ASCENDING),), unique=True, sparse=True),
    IndexSpec(PURCHASES, (("idem", ASCENDING),), unique=True, sparse=True),
    IndexSpec(SALES, (("org_id", ASCENDING), ("listing_id", ASCENDING))),
    IndexSpec(REVIEWS, (("listing_id", ASCENDING), ("org_id", ASCENDING)), unique=True),
]


class Duplicate(Exception):
    """A unique key is taken."""


class Store:
    def __init__(self, mongo: Mongo) -> None:
        self.mongo = mongo
        self.db = mongo.db
        self.bucket = AsyncGridFSBucket(self.db, bucket_name=ARTIFACTS)

    def t(self, name: str, org_id: str) -> TenantCollection:
        return self.mongo.tenant(name, org_id)

    # -- listings ----------------------------------------------------------------------

    async def next_seq(self) -> int:
        doc = await self.db[COUNTERS].find_one_and_update(
            {"_id": "listing_seq"},
            {"$inc": {"n": 1}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        return int((doc or {}).get("n", 1))

    async def insert_listing(self, doc: Doc, events: Sequence[Staged]) -> None:
        await self.t(LISTINGS, doc["org_id"]).insert_one(with_outbox(doc, events))

    async def own_listing(self, org_id: str, listing_id: str) -> Doc | None:
        return await self.t(LISTINGS, org_id).find_one({"_id": listing_id})

    async def any_listing(self, listing_id: str) -> Doc | None:
        return await self.db[LISTINGS].find_one({"_id": listing_id}, comment=PUBLIC_READ)

    async def listings_by_ids(self, ids: Sequence[str], comment: str = PUBLIC_READ) -> list[Doc]:
        if not ids:
            return []
        return [
            d async for d in self.db[LISTINGS].find({"_id": {"$in": list(ids)}}, comment=comment)
        ]

    async def update_listing(
        self,
        org_id: str,
        listing_id: str,
        update: Doc,
        events: Sequence[Staged] = (),
        guard: Doc | None = None,
    ) -> Doc | None:
        return await self.t(LISTINGS, org_id).find_one_and_update(
            {"_id": listing_id, **(guard or {})}, outbox_update(list(events), update)
        )

    async def set_template_outcomes(
        self, org_id: str, listing_id: str, built: int, passed: int
    ) -> None:
        await self.t(LISTINGS, org_id).update_one(
            {
                "_id": listing_id,
                "$or": [
                    {"template_outcomes": {"$exists": False}},
                    {"template_outcomes.projects_built": {"$lt": built}},
                ],
            },
            {"$set": {"template_outcomes": {"projects_built": built, "projects_passed": passed}}},
        )

    async def page_own_listings(
        self, org_id: str, status: str | None, limit: int, cursor: str | None
    ) -> tuple[list[Doc], str | None]:
        f: Doc = {"status": status} if status else {}
        page = await self.t(LISTINGS, org_id).page(f, limit, cursor)
        return page.items, page.next_cursor

    async def searchable_listings(self, after_seq: int, limit: int) -> list[Doc]:
        cur = (
            self.db[LISTINGS]
            .find({"status": "published", "seq": {"$gt": after_seq}}, comment=INDEXER)
            .sort([("seq", ASCENDING)])
            .limit(limit)
        )
        return [d async for d in cur]

    # -- versions and artifacts ----------------------------------------------------------

    async def insert_version(self, doc: Doc) -> None:
        try:
            await self.t(VERSIONS, doc["org_id"]).insert_one(doc)
        except DuplicateKeyError:
            raise Duplicate(doc["_id"]) from None

    async def versions(self, org_id: str, listing_id: str) -> list[Doc]:
        return await self.t(VERSIONS, org_id).find(
            {"listing_id": listing_id}, sort=[("created_at", DESCENDING)]
        )

    async def version(self, org_id: str, listing_id: str, version: str) -> Doc | None:
        return await self.t(VERSIONS, org_id).find_one({"_id": f"{listing_id}@{version}"})

    async def put_artifact(
        self, artifact_id: str, org_id: str, data: bytes, content_type: str
    ) -> None:
        await self.bucket.upload_from_stream_with_id(
            artifact_id,
            artifact_id,
            data,
            metadata={"org_id": org_id, "content_type": content_type},
        )

    async def get_artifact(self, artifact_id: str) -> bytes:
        stream = await self.bucket.open_download_stream(artifact_id)
        data: bytes = await stream.read()
        return data

    # -- purchases -----------------------------------------------------------------------

    async def insert_purchase(self, doc: Doc, events: Sequence[Staged]) -> None:
        try:
            await self.t(PURCHASES, doc["org_id"]).insert_one(with_outbox(doc, events))
        except DuplicateKeyError as exc:
            raise Duplicate(str(exc)) from None

    async def purchase(self, org_id: str, purchase_id: str) -> Doc | None:
        return await self.t(PURCHASES, org_id).find_one({"_id": purchase_id})

    async def purchase_by_idem(self, org_id: str, idem: str) -> Doc | None:
        return await self.t(PURCHASES, org_id).find_one({"idem": idem})

    async def active_purchase(self, org_id: str, listing_id: str) -> Doc | None:
        return await self.t(PURCHASES, org_id).find_one({"active_key": f"{org_id}|{listing_id}"})

    async def move_purchase(
        self,
        org_id: str,
        purchase_id: str,
        from_: Sequence[str],
        update: Doc,
        events: Sequence[Staged] = (),
    ) -> Doc | None:
        """Apply ``update`` when the purchase is in one of ``from_`` (else None)."""
        return await self.t(PURCHASES, org_id).find_one_and_update(
            {"_id": purchase_id, "status": {"$in": list(from_)}},
            outbox_update(list(events), update),
        )

    async def page_purchases(
        self, org_id: str, status: str | None, limit: int, cursor: str | None
    ) -> tuple[list[Doc], str | None]:
        f: Doc = {"status": status} if status else {}
        page = await self.t(PURCHASES, org_id).page(f, limit, cursor)
        return page.items, page.next_cursor

    # -- sales (the creator's ledger view) -----------------------------------------------

    async def record_sale(self, seller_org: str, purchase_id: str, doc: Doc) -> None:
        await self.t(SALES, seller_org).update_one(
            {"_id": purchase_id}, {"$setOnInsert": doc}, upsert=True
        )

    async def mark_sale_refunded(self, seller_org: str, purchase_id: str, at: datetime) -> None:
        await self.t(SALES, seller_org).update_one(
            {"_id": purchase_id}, {"$set": {"refunded": True, "refunded_at": at}}
        )

    async def count_sales(self, seller_org: str, listing_id: str) -> int:
        """Paid, not refunded sales of one listing."""
        return await self.t(SALES, seller_org).count({"listing_id": listing_id, "refunded": False})

    async def sales(self, seller_org: str) -> list[Doc]:
        return await self.t(SALES, seller_org).find({}, sort=[("_id", ASCENDING)])

    # -- reviews -------------------------------------------------------------------------

    async def upsert_review(
        self, org_id: str, listing_id: str, set_: Doc, on_insert: Doc
    ) -> tuple[Doc | None, bool]:
        """The org's one review of the listing, created or changed: (review, created).
        The unique (listing, org) index makes a concurrent second insert an update."""
        coll = self.t(REVIEWS, org_id)
        created = False
        if await coll.find_one({"listing_id": listing_id}) is None:
            try:
                await coll.insert_one({**on_insert, "listing_id": listing_id, **set_})
                created = True
            except DuplicateKeyError:
                pass
        if created:
            return await coll.find_one({"listing_id": listing_id}), True
        got = await coll.find_one_and_update({"listing_id": listing_id}, {"$set": set_})
        return got, False

    async def review_stats(self, listing_id: str) -> tuple[int, int]:
        total = count = 0
        async for r in self.db[REVIEWS].find(
            {"listing_id": listing_id}, {"rating": 1}, comment=PUBLIC_READ
        ):
            total += int(r["rating"])
            count += 1
        return total, count

    async def reviews_page(
        self, listing_id: str, limit: int, cursor: str | None
    ) -> tuple[list[Doc], str | None]:
        f: Doc = {"listing_id": listing_id}
        if cursor:
            f["_id"] = {"$gt": decode_cursor(cursor)}
        docs = [
            d
            async for d in self.db[REVIEWS]
            .find(f, comment=PUBLIC_READ)
            .sort([("_id", ASCENDING)])
            .limit(limit + 1)
        ]
        more = len(docs) > limit
        docs = docs[:limit]
        return docs, (encode_cursor(str(docs[-1]["_id"])) if more and docs else None)

    async def review_by_id(self, review_id: str) -> Doc | None:
        return await self.db[REVIEWS].find_one({"_id": review_id}, comment=PUBLIC_READ)

    async def set_reply(self, reviewer_org: str, review_id: str, reply: Doc) -> Doc | None:
        return await self.t(REVIEWS, reviewer_org).find_one_and_update(
            {"_id": review_id}, {"$set": {"reply": reply}}
        )
