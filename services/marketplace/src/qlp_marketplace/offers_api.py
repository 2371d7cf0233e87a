"""HTTP API of the GPU offer catalogue (``GET /v1/gpu/offers``, needs ``gpu:read``).
Answered from this replica's in-memory catalogue; every org sees the same offers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from qlp_kit import permissions as perm
from qlp_kit.app import Ctx
from qlp_kit.auth import Principal
from qlp_kit.money import MoneyOut
from qlp_kit.permissions import require
from qlp_kit.problems import Problem
from qlp_marketplace.offers import BadCursor, Offer, OfferQuery
from qlp_marketplace.offers_store import OfferBook

GpuReader = Annotated[Principal, require(perm.GPU_READ)]

router = APIRouter(prefix="/v1/gpu", tags=["gpu"])


class OfferOut(BaseModel):
    id: str
    provider_id: str
    gpu_model: str
    gpu_memory_gb: float
    gpu_count: int
    available_gpus: int
    price_per_gpu_hour: MoneyOut
    region: str
    #: Share of the last window's minutes with a heartbeat, 0..1.
    reliability: float
    simulated: bool
    containers: bool
    #: Dense FP16 tensor TFLOPS of the model (unset when the model is not known).
    fp16_tflops: float | None = None


class OfferList(BaseModel):
    items: list[OfferOut]
    next_cursor: str | None


def book(ctx: Any) -> OfferBook:
    b: OfferBook = ctx.extras["offer_book"]
    return b


def offer_out(o: Offer) -> OfferOut:
    return OfferOut(
        id=o.offer_id,
        provider_id=o.provider_id,
        gpu_model=o.gpu_model,
        gpu_memory_gb=o.gpu_memory_gb,
        gpu_count=o.gpu_count,
        available_gpus=o.available_gpus,
        price_per_gpu_hour=MoneyOut(amount=o.price_minor, currency=o.currency),
        region=o.region,
        reliability=round(o.reliability_bps / 10_000, 4),
        simulated=o.simulated,
        containers=o.containers,
        fp16_tflops=o.tflops,
    )


@router.get("/offers", response_model=OfferList, summary="Find GPU offers")
async def offers(
    ctx: Ctx,
    principal: GpuReader,
    model: str | None = None,
    min_memory_gb: Annotated[float | None, Query(ge=0)] = None,
    count: Annotated[int, Query(ge=1, le=64)] = 1,
    max_price: Annotated[int | None, Query(ge=0, description="minor units per GPU-hour")] = None,
    region: str | None = None,
    min_reliability: Annotated[float | None, Query(ge=0, le=1)] = None,
    simulated: Annotated[
        bool | None, Query(description="true: simulated providers only; false: verified only")
    ] = None,
    sort: Annotated[str, Query(pattern="^(price|reliability|price_per_performance)$")] = "price",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> OfferList:
    """Offers of live providers with at least ``count`` free GPUs: model, memory, price per
    GPU-hour (integer minor units), region, reliability. ``sort=price_per_performance``
    ranks by price per FP16 TFLOPS (unknown models last)."""
    q = OfferQuery(
        model=model,
        min_memory_gb=min_memory_gb,
        count=count,
        max_price=max_price,
        region=region,
        min_reliability_bps=None if min_reliability is None else round(min_reliability * 10_000),
        simulated=simulated,
        sort=sort,
        limit=limit,
        cursor=cursor,
    )
    try:
        page, nxt = book(ctx).catalogue.query(q)
    except BadCursor as exc:
        raise Problem(400, "Bad request", str(exc)) from None
    return OfferList(items=[offer_out(o) for o in page], next_cursor=nxt)
