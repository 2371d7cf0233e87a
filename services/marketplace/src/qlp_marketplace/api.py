"""HTTP API of the marketplace (``/v1/marketplace``). Thin: parse, call the service,
map. Reading listings, search, reviews and downloads needs any verified caller;
creating, publishing, buying, refunding and reviewing need ``marketplace:write``;
the creator's earnings need ``billing:read``."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import timedelta
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Body, Header, Query, Request, Response
from fastapi.responses import JSONResponse

from qlp_kit import permissions as perm
from qlp_kit.app import Ctx
from qlp_kit.auth import Principal
from qlp_kit.openapi_docs import problems
from qlp_kit.permissions import require
from qlp_kit.problems import Problem
from qlp_marketplace import rules as R
from qlp_marketplace import schemas as M
from qlp_marketplace import service as S
from qlp_marketplace.search import BadCursor, SearchQuery

T = TypeVar("T")

Reader = Annotated[Principal, require(perm.AUTHENTICATED)]
Writer = Annotated[Principal, require(perm.MARKETPLACE_WRITE)]
Earner = Annotated[Principal, require(perm.BILLING_READ)]
Limit = Annotated[int, Query(ge=1, le=100, examples=[20])]

router = APIRouter(prefix="/v1/marketplace", tags=["marketplace"])


def market(ctx: Any) -> S.Marketplace:
    m: S.Marketplace = ctx.extras["marketplace"]
    return m


async def call(aw: Awaitable[T]) -> T:
    try:
        return await aw
    except S.Invalid as exc:
        if exc.reasons:
            raise Problem(422, "Request is not valid", str(exc), reasons=exc.reasons) from None
        raise Problem(422, "Request is not valid", str(exc)) from None
    except S.Conflict as exc:
        raise Problem(409, "Conflict", str(exc), type_="conflict", **exc.extra) from None
    except S.NotFound as exc:
        raise Problem(404, "Not found", f"{exc} not found") from None
    except S.PaymentRequired as exc:
        raise Problem(
            402,
            "Payment required",
            str(exc),
            type_="insufficient-funds",
            purchase_id=exc.purchase_id,
        ) from None
    except S.MarketError as exc:
        titles = {403: "Forbidden", 413: "Content too large", 415: "Unsupported media type"}
        raise Problem(exc.status, titles.get(exc.status, "Bad request"), str(exc)) from None


# -- output ----------------------------------------------------------------------------


def listing_out(d: dict[str, Any], viewer_org: str) -> M.ListingOut:
    own = d["org_id"] == viewer_org
    price = d.get("price") or {"amount": 0, "currency": "USD"}
    return M.ListingOut(
        id=d["_id"],
        creator_org_id=d["org_id"],
        kind=d["kind"],
        title=d["title"],
        summary=d.get("summary", ""),
        description=d.get("description", ""),
        category=d["category"],
        tags=list(d.get("tags") or []),
        license=d["license"],
        price=M.money(price["amount"], price.get("currency", "USD")),
        free=int(price["amount"]) == 0,
        status=d["status"],
        visibility="private" if d.get("private_to_org_id") else "public",
        private_to_org_id=d.get("private_to_org_id") if own else None,
        sponsored=bool(d.get("sponsored")),
        current_version=d.get("current_version"),
        versions_count=int(d.get("versions_count", 0)),
        rating=M.rating_of(d),
        sales=int(d.get("sales", 0)),
        template_outcomes=template_outcomes_out(d),
        screenshots=list(d.get("screenshots") or []),
        review=M.ListingReviewResultOut(**d["review"]) if own and d.get("review") else None,
        created_at=d["created_at"],
        updated_at=d["updated_at"],
        published_at=d.get("published_at"),
    )


def template_outcomes_out(d: dict[str, Any]) -> M.TemplateOutcomesOut | None:
    if d["kind"] != "template":
        return None
    o = d.get("template_outcomes") or {}
    built, passed = int(o.get("projects_built", 0)), int(o.get("projects_passed", 0))
    return M.TemplateOutcomesOut(
        projects_built=built,
        projects_passed=passed,
        gate_pass_rate_bps=passed * 10_000 // built if built else None,
    )


def version_out(v: dict[str, Any]) -> M.ListingVersionOut:
    return M.ListingVersionOut(
        listing_id=v["listing_id"],
        version=v["version"],
        changelog=v.get("changelog", ""),
        artifact_id=v.get("artifact_id"),
        size_bytes=int(v.get("size_bytes") or 0),
        content_type=v.get("content_type") or "",
        sha256=v.get("sha256") or "",
        generation_version_id=v.get("generation_version_id"),
        created_at=v["created_at"],
    )


def purchase_out(p: dict[str, Any], refund_days: int = 14) -> M.MarketplacePurchaseOut:
    fee = int(p["platform_fee_bps"])
    paid = p.get("paid_at")
    deadline = (
        R.when(paid) + timedelta(days=refund_days)
        if paid and p["status"] == "paid" and int(p["price"]["amount"])
        else None
    )
    return M.MarketplacePurchaseOut(
        id=p["_id"],
        listing_id=p["listing_id"],
        listing_title=p.get("title", ""),
        kind=p["kind"],
        seller_org_id=p["seller_org_id"],
        version=p.get("version"),
        price=M.money(p["price"]["amount"], p["price"]["currency"]),
        creator_share_bps=10_000 - fee,
        platform_fee_bps=fee,
        status=p["status"],
        failure_reason=p.get("failure_reason"),
        entitled=p["status"] == "paid",
        entitlement_id=p.get("entitlement_id") if p["status"] == "paid" else None,
        refund_deadline=deadline,
        refund_error=p.get("refund_error"),
        created_at=p["created_at"],
        paid_at=paid,
        refunded_at=p.get("refunded_at"),
    )


def review_out(r: dict[str, Any]) -> M.ReviewOut:
    reply = r.get("reply")
    return M.ReviewOut(
        id=r["_id"],
        listing_id=r["listing_id"],
        reviewer_org_id=r["org_id"],
        rating=int(r["rating"]),
        title=r.get("title", ""),
        body=r.get("body", ""),
        reply=M.ReviewReplyOut(body=reply["body"], at=reply["at"]) if reply else None,
        created_at=r["created_at"],
        updated_at=r.get("updated_at") or r["created_at"],
    )


# -- listings --------------------------------------------------------------------------


@router.post(
    "/listings",
    status_code=201,
    response_model=M.ListingOut,
    summary="Create a listing (draft)",
    responses=problems(),
)
async def create_listing(body: M.ListingIn, ctx: Ctx, who: Writer) -> M.ListingOut:
    """Creates a draft listing of a component, template, skill, workflow or model. Add a
    version (its artifact) and publish it to make it public; a private listing is only
    ever visible to the org named in `private_to_org_id`."""
    data = body.model_dump()
    data["price"] = body.price.model_dump() if body.price else None
    doc = await call(market(ctx).create_listing(who, data))
    return listing_out(doc, who.org_id)


@router.get("/listings", response_model=M.ListingList, summary="List your org's listings")
async def list_listings(
    ctx: Ctx,
    who: Reader,
    status: Annotated[M.Status | None, Query(examples=["published"])] = None,
    limit: Limit = 50,
    cursor: str | None = None,
) -> M.ListingList:
    """Your org's own listings in every state (drafts included), oldest first. To browse
    what others publish, use search."""
    items, nxt = await market(ctx).list_own(who.org_id, status, limit, cursor)
    return M.ListingList(items=[listing_out(d, who.org_id) for d in items], next_cursor=nxt)


@router.get("/listings/{listing_id}", response_model=M.ListingOut, summary="Read a listing")
async def get_listing(listing_id: str, ctx: Ctx, who: Reader) -> M.ListingOut:
    """A published or deprecated listing (any org), a private one (only the org it is
    for), one your org holds (also once delisted), or one of your own in any state.
    Anything else is 404."""
    doc = await call(market(ctx).visible_listing(who.org_id, listing_id, holders=True))
    return listing_out(doc, who.org_id)


@router.patch(
    "/listings/{listing_id}",
    response_model=M.ListingOut,
    summary="Change a listing",
    responses=problems(409),
)
async def patch_listing(
    listing_id: str, body: M.ListingPatch, ctx: Ctx, who: Writer
) -> M.ListingOut:
    """Changes the fields sent. `status` deprecates (still usable by holders, no longer
    sold), delists, or brings a deprecated listing back; a move the states do not allow
    is 409."""
    # an explicit null clears only what may be empty (the private org: public again)
    changes = {
        k: v
        for k, v in body.model_dump(exclude_unset=True).items()
        if v is not None or k == "private_to_org_id"
    }
    if body.price is not None:
        changes["price"] = body.price.model_dump()
    doc = await call(market(ctx).patch_listing(who, listing_id, changes))
    return listing_out(doc, who.org_id)


@router.post(
    "/listings/{listing_id}/versions",
    status_code=201,
    response_model=M.ListingVersionOut,
    summary="Add a version",
    responses=problems(409, 413, 415),
    openapi_extra={
        "requestBody": {
            "description": "the artifact's bytes (zip, tar.gz, JSON, Markdown, text), or JSON "
            '`{"generation_version_id": …}` to reference a generation version',
            "content": {
                "application/json": {
                    "schema": M.GenerationVersionIn.model_json_schema(),
                    "example": {"generation_version_id": "ver_01JD8Z0QK8V6W4T2Y9R3N5M7PC"},
                },
                "application/zip": {"schema": {"type": "string", "format": "binary"}},
                "application/gzip": {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
)
async def add_version(
    listing_id: str,
    request: Request,
    ctx: Ctx,
    who: Writer,
    version: Annotated[str, Query(min_length=5, max_length=64, examples=["1.0.0"])],
    changelog: Annotated[str, Query(max_length=2000, examples=["first release"])] = "",
) -> M.ListingVersionOut:
    """Adds a semantic version with its changelog. Send the artifact as the raw body
    with its content type (at most 25 MiB), or JSON naming a generation version your
    org owns (stored as a reference). Versions are immutable: the same version twice
    is 409. The highest version becomes the listing's current one. A template's artifact
    is a pattern pack (a zip or tar.gz of `pack.json` and Jinja2 `*.j2` templates, at
    most 256 KiB) that buyers generate from; one that is not is 422, a larger one 413."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    limit = market(ctx).settings.max_artifact_bytes
    if int(request.headers.get("content-length") or 0) > limit:
        raise Problem(413, "Content too large", f"the artifact is larger than {limit} bytes")
    data = await request.body()
    if ctype == "application/json" and data.lstrip().startswith(b"{"):
        try:
            ref = M.GenerationVersionIn.model_validate_json(data)
        except ValueError:
            ref = None
        if ref is not None:
            v = await call(
                market(ctx).add_version(
                    who,
                    listing_id,
                    version,
                    changelog,
                    generation_version_id=ref.generation_version_id,
                )
            )
            return version_out(v)
    v = await call(
        market(ctx).add_version(who, listing_id, version, changelog, data=data, content_type=ctype)
    )
    return version_out(v)


