"""Request and response models of the public API (separate from stored documents)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from qlp_kit.money import MoneyIn, MoneyOut

Kind = Literal["component", "template", "skill", "workflow", "model"]
Category = Literal["web", "api", "data", "ml", "devops", "security", "productivity", "other"]
License = Literal["MIT", "Apache-2.0", "BSD-3-Clause", "GPL-3.0", "MPL-2.0", "proprietary"]
Status = Literal["draft", "in_review", "published", "deprecated", "delisted"]
PurchaseStatus = Literal["pending", "paid", "failed", "refund_pending", "refunded"]
Sort = Literal["relevance", "newest", "price_asc", "price_desc", "rating", "popularity"]

LISTING_EXAMPLE: dict[str, Any] = {
    "kind": "template",
    "title": "FastAPI + MongoDB service template",
    "summary": "A production-ready FastAPI service with MongoDB, tests and a Helm chart.",
    "description": "## What you get\n\nRoutes, repository, settings, tests and a chart.",
    "category": "api",
    "tags": ["python", "fastapi", "mongodb"],
    "license": "MIT",
    "price": {"amount": 1500, "currency": "USD"},
}


class ListingIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [LISTING_EXAMPLE]})

    kind: Kind
    title: str = Field(min_length=3, max_length=120)
    summary: str = Field(default="", max_length=280)
    description: str = Field(default="", max_length=20_000, description="Markdown")
    category: Category
    tags: list[str] = Field(default_factory=list, max_length=10)
    license: License
    price: MoneyIn | None = Field(default=None, description="omitted or 0: a free listing")
    private_to_org_id: str | None = Field(
        default=None,
        max_length=64,
        description="a private listing: only this org (and the creator's) sees and buys it",
    )
    sponsored: bool = Field(
        default=False, description="paid placement: ranks higher, always labelled"
    )
    screenshots: list[str] = Field(default_factory=list, max_length=8)


class ListingPatch(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"price": {"amount": 1900, "currency": "USD"}, "tags": ["python"]}]
        },
    )

    title: str | None = Field(default=None, min_length=3, max_length=120)
    summary: str | None = Field(default=None, max_length=280)
    description: str | None = Field(default=None, max_length=20_000)
    category: Category | None = None
    tags: list[str] | None = Field(default=None, max_length=10)
    license: License | None = None
    price: MoneyIn | None = None
    private_to_org_id: str | None = Field(default=None, max_length=64)
    sponsored: bool | None = None
    screenshots: list[str] | None = Field(default=None, max_length=8)
    status: Literal["published", "deprecated", "delisted"] | None = Field(
        default=None, description="deprecate, delist, or bring a deprecated listing back"
    )


class ListingRatingOut(BaseModel):
    average: float = Field(description="the plain mean of the stars", examples=[4.5])
    bayesian: float = Field(
        description="the shown rating: the mean pulled toward 3.5 by 5 virtual reviews",
        examples=[4.1],
    )
    count: int = Field(examples=[12])


class ListingReviewResultOut(BaseModel):
    passed: bool
    reasons: list[str] = Field(default_factory=list)
    at: datetime | None = None


class TemplateOutcomesOut(BaseModel):
    """Projects generation built from this template and how many passed their quality
    gate (counts over every buyer; nobody's project is shown)."""

    projects_built: int = Field(examples=[12])
    projects_passed: int = Field(examples=[11])
    gate_pass_rate_bps: int | None = Field(
        default=None, description="passed / built in basis points", examples=[9167]
    )


class ListingOut(BaseModel):
    id: str = Field(examples=["lst_01JD8Z0QK8V6W4T2Y9R3N5M7PA"])
    creator_org_id: str = Field(examples=["org_01JD8Z0QK8V6W4T2Y9R3N5M7PB"])
    kind: Kind
    title: str
    summary: str
    description: str
    category: Category
    tags: list[str]
    license: License
    price: MoneyOut
    free: bool
    status: Status
    visibility: Literal["public", "private"]
    private_to_org_id: str | None = Field(default=None, description="shown to the creator only")
    sponsored: bool = Field(description="paid placement; shown as sponsored wherever it ranks")
    current_version: str | None = Field(default=None, examples=["1.2.0"])
    versions_count: int = 0
    rating: ListingRatingOut
    sales: int = 0
    template_outcomes: TemplateOutcomesOut | None = Field(
        default=None, description="templates only: gate pass rate of projects built from it"
    )
    screenshots: list[str] = Field(default_factory=list)
    review: ListingReviewResultOut | None = Field(
        default=None, description="the last automatic review (creator only)"
    )
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None = None


class ListingList(BaseModel):
    items: list[ListingOut]
    next_cursor: str | None = None


class GenerationVersionIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"generation_version_id": "ver_01JD8Z0QK8V6W4T2Y9R3N5M7PC"}]
        },
    )

    generation_version_id: str = Field(min_length=3, max_length=64)


