"""No double allocation under contention, against the real database: 10,000 claims by
50 concurrent asyncio workers (one AsyncMongoClient) over 1,000 offers, each worker
claiming from a stale snapshot (the worst case), then releasing some and claiming
again. Every GPU ends up held by at most one job and every offer's availability
equals its free GPUs."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import pytest

from qlp_kit.mongo import utcnow
from qlp_scheduler.repository import PROVIDERS, Repository

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

OFFERS = 1_000
GPUS = 4
CLAIMS = 10_000
WORKERS = 50


def _offer_doc(i: int) -> dict[str, Any]:
    uuids = [f"GPU-{i:04d}-{g}" for g in range(GPUS)]
    return {
        "_id": f"prv_{i:04d}",
        "org_id": "org_bench",
        "offer_id": f"ofr_{i:04d}",
        "status": "active",
        "available_gpus": GPUS,
        "gpu_count": GPUS,
        "gpu_owner": dict.fromkeys(uuids, ""),
        "claims": {},
    }


async def test_ten_thousand_concurrent_claims_never_double_allocate(mongo_db: Any) -> None:
    await mongo_db[PROVIDERS].insert_many([_offer_doc(i) for i in range(OFFERS)])
    repo = Repository(mongo_db)
    rnd = random.Random(42)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(CLAIMS):
        queue.put_nowait(n)
    won: list[tuple[str, str, list[str]]] = []
    released: set[str] = set()
    lost = 0

    async def worker() -> None:
        nonlocal lost
        while True:
            try:
                n = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            oid = rnd.randrange(OFFERS)
            k = rnd.choice((1, 1, 2))
            # a stale view: any GPUs of the offer, free or not
            uuids = rnd.sample([f"GPU-{oid:04d}-{g}" for g in range(GPUS)], k)
            job = f"job_{n:05d}"
            if not await repo.claim(f"prv_{oid:04d}", job, "primary", uuids, utcnow()):
                lost += 1
                continue
            won.append((f"prv_{oid:04d}", job, uuids))
            if n % 5 == 0:  # churn: give some back so later claims can win them
                assert await repo.release(f"prv_{oid:04d}", job, uuids, utcnow()) is not None
                assert await repo.release(f"prv_{oid:04d}", job, uuids, utcnow()) is None
                released.add(job)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(WORKERS)))
    elapsed = time.perf_counter() - t0
    print(
        f"\n{CLAIMS} claims by {WORKERS} workers over {OFFERS} offers: {elapsed:.2f}s "
        f"({CLAIMS / elapsed:.0f}/s), won {len(won)}, lost {lost}, released {len(released)}"
    )
    assert len(won) + lost == CLAIMS
    assert len(won) > OFFERS  # contention, yet plenty of wins

    held: dict[str, str] = {}
    for _pid, job, uuids in won:
        if job in released:
            continue
        for u in uuids:
            assert u not in held, f"{u} held by {held[u]} and {job}"
            held[u] = job
    async for doc in mongo_db[PROVIDERS].find({}):
        owners = doc["gpu_owner"]
        free = sum(1 for o in owners.values() if not o)
        assert doc["available_gpus"] == free >= 0, doc
        claimed = {u for c in (doc.get("claims") or {}).values() for u in c["uuids"]}
        assert claimed == {u for u, o in owners.items() if o}
        for u, o in owners.items():
            assert (held.get(u) or "") == o
