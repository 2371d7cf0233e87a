"""The marketplace's domain layer: listings and versions, the purchase saga,
refunds, reviews, creator earnings and the search read model. No HTTP in here; every
MongoDB call is in the repository."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from qlp_kit.auth import Principal
from qlp_kit.ids import new_id
from qlp_kit.money import Money
from qlp_kit.mongo import await_document
from qlp_kit.outbox import Staged
from qlp_kit.packs import MAX_ARCHIVE_BYTES, PackError, read_pack
from qlp_marketplace import events as E
from qlp_marketplace import rules as R
from qlp_marketplace.repository import INDEXER, Duplicate, Store
from qlp_marketplace.search import SearchIndex, SearchPage, SearchQuery
from qlp_marketplace.settings import MarketplaceSettings

log = structlog.get_logger("qlp.marketplace")

Doc = dict[str, Any]

PAID_STATES = ("paid", "refund_pending", "refunded")


class MarketError(Exception):
    status = 400


class NotFound(MarketError):
    status = 404


class Conflict(MarketError):
    status = 409

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.extra = extra


class Forbidden(MarketError):
    status = 403


class PaymentRequired(MarketError):
    """The buyer's balance does not cover the price: the purchase ended ``failed``."""

    status = 402

    def __init__(self, message: str, purchase_id: str) -> None:
        super().__init__(message)
        self.purchase_id = purchase_id