@router.get(
    "/listings/{listing_id}/versions",
    response_model=M.ListingVersionList,
    summary="List a listing's versions",
)
async def list_versions(listing_id: str, ctx: Ctx, who: Reader) -> M.ListingVersionList:
    """Every version of a listing you can see, newest first, with its changelog, size
    and checksum."""
    items = await call(market(ctx).versions(who.org_id, listing_id))
    return M.ListingVersionList(items=[version_out(v) for v in items])


@router.post(
    "/listings/{listing_id}/publish",
    response_model=M.ListingOut,
    summary="Publish a listing",
    responses=problems(409, **{"_422": "the automatic review refused: `reasons` says why"}),
)
async def publish(listing_id: str, ctx: Ctx, who: Writer) -> M.ListingOut:
    """Submits a draft for review; the automatic review (a version with an artifact, a
    summary and description of substance, a category, a license, a price in bounds)
    runs at once. Passed: the listing is published and searchable within a second.
    Refused: 422 with the reasons, and the listing stays a draft."""
    doc = await call(market(ctx).publish(who, listing_id))
    return listing_out(doc, who.org_id)


@router.get(
    "/listings/{listing_id}/download",
    summary="Download a listing's artifact",
    response_class=Response,
    responses={
        200: {
            "description": "the artifact (or, for a generation reference, a JSON descriptor)",
            "content": {
                "application/zip": {},
                "application/octet-stream": {},
                "application/json": {
                    "example": {"generation_version_id": "ver_01JD8Z0QK8V6W4T2Y9R3N5M7PC"}
                },
            },
        },
        **problems(403),
    },
)
async def download(
    listing_id: str,
    ctx: Ctx,
    who: Reader,
    version: Annotated[str | None, Query(max_length=64, examples=["1.0.0"])] = None,
) -> Response:
    """The current (or the named) version's artifact. Needs an entitlement (a paid
    purchase), unless the listing is free or your own; otherwise 403."""
    got = await call(market(ctx).download(who.org_id, listing_id, version))
    if isinstance(got, S.Download):
        return Response(
            got.data,
            media_type=got.content_type,
            headers={"content-disposition": f'attachment; filename="{got.filename}"'},
        )
    return JSONResponse(
        {
            "listing_id": listing_id,
            "version": got["version"],
            "generation_version_id": got.get("generation_version_id"),
            "note": "this version references a generation version; its archive stays in generation",
        }
    )


