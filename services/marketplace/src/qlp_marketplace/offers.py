"""The GPU offer catalogue: a read model of the scheduler's offer events.

Each replica keeps every offer in memory (:class:`Catalogue`), rebuilt at start from
the ``gpu_offers`` collection and then kept current by a consumer group of that replica
alone on the scheduling topic (OfferPublished, OfferAvailabilityChanged, OfferWithdrawn).
An event is applied only when its revision is above the one applied last, so
redelivered and out-of-order events change nothing. Queries never touch the database.

Listed: offers whose status is ``active`` with at least ``count`` free GPUs.

Price per performance is the price per GPU-hour divided by the model's dense FP16
tensor throughput in TFLOPS (:data:`FP16_TFLOPS`, NVIDIA datasheet figures without
sparsity); a model not in the table sorts after every known one.
"""

from __future__ import annotations

import base64
import bisect
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

ACTIVE = "active"
LOST = "lost"
WITHDRAWN = "withdrawn"
STATUSES = (ACTIVE, LOST, WITHDRAWN)
SORTS = ("price", "reliability", "price_per_performance")

#: Dense FP16 tensor TFLOPS per GPU model token (datasheets, no sparsity).
FP16_TFLOPS: dict[str, float] = {
    "b200": 2250.0,
    "h200": 989.0,
    "h100": 989.0,
    "gh200": 989.0,
    "l40s": 362.0,
    "a100": 312.0,
    "l40": 181.0,
    "rtx 4090": 165.0,
    "rtx 6000": 364.0,
    "a10": 125.0,
    "v100": 125.0,
    "l4": 121.0,
    "rtx 3090": 71.0,
    "t4": 65.0,
}

_TOKEN = re.compile(r"[^a-z0-9]+")


def normalize_model(model: str) -> str:
    """Lower-case alphanumeric tokens joined by single spaces ("SIM-A100" → "sim a100")."""
    return " ".join(t for t in _TOKEN.split(model.lower()) if t)


def model_matches(offer_model: str, wanted: str) -> bool:
    """The scheduler's rule: the wanted tokens appear, adjacent and in order, among the
    offer model's tokens ("h100" matches "NVIDIA H100 80GB HBM3")."""
    if not wanted:
        return True
    return f" {normalize_model(wanted)} " in f" {normalize_model(offer_model)} "


def tflops_of(model: str) -> float | None:
    norm = f" {normalize_model(model)} "
    best: tuple[int, float] | None = None
    for token, value in FP16_TFLOPS.items():
        if f" {token} " in norm and (best is None or len(token) > best[0]):
            best = (len(token), value)
    return best[1] if best else None


@dataclass(frozen=True, slots=True)
class Offer:
    offer_id: str
    org_id: str
    provider_id: str
    gpu_model: str
    gpu_memory_gb: float
    gpu_count: int
    available_gpus: int
    price_minor: int
    currency: str
    region: str
    reliability_bps: int
    simulated: bool
    containers: bool
    status: str
    revision: int
    updated_ms: int = 0
    tflops: float | None = None
    #: " <normalized model tokens> ", for matching.
    model_key: str = ""

    @staticmethod
    def from_doc(d: dict[str, Any]) -> Offer:
        model = str(d.get("gpu_model", ""))
        return Offer(
            offer_id=str(d["_id"]),
            org_id=str(d.get("org_id", "")),
            provider_id=str(d.get("provider_id", "")),
            gpu_model=model,
            gpu_memory_gb=float(d.get("gpu_memory_gb", 0.0)),
            gpu_count=int(d.get("gpu_count", 0)),
            available_gpus=int(d.get("available_gpus", 0)),
            price_minor=int(d.get("price_minor", 0)),
            currency=str(d.get("currency", "USD")),
            region=str(d.get("region", "")),
            reliability_bps=int(d.get("reliability_bps", 0)),
            simulated=bool(d.get("simulated", False)),
            containers=bool(d.get("containers", False)),
            status=str(d.get("status", ACTIVE)),
            revision=int(d.get("revision", 0)),
            updated_ms=int(d.get("updated_ms", 0)),
            tflops=tflops_of(model),
            model_key=f" {normalize_model(model)} ",
        )

    def to_doc(self) -> dict[str, Any]:
        return {
            "_id": self.offer_id,
            "org_id": self.org_id,
            "provider_id": self.provider_id,
            "gpu_model": self.gpu_model,
            "gpu_memory_gb": self.gpu_memory_gb,
            "gpu_count": self.gpu_count,
            "available_gpus": self.available_gpus,
            "price_minor": self.price_minor,
            "currency": self.currency,
            "region": self.region,
            "reliability_bps": self.reliability_bps,
            "simulated": self.simulated,
            "containers": self.containers,
            "status": self.status,
            "revision": self.revision,
            "updated_ms": self.updated_ms,
        }

    @property
    def price_per_tflops(self) -> float | None:
        return self.price_minor / self.tflops if self.tflops else None


