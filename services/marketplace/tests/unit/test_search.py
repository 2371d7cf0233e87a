"""The embedded search index (the real Tantivy engine, in memory): relevance on a
fixture catalogue, facets that sum, filters, typo tolerance, visibility, sponsored
ranking, and cursors that never repeat or skip, also while the catalogue changes."""

from __future__ import annotations

from typing import Any

import pytest

from qlp_marketplace.search import BadCursor, SearchIndex, SearchQuery

CATALOGUE: list[tuple[str, str, str, str, list[str], int]] = [
    # id, kind, category, title, tags, price
    ("fastapi", "template", "api", "FastAPI service with MongoDB", ["python", "fastapi"], 1500),
    ("django", "template", "web", "Django shop starter", ["python", "django"], 900),
    ("react", "component", "web", "React data table component", ["react", "typescript"], 0),
    ("kafka", "skill", "data", "Kafka consumer with retries", ["kafka", "python"], 500),
    ("llama", "model", "ml", "Llama fine-tune for support tickets", ["llm", "support"], 9900),
    ("etl", "workflow", "data", "Nightly ETL workflow to a warehouse", ["etl", "sql"], 0),
    ("auth", "component", "security", "OAuth login component", ["oauth", "react"], 700),
    ("k8s", "template", "devops", "Kubernetes deployment template", ["helm", "kubernetes"], 1200),
]


def listing(
    i: int, lid: str, kind: str, cat: str, title: str, tags: list[str], price: int
) -> dict[str, Any]:
    return {
        "_id": f"lst_{lid}",
        "seq": i + 1,
        "org_id": "org_creator" if i % 2 else "org_other",
        "status": "published",
        "kind": kind,
        "category": cat,
        "title": title,
        "summary": f"{title}, ready to use",
        "description": f"Everything you need: {title.lower()}.",
        "tags": tags,
        "license": "MIT" if i % 3 else "Apache-2.0",
        "price": {"amount": price, "currency": "USD"},
        "rating_milli": 3000 + 200 * i,
        "sales": i * 3 % 7,
        "published_ms": 1_700_000_000_000 + i * 1000,
        "sponsored": False,
        "private_to_org_id": None,
    }


@pytest.fixture
def index() -> SearchIndex:
    ix = SearchIndex()
    ix.upsert_many([listing(i, *row) for i, row in enumerate(CATALOGUE)])
    return ix


@pytest.mark.parametrize(
    ("q", "top"),
    [
        ("fastapi mongodb", "lst_fastapi"),
        ("django", "lst_django"),
        ("kafka retries", "lst_kafka"),
        ("llama support", "lst_llama"),
        ("kubernetes helm", "lst_k8s"),
        ("oauth login", "lst_auth"),
        ("warehouse etl", "lst_etl"),
        ("react table", "lst_react"),
    ],
)
def test_expected_top_result(index: SearchIndex, q: str, top: str) -> None:
    page = index.search(SearchQuery(q=q, viewer_org="org_viewer"))
    assert page.ids[0] == top, page.ids


def test_typos_in_short_queries(index: SearchIndex) -> None:
    assert index.search(SearchQuery(q="kuberntes")).ids[0] == "lst_k8s"
    assert index.search(SearchQuery(q="djnago")).ids[0] == "lst_django"
    assert index.search(SearchQuery(q="fastapi")).ids[0] == "lst_fastapi"


def test_facets_sum_to_the_total(index: SearchIndex) -> None:
    page = index.search(SearchQuery(q="python"))
    assert page.total == 3
    for name in ("kind", "category", "license", "creator", "price"):
        assert sum(f["count"] for f in page.facets[name]) == page.total, name
    kinds = {f["value"]: f["count"] for f in page.facets["kind"]}
    assert kinds == {"template": 2, "skill": 1}
    everything = index.search(SearchQuery())
    assert everything.total == len(CATALOGUE)
    assert sum(f["count"] for f in everything.facets["kind"]) == len(CATALOGUE)
    price = {f["value"]: f["count"] for f in everything.facets["price"]}
    assert price == {"free": 2, "under_10": 3, "10_to_50": 2, "50_plus": 1}
    rating = {f["value"]: f["count"] for f in everything.facets["rating"]}
    assert rating["3_plus"] == len(CATALOGUE) and rating["4_plus"] == 3


def test_filters(index: SearchIndex) -> None:
    assert set(index.search(SearchQuery(kind="template")).ids) == {
        "lst_fastapi",
        "lst_django",
        "lst_k8s",
    }
    assert index.search(SearchQuery(tags=["python", "kafka"])).ids == ["lst_kafka"]
    assert set(index.search(SearchQuery(max_price=0)).ids) == {"lst_react", "lst_etl"}
    assert set(index.search(SearchQuery(min_price=1000, max_price=1500)).ids) == {
        "lst_fastapi",
        "lst_k8s",
    }
    top_rated = set(index.search(SearchQuery(min_rating=4.0)).ids)
    assert top_rated == {"lst_etl", "lst_auth", "lst_k8s"}
    assert index.search(SearchQuery(category="ml", kind="model")).ids == ["lst_llama"]