# -- search ----------------------------------------------------------------------------


@router.get("/search", response_model=M.MarketplaceSearchOut, summary="Search the marketplace")
async def search(
    ctx: Ctx,
    who: Reader,
    q: Annotated[str, Query(max_length=200, examples=["fastapi template"])] = "",
    kind: M.Kind | None = None,
    category: M.Category | None = None,
    tags: Annotated[str | None, Query(max_length=400, examples=["python,api"])] = None,
    min_price: Annotated[int | None, Query(ge=0, examples=[0])] = None,
    max_price: Annotated[int | None, Query(ge=0, examples=[5000])] = None,
    min_rating: Annotated[float | None, Query(ge=0, le=5, examples=[4])] = None,
    license: M.License | None = None,
    creator: Annotated[str | None, Query(max_length=64)] = None,
    sort: M.Sort = "relevance",
    limit: Limit = 20,
    cursor: str | None = None,
) -> M.MarketplaceSearchOut:
    """Full-text search (BM25 over title, tags, summary and description; every word
    must match, and in queries of up to three words a word may also match one or two
    typos away) over published listings you may see, with
    filters (tags: all of them, comma-separated; prices in cents; minimum Bayesian
    rating), sorts, counts per facet over the matching listings, and a cursor that never
    repeats or skips. Sponsored listings rank higher and are labelled."""
    if min_price is not None and max_price is not None and min_price > max_price:
        raise Problem(422, "Request is not valid", "min_price is above max_price")
    sq = SearchQuery(
        q=q,
        viewer_org=who.org_id,
        kind=kind,
        category=category,
        tags=[t.strip().lower() for t in (tags or "").split(",") if t.strip()],
        license=license,
        creator=creator,
        min_price=min_price,
        max_price=max_price,
        min_rating=min_rating,
        sort=sort,
        limit=limit,
        cursor=cursor,
    )
    try:
        page, items = await call(market(ctx).search(sq))
    except BadCursor as exc:
        raise Problem(422, "Request is not valid", f"query parameter cursor: {exc}") from None
    scores = dict(zip(page.ids, page.scores, strict=False)) if page.scores else {}
    hits = [
        M.MarketplaceSearchHit(
            **listing_out(d, who.org_id).model_dump(), score=scores.get(d["_id"])
        )
        for d in items
    ]
    facets = {k: [M.MarketplaceFacetValue(**v) for v in vals] for k, vals in page.facets.items()}
    return M.MarketplaceSearchOut(
        items=hits, total=page.total, facets=facets, next_cursor=page.next_cursor
    )