class Invalid(MarketError):
    status = 422

    def __init__(self, message: str, reasons: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.reasons = list(reasons)


class TooLarge(MarketError):
    status = 413


class Unsupported(MarketError):
    status = 415


def _refuse_unpaid(p: Doc) -> None:
    """A purchase that failed for want of funds answers 402 (a retry too)."""
    if p["status"] == "failed" and str(p.get("failure_reason", "")).startswith(
        "insufficient_funds"
    ):
        raise PaymentRequired(str(p["failure_reason"]), str(p["_id"]))


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Download:
    data: bytes
    content_type: str
    filename: str


class Marketplace:
    def __init__(
        self,
        store: Store,
        settings: MarketplaceSettings,
        index: SearchIndex | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.settings = settings
        self.index = index
        self.clock = clock

    # ================================================================== listings

    async def create_listing(self, who: Principal, data: Mapping[str, Any]) -> Doc:
        kind = data["kind"]
        if kind not in R.KINDS:
            raise Invalid(f"kind must be one of {', '.join(R.KINDS)}")
        try:
            tags = R.normalize_tags(list(data.get("tags") or []))
        except R.RuleError as exc:
            raise Invalid(str(exc)) from None
        now = self.clock()
        doc: Doc = {
            "_id": new_id("lst"),
            "org_id": who.org_id,
            "seq": await self.store.next_seq(),
            "kind": kind,
            "title": data["title"],
            "summary": data.get("summary", ""),
            "description": data.get("description", ""),
            "category": data["category"],
            "tags": tags,
            "license": data["license"],
            "price": dict(data.get("price") or {"amount": 0, "currency": "USD"}),
            "private_to_org_id": data.get("private_to_org_id") or None,
            "sponsored": bool(data.get("sponsored")),
            "screenshots": list(data.get("screenshots") or []),
            "status": R.DRAFT,
            "current_version": None,
            "artifact_id": None,
            "versions_count": 0,
            "rating_sum": 0,
            "rating_count": 0,
            "rating_milli": 0,
            "sales": 0,
            "created_by": who.user_id or who.subject,
            "created_at": now,
            "updated_at": now,
            "published_at": None,
            "published_ms": 0,
        }
        await self.store.insert_listing(doc, [])
        return doc

    async def own_listing(self, org_id: str, listing_id: str) -> Doc:
        doc = await self.store.own_listing(org_id, listing_id)
        if doc is None:
            raise NotFound(f"listing {listing_id}")
        return doc

    async def visible_listing(self, org_id: str, listing_id: str, *, holders: bool = False) -> Doc:
        """The listing if ``org_id`` may see it; with ``holders``, also a delisted (or
        since made private) one the org holds a paid purchase of: entitlements outlive
        the listing's publication."""
        doc = await self.store.any_listing(listing_id)
        if doc is not None and R.visible_to(doc, org_id):
            return doc
        if doc is not None and holders and await self.entitled(org_id, doc):
            return doc
        raise NotFound(f"listing {listing_id}")

    async def list_own(
        self, org_id: str, status: str | None, limit: int, cursor: str | None
    ) -> tuple[list[Doc], str | None]:
        return await self.store.page_own_listings(org_id, status, limit, cursor)

    def _changed_event(self, doc: Doc, changed: list[str], who: Principal | None) -> Staged:
        return E.listing_updated(doc, R.platform_fee_bps(doc["kind"]), changed, self.clock(), who)

    async def patch_listing(
        self, who: Principal, listing_id: str, changes: Mapping[str, Any]
    ) -> Doc:
        doc = await self.own_listing(who.org_id, listing_id)
        sets: Doc = {}
        for name in (
            "title",
            "summary",
            "description",
            "category",
            "license",
            "price",
            "private_to_org_id",
            "sponsored",
            "screenshots",
        ):
            if name in changes:
                sets[name] = changes[name]
        if "tags" in changes:
            try:
                sets["tags"] = R.normalize_tags(list(changes["tags"] or []))
            except R.RuleError as exc:
                raise Invalid(str(exc)) from None
        status = changes.get("status")
        if status is not None and status != doc["status"]:
            if status not in R.PATCHABLE_STATES or not R.can_move(doc["status"], status):
                raise Conflict(
                    f"a {doc['status']} listing cannot become {status}"
                    + ("; publish a draft with POST …/publish" if status == R.PUBLISHED else ""),
                    listing_status=doc["status"],
                )
            sets["status"] = status
        if not sets:
            return doc
        now = self.clock()
        sets["updated_at"] = now
        new = {**doc, **sets}
        changed = sorted(k for k in sets if k != "updated_at")
        events = [self._changed_event(new, changed, who)] if doc["published_at"] else []
        got = await self.store.update_listing(
            who.org_id, listing_id, {"$set": sets}, events, guard={"status": doc["status"]}
        )
        if got is None:
            raise Conflict("the listing changed meanwhile; read it again")
        return got

    async def add_version(
        self,
        who: Principal,
        listing_id: str,
        version: str,
        changelog: str,
        *,
        data: bytes | None = None,
        content_type: str = "",
        generation_version_id: str | None = None,
    ) -> Doc:
        doc = await self.own_listing(who.org_id, listing_id)
        if doc["status"] == R.DELISTED:
            raise Conflict("a delisted listing takes no new versions")
        try:
            R.parse_semver(version)
        except R.RuleError as exc:
            raise Invalid(str(exc)) from None
        now = self.clock()
        vdoc: Doc = {
            "_id": f"{listing_id}@{version}",
            "org_id": who.org_id,
            "listing_id": listing_id,
            "version": version,
            "changelog": changelog,
            "created_at": now,
        }
        if data is not None:
            if len(data) > self.settings.max_artifact_bytes:
                raise TooLarge(
                    f"the artifact is larger than {self.settings.max_artifact_bytes} bytes"
                )
            try:
                R.check_artifact(len(data), content_type)
            except R.RuleError as exc:
                raise (
                    Unsupported(str(exc)) if "content type" in str(exc) else Invalid(str(exc))
                ) from None
            if doc["kind"] == "template":
                # a template is a pattern pack generation renders: checked here, carried
                # to generation on the event (hence the smaller limit)
                if len(data) > MAX_ARCHIVE_BYTES:
                    raise TooLarge(f"a template archive is at most {MAX_ARCHIVE_BYTES} bytes")
                try:
                    read_pack(data)
                except PackError as exc:
                    raise Invalid(f"the template is not a valid pattern pack: {exc}") from None
            vdoc.update(
                artifact_id=new_id("art"),
                size_bytes=len(data),
                content_type=content_type.split(";")[0].strip().lower(),
                sha256=hashlib.sha256(data).hexdigest(),
                generation_version_id=None,
            )
        elif generation_version_id:
            # a reference only: the archive stays in generation (see the README)
            vdoc.update(
                artifact_id=None,
                size_bytes=0,
                content_type="application/vnd.qlp.generation-version+json",
                sha256="",
                generation_version_id=generation_version_id,
            )
        else:
            raise Invalid('send the artifact as the body, or {"generation_version_id": …}')
        if await self.store.version(who.org_id, listing_id, version) is not None:
            raise Conflict(f"version {version} exists; versions are immutable")
        if vdoc.get("artifact_id"):
            await self.store.put_artifact(
                vdoc["artifact_id"], who.org_id, data or b"", vdoc["content_type"]
            )
        try:
            await self.store.insert_version(vdoc)
        except Duplicate:
            raise Conflict(f"version {version} exists; versions are immutable") from None
        sets: Doc = {"updated_at": now}
        if R.newer(version, doc.get("current_version")):
            sets.update(current_version=version, artifact_id=vdoc.get("artifact_id"))
        new = {**doc, **sets}
        archive = data if doc["kind"] == "template" and data is not None else b""
        events = [E.version_added(vdoc, now, who, doc["kind"], archive)]
        if doc["published_at"] and "current_version" in sets:
            events.append(self._changed_event(new, ["version"], who))
        await self.store.update_listing(
            who.org_id, listing_id, {"$set": sets, "$inc": {"versions_count": 1}}, events
        )
        return vdoc

    async def versions(self, org_id: str, listing_id: str) -> list[Doc]:
        listing = await self.visible_listing(org_id, listing_id)
        return await self.store.versions(listing["org_id"], listing_id)

    async def publish(self, who: Principal, listing_id: str) -> Doc:
        """draft → in_review → published (the automatic review runs at once; a refusal
        puts the listing back to draft with the reasons and answers them)."""
        doc = await self.own_listing(who.org_id, listing_id)
        if doc["status"] in (R.PUBLISHED,):
            return doc
        if doc["status"] != R.DRAFT:
            raise Conflict(
                f"a {doc['status']} listing cannot be published", listing_status=doc["status"]
            )
        now = self.clock()
        got = await self.store.update_listing(
            who.org_id,
            listing_id,
            {"$set": {"status": R.IN_REVIEW, "updated_at": now}},
            guard={"status": R.DRAFT},
        )
        if got is None:
            raise Conflict("the listing changed meanwhile; read it again")
        reasons = R.auto_review(got)
        if reasons:
            await self.store.update_listing(
                who.org_id,
                listing_id,
                {
                    "$set": {
                        "status": R.DRAFT,
                        "review": {"passed": False, "reasons": reasons, "at": now},
                    }
                },
                guard={"status": R.IN_REVIEW},
            )
            raise Invalid("the automatic review refused the listing", reasons)
        sets = {
            "status": R.PUBLISHED,
            "review": {"passed": True, "reasons": [], "at": now},
            "published_at": got.get("published_at") or now,
            "published_ms": int((got.get("published_at") or now).timestamp() * 1000),
            "updated_at": now,
        }
        new = {**got, **sets}
        fee = R.platform_fee_bps(got["kind"])
        events = [
            E.listing_published(new, fee, now, who),
            self._changed_event(new, ["status"], who),
        ]
        done = await self.store.update_listing(
            who.org_id, listing_id, {"$set": sets}, events, guard={"status": R.IN_REVIEW}
        )
        if done is None:
            raise Conflict("the listing changed meanwhile; read it again")
        return done

    # ================================================================== purchases

    async def purchase(
        self, who: Principal, listing_id: str, idempotency_key: str | None
    ) -> tuple[Doc, bool]:
        """(purchase, created). A retry with the same key answers the same purchase;
        a listing the buyer holds (or is buying) is a conflict."""
        org = who.org_id
        idem = f"{org}|{idempotency_key}" if idempotency_key else None
        if idem and (prior := await self.store.purchase_by_idem(org, idem)) is not None:
            if prior["listing_id"] != listing_id:
                raise Conflict("this Idempotency-Key was used for another listing")
            _refuse_unpaid(prior)
            return prior, False
        listing = await self.visible_listing(org, listing_id)
        if listing["org_id"] == org:
            raise Conflict("a creator holds its own listings; there is nothing to buy")
        if listing["status"] != R.PUBLISHED:
            raise Conflict(
                f"a {listing['status']} listing is not for sale", listing_status=listing["status"]
            )
        await self._refuse_if_active(org, listing_id)
        now = self.clock()
        price = listing.get("price") or {"amount": 0, "currency": "USD"}
        pid = new_id("pur")
        doc: Doc = {
            "_id": pid,
            "org_id": org,
            "listing_id": listing_id,
            "seller_org_id": listing["org_id"],
            "kind": listing["kind"],
            "title": listing["title"],
            "version": listing.get("current_version"),
            "price": {"amount": int(price["amount"]), "currency": price.get("currency", "USD")},
            "platform_fee_bps": R.platform_fee_bps(listing["kind"]),
            "status": "pending",
            "active_key": f"{org}|{listing_id}",
            "buyer": who.user_id or who.subject,
            "created_at": now,
            "paid_at": None,
        }
        if idem:
            doc["idem"] = idem
        if doc["price"]["amount"] == 0:
            doc.update(status="paid", paid_at=now, entitlement_id=self._ent_id(pid))
            events = [E.purchase_completed(doc, 0, 0, "", now), E.entitlement_granted(doc, now)]
        else:
            events = [E.purchase_requested(doc, now, who)]
        try:
            await self.store.insert_purchase(doc, events)
        except Duplicate:
            if idem and (prior := await self.store.purchase_by_idem(org, idem)) is not None:
                _refuse_unpaid(prior)
                return prior, False
            await self._refuse_if_active(org, listing_id)
            raise Conflict("a purchase of this listing is already under way") from None
        if doc["status"] == "pending" and self.settings.payment_wait_s > 0:
            doc = await self._await_payment(org, pid)
            _refuse_unpaid(doc)
        return doc, True

    async def _await_payment(self, org: str, purchase_id: str) -> Doc:
        """The purchase once billing answered, or as it is when the wait ran out."""
        return await await_document(
            lambda: self.store.purchase(org, purchase_id),
            lambda p: p["status"] != "pending",
            self.settings.payment_wait_s,
        )

    @staticmethod
    def _ent_id(purchase_id: str) -> str:
        return "ent_" + purchase_id.removeprefix("pur_")

    async def _refuse_if_active(self, org: str, listing_id: str) -> None:
        active = await self.store.active_purchase(org, listing_id)
        if active is None:
            return
        if active["status"] == "paid":
            raise Conflict(
                "your org already holds this listing", purchase_id=active["_id"], reason="entitled"
            )
        raise Conflict(
            f"a purchase of this listing is {active['status'].replace('_', ' ')}",
            purchase_id=active["_id"],
            reason=active["status"],
        )

    async def purchase_of(self, org_id: str, purchase_id: str) -> Doc:
        doc = await self.store.purchase(org_id, purchase_id)
        if doc is None:
            raise NotFound(f"purchase {purchase_id}")
        return doc

    async def purchases(
        self, org_id: str, status: str | None, limit: int, cursor: str | None
    ) -> tuple[list[Doc], str | None]:
        return await self.store.page_purchases(org_id, status, limit, cursor)

    async def on_payment_succeeded(self, org_id: str, purchase_id: str, payment_id: str) -> None:
        """Billing charged the buyer and booked the split: the purchase becomes paid
        and the entitlement is granted in the same write. Redeliveries change nothing;
        the creator's sale row and the listing's sales count are idempotent too."""
        p = await self.store.purchase(org_id, purchase_id)
        if p is None:
            log.warning("payment for an unknown purchase", purchase_id=purchase_id)
            return
        now = self.clock()
        creator, fee = R.split(Money(int(p["price"]["amount"]), p["price"]["currency"]), p["kind"])
        if p["status"] == "pending":
            paid = {**p, "entitlement_id": self._ent_id(purchase_id)}
            got = await self.store.move_purchase(
                org_id,
                purchase_id,
                ["pending"],
                {
                    "$set": {
                        "status": "paid",
                        "paid_at": now,
                        "payment_id": payment_id,
                        "entitlement_id": paid["entitlement_id"],
                    }
                },
                [
                    E.purchase_completed(paid, creator.amount, fee.amount, payment_id, now),
                    E.entitlement_granted(paid, now),
                ],
            )
            p = got or await self.store.purchase(org_id, purchase_id) or p
        if p["status"] not in PAID_STATES:
            return
        await self.store.record_sale(
            p["seller_org_id"],
            purchase_id,
            {
                "org_id": p["seller_org_id"],
                "listing_id": p["listing_id"],
                "title": p.get("title", ""),
                "buyer_org_id": org_id,
                "price": p["price"]["amount"],
                "creator_amount": creator.amount,
                "platform_fee": fee.amount,
                "currency": p["price"]["currency"],
                "payment_id": payment_id,
                "paid_at": p.get("paid_at") or now,
                "refunded": False,
            },
        )
        await self._recount_sales(p["seller_org_id"], p["listing_id"])

    async def on_payment_failed(
        self, org_id: str, purchase_id: str, payment_id: str, code: str, message: str
    ) -> None:
        p = await self.store.purchase(org_id, purchase_id)
        if p is None or p["status"] != "pending":
            return
        now = self.clock()
        insufficient = code == "insufficient_funds"
        reason = (
            "insufficient_funds: your prepaid balance does not cover the price; add credits "
            "(POST /v1/billing/credits) and buy again"
            if insufficient
            else f"payment_failed: {message or code}"
        )
        await self.store.move_purchase(
            org_id,
            purchase_id,
            ["pending"],
            {
                "$set": {"status": "failed", "failure_reason": reason, "failed_at": now},
                "$unset": {"active_key": ""},
            },
            [
                E.purchase_failed(
                    p,
                    E.FAILED_INSUFFICIENT if insufficient else E.FAILED_PAYMENT,
                    reason,
                    payment_id,
                    now,
                )
            ],
        )

    async def refund(self, who: Principal, purchase_id: str, reason: str) -> Doc:
        p = await self.purchase_of(who.org_id, purchase_id)
        if p["status"] in ("refund_pending", "refunded"):
            return p
        if p["status"] != "paid":
            raise Conflict(
                f"a {p['status']} purchase cannot be refunded", purchase_status=p["status"]
            )
        if int(p["price"]["amount"]) == 0:
            raise Conflict("a free listing has nothing to refund")
        now = self.clock()
        window = timedelta(days=self.settings.refund_window_days)
        if not R.refundable(p["paid_at"], now, window):
            raise Conflict(
                f"the refund window ({self.settings.refund_window_days} days after payment) has closed"
            )
        got = await self.store.move_purchase(
            who.org_id,
            purchase_id,
            ["paid"],
            {
                "$set": {
                    "status": "refund_pending",
                    "refund_requested_at": now,
                    "refund_reason": reason,
                }
            },
            [E.refund_requested(p, reason, now, who), E.entitlement_revoked(p, now)],
        )
        if got is None:
            return await self.purchase_of(who.org_id, purchase_id)
        return got

    async def on_refunded(self, org_id: str, purchase_id: str) -> None:
        p = await self.store.purchase(org_id, purchase_id)
        if p is None:
            return
        now = self.clock()
        if p["status"] == "refund_pending":
            await self.store.move_purchase(
                org_id,
                purchase_id,
                ["refund_pending"],
                {"$set": {"status": "refunded", "refunded_at": now}, "$unset": {"active_key": ""}},
            )
        elif p["status"] != "refunded":
            return
        await self.store.mark_sale_refunded(p["seller_org_id"], purchase_id, now)
        await self._recount_sales(p["seller_org_id"], p["listing_id"])

    async def on_refund_failed(self, org_id: str, purchase_id: str, message: str) -> None:
        p = await self.store.purchase(org_id, purchase_id)
        if p is None or p["status"] != "refund_pending":
            return
        now = self.clock()
        await self.store.move_purchase(
            org_id,
            purchase_id,
            ["refund_pending"],
            {"$set": {"status": "paid", "refund_error": message}},
            [E.entitlement_granted(p, now)],
        )

    async def _recount_sales(self, seller_org: str, listing_id: str) -> None:
        n = await self.store.count_sales(seller_org, listing_id)
        listing = await self.store.own_listing(seller_org, listing_id)
        if listing is None or int(listing.get("sales", 0)) == n:
            return
        new = {**listing, "sales": n}
        await self.store.update_listing(
            seller_org,
            listing_id,
            {"$set": {"sales": n}},
            [self._changed_event(new, ["sales"], None)],
        )

    # ================================================================== template outcomes

    async def on_template_outcome(
        self, creator_org: str, listing_id: str, built: int, passed: int
    ) -> None:
        """Generation's running totals of projects built from a template (and passed
        their gate): the larger count wins, so redelivered or reordered events change
        nothing. Counts only; no buyer or project is named."""
        if built <= 0 or not 0 <= passed <= built:
            return
        await self.store.set_template_outcomes(creator_org, listing_id, built, passed)

    # ================================================================== entitlements

    async def entitled(self, org_id: str, listing: Mapping[str, Any]) -> Doc | None:
        """The paid purchase that entitles ``org_id`` (None: not entitled by a purchase)."""
        active = await self.store.active_purchase(org_id, listing["_id"])
        return active if active is not None and active["status"] == "paid" else None

    async def download(self, org_id: str, listing_id: str, version: str | None) -> Download | Doc:
        listing = await self.visible_listing(org_id, listing_id, holders=True)
        free = int((listing.get("price") or {}).get("amount", 0)) == 0
        own = listing["org_id"] == org_id
        if not (own or free or await self.entitled(org_id, listing)):
            raise Forbidden(
                "downloading this listing needs an entitlement: buy it with POST "
                "/v1/marketplace/purchases"
            )
        want = version or listing.get("current_version")
        if not want:
            raise NotFound(f"listing {listing_id} has no version")
        v = await self.store.version(listing["org_id"], listing_id, want)
        if v is None:
            raise NotFound(f"version {want} of listing {listing_id}")
        if not v.get("artifact_id"):
            return v  # a generation reference: answered as JSON
        data = await self.store.get_artifact(v["artifact_id"])
        ext = {"application/zip": "zip", "application/gzip": "tar.gz", "application/json": "json"}
        name = f"{listing_id}-{want}.{ext.get(v['content_type'], 'bin')}"
        return Download(data, v["content_type"], name)

    # ================================================================== reviews

    async def post_review(
        self, who: Principal, listing_id: str, rating: int, title: str, body: str
    ) -> tuple[Doc, bool]:
        listing = await self.visible_listing(who.org_id, listing_id)
        if listing["org_id"] == who.org_id:
            raise Forbidden("a creator does not review its own listing")
        holder = await self.entitled(who.org_id, listing)
        if holder is None:
            raise Forbidden("only buyers who hold this listing may review it")
        if not 1 <= rating <= 5:
            raise Invalid("rating is 1 to 5 stars")
        now = self.clock()
        rid = new_id("rev")
        review, created = await self.store.upsert_review(
            who.org_id,
            listing_id,
            {
                "rating": rating,
                "title": title,
                "body": body,
                "updated_at": now,
                "purchase_id": holder["_id"],
                "author": who.user_id or who.subject,
            },
            {"_id": rid, "created_at": now},
        )
        if review is None:
            raise Conflict("the review could not be stored; try again")
        await self._rerate(listing, who, review, now)
        return review, created

    async def _rerate(self, listing: Doc, who: Principal, review: Doc, now: datetime) -> None:
        total, count = await self.store.review_stats(listing["_id"])
        sets = {
            "rating_sum": total,
            "rating_count": count,
            "rating_milli": R.rating_milli(total, count),
            "updated_at": now,
        }
        new = {**listing, **sets}
        events = [E.review_posted(review, now, who), self._changed_event(new, ["rating"], None)]
        await self.store.update_listing(listing["org_id"], listing["_id"], {"$set": sets}, events)

    async def reviews(
        self, org_id: str, listing_id: str, limit: int, cursor: str | None
    ) -> tuple[Doc, list[Doc], str | None]:
        listing = await self.visible_listing(org_id, listing_id)
        items, nxt = await self.store.reviews_page(listing_id, limit, cursor)
        return listing, items, nxt

    async def reply(self, who: Principal, listing_id: str, review_id: str, text: str) -> Doc:
        listing = await self.own_listing(who.org_id, listing_id)
        review = await self.store.review_by_id(review_id)
        if review is None or review["listing_id"] != listing["_id"]:
            raise NotFound(f"review {review_id}")
        reply = {"body": text, "at": self.clock(), "by": who.user_id or who.subject}
        got = await self.store.set_reply(review["org_id"], review_id, reply)
        return got or {**review, "reply": reply}

    # ================================================================== creator view

    async def earnings(self, org_id: str) -> Doc:
        rows: dict[str, Doc] = {}
        for s in await self.store.sales(org_id):
            r = rows.setdefault(
                s["listing_id"],
                {
                    "listing_id": s["listing_id"],
                    "title": s.get("title", ""),
                    "sales": 0,
                    "refunds": 0,
                    "gross": 0,
                    "platform_fees": 0,
                    "net": 0,
                    "refunded": 0,
                },
            )
            r["sales"] += 1
            if s.get("refunded"):
                r["refunds"] += 1
                r["refunded"] += int(s["price"])
                continue
            r["gross"] += int(s["price"])
            r["platform_fees"] += int(s["platform_fee"])
            r["net"] += int(s["creator_amount"])
        items = sorted(rows.values(), key=lambda r: (-r["net"], r["listing_id"]))
        return {
            "earnings": sum(r["net"] for r in items),
            "gross": sum(r["gross"] for r in items),
            "platform_fees": sum(r["platform_fees"] for r in items),
            "refunded": sum(r["refunded"] for r in items),
            "sales": sum(r["sales"] for r in items),
            "refunds": sum(r["refunds"] for r in items),
            "items": items,
        }

    # ================================================================== search

    def _index(self) -> SearchIndex:
        if self.index is None:
            raise Conflict("search is not enabled on this replica")
        return self.index

    async def search(self, sq: SearchQuery) -> tuple[SearchPage, list[Doc]]:
        page = self._index().search(sq)
        docs = {d["_id"]: d for d in await self.store.listings_by_ids(page.ids)}
        # a listing changed since it was indexed is shown as it is now, or left out
        items = [docs[i] for i in page.ids if i in docs and R.visible_to(docs[i], sq.viewer_org)]
        return page, items

    async def rebuild_index(self, batch: int = 1000) -> int:
        index = self._index()
        index.clear()
        after, n = 0, 0
        started = time.perf_counter()
        while True:
            docs = await self.store.searchable_listings(after, batch)
            if not docs:
                break
            n += index.upsert_many(docs)
            after = int(docs[-1]["seq"])
        log.info(
            "search index rebuilt", listings=n, seconds=round(time.perf_counter() - started, 3)
        )
        return n

    async def reindex(self, listing_ids: Sequence[str]) -> None:
        if self.index is None or not listing_ids:
            return
        ids = list(dict.fromkeys(listing_ids))
        docs = {d["_id"]: d for d in await self.store.listings_by_ids(ids, comment=INDEXER)}
        self.index.upsert_many([docs.get(i, {"_id": i, "status": "gone"}) for i in ids])