class ListingVersionOut(BaseModel):
    listing_id: str
    version: str = Field(examples=["1.2.0"])
    changelog: str
    artifact_id: str | None = None
    size_bytes: int = 0
    content_type: str = Field(examples=["application/zip"])
    sha256: str = ""
    generation_version_id: str | None = None
    created_at: datetime


class ListingVersionList(BaseModel):
    items: list[ListingVersionOut]


class MarketplaceFacetValue(BaseModel):
    value: str = Field(examples=["template"])
    count: int = Field(examples=[42])


class MarketplaceSearchHit(ListingOut):
    score: float | None = Field(default=None, description="relevance (relevance sort only)")


class MarketplaceSearchOut(BaseModel):
    items: list[MarketplaceSearchHit]
    total: int = Field(description="listings matching the query and filters", examples=[42])
    facets: dict[str, list[MarketplaceFacetValue]] = Field(
        description="counts per value of kind, category, tags, license, creator, price range and"
        " minimum rating, over the matching listings",
        examples=[{"kind": [{"value": "template", "count": 30}, {"value": "skill", "count": 12}]}],
    )
    next_cursor: str | None = None


class MarketplacePurchaseIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"listing_id": "lst_01JD8Z0QK8V6W4T2Y9R3N5M7PA"}]},
    )

    listing_id: str = Field(min_length=3, max_length=64)


class MarketplacePurchaseOut(BaseModel):
    id: str = Field(examples=["pur_01JD8Z0QK8V6W4T2Y9R3N5M7PD"])
    listing_id: str
    listing_title: str
    kind: Kind
    seller_org_id: str
    version: str | None = None
    price: MoneyOut
    creator_share_bps: int = Field(examples=[7000])
    platform_fee_bps: int = Field(examples=[3000])
    status: PurchaseStatus
    failure_reason: str | None = None
    entitled: bool = Field(description="the buyer's org may use and download the listing")
    entitlement_id: str | None = None
    refund_deadline: datetime | None = None
    refund_error: str | None = None
    created_at: datetime
    paid_at: datetime | None = None
    refunded_at: datetime | None = None


class MarketplacePurchaseList(BaseModel):
    items: list[MarketplacePurchaseOut]
    next_cursor: str | None = None


class PurchaseRefundIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"reason": "not what I needed"}]}
    )

    reason: str = Field(default="", max_length=500)


class ReviewIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"rating": 5, "title": "Saved me a week", "body": "Clean and tested."}]
        },
    )

    rating: int = Field(ge=1, le=5)
    title: str = Field(default="", max_length=120)
    body: str = Field(default="", max_length=5000)


class ReviewReplyIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"body": "Thanks!"}]})

    body: str = Field(min_length=1, max_length=5000)


class ReviewReplyOut(BaseModel):
    body: str
    at: datetime


class ReviewOut(BaseModel):
    id: str = Field(examples=["rev_01JD8Z0QK8V6W4T2Y9R3N5M7PE"])
    listing_id: str
    reviewer_org_id: str
    rating: int = Field(examples=[5])
    title: str
    body: str
    reply: ReviewReplyOut | None = None
    created_at: datetime
    updated_at: datetime


class ReviewList(BaseModel):
    rating: ListingRatingOut
    items: list[ReviewOut]
    next_cursor: str | None = None


class CreatorEarningsRow(BaseModel):
    listing_id: str
    title: str
    sales: int
    refunds: int
    gross: MoneyOut
    platform_fees: MoneyOut
    refunded: MoneyOut
    net: MoneyOut


class CreatorEarningsOut(BaseModel):
    earnings: MoneyOut = Field(
        description="the creator's net after the platform fee, refunds taken back"
    )
    gross: MoneyOut
    platform_fees: MoneyOut
    refunded: MoneyOut
    sales: int
    refunds: int
    items: list[CreatorEarningsRow]
    payouts: str = Field(
        default="GET /v1/billing/payouts",
        description="where payouts of the creator payable are listed",
    )


def money(amount: int, currency: str = "USD") -> MoneyOut:
    return MoneyOut(amount=int(amount), currency=currency)


def rating_of(doc: dict[str, Any]) -> ListingRatingOut:
    from qlp_marketplace.rules import bayesian

    total, count = int(doc.get("rating_sum", 0)), int(doc.get("rating_count", 0))
    return ListingRatingOut(
        average=round(total / count, 2) if count else 0.0,
        bayesian=round(bayesian(total, count), 2),
        count=count,
    )