# -- purchases -------------------------------------------------------------------------


@router.post(
    "/purchases",
    status_code=202,
    response_model=M.MarketplacePurchaseOut,
    summary="Buy a listing",
    responses=problems(
        **{
            "_402": "your prepaid balance does not cover the price (the purchase, named by "
            "purchase_id, ended failed; add credits and buy again)",
            "_409": "your org already holds (or is buying) this listing",
        }
    ),
)
async def purchase(
    body: M.MarketplacePurchaseIn,
    response: Response,
    ctx: Ctx,
    who: Writer,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> M.MarketplacePurchaseOut:
    """Starts a purchase: billing charges your prepaid balance and books the split
    (70 % creator / 30 % platform; 98 % / 2 % for models); the entitlement is granted
    when the payment is booked (the answer waits for billing up to a few seconds:
    `status` is then `paid`, else still `pending`). A balance that does not cover the
    price is a 402 problem (the purchase ended `failed`, no entitlement; its id is in
    `purchase_id`). A free listing is granted at once. Send an Idempotency-Key: a retry
    answers the same purchase and charges once."""
    doc, created = await call(market(ctx).purchase(who, body.listing_id, idempotency_key))
    if not created:
        response.status_code = 200
    return purchase_out(doc, market(ctx).settings.refund_window_days)


@router.get(
    "/purchases", response_model=M.MarketplacePurchaseList, summary="List your org's purchases"
)
async def list_purchases(
    ctx: Ctx,
    who: Reader,
    status: Annotated[M.PurchaseStatus | None, Query(examples=["paid"])] = None,
    limit: Limit = 50,
    cursor: str | None = None,
) -> M.MarketplacePurchaseList:
    """Your org's purchases, oldest first; those `paid` are its entitlements (`entitled`
    is true and the listing downloads)."""
    items, nxt = await market(ctx).purchases(who.org_id, status, limit, cursor)
    days = market(ctx).settings.refund_window_days
    return M.MarketplacePurchaseList(items=[purchase_out(p, days) for p in items], next_cursor=nxt)


@router.get(
    "/purchases/{purchase_id}", response_model=M.MarketplacePurchaseOut, summary="Read a purchase"
)
async def get_purchase(purchase_id: str, ctx: Ctx, who: Reader) -> M.MarketplacePurchaseOut:
    """One of your org's purchases: its status, the split, and until when it can be
    refunded."""
    doc = await call(market(ctx).purchase_of(who.org_id, purchase_id))
    return purchase_out(doc, market(ctx).settings.refund_window_days)


@router.post(
    "/purchases/{purchase_id}/refund",
    status_code=202,
    response_model=M.MarketplacePurchaseOut,
    summary="Refund a purchase",
    responses=problems(**{"_409": "not paid, free, or past the 14-day window"}),
)
async def refund(
    purchase_id: str,
    ctx: Ctx,
    who: Writer,
    body: Annotated[M.PurchaseRefundIn | None, Body()] = None,
) -> M.MarketplacePurchaseOut:
    """Within 14 days of payment: the entitlement ends at once and billing reverses the
    sale (you get the price back, the creator's share and the platform fee are taken
    back); `status` goes `refund_pending` → `refunded`. Asking again answers the same."""
    reason = body.reason if body else ""
    doc = await call(market(ctx).refund(who, purchase_id, reason))
    return purchase_out(doc, market(ctx).settings.refund_window_days)


# -- reviews ---------------------------------------------------------------------------


@router.get(
    "/listings/{listing_id}/reviews",
    response_model=M.ReviewList,
    summary="Read a listing's reviews",
)
async def list_reviews(
    listing_id: str, ctx: Ctx, who: Reader, limit: Limit = 50, cursor: str | None = None
) -> M.ReviewList:
    """The reviews of a listing you can see, oldest first, with the rating: the plain
    average, the Bayesian average shown and ranked by, and the count."""
    listing, items, nxt = await call(market(ctx).reviews(who.org_id, listing_id, limit, cursor))
    return M.ReviewList(
        rating=M.rating_of(listing), items=[review_out(r) for r in items], next_cursor=nxt
    )


@router.post(
    "/listings/{listing_id}/reviews",
    response_model=M.ReviewOut,
    status_code=201,
    summary="Review a listing",
    responses=problems(403),
)
async def post_review(
    listing_id: str, body: M.ReviewIn, response: Response, ctx: Ctx, who: Writer
) -> M.ReviewOut:
    """1 to 5 stars with a title and text. Only orgs that hold the listing (a paid
    purchase) may review, once per org: posting again edits your review (200)."""
    review, created = await call(
        market(ctx).post_review(who, listing_id, body.rating, body.title, body.body)
    )
    if not created:
        response.status_code = 200
    return review_out(review)


@router.post(
    "/listings/{listing_id}/reviews/{review_id}/reply",
    response_model=M.ReviewOut,
    summary="Reply to a review (creator)",
)
async def reply(
    listing_id: str, review_id: str, body: M.ReviewReplyIn, ctx: Ctx, who: Writer
) -> M.ReviewOut:
    """The listing's creator answers a review; a second reply replaces the first."""
    doc = await call(market(ctx).reply(who, listing_id, review_id, body.body))
    return review_out(doc)


# -- creator view ----------------------------------------------------------------------


@router.get(
    "/creator/earnings", response_model=M.CreatorEarningsOut, summary="Your earnings as a creator"
)
async def earnings(ctx: Ctx, who: Earner) -> M.CreatorEarningsOut:
    """Sales, refunds and net earnings (after the platform fee, refunds taken back) per
    listing, from billing's payment events. Payouts of the creator payable are in
    billing (`GET /v1/billing/payouts`)."""
    e = await market(ctx).earnings(who.org_id)
    return M.CreatorEarningsOut(
        earnings=M.money(e["earnings"]),
        gross=M.money(e["gross"]),
        platform_fees=M.money(e["platform_fees"]),
        refunded=M.money(e["refunded"]),
        sales=e["sales"],
        refunds=e["refunds"],
        items=[
            M.CreatorEarningsRow(
                listing_id=r["listing_id"],
                title=r["title"],
                sales=r["sales"],
                refunds=r["refunds"],
                gross=M.money(r["gross"]),
                platform_fees=M.money(r["platform_fees"]),
                refunded=M.money(r["refunded"]),
                net=M.money(r["net"]),
            )
            for r in e["items"]
        ],
    )
