"""In-memory offer index for placement, refreshed incrementally from the database.

Placement must not scan every offer document per job. Each scheduler process keeps
the active offers in memory, ordered by (price, offer id); a background task pulls
only the offers changed since its last pull (``updated_ms`` is indexed), and every
claim result updates the index at once. The index may be a little stale (another
replica claimed a GPU meanwhile): that costs a failed conditional update, never a
double allocation, because the claim itself is one atomic conditional update on the
offer document; a failed claim reloads that offer and tries the next candidate.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from qlp_scheduler.service import ACTIVE, OfferGroup, OfferView, minute_of, reliability


def view_from_doc(doc: dict[str, Any], now: datetime, window_min: int) -> OfferView:
    """An offer view of a provider document (one provider machine = one offer)."""
    hb = doc.get("last_heartbeat_ms")
    hb_ts = int(hb) / 1000 if isinstance(hb, int | float) else 0.0
    gpus: dict[str, Any] = doc.get("gpus") or {}
    owners: dict[str, Any] = doc.get("gpu_owner") or {}
    ordered = sorted(gpus, key=lambda u: (int(gpus[u].get("index", 0)), u))
    return OfferView(
        offer_id=str(doc["offer_id"]),
        provider_id=str(doc["_id"]),
        provider_org_id=str(doc["org_id"]),
        machine_id=str(doc["machine_id"]),
        gpu_model=str(doc.get("gpu_model", "")),
        gpu_memory_gb=float(doc.get("gpu_memory_gb", 0) or 0),
        gpu_count=int(doc.get("gpu_count", 0) or 0),
        available_gpus=int(doc.get("available_gpus", 0) or 0),
        price_minor=int(doc["price_minor"]),
        currency=str(doc.get("currency", "USD")),
        region=str(doc.get("region", "")),
        reliability=reliability(
            doc.get("uptime") or {},
            int(doc.get("registered_minute", minute_of(now))),
            minute_of(now),
            window_min,
            doc.get("losses") or {},
        ),
        last_heartbeat_ts=hb_ts,
        # declared lost by the failover service: no new work until heard from again
        status="lost" if doc.get("liveness") == "lost" else str(doc.get("status", ACTIVE)),
        containers=bool(doc.get("containers")),
        gpu_owner={u: str(owners.get(u, "") or "") for u in ordered},
    )


class _Bucket:
    __slots__ = ("max_reliability", "order")

    def __init__(self) -> None:
        self.order: list[tuple[int, str]] = []
        self.max_reliability = 0.0


class OfferIndex:
    """Active offers by id, iterable in ascending (price, id) order, overall and per
    (GPU model, region) bucket; each bucket knows an upper bound of its offers'
    reliability, which tightens the placement bound."""

    def __init__(self) -> None:
        self._by_id: dict[str, OfferView] = {}
        self._order: list[tuple[int, str]] = []
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self.last_refresh: datetime | None = None

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, offer_id: str) -> OfferView | None:
        return self._by_id.get(offer_id)

    def upsert(self, view: OfferView) -> None:
        old = self._by_id.get(view.offer_id)
        if old is not None and (
            old.price_minor != view.price_minor
            or old.gpu_model != view.gpu_model
            or old.region != view.region
            or view.status != ACTIVE
        ):
            self.remove(view.offer_id)
            old = None
        if view.status != ACTIVE:
            return
        bucket = self._buckets.get((view.gpu_model, view.region))
        if bucket is None:
            bucket = self._buckets[(view.gpu_model, view.region)] = _Bucket()
        # a bound: it may stay above the true maximum, never below it
        bucket.max_reliability = max(bucket.max_reliability, view.reliability)
        if old is None:
            key = (view.price_minor, view.offer_id)
            bisect.insort(self._order, key)
            bisect.insort(bucket.order, key)
        self._by_id[view.offer_id] = view

    def remove(self, offer_id: str) -> None:
        old = self._by_id.pop(offer_id, None)
        if old is None:
            return
        key = (old.price_minor, old.offer_id)
        _remove(self._order, key)
        bucket = self._buckets.get((old.gpu_model, old.region))
        if bucket is not None:
            _remove(bucket.order, key)

    def by_price(self) -> Iterator[OfferView]:
        return self._iter(self._order)

    def _iter(self, order: list[tuple[int, str]]) -> Iterator[OfferView]:
        by_id = self._by_id
        for _, oid in order:
            view = by_id.get(oid)
            if view is not None:
                yield view

    def groups(self) -> list[OfferGroup]:
        return [
            OfferGroup(self._iter(b.order), model, region, b.max_reliability)
            for (model, region), b in self._buckets.items()
            if b.order
        ]


def _remove(order: list[tuple[int, str]], key: tuple[int, str]) -> None:
    i = bisect.bisect_left(order, key)
    if i < len(order) and order[i] == key:
        del order[i]
