"""The search read model: an embedded Tantivy index per replica (BM25 relevance,
facets from aggregations, typo tolerance, keyset cursors).

The index holds published listings only. It is a read model: at start it is rebuilt
from the ``listings`` collection, then kept current by the replica's own consumer of
the listing events (``ListingPublished`` / ``ListingUpdated``; each event makes the
indexer re-read the listing and re-index or drop it). Nothing is restored from disk:
a lost index is rebuilt.

Pagination never repeats or skips: every document has a unique ``seq`` (allocated
when the listing is created), each field sort orders by one composite integer
(``value << 24 | seq``) and the cursor carries the last key, so the next page is a
range query past it. Relevance pages carry the last ``(score, seq)`` and skip what
sorts before it.
"""

from __future__ import annotations

import base64
import json
import math
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import tantivy

from qlp_marketplace import rules

SEQ_BITS = 24
SEQ_MASK = (1 << SEQ_BITS) - 1
#: Text fields searched with BM25, with their boosts.
TEXT_BOOSTS = {"title": 3.0, "tags_text": 2.0, "summary": 1.5, "description": 1.0}
#: Queries with at most this many terms are also matched fuzzily (typo tolerance).
FUZZY_MAX_TERMS = 3
#: Fuzzy matches score at this fraction of an exact one: exact hits stay on top.
FUZZY_BOOST = 0.4
SPONSORED_WEIGHT = 2.0  # log2(2 + 2) = 2: a sponsored hit's score doubles
PRICE_RANGES = [
    {"key": "free", "to": 1},
    {"key": "under_10", "from": 1, "to": 1000},
    {"key": "10_to_50", "from": 1000, "to": 5000},
    {"key": "50_plus", "from": 5000},
]
#: Rating buckets (Bayesian rating x 1000); the facet answers them cumulated
#: ("4_plus" counts every listing rated 4 or more), matching the min_rating filter.
RATING_BUCKETS = [
    {"key": "4", "from": 4000},
    {"key": "3", "from": 3000, "to": 4000},
    {"key": "2", "from": 2000, "to": 3000},
    {"key": "1", "from": 1000, "to": 2000},
    {"key": "0", "to": 1000},
]
RATING_FACETS = ("4_plus", "3_plus", "2_plus", "1_plus")
SORTS = ("relevance", "newest", "price_asc", "price_desc", "rating", "popularity")
_SORT_FIELD = {
    "newest": ("k_newest", tantivy.Order.Desc),
    "price_asc": ("k_price", tantivy.Order.Asc),
    "price_desc": ("k_price", tantivy.Order.Desc),
    "rating": ("k_rating", tantivy.Order.Desc),
    "popularity": ("k_popular", tantivy.Order.Desc),
}
_WORD = re.compile(r"\w+", re.UNICODE)
MAX_TERMS = 16


class BadCursor(ValueError):
    """A cursor this index did not give out (or one for another sort)."""


def _schema() -> tantivy.Schema:
    b = tantivy.SchemaBuilder()
    b.add_text_field("id", stored=True, tokenizer_name="raw", fast=True)
    for name in TEXT_BOOSTS:
        b.add_text_field(name, stored=False, tokenizer_name="en_stem")
    b.add_text_field("fuzzy", stored=False, tokenizer_name="default")
    for name in ("kind", "category", "license", "creator", "visible_to"):
        b.add_text_field(name, stored=False, tokenizer_name="raw", fast=True)
    b.add_text_field("tags", stored=False, tokenizer_name="raw", fast=True)
    b.add_integer_field("price", stored=False, indexed=True, fast=True)
    b.add_integer_field("rating", stored=False, indexed=True, fast=True)
    b.add_float_field("boost", stored=False, indexed=False, fast=True)
    b.add_integer_field("seq", stored=True, indexed=True, fast=True)
    for name in ("k_newest", "k_price", "k_rating", "k_popular"):
        b.add_integer_field(name, stored=True, indexed=True, fast=True)
    return b.build()


def composite(value: int, seq: int) -> int:
    """One integer that sorts by ``value`` and then by ``seq`` (unique per listing)."""
    return (max(0, int(value)) << SEQ_BITS) | (int(seq) & SEQ_MASK)


@dataclass
class SearchQuery:
    q: str = ""
    viewer_org: str = ""
    kind: str | None = None
    category: str | None = None
    tags: Sequence[str] = ()
    license: str | None = None
    creator: str | None = None
    min_price: int | None = None
    max_price: int | None = None
    min_rating: float | None = None
    sort: str = "relevance"
    limit: int = 20
    cursor: str | None = None


@dataclass
class SearchPage:
    ids: list[str]
    total: int
    facets: dict[str, list[dict[str, Any]]]
    next_cursor: str | None
    scores: list[float] = field(default_factory=list)


def _encode(payload: Mapping[str, Any]) -> str:
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str, sort: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadCursor("malformed cursor") from exc
    if not isinstance(data, dict) or data.get("s") != sort:
        raise BadCursor("the cursor belongs to another sort; start again without it")
    return data


