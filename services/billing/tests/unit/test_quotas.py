"""Quota documents under plan changes, custom limits and reservations: the invariant
``available == cap(limit) - used - reserved`` holds after every step."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from qlp_billing import quotas as Q
from qlp_billing.plans import GENERATIONS, PLANS, UNLIMITED_AVAILABLE, get_plan

limit = st.one_of(st.just(-1), st.integers(0, 50_000))
op = st.one_of(
    st.tuples(st.just("plan"), st.sampled_from(sorted(PLANS))),
    st.tuples(
        st.just("custom"), st.dictionaries(st.sampled_from([GENERATIONS, "projects"]), limit)
    ),
    st.tuples(st.just("reserve"), st.integers(1, 5_000)),
    st.tuples(st.just("commit"), st.integers(0, 10)),
    st.tuples(st.just("release"), st.integers(0, 10)),
)


def test_plan_change_moves_from_the_documents_custom_limit() -> None:
    ent = get_plan("enterprise")
    doc = Q.quota_docs(ent)
    doc = Q.apply(doc, *Q.custom_limit_change(doc, {GENERATIONS: -1, "projects": 50}))
    assert doc[GENERATIONS]["available"] == UNLIMITED_AVAILABLE
    doc[GENERATIONS].update(reserved=7, available=UNLIMITED_AVAILABLE - 7)
    after = Q.apply(doc, *Q.quota_change(ent, get_plan("professional"), doc))
    assert after[GENERATIONS]["limit"] == 1_000
    assert after[GENERATIONS]["available"] == 1_000 - 7  # not 10**15 - 9,007
    assert after["projects"]["available"] == Q.cap(-1)
    assert Q.violations(after) == {}


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(PLANS)), st.lists(op, max_size=40))
def test_invariant_holds_under_any_sequence(start: str, ops: list[tuple[Any, ...]]) -> None:
    plan = get_plan(start)
    doc = Q.quota_docs(plan)
    open_res: list[int] = []
    for o in ops:
        g = doc[GENERATIONS]
        if o[0] == "plan":
            new = get_plan(o[1])
            doc = Q.apply(doc, *Q.quota_change(plan, new, doc))
            plan = new
        elif o[0] == "custom":
            doc = Q.apply(doc, *Q.custom_limit_change(doc, o[1]))
        elif o[0] == "reserve" and g["available"] >= o[1]:
            g.update(available=g["available"] - o[1], reserved=g["reserved"] + o[1])
            open_res.append(o[1])
        elif o[0] in ("commit", "release") and open_res:
            qty = open_res.pop(o[1] % len(open_res))
            used = qty if o[0] == "commit" else 0
            g.update(
                reserved=g["reserved"] - qty,
                used=g["used"] + used,
                available=g["available"] + qty - used,
            )
        assert Q.violations(doc) == {}, (o, doc)