@dataclass(frozen=True, slots=True)
class OfferQuery:
    model: str | None = None
    min_memory_gb: float | None = None
    count: int = 1
    max_price: int | None = None
    region: str | None = None
    min_reliability_bps: int | None = None
    simulated: bool | None = None
    sort: str = "price"
    limit: int = 50
    cursor: str | None = None


class BadCursor(ValueError):
    """The cursor was not made by this catalogue for this sort."""


def sort_key(o: Offer, sort: str) -> tuple[Any, ...]:
    if sort == "reliability":
        return (-o.reliability_bps, o.price_minor, o.offer_id)
    if sort == "price_per_performance":
        ppt = o.price_per_tflops
        return (
            0 if ppt is not None else 1,
            ppt if ppt is not None else 0.0,
            o.price_minor,
            o.offer_id,
        )
    return (o.price_minor, o.offer_id)


def encode_cursor(sort: str, key: tuple[Any, ...]) -> str:
    raw = json.dumps([sort, list(key)], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(sort: str, cursor: str) -> tuple[Any, ...]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        got_sort, key = json.loads(raw)
    except (ValueError, TypeError) as exc:
        raise BadCursor("malformed cursor") from exc
    if got_sort != sort or not isinstance(key, list):
        raise BadCursor("the cursor belongs to another sort")
    expect = [type(v) for v in sort_key(_PROBE, sort)]
    if len(key) != len(expect) or not all(
        isinstance(v, t) or (t is float and isinstance(v, int))
        for v, t in zip(key, expect, strict=True)
    ):
        raise BadCursor("malformed cursor")
    return tuple(key)


_PROBE = Offer("x", "", "", "", 0.0, 0, 0, 0, "USD", "", 0, False, False, ACTIVE, 0)


class Catalogue:
    """Every offer of this replica, by offer id, and for each sort every offer's sort key
    in order (a sorted list kept by bisection: a change moves one entry), so a query
    walks the order from its cursor, filtering, and stops once the page is full."""

    def __init__(self) -> None:
        self.offers: dict[str, Offer] = {}
        self._order: dict[str, list[tuple[Any, ...]]] = {s: [] for s in SORTS}
        # equality filters: offer ids by region, by model key, by simulated
        self._by_region: dict[str, set[str]] = {}
        self._by_model: dict[str, set[str]] = {}
        self._by_sim: dict[bool, set[str]] = {True: set(), False: set()}

    def __len__(self) -> int:
        return len(self.offers)

    def load(self, docs: Iterable[dict[str, Any]]) -> None:
        for d in docs:
            self.put(Offer.from_doc(d))

    def put(self, offer: Offer) -> bool:
        """Apply ``offer`` unless the one held has the same or a newer revision."""
        held = self.offers.get(offer.offer_id)
        if held is not None and held.revision >= offer.revision:
            return False
        if not offer.model_key:
            offer = replace(
                offer,
                tflops=tflops_of(offer.gpu_model),
                model_key=f" {normalize_model(offer.gpu_model)} ",
            )
        self._set(offer)
        return True

    def _set(self, offer: Offer) -> None:
        held = self.offers.get(offer.offer_id)
        for sort, order in self._order.items():
            new_key = sort_key(offer, sort)
            if held is not None:
                old_key = sort_key(held, sort)
                if old_key == new_key:
                    continue
                i = bisect.bisect_left(order, old_key)
                if i < len(order) and order[i] == old_key:
                    del order[i]
            bisect.insort(order, new_key)
        oid = offer.offer_id
        if held is not None:
            self._by_region.get(held.region, set()).discard(oid)
            self._by_model.get(held.model_key, set()).discard(oid)
            self._by_sim[held.simulated].discard(oid)
        self._by_region.setdefault(offer.region, set()).add(oid)
        self._by_model.setdefault(offer.model_key, set()).add(oid)
        self._by_sim[offer.simulated].add(oid)
        self.offers[oid] = offer

    def replace_offer(self, offer: Offer) -> None:
        """Hold ``offer`` whatever its revision (OfferPublished / OfferWithdrawn)."""
        if not offer.model_key:
            offer = replace(
                offer,
                tflops=tflops_of(offer.gpu_model),
                model_key=f" {normalize_model(offer.gpu_model)} ",
            )
        self._set(offer)

    def get(self, offer_id: str) -> Offer | None:
        return self.offers.get(offer_id)

    def query(self, q: OfferQuery) -> tuple[list[Offer], str | None]:
        """One page of listed offers matching ``q`` in its sort, and the next cursor."""
        if q.sort not in SORTS:
            raise ValueError(f"unknown sort {q.sort}")
        after = decode_cursor(q.sort, q.cursor) if q.cursor else None
        offers = self.offers
        count, max_price, min_mem = q.count, q.max_price, q.min_memory_gb
        min_rel = q.min_reliability_bps

        def ok(o: Offer) -> bool:
            return not (
                o.status != ACTIVE
                or o.available_gpus < count
                or (max_price is not None and o.price_minor > max_price)
                or (min_mem is not None and o.gpu_memory_gb < min_mem)
                or (min_rel is not None and o.reliability_bps < min_rel)
            )

        # the equality filters narrow the candidates through their indexes
        sets: list[set[str]] = []
        if q.region:
            sets.append(self._by_region.get(q.region, set()))
        if q.model:
            wanted = f" {normalize_model(q.model)} "
            ids: set[str] = set()
            for model_key, members in self._by_model.items():
                if wanted in model_key:
                    ids |= members
            sets.append(ids)
        if q.simulated is not None:
            sets.append(self._by_sim[q.simulated])
        if sets:
            sets.sort(key=len)
            cand = sets[0].intersection(*sets[1:]) if len(sets) > 1 else sets[0]
            keys = sorted(sort_key(offers[i], q.sort) for i in cand)
            if after is not None:
                keys = keys[bisect.bisect_right(keys, after) :]
        else:
            order = self._order[q.sort]
            keys = order[bisect.bisect_right(order, after) if after is not None else 0 :]
        # where the sort is on a filtered field, the walk stops past its bound
        stop_price = max_price if q.sort == "price" and max_price is not None else None
        stop_rel = -min_rel if q.sort == "reliability" and min_rel is not None else None
        page: list[tuple[tuple[Any, ...], Offer]] = []
        more = False
        for key in keys:
            if stop_price is not None and key[0] > stop_price:
                break
            if stop_rel is not None and key[0] > stop_rel:
                break
            o = offers[key[-1]]
            if not ok(o):
                continue
            if len(page) == q.limit:
                more = True
                break
            page.append((key, o))
        nxt = encode_cursor(q.sort, page[-1][0]) if more else None
        return [o for _, o in page], nxt