def terms_of(text: str) -> list[str]:
    return [t.lower() for t in _WORD.findall(text)][:MAX_TERMS]


def fuzzy_distance(term: str) -> int:
    """Edit distance allowed for a term: none for short words, one, two for long."""
    if len(term) < 4:
        return 0
    return 1 if len(term) < 8 else 2


class SearchIndex:
    """One replica's in-memory index. Writes are serialized; searches read the last
    committed snapshot (reloaded after each commit)."""

    def __init__(self) -> None:
        self.schema = _schema()
        self.index = tantivy.Index(self.schema)
        self._writer = self.index.writer(heap_size=50_000_000, num_threads=1)
        self._lock = threading.Lock()
        self.docs = 0

    # -- writes ------------------------------------------------------------------------

    def _document(self, listing: Mapping[str, Any]) -> tantivy.Document:
        seq = int(listing["seq"])
        price = int((listing.get("price") or {}).get("amount", 0))
        rating = int(listing.get("rating_milli") or 0)
        sales = int(listing.get("sales") or 0)
        published = int(listing.get("published_ms") or 0) // 1000
        tags = list(listing.get("tags") or [])
        doc = tantivy.Document(
            id=str(listing["_id"]),
            title=str(listing.get("title", "")),
            summary=str(listing.get("summary", "")),
            description=str(listing.get("description", "")),
            tags_text=" ".join(tags),
            fuzzy=" ".join([str(listing.get("title", "")), *tags]),
            kind=str(listing.get("kind", "")),
            category=str(listing.get("category", "")),
            license=str(listing.get("license", "")),
            creator=str(listing.get("org_id", "")),
            visible_to=str(listing.get("private_to_org_id") or "public"),
            price=price,
            rating=rating,
            boost=SPONSORED_WEIGHT if listing.get("sponsored") else 0.0,
            seq=seq,
            k_newest=composite(published, seq),
            k_price=composite(price, seq),
            k_rating=composite(rating, seq),
            k_popular=composite(sales, seq),
        )
        for t in tags:
            doc.add_text("tags", t)
        return doc

    def upsert_many(self, listings: Iterable[Mapping[str, Any]]) -> int:
        """Index (or drop) each listing by its state, then commit once."""
        n = 0
        with self._lock:
            for listing in listings:
                self._writer.delete_documents_by_term("id", str(listing["_id"]))
                if rules.searchable(listing):
                    self._writer.add_document(self._document(listing))
                    n += 1
            self._writer.commit()
            self.index.reload()
            self.docs = self.index.searcher().num_docs
        return n

    def upsert(self, listing: Mapping[str, Any]) -> None:
        self.upsert_many([listing])

    def clear(self) -> None:
        with self._lock:
            self._writer.delete_all_documents()
            self._writer.commit()
            self.index.reload()
            self.docs = 0

    # -- reads -------------------------------------------------------------------------

    def _text_query(self, q: str) -> tantivy.Query | None:
        """Every term must match (in any text field, BM25-scored); in queries of up to
        FUZZY_MAX_TERMS terms a term may also match a word one or two edits away in the
        title or tags, scored lower than an exact match."""
        terms = terms_of(q)
        if not terms:
            return None
        fuzzy_ok = len(terms) <= FUZZY_MAX_TERMS
        musts = []
        for t in terms:
            exact = self.index.parse_query(t, list(TEXT_BOOSTS), field_boosts=TEXT_BOOSTS)
            d = fuzzy_distance(t) if fuzzy_ok else 0
            if not d:
                musts.append((tantivy.Occur.Must, exact))
                continue
            fuzzy = tantivy.Query.boost_query(
                tantivy.Query.fuzzy_term_query(self.schema, "fuzzy", t, distance=d), FUZZY_BOOST
            )
            either = tantivy.Query.boolean_query(
                [(tantivy.Occur.Should, exact), (tantivy.Occur.Should, fuzzy)]
            )
            musts.append((tantivy.Occur.Must, either))
        return tantivy.Query.boolean_query(musts)

    def _term(self, name: str, value: str) -> tantivy.Query:
        return tantivy.Query.term_query(self.schema, name, value)

    def _filters(self, sq: SearchQuery) -> list[tantivy.Query]:
        visible = [self._term("visible_to", "public")]
        if sq.viewer_org:
            visible.append(self._term("visible_to", sq.viewer_org))
        out: list[tantivy.Query] = [
            tantivy.Query.boolean_query([(tantivy.Occur.Should, v) for v in visible])
        ]
        for name, value in (
            ("kind", sq.kind),
            ("category", sq.category),
            ("license", sq.license),
            ("creator", sq.creator),
        ):
            if value:
                out.append(self._term(name, value))
        out += [self._term("tags", t) for t in sq.tags if t]
        if sq.min_price is not None or sq.max_price is not None:
            out.append(
                tantivy.Query.range_query(
                    self.schema, "price", tantivy.FieldType.Integer, sq.min_price, sq.max_price
                )
            )
        if sq.min_rating is not None:
            out.append(
                tantivy.Query.range_query(
                    self.schema,
                    "rating",
                    tantivy.FieldType.Integer,
                    math.ceil(sq.min_rating * 1000),
                    None,
                )
            )
        return out

    def _facets(self, searcher: tantivy.Searcher, query: tantivy.Query) -> dict[str, Any]:
        agg: dict[str, Any] = {
            name: {"terms": {"field": name, "size": size}}
            for name, size in (
                ("kind", 10),
                ("category", 20),
                ("tags", 20),
                ("license", 20),
                ("creator", 20),
            )
        }
        agg["price"] = {"range": {"field": "price", "ranges": PRICE_RANGES}}
        agg["rating"] = {"range": {"field": "rating", "ranges": RATING_BUCKETS}}
        raw = searcher.aggregate(query, agg)
        facets: dict[str, list[dict[str, Any]]] = {}
        for name, res in raw.items():
            buckets = res.get("buckets") or []
            if isinstance(buckets, dict):  # keyed ranges
                buckets = [{"key": k, **v} for k, v in buckets.items()]
            facets[name] = [{"value": str(b["key"]), "count": int(b["doc_count"])} for b in buckets]
        got = {b["value"]: b["count"] for b in facets.get("price", [])}
        facets["price"] = [{"value": r["key"], "count": got.get(r["key"], 0)} for r in PRICE_RANGES]
        got = {b["value"]: b["count"] for b in facets.get("rating", [])}
        running = 0
        rating = []
        for key in RATING_FACETS:
            running += got.get(key.split("_")[0], 0)
            rating.append({"value": key, "count": running})
        facets["rating"] = rating
        return facets

    def search(self, sq: SearchQuery) -> SearchPage:
        if sq.sort not in SORTS:
            raise BadCursor(f"unknown sort {sq.sort!r}")
        text = self._text_query(sq.q)
        filters = self._filters(sq)
        clauses = [(tantivy.Occur.Must, f) for f in filters]
        if text is not None:
            clauses.append((tantivy.Occur.Must, text))
        base = tantivy.Query.boolean_query(clauses)
        searcher = self.index.searcher()
        total = int(getattr(searcher.search(base, limit=1, count=True), "count", 0) or 0)
        facets = self._facets(searcher, base)
        limit = max(1, sq.limit)
        sort = sq.sort if (text is not None or sq.sort != "relevance") else "newest"
        if sort == "relevance":
            return self._relevance_page(searcher, base, sq, limit, total, facets)
        field_name, order = _SORT_FIELD[sort]
        query = base
        if sq.cursor:
            last = _decode(sq.cursor, sort).get("k")
            if not isinstance(last, int):
                raise BadCursor("malformed cursor")
            lo, hi = (last, None) if order == tantivy.Order.Asc else (None, last)
            past = tantivy.Query.range_query(
                self.schema,
                field_name,
                tantivy.FieldType.Integer,
                lo,
                hi,
                include_lower=lo is None,
                include_upper=hi is None,
            )
            query = tantivy.Query.boolean_query(
                [(tantivy.Occur.Must, base), (tantivy.Occur.Must, past)]
            )
        res = searcher.search(query, limit=limit + 1, order_by_field=field_name, order=order)
        hits = res.hits
        more = len(hits) > limit
        hits = hits[:limit]
        ids = [searcher.doc(addr)["id"][0] for _, addr in hits]
        nxt = _encode({"s": sort, "k": int(hits[-1][0])}) if more and hits else None
        return SearchPage(ids, total, facets, nxt)

    def _relevance_page(
        self,
        searcher: tantivy.Searcher,
        query: tantivy.Query,
        sq: SearchQuery,
        limit: int,
        total: int,
        facets: dict[str, Any],
    ) -> SearchPage:
        served = 0
        after: tuple[float, int] | None = None
        if sq.cursor:
            data = _decode(sq.cursor, "relevance")
            try:
                served = int(data["n"])
                after = (float(data["sc"]), int(data["seq"]))
            except (KeyError, TypeError, ValueError) as exc:
                raise BadCursor("malformed cursor") from exc
        # fetch past what was served (and a margin for ties at the window's edge),
        # order exactly by (score desc, seq asc), and keep what sorts after the cursor
        window = served + limit + 64
        res = searcher.search(query, limit=window, weight_by_field="boost")
        rows = []
        for score, addr in res.hits:
            d = searcher.doc(addr)
            rows.append((round(float(score), 6), int(d["seq"][0]), str(d["id"][0])))
        rows.sort(key=lambda r: (-r[0], r[1]))
        if after is not None:
            rows = [r for r in rows if (-r[0], r[1]) > (-after[0], after[1])]
        page = rows[: limit + 1]
        more = len(page) > limit
        page = page[:limit]
        nxt = None
        if more and page:
            sc, seq, _ = page[-1]
            nxt = _encode({"s": "relevance", "n": served + len(page), "sc": sc, "seq": seq})
        return SearchPage([r[2] for r in page], total, facets, nxt, [r[0] for r in page])
