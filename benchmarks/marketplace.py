"""Marketplace search: query latency with facets, index rebuild, event → searchable lag.

    uv run python -m benchmarks.marketplace --quick      # a couple of minutes
    uv run python -m benchmarks.marketplace              # 100,000 listings

Measured:

- search p50/p99 over N synthetic listings (the embedded Tantivy index in this
  process, as one replica holds it): BM25 over 1-3 random words from the catalogue's
  vocabulary, 0-2 random filters (kind, category, tag, price range, minimum rating),
  a random sort, limit 20, with every facet's counts (7 aggregations) in each answer;
  also the first page fetched by cursor (page 2);
- index build from documents: N listings into an empty index (the engine's share of
  a rebuild), and the replica's real rebuild from MongoDB (``rebuild_index``: read
  every published listing by seq, index in batches) for M listings stored in the
  embedded database;
- read-model lag: the marketplace app in-process against the embedded broker and
  database; a listing is published over HTTP, then searched for over HTTP every 5 ms
  until it appears: publish answered → first search that finds it (outbox relay,
  broker, this replica's search consumer, index commit and reload).

- GPU offer catalogue (``GET /v1/gpu/offers``): query p50/p99 over 10,000 synthetic
  offers in this replica's in-memory catalogue, random mixes of 0-4 filters (model,
  minimum memory, count, max price, region, minimum reliability, simulated) and a
  random sort (price, reliability, price per performance), limit 50, plus page 2 by
  cursor; and the read-model lag: OfferPublished / OfferAvailabilityChanged events
  sent to the embedded broker, then the offer queried over HTTP every 5 ms until it
  shows the new free-GPU count: broker acknowledged → first answer that shows it.

    uv run python -m benchmarks.marketplace --offers-only   # only the offer catalogue

Targets (issue): search p99 <= 50 ms in-process (aim 10 ms), event -> searchable
p99 <= 1 s; offer query p99 <= 20 ms over 10,000 offers, offer event -> queryable
p99 <= 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import random
import statistics
import time
import uuid
from typing import Any

import httpx
from pymongo import AsyncMongoClient

from benchmarks._common import RESULTS, write_results
from qlp.common.v1 import money_pb2
from qlp.scheduling.v1 import events_pb2 as sched_ev
from qlp_contracts import topics
from qlp_infra.topics import provision
from qlp_kit.auth import Principal
from qlp_kit.events import build_headers
from qlp_kit.mongo import Mongo
from qlp_kit.producer import Producer, Record
from qlp_marketplace import rules as R
from qlp_marketplace.main import service as marketplace_service
from qlp_marketplace.offers import SORTS as OFFER_SORTS
from qlp_marketplace.offers import Catalogue, OfferQuery
from qlp_marketplace.repository import Store
from qlp_marketplace.search import SORTS, SearchIndex, SearchQuery
from qlp_marketplace.service import Marketplace
from qlp_marketplace.settings import MarketplaceSettings
from qlp_testing.infra import start_embedded
from qlp_testing.principals import PrincipalAuth
from qlp_testing.services import running_app

SECRET = "bench-secret"  # noqa: S105 - a local benchmark signing key
WORDS = (
    "api service template python fastapi django flask react vue svelte kafka outbox "
    "consumer retry mongodb postgres redis cache queue worker scheduler cron etl "
    "warehouse dashboard chart table form auth oauth login jwt billing invoice stripe "
    "payment search index tantivy vector embedding llm model finetune adapter lora "
    "support ticket chat agent workflow pipeline deploy helm kubernetes docker terraform "
    "monitor alert metrics tracing logging security scan audit backup restore migrate "
    "graphql grpc websocket stream upload image video pdf export import csv json yaml"
).split()
TAGS = WORDS[:60]


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def _ms(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(_pct(values, 0.5) * 1000, 2),
        "p99_ms": round(_pct(values, 0.99) * 1000, 2),
        "mean_ms": round(statistics.fmean(values) * 1000, 2) if values else 0.0,
        "n": len(values),
    }


def synthetic(i: int, rng: random.Random) -> dict[str, Any]:
    title = " ".join(rng.sample(WORDS, 4))
    kind = rng.choice(R.KINDS)
    return {
        "_id": f"lst_bench{i:07d}",
        "seq": i + 1,
        "org_id": f"org_creator{rng.randrange(500)}",
        "status": "published",
        "kind": kind,
        "category": rng.choice(R.CATEGORIES),
        "title": title.title(),
        "summary": " ".join(rng.sample(WORDS, 10)),
        "description": " ".join(rng.choices(WORDS, k=60)),
        "tags": rng.sample(TAGS, rng.randrange(1, 5)),
        "license": rng.choice(R.LICENSES),
        "price": {
            "amount": rng.choice([0, 0, 500, 990, 1500, 2900, 4900, 9900]),
            "currency": "USD",
        },
        "rating_milli": rng.randrange(0, 5000),
        "sales": rng.randrange(0, 1000),
        "published_ms": 1_700_000_000_000 + i * 1000,
        "sponsored": rng.random() < 0.01,
        "private_to_org_id": None,
        "created_at": None,
        "updated_at": None,
    }


def random_query(rng: random.Random) -> SearchQuery:
    sq = SearchQuery(q=" ".join(rng.sample(WORDS, rng.randrange(1, 4))), viewer_org="org_v")
    for _ in range(rng.randrange(0, 3)):
        f = rng.randrange(5)
        if f == 0:
            sq.kind = rng.choice(R.KINDS)
        elif f == 1:
            sq.category = rng.choice(R.CATEGORIES)
        elif f == 2:
            sq.tags = [rng.choice(TAGS)]
        elif f == 3:
            sq.max_price = rng.choice([0, 1000, 5000])
        else:
            sq.min_rating = rng.choice([2.0, 3.0, 4.0])
    sq.sort = rng.choice(SORTS)
    return sq


def bench_search(n: int, queries: int) -> dict[str, Any]:
    rng = random.Random(7)  # noqa: S311 - synthetic data, not crypto
    docs = [synthetic(i, rng) for i in range(n)]
    index = SearchIndex()
    started = time.perf_counter()
    for i in range(0, n, 5000):
        index.upsert_many(docs[i : i + 5000])
    build_s = time.perf_counter() - started
    for _ in range(20):  # warm
        index.search(random_query(rng))
    first: list[float] = []
    second: list[float] = []
    hits = 0
    for _ in range(queries):
        sq = random_query(rng)
        t = time.perf_counter()
        page = index.search(sq)
        first.append(time.perf_counter() - t)
        hits += page.total
        if page.next_cursor:
            sq.cursor = page.next_cursor
            t = time.perf_counter()
            index.search(sq)
            second.append(time.perf_counter() - t)
    return {
        "listings": n,
        "index_build_from_documents_s": round(build_s, 2),
        "search_with_facets": _ms(first),
        "search_page_2_by_cursor": _ms(second),
        "mean_matches_per_query": round(hits / max(1, queries)),
    }


async def bench_rebuild(mongodb_url: str, m: int) -> dict[str, Any]:
    name = f"bench_marketplace_{uuid.uuid4().hex[:8]}"
    raw: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_url, tz_aware=True)
    rng = random.Random(11)  # noqa: S311 - synthetic data, not crypto
    try:
        coll = raw[name]["listings"]
        await coll.create_index([("status", 1), ("seq", 1)])
        t = time.perf_counter()
        for i in range(0, m, 2000):
            await coll.insert_many([synthetic(j, rng) for j in range(i, min(m, i + 2000))])
        load_s = time.perf_counter() - t
        settings = MarketplaceSettings(
            kafka_bootstrap_servers="127.0.0.1:9", mongodb_url=mongodb_url, mongodb_database=name
        )
        mongo = Mongo(mongodb_url, name)
        market = Marketplace(Store(mongo), settings, SearchIndex())
        t = time.perf_counter()
        indexed = await market.rebuild_index()
        rebuild_s = time.perf_counter() - t
        await mongo.close()
        await raw.drop_database(name)
    finally:
        await raw.close()
    return {
        "listings": m,
        "indexed": indexed,
        "rebuild_from_mongodb_s": round(rebuild_s, 2),
        "rate_per_s": round(indexed / rebuild_s) if rebuild_s else None,
        "loading_the_database_s": round(load_s, 2),
    }


async def bench_lag(kafka: str, mongodb_url: str, n: int) -> dict[str, Any]:
    await provision(kafka)
    settings = MarketplaceSettings(
        kafka_bootstrap_servers=kafka,
        mongodb_url=mongodb_url,
        mongodb_database=f"bench_mkt_lag_{uuid.uuid4().hex[:8]}",
        internal_auth_secret=SECRET,
        consumer_group_prefix=f"bench-mkt-{uuid.uuid4().hex[:6]}",
        relay_poll_interval_s=0.05,
    )
    seller = Principal(org_id="org_bench_seller", subject="usr_s", roles=["owner"], user_id="usr_s")
    buyer = Principal(org_id="org_bench_buyer", subject="usr_b", roles=["owner"], user_id="usr_b")
    lags: list[float] = []
    async with (
        running_app(marketplace_service, settings, timeout=120) as url,
        httpx.AsyncClient(base_url=url, auth=PrincipalAuth(SECRET, seller), timeout=20) as s,
        httpx.AsyncClient(base_url=url, auth=PrincipalAuth(SECRET, buyer), timeout=20) as b,
    ):
        for i in range(n):
            word = f"zq{uuid.uuid4().hex[:10]}"
            r = await s.post(
                "/v1/marketplace/listings",
                json={
                    "kind": "component",
                    "title": f"Lag probe {word}",
                    "summary": "a listing that measures the read model's lag",
                    "description": "Published, then searched for until it shows up.",
                    "category": "other",
                    "license": "MIT",
                },
            )
            lid = r.json()["id"]
            await s.post(
                f"/v1/marketplace/listings/{lid}/versions",
                params={"version": "1.0.0"},
                content=b"x",
                headers={"content-type": "text/plain"},
            )
            r = await s.post(f"/v1/marketplace/listings/{lid}/publish")
            assert r.status_code == 200, r.text
            t0 = time.perf_counter()
            while True:
                got = await b.get("/v1/marketplace/search", params={"q": word})
                if any(it["id"] == lid for it in got.json()["items"]):
                    lags.append(time.perf_counter() - t0)
                    break
                if time.perf_counter() - t0 > 30:
                    raise AssertionError(f"{lid} not searchable after 30 s")
                await asyncio.sleep(0.005)
            if i % 10 == 9:
                print(f"  lag {i + 1}/{n}: p50 {_pct(lags, 0.5) * 1000:.0f} ms")
    return {"published": n, "publish_to_searchable": _ms(lags)}


OFFER_MODELS = (
    "NVIDIA H100 80GB HBM3",
    "NVIDIA H200",
    "NVIDIA A100-SXM4-80GB",
    "NVIDIA A100-PCIE-40GB",
    "NVIDIA L40S",
    "NVIDIA L4",
    "NVIDIA GeForce RTX 4090",
    "NVIDIA GeForce RTX 3090",
    "Tesla T4",
    "Tesla V100-SXM2-32GB",
    "Custom Accelerator X",
)
OFFER_REGIONS = ("eu-west", "eu-central", "us-east", "us-west", "ap-south", "ap-east")


def synthetic_offer(i: int, rng: random.Random) -> dict[str, Any]:
    model = rng.choice(OFFER_MODELS)
    count = rng.choice((1, 2, 4, 8))
    return {
        "_id": f"ofr_{i:06d}",
        "org_id": f"org_{i % 500}",
        "provider_id": f"prv_{i:06d}",
        "gpu_model": model,
        "gpu_memory_gb": float(rng.choice((16, 24, 32, 40, 48, 80, 141))),
        "gpu_count": count,
        "available_gpus": rng.randint(0, count),
        "price_minor": rng.randint(20, 600),
        "currency": "USD",
        "region": rng.choice(OFFER_REGIONS),
        "reliability_bps": rng.randint(5000, 10_000),
        "simulated": rng.random() < 0.3,
        "containers": rng.random() < 0.7,
        "status": "active" if rng.random() < 0.95 else "lost",
        "revision": rng.randint(1, 50),
    }


def random_offer_query(rng: random.Random) -> OfferQuery:
    kw: dict[str, Any] = {"sort": rng.choice(OFFER_SORTS), "limit": 50}
    for f in rng.sample(
        ["model", "min_memory_gb", "count", "max_price", "region", "min_rel", "simulated"],
        rng.randint(0, 4),
    ):
        if f == "model":
            kw["model"] = rng.choice(("h100", "a100", "rtx 4090", "l4", "t4"))
        elif f == "min_memory_gb":
            kw["min_memory_gb"] = float(rng.choice((24, 40, 80)))
        elif f == "count":
            kw["count"] = rng.choice((1, 2, 4, 8))
        elif f == "max_price":
            kw["max_price"] = rng.randint(100, 500)
        elif f == "region":
            kw["region"] = rng.choice(OFFER_REGIONS)
        elif f == "min_rel":
            kw["min_reliability_bps"] = rng.choice((8000, 9000, 9500))
        else:
            kw["simulated"] = rng.random() < 0.5
    return OfferQuery(**kw)


def bench_offer_queries(n: int, queries: int) -> dict[str, Any]:
    rng = random.Random(13)  # noqa: S311 - synthetic data, not crypto
    cat = Catalogue()
    t = time.perf_counter()
    cat.load(synthetic_offer(i, rng) for i in range(n))
    load_s = time.perf_counter() - t
    for _ in range(20):  # warm
        cat.query(random_offer_query(rng))
    first: list[float] = []
    second: list[float] = []
    by_sort: dict[str, list[float]] = {s: [] for s in OFFER_SORTS}
    unfiltered: list[float] = []
    hits = 0
    for _ in range(queries):
        q = random_offer_query(rng)
        t = time.perf_counter()
        page, nxt = cat.query(q)
        dt = time.perf_counter() - t
        first.append(dt)
        by_sort[q.sort].append(dt)
        hits += len(page)
        if nxt:
            t = time.perf_counter()
            cat.query(dataclasses.replace(q, cursor=nxt))
            second.append(time.perf_counter() - t)
    for sort in OFFER_SORTS:  # the worst case: no filter, every listed offer sorted
        for _ in range(50):
            t = time.perf_counter()
            cat.query(OfferQuery(sort=sort, limit=50))
            unfiltered.append(time.perf_counter() - t)
    return {
        "offers": n,
        "load_into_catalogue_s": round(load_s, 3),
        "query_filter_sort_mix": _ms(first),
        "query_page_2_by_cursor": _ms(second),
        "query_by_sort": {s: _ms(v) for s, v in by_sort.items()},
        "query_no_filter": _ms(unfiltered),
        "mean_items_per_page": round(hits / max(1, queries), 1),
    }


def _offer_record(msg: Any, org_id: str, offer_id: str) -> Record:
    headers = build_headers(msg, org_id=org_id, source="qlp/scheduler", subject=offer_id)
    return Record(topics.SCHEDULING.name, offer_id, msg.SerializeToString(), headers)


async def bench_offer_lag(kafka: str, mongodb_url: str, n: int) -> dict[str, Any]:
    await provision(kafka)
    tag = uuid.uuid4().hex[:8]
    settings = MarketplaceSettings(
        kafka_bootstrap_servers=kafka,
        mongodb_url=mongodb_url,
        mongodb_database=f"bench_mkt_offers_{tag}",
        internal_auth_secret=SECRET,
        consumer_group_prefix=f"bench-mkt-offers-{tag}",
        relay_poll_interval_s=0.05,
        search_enabled=False,
    )
    viewer = Principal(org_id="org_bench_v", subject="usr_v", roles=["viewer"], user_id="usr_v")
    region = f"bench-{tag}"
    org, offer_id = "org_bench_p", f"ofr_bench_{tag}"
    producer = Producer(kafka, client_id="bench-offers")
    await producer.start()
    lags: list[float] = []

    async def shows(c: httpx.AsyncClient, free: int) -> bool:
        got = await c.get("/v1/gpu/offers", params={"region": region})
        items = got.json()["items"]
        return bool(items) and items[0]["available_gpus"] == free

    try:
        async with (
            running_app(marketplace_service, settings, timeout=120) as url,
            httpx.AsyncClient(base_url=url, auth=PrincipalAuth(SECRET, viewer), timeout=20) as c,
        ):
            published = sched_ev.OfferPublished(
                org_id=org,
                offer_id=offer_id,
                provider_id="prv_bench",
                gpu_model="NVIDIA H100 80GB HBM3",
                gpu_count=8,
                gpu_memory_mib=80 * 1024,
                region=region,
                price_per_gpu_hour=money_pb2.Money(amount=250, currency="USD"),
                simulated=True,
                available_gpus=8,
            )
            await producer.send(_offer_record(published, org, offer_id))
            while not await shows(c, 8):
                await asyncio.sleep(0.01)
            for i in range(n):
                free = 1 + (i % 7)  # never the previous value
                changed = sched_ev.OfferAvailabilityChanged(
                    org_id=org,
                    offer_id=offer_id,
                    provider_id="prv_bench",
                    available_gpus=free,
                    gpu_count=8,
                    reliability_bps=9900,
                    status="active",
                    revision=i + 1,
                )
                await producer.send(_offer_record(changed, org, offer_id))
                t0 = time.perf_counter()
                while not await shows(c, free):
                    if time.perf_counter() - t0 > 30:
                        raise AssertionError(f"revision {i + 1} not queryable after 30 s")
                    await asyncio.sleep(0.005)
                lags.append(time.perf_counter() - t0)
                if i % 20 == 19:
                    print(f"  offer lag {i + 1}/{n}: p50 {_pct(lags, 0.5) * 1000:.0f} ms")
    finally:
        await producer.stop()
    return {"events": n, "event_to_queryable": _ms(lags)}


async def offers_only(quick: bool) -> None:
    queries = 1_000 if quick else 5_000
    lag_n = 50 if quick else 200
    print(f"offer queries over 10000 offers, {queries} queries …")
    q = bench_offer_queries(10_000, queries)
    print(f"  {q}")
    infra = start_embedded()
    try:
        print(f"offer event -> queryable lag over {lag_n} events …")
        lag = await bench_offer_lag(infra.kafka, infra.mongodb_url, lag_n)
        print(f"  {lag}")
    finally:
        infra.close()
    path = RESULTS / "marketplace.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    old.pop("machine", None)
    old["gpu_offers"] = {"mode": "quick" if quick else "full", "queries": q, "lag": lag}
    write_results("marketplace", old)


async def main(quick: bool) -> None:
    n = 20_000 if quick else 100_000
    m = 5_000 if quick else 100_000
    queries = 500 if quick else 2_000
    lag_n = 30 if quick else 200
    load_before = os.getloadavg()[0]
    print(f"search over {n} listings, {queries} queries …")
    search = bench_search(n, queries)
    print(f"  {search}")
    infra = start_embedded()
    try:
        print(f"rebuild from MongoDB of {m} listings …")
        rebuild = await bench_rebuild(infra.mongodb_url, m)
        print(f"  {rebuild}")
        print(f"event -> searchable lag over {lag_n} publications …")
        lag = await bench_lag(infra.kafka, infra.mongodb_url, lag_n)
        print(f"  {lag}")
        print("offer event -> queryable lag …")
        offer_lag = await bench_offer_lag(infra.kafka, infra.mongodb_url, lag_n)
        print(f"  {offer_lag}")
    finally:
        infra.close()
    write_results(
        "marketplace",
        {
            "mode": "quick" if quick else "full",
            "load_average_1m": {
                "before": round(load_before, 2),
                "after": round(os.getloadavg()[0], 2),
            },
            "search": search,
            "rebuild": rebuild,
            "lag": lag,
            "gpu_offers": {
                "queries": bench_offer_queries(10_000, 1_000 if quick else 5_000),
                "lag": offer_lag,
            },
            "targets": {
                "search_p99_ms": 50,
                "aim_search_p99_ms": 10,
                "publish_to_searchable_p99_ms": 1000,
                "offers_p99_ms": 20,
            },
            "notes": "one process on a shared 2-core machine: the index in memory, the "
            "embedded broker (Tansu) and database (nx-27017, MongoDB protocol on SQLite); "
            "the rebuild's time is mostly reading the database",
        },
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--offers-only", action="store_true", help="only the GPU offer catalogue")
    a = ap.parse_args()
    asyncio.run(offers_only(a.quick) if a.offers_only else main(a.quick))