def test_sorts(index: SearchIndex) -> None:
    asc = index.search(SearchQuery(sort="price_asc", limit=20)).ids
    assert asc[:2] == sorted(
        ["lst_react", "lst_etl"], key=lambda i: [r[0] for r in CATALOGUE].index(i[4:])
    )
    assert asc[-1] == "lst_llama"
    assert index.search(SearchQuery(sort="price_desc")).ids[0] == "lst_llama"
    assert index.search(SearchQuery(sort="newest")).ids[0] == "lst_k8s"
    assert index.search(SearchQuery(sort="rating")).ids[0] == "lst_k8s"


def test_private_and_unpublished_listings(index: SearchIndex) -> None:
    secret = listing(20, "secret", "template", "api", "Private FastAPI pack", ["fastapi"], 100)
    secret["private_to_org_id"] = "org_enterprise"
    draft = listing(21, "draft", "template", "api", "Draft FastAPI thing", ["fastapi"], 100)
    draft["status"] = "draft"
    index.upsert_many([secret, draft])
    assert "lst_secret" in index.search(SearchQuery(q="fastapi", viewer_org="org_enterprise")).ids
    assert "lst_secret" not in index.search(SearchQuery(q="fastapi", viewer_org="org_x")).ids
    assert "lst_draft" not in index.search(SearchQuery(q="fastapi", viewer_org="org_x")).ids
    # delisting drops it from the index
    index.upsert({**secret, "status": "delisted"})
    assert (
        "lst_secret" not in index.search(SearchQuery(q="fastapi", viewer_org="org_enterprise")).ids
    )


def test_sponsored_ranks_higher_and_is_known(index: SearchIndex) -> None:
    plain = index.search(SearchQuery(q="python")).ids
    last = plain[-1]
    row = next(r for r in CATALOGUE if f"lst_{r[0]}" == last)
    i = CATALOGUE.index(row)
    index.upsert({**listing(i, *row), "sponsored": True})
    assert index.search(SearchQuery(q="python")).ids[0] == last


def _all_pages(index: SearchIndex, sq: SearchQuery, mutate: Any = None) -> list[str]:
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = index.search(SearchQuery(**{**sq.__dict__, "cursor": cursor}))
        seen += page.ids
        pages += 1
        if mutate is not None and pages == 1:
            mutate()
        cursor = page.next_cursor
        if not cursor:
            return seen


@pytest.mark.parametrize(
    "sort", ["relevance", "newest", "price_asc", "price_desc", "rating", "popularity"]
)
def test_pagination_never_repeats_or_skips(sort: str) -> None:
    ix = SearchIndex()
    rows = []
    for i in range(137):
        row = CATALOGUE[i % len(CATALOGUE)]
        # equal prices, ratings and sales on purpose: ties are broken by seq
        rows.append(listing(i, f"{row[0]}{i}", row[1], row[2], row[3], row[4], row[5]))
    ix.upsert_many(rows)
    q = "python template" if sort == "relevance" else ""
    expected = ix.search(SearchQuery(q=q, sort=sort, limit=1000)).ids
    got = _all_pages(ix, SearchQuery(q=q, sort=sort, limit=10))
    assert got == expected and len(set(got)) == len(got)


def test_pagination_holds_while_listings_are_added() -> None:
    ix = SearchIndex()
    ix.upsert_many(
        [listing(i, f"p{i}", "template", "api", "Paged", [], 100 * i) for i in range(50)]
    )
    before = set(ix.search(SearchQuery(sort="price_asc", limit=1000)).ids)

    def add() -> None:  # new, cheaper listings arrive after the first page was served
        ix.upsert_many(
            [listing(100 + i, f"n{i}", "template", "api", "Paged", [], 0) for i in range(5)]
        )

    got = _all_pages(ix, SearchQuery(sort="price_asc", limit=7), add)
    assert len(got) == len(set(got))
    assert before <= set(got)  # nothing that was there is skipped


def test_a_foreign_cursor_is_refused(index: SearchIndex) -> None:
    page = index.search(SearchQuery(sort="newest", limit=2))
    assert page.next_cursor
    with pytest.raises(BadCursor):
        index.search(SearchQuery(sort="price_asc", cursor=page.next_cursor))
    with pytest.raises(BadCursor):
        index.search(SearchQuery(cursor="!!!"))
