"""The GPU offer read model: the ``gpu_offers`` collection (one document per offer,
written from the scheduler's offer events, for rebuilding a replica's catalogue at
start) and :class:`OfferBook`, which applies each event to the collection and to this
replica's in-memory :class:`~qlp_marketplace.offers.Catalogue`.

``gpu_offers`` is public (every org reads every offer), so it is not a tenant
collection. Every write is idempotent: an OfferAvailabilityChanged only lands when its
revision is above the stored one; an OfferPublished sets the offer's fixed fields and
makes it active (its free GPUs only when the offer is new: later ones come with
revisions); an OfferWithdrawn makes it withdrawn until it is published again. The
three are keyed by offer id, so they arrive in the order the scheduler wrote them, and
a replay from an older offset ends in the same state.
"""

from __future__ import annotations

import time
from typing import Any

import structlog
from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from qlp_kit.mongo import IndexSpec, Mongo
from qlp_marketplace.offers import ACTIVE, STATUSES, WITHDRAWN, Catalogue, Offer

log = structlog.get_logger("qlp.marketplace.offers")

GPU_OFFERS = "gpu_offers"
INDEXES = [IndexSpec(GPU_OFFERS, (("updated_ms", ASCENDING),))]

Doc = dict[str, Any]


def now_ms() -> int:
    return int(time.time() * 1000)


class OfferStore:
    def __init__(self, mongo: Mongo) -> None:
        self.coll = mongo.db[GPU_OFFERS]

    async def all_offers(self) -> list[Doc]:
        return [d async for d in self.coll.find({})]

    async def publish(self, fixed: Doc, initial: Doc) -> None:
        await self.coll.update_one(
            {"_id": fixed["_id"]},
            {"$set": {k: v for k, v in fixed.items() if k != "_id"}, "$setOnInsert": initial},
            upsert=True,
        )

    async def set_fields(self, offer_id: str, fields: Doc) -> None:
        await self.coll.update_one({"_id": offer_id}, {"$set": fields}, upsert=True)

    async def change(self, offer_id: str, revision: int, fields: Doc) -> None:
        try:
            await self.coll.update_one(
                {"_id": offer_id, "revision": {"$lt": revision}},
                {"$set": {**fields, "revision": revision}},
                upsert=True,
            )
        except DuplicateKeyError:
            pass  # a newer revision is stored already


class OfferBook:
    """Applies the scheduler's offer events; answers queries from memory."""

    def __init__(self, store: OfferStore) -> None:
        self.store = store
        self.catalogue = Catalogue()

    async def rebuild(self) -> None:
        started = time.perf_counter()
        self.catalogue.load(await self.store.all_offers())
        log.info(
            "offer catalogue rebuilt",
            offers=len(self.catalogue),
            seconds=round(time.perf_counter() - started, 3),
        )

    async def on_published(self, msg: Any) -> None:
        at = now_ms()
        fixed: Doc = {
            "_id": msg.offer_id,
            "org_id": msg.org_id,
            "provider_id": msg.provider_id,
            "gpu_model": msg.gpu_model,
            "gpu_memory_gb": round(msg.gpu_memory_mib / 1024, 2),
            "gpu_count": int(msg.gpu_count),
            "price_minor": int(msg.price_per_gpu_hour.amount),
            "currency": msg.price_per_gpu_hour.currency or "USD",
            "region": msg.region,
            "simulated": bool(msg.simulated),
            "containers": bool(msg.containers),
            "status": ACTIVE,
            "updated_ms": at,
        }
        initial: Doc = {
            "available_gpus": int(msg.available_gpus)
            if msg.HasField("available_gpus")
            else int(msg.gpu_count),
            "reliability_bps": int(msg.reliability_bps) if msg.HasField("reliability_bps") else 0,
            "revision": 0,
        }
        await self.store.publish(fixed, initial)
        held = self.catalogue.get(msg.offer_id)
        doc = {**(held.to_doc() if held else initial), **fixed}
        self.catalogue.replace_offer(Offer.from_doc(doc))

    async def on_changed(self, msg: Any) -> None:
        status = msg.status if msg.status in STATUSES else ACTIVE
        await self.changed(
            msg.offer_id,
            int(msg.revision),
            {
                "org_id": msg.org_id,
                "provider_id": msg.provider_id,
                "available_gpus": int(msg.available_gpus),
                "gpu_count": int(msg.gpu_count),
                "reliability_bps": max(0, min(10_000, int(msg.reliability_bps))),
                "status": status,
            },
        )

    async def on_withdrawn(self, msg: Any) -> None:
        fields: Doc = {
            "org_id": msg.org_id,
            "provider_id": msg.provider_id,
            "status": WITHDRAWN,
            "updated_ms": now_ms(),
        }
        await self.store.set_fields(msg.offer_id, fields)
        held = self.catalogue.get(msg.offer_id)
        base = held.to_doc() if held else {"_id": msg.offer_id}
        self.catalogue.replace_offer(Offer.from_doc({**base, **fields}))

    async def changed(self, offer_id: str, revision: int, fields: Doc) -> None:
        fields = {**fields, "updated_ms": now_ms()}
        await self.store.change(offer_id, revision, fields)
        held = self.catalogue.get(offer_id)
        if held is not None and held.revision >= revision:
            return
        base = held.to_doc() if held else {"_id": offer_id}
        self.catalogue.put(Offer.from_doc({**base, **fields, "revision": revision}))
