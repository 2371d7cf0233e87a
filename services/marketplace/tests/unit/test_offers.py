"""The in-memory GPU offer catalogue: filters, the three sorts, cursors that never repeat
or skip (also while offers change), stale revisions dropped, unlisted offers."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from qlp_marketplace.offers import (
    ACTIVE,
    LOST,
    WITHDRAWN,
    BadCursor,
    Catalogue,
    Offer,
    OfferQuery,
    sort_key,
    tflops_of,
)


def doc(i: int, **kw: Any) -> dict[str, Any]:
    models = ["NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-40GB", "SIM-L4", "Mystery GPU"]
    base = {
        "_id": f"ofr_{i:04d}",
        "org_id": f"org_{i % 3}",
        "provider_id": f"prv_{i:04d}",
        "gpu_model": models[i % 4],
        "gpu_memory_gb": [80.0, 40.0, 24.0, 16.0][i % 4],
        "gpu_count": 8,
        "available_gpus": i % 9,
        "price_minor": 100 + (i * 37) % 400,
        "currency": "USD",
        "region": ["eu-west", "us-east"][i % 2],
        "reliability_bps": (i * 131) % 10_001,
        "simulated": i % 4 == 2,
        "containers": i % 2 == 0,
        "status": ACTIVE,
        "revision": 1,
    }
    return {**base, **kw}


@pytest.fixture
def cat() -> Catalogue:
    c = Catalogue()
    c.load(doc(i) for i in range(200))
    return c


def all_pages(c: Catalogue, q: OfferQuery) -> list[Offer]:
    out: list[Offer] = []
    cursor = q.cursor
    while True:
        page, cursor = c.query(replace(q, cursor=cursor))
        out.extend(page)
        if cursor is None:
            return out


def test_filters(cat: Catalogue) -> None:
    got = all_pages(
        cat,
        OfferQuery(
            model="h100",
            min_memory_gb=40,
            count=3,
            max_price=300,
            region="eu-west",
            min_reliability_bps=2000,
            simulated=False,
            limit=7,
        ),
    )
    assert got
    for o in got:
        assert "H100" in o.gpu_model and o.gpu_memory_gb >= 40 and o.available_gpus >= 3
        assert o.price_minor <= 300 and o.region == "eu-west" and o.reliability_bps >= 2000
        assert not o.simulated
    expect = {
        d["_id"]
        for d in (doc(i) for i in range(200))
        if "H100" in d["gpu_model"]
        and d["available_gpus"] >= 3
        and d["price_minor"] <= 300
        and d["region"] == "eu-west"
        and d["reliability_bps"] >= 2000
    }
    assert {o.offer_id for o in got} == expect
    sims = all_pages(cat, OfferQuery(simulated=True, limit=50))
    assert sims and all(o.simulated for o in sims)


def test_sorts(cat: Catalogue) -> None:
    by_price = all_pages(cat, OfferQuery(sort="price", limit=13))
    assert [o.price_minor for o in by_price] == sorted(o.price_minor for o in by_price)
    by_rel = all_pages(cat, OfferQuery(sort="reliability", limit=13))
    assert [o.reliability_bps for o in by_rel] == sorted(
        (o.reliability_bps for o in by_rel), reverse=True
    )
    by_ppp = all_pages(cat, OfferQuery(sort="price_per_performance", limit=13))
    known = [o for o in by_ppp if o.tflops is not None]
    unknown = [o for o in by_ppp if o.tflops is None]
    assert unknown and by_ppp[-len(unknown) :] == unknown  # unknown models last
    ratios = [o.price_minor / o.tflops for o in known if o.tflops]
    assert ratios == sorted(ratios)


def test_pages_never_repeat_or_skip(cat: Catalogue) -> None:
    for sort in ("price", "reliability", "price_per_performance"):
        whole, _ = cat.query(OfferQuery(sort=sort, limit=200))
        paged = all_pages(cat, OfferQuery(sort=sort, limit=9))
        assert [o.offer_id for o in paged] == [o.offer_id for o in whole]


def test_pages_while_offers_change(cat: Catalogue) -> None:
    page, cursor = cat.query(OfferQuery(limit=10))
    seen = {o.offer_id for o in page}
    # a new cheapest offer arrives, one on the next page goes away
    cat.put(Offer.from_doc(doc(999, price_minor=1, available_gpus=5)))
    rest = all_pages(cat, OfferQuery(limit=10, cursor=cursor))
    ids = [o.offer_id for o in rest]
    assert len(ids) == len(set(ids)) and not seen & set(ids)


def test_unlisted_offers() -> None:
    c = Catalogue()
    c.load(
        [
            doc(1, available_gpus=4),
            doc(2, available_gpus=0),
            doc(3, available_gpus=4, status=LOST),
            doc(4, available_gpus=4, status=WITHDRAWN),
            doc(5, available_gpus=2),
        ]
    )
    assert [o.offer_id for o in c.query(OfferQuery())[0]] == ["ofr_0001", "ofr_0005"]
    assert [o.offer_id for o in c.query(OfferQuery(count=3))[0]] == ["ofr_0001"]


def test_stale_revision_dropped() -> None:
    c = Catalogue()
    assert c.put(Offer.from_doc(doc(1, available_gpus=4, revision=5)))
    assert not c.put(Offer.from_doc(doc(1, available_gpus=8, revision=4)))
    assert not c.put(Offer.from_doc(doc(1, available_gpus=8, revision=5)))
    held = c.get("ofr_0001")
    assert held is not None and held.available_gpus == 4
    assert c.put(Offer.from_doc(doc(1, available_gpus=1, revision=6)))
    held = c.get("ofr_0001")
    assert held is not None and held.available_gpus == 1


def test_bad_cursors(cat: Catalogue) -> None:
    _, cursor = cat.query(OfferQuery(sort="price", limit=5))
    assert cursor
    with pytest.raises(BadCursor):
        cat.query(OfferQuery(sort="reliability", cursor=cursor))
    for bad in ("!!", "bm90IGpzb24", "WyJwcmljZSIsWyJhIiwxXV0"):
        with pytest.raises(BadCursor):
            cat.query(OfferQuery(sort="price", cursor=bad))


def test_throughput_table() -> None:
    assert tflops_of("NVIDIA H100 80GB HBM3") == 989.0
    assert tflops_of("NVIDIA GeForce RTX 4090") == 165.0
    assert tflops_of("SIM-A100") == 312.0
    assert tflops_of("Mystery GPU") is None


def test_order_follows_changes() -> None:
    import random

    rng = random.Random(3)
    c = Catalogue()
    c.load(doc(i) for i in range(100))
    for rev in range(2, 400):
        i = rng.randrange(100)
        c.put(
            Offer.from_doc(
                doc(
                    i,
                    revision=rev,
                    price_minor=rng.randint(1, 50),
                    reliability_bps=rng.randint(0, 10_000),
                    available_gpus=rng.randint(0, 8),
                )
            )
        )
    for sort in ("price", "reliability", "price_per_performance"):
        got = [o.offer_id for o in all_pages(c, OfferQuery(sort=sort, limit=7))]
        listed = [o for o in c.offers.values() if o.available_gpus >= 1]
        expect = sorted(listed, key=lambda o: sort_key(o, sort))
        assert got == [o.offer_id for o in expect]
