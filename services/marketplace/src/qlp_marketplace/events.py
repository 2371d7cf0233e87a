"""Building the marketplace's protobuf events (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from qlp.common.v1 import actor_pb2, money_pb2
from qlp.marketplace.v1 import events_pb2 as mev
from qlp.marketplace.v1 import types_pb2 as mt
from qlp_kit.auth import Principal
from qlp_kit.outbox import Staged, stage

SOURCE = "qlp/marketplace"
KIND = {
    "component": mt.LISTING_KIND_COMPONENT,
    "template": mt.LISTING_KIND_TEMPLATE,
    "skill": mt.LISTING_KIND_SKILL,
    "workflow": mt.LISTING_KIND_WORKFLOW,
    "model": mt.LISTING_KIND_MODEL,
}
STATUS = {
    "draft": mt.LISTING_STATUS_DRAFT,
    "in_review": mt.LISTING_STATUS_IN_REVIEW,
    "published": mt.LISTING_STATUS_ACTIVE,
    "deprecated": mt.LISTING_STATUS_DEPRECATED,
    "delisted": mt.LISTING_STATUS_DELISTED,
}
CATEGORY = {
    "web": mt.LISTING_CATEGORY_WEB,
    "api": mt.LISTING_CATEGORY_API,
    "data": mt.LISTING_CATEGORY_DATA,
    "ml": mt.LISTING_CATEGORY_ML,
    "devops": mt.LISTING_CATEGORY_DEVOPS,
    "security": mt.LISTING_CATEGORY_SECURITY,
    "productivity": mt.LISTING_CATEGORY_PRODUCTIVITY,
    "other": mt.LISTING_CATEGORY_OTHER,
}


def ts(value: datetime) -> Timestamp:
    t = Timestamp()
    t.FromDatetime(value)
    return t


def money(amount: int, currency: str = "USD") -> money_pb2.Money:
    return money_pb2.Money(amount=int(amount), currency=currency)


def actor(p: Principal | None) -> actor_pb2.Actor:
    if p is None:
        return actor_pb2.Actor(type=actor_pb2.ACTOR_TYPE_SERVICE, id="marketplace")
    kind = actor_pb2.ACTOR_TYPE_API_KEY if p.kind == "api_key" else actor_pb2.ACTOR_TYPE_USER
    return actor_pb2.Actor(type=kind, id=p.user_id or p.subject, org_id=p.org_id)


def out(msg: Any, org_id: str, key: str) -> Staged:
    return stage(msg, org_id=org_id, key=key, source=SOURCE)


def _price(listing: Mapping[str, Any]) -> money_pb2.Money:
    p = listing.get("price") or {}
    return money(int(p.get("amount", 0)), p.get("currency", "USD"))


def listing_published(
    listing: Mapping[str, Any], fee_bps: int, now: datetime, who: Principal | None
) -> Staged:
    msg = mev.ListingPublished(
        org_id=listing["org_id"],
        listing_id=listing["_id"],
        kind=KIND.get(listing["kind"], mt.LISTING_KIND_UNSPECIFIED),
        title=listing["title"],
        summary=listing.get("summary", ""),
        price=_price(listing),
        creator_share_bps=10_000 - fee_bps,
        platform_fee_bps=fee_bps,
        version=listing.get("current_version") or "",
        artifact_id=listing.get("artifact_id") or "",
        tags=list(listing.get("tags") or []),
        published_at=ts(now),
        actor=actor(who),
    )
    return out(msg, listing["org_id"], listing["_id"])


def listing_updated(
    listing: Mapping[str, Any],
    fee_bps: int,
    changed: list[str],
    now: datetime,
    who: Principal | None,
) -> Staged:
    msg = mev.ListingUpdated(
        org_id=listing["org_id"],
        listing_id=listing["_id"],
        kind=KIND.get(listing["kind"], mt.LISTING_KIND_UNSPECIFIED),
        title=listing["title"],
        summary=listing.get("summary", ""),
        price=_price(listing),
        creator_share_bps=10_000 - fee_bps,
        platform_fee_bps=fee_bps,
        version=listing.get("current_version") or "",
        artifact_id=listing.get("artifact_id") or "",
        tags=list(listing.get("tags") or []),
        status=STATUS.get(listing.get("status", ""), mt.LISTING_STATUS_UNSPECIFIED),
        changed_fields=changed,
        updated_at=ts(now),
        actor=actor(who),
        category=CATEGORY.get(listing.get("category", ""), mt.LISTING_CATEGORY_UNSPECIFIED),
        license=listing.get("license", ""),
        private_to_org_id=listing.get("private_to_org_id") or "",
        sponsored=bool(listing.get("sponsored")),
    )
    return out(msg, listing["org_id"], listing["_id"])


def version_added(
    v: Mapping[str, Any], now: datetime, who: Principal, kind: str = "", archive: bytes = b""
) -> Staged:
    msg = mev.ListingVersionAdded(
        org_id=v["org_id"],
        listing_id=v["listing_id"],
        version=v["version"],
        changelog=v.get("changelog", ""),
        artifact_id=v.get("artifact_id") or "",
        size_bytes=int(v.get("size_bytes") or 0),
        content_type=v.get("content_type") or "",
        generation_version_id=v.get("generation_version_id") or "",
        sha256=v.get("sha256") or "",
        added_at=ts(now),
        actor=actor(who),
        kind=KIND.get(kind, mt.LISTING_KIND_UNSPECIFIED),
        template_archive=archive,
    )
    return out(msg, v["org_id"], v["listing_id"])


def purchase_requested(p: Mapping[str, Any], now: datetime, who: Principal) -> Staged:
    fee = int(p["platform_fee_bps"])
    msg = mev.PurchaseRequested(
        org_id=p["org_id"],
        purchase_id=p["_id"],
        listing_id=p["listing_id"],
        listing_version=p.get("version") or "",
        seller_org_id=p["seller_org_id"],
        price=money(p["price"]["amount"], p["price"]["currency"]),
        creator_share_bps=10_000 - fee,
        platform_fee_bps=fee,
        requested_at=ts(now),
        actor=actor(who),
    )
    return out(msg, p["org_id"], p["_id"])


def purchase_completed(
    p: Mapping[str, Any], creator: int, fee: int, payment_id: str, now: datetime
) -> Staged:
    cur = p["price"]["currency"]
    msg = mev.PurchaseCompleted(
        org_id=p["org_id"],
        purchase_id=p["_id"],
        listing_id=p["listing_id"],
        seller_org_id=p["seller_org_id"],
        price=money(p["price"]["amount"], cur),
        creator_amount=money(creator, cur),
        platform_fee=money(fee, cur),
        payment_id=payment_id,
        completed_at=ts(now),
    )
    return out(msg, p["org_id"], p["_id"])


def entitlement_granted(p: Mapping[str, Any], now: datetime) -> Staged:
    msg = mev.EntitlementGranted(
        org_id=p["org_id"],
        entitlement_id=p["entitlement_id"],
        listing_id=p["listing_id"],
        kind=KIND.get(p.get("kind", ""), mt.LISTING_KIND_UNSPECIFIED),
        listing_version=p.get("version") or "",
        purchase_id=p["_id"] if p["price"]["amount"] else "",
        granted_at=ts(now),
    )
    return out(msg, p["org_id"], p["entitlement_id"])


def entitlement_revoked(p: Mapping[str, Any], now: datetime) -> Staged:
    msg = mev.EntitlementRevoked(
        org_id=p["org_id"],
        entitlement_id=p.get("entitlement_id") or "",
        listing_id=p["listing_id"],
        purchase_id=p["_id"],
        revoked_at=ts(now),
    )
    return out(msg, p["org_id"], p.get("entitlement_id") or p["_id"])


def purchase_failed(
    p: Mapping[str, Any], reason: int, message: str, payment_id: str, now: datetime
) -> Staged:
    msg = mev.PurchaseFailed(
        org_id=p["org_id"],
        purchase_id=p["_id"],
        listing_id=p["listing_id"],
        reason=reason,  # type: ignore[arg-type]
        message=message,
        payment_id=payment_id,
        failed_at=ts(now),
    )
    return out(msg, p["org_id"], p["_id"])


def refund_requested(p: Mapping[str, Any], reason: str, now: datetime, who: Principal) -> Staged:
    msg = mev.RefundRequested(
        org_id=p["org_id"],
        purchase_id=p["_id"],
        listing_id=p["listing_id"],
        seller_org_id=p["seller_org_id"],
        price=money(p["price"]["amount"], p["price"]["currency"]),
        reason=reason,
        requested_at=ts(now),
        actor=actor(who),
    )
    return out(msg, p["org_id"], p["_id"])


def review_posted(r: Mapping[str, Any], now: datetime, who: Principal) -> Staged:
    msg = mev.ReviewPosted(
        org_id=r["org_id"],
        review_id=r["_id"],
        listing_id=r["listing_id"],
        purchase_id=r.get("purchase_id") or "",
        rating=int(r["rating"]),
        title=r.get("title", ""),
        body=r.get("body", ""),
        posted_at=ts(now),
        actor=actor(who),
    )
    return out(msg, r["org_id"], r["_id"])


FAILED_INSUFFICIENT = mt.PURCHASE_FAILURE_REASON_INSUFFICIENT_FUNDS
FAILED_PAYMENT = mt.PURCHASE_FAILURE_REASON_PAYMENT_FAILED
