"""Quota documents, pure: the subscription's per-meter counters and how a plan change
or an Enterprise custom limit moves them.

Each quota is ``{limit, used, reserved, available, overage_allowed}`` and every write
keeps ``available == cap(limit) - used - reserved`` (``cap`` maps unlimited, -1, to
:data:`UNLIMITED_AVAILABLE`). A limit change moves ``available`` by the change of the
cap with ``$inc``, so reservations made concurrently are neither lost nor doubled; the
old cap is always the document's current limit (a custom limit may differ from any
plan's default).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qlp_billing.plans import UNLIMITED_AVAILABLE, Plan

Doc = dict[str, Any]


class BadLimit(ValueError):
    """A custom limit names no quota of the subscription or is below -1."""


def cap(limit: int) -> int:
    return UNLIMITED_AVAILABLE if limit < 0 else limit


def quota_docs(plan: Plan) -> Doc:
    return {
        q.meter: {
            "limit": q.limit,
            "used": 0,
            "reserved": 0,
            "available": cap(q.limit),
            "overage_allowed": q.overage_allowed,
        }
        for q in plan.quotas
    }


def _move(meter: str, cur: Mapping[str, Any], limit: int, sets: Doc, incs: Doc) -> None:
    old_cap = cap(int(cur.get("limit", 0)))
    sets[f"quotas.{meter}.limit"] = limit
    if cap(limit) != old_cap:
        incs[f"quotas.{meter}.available"] = cap(limit) - old_cap


def quota_change(old: Plan, new: Plan, quotas: Mapping[str, Any]) -> tuple[Doc, Doc]:
    """($set, $inc) moving quota limits to ``new``'s without disturbing concurrent
    reservations. ``old`` is the plan being left (kept for the call sites' symmetry;
    the document's limits are what is moved from, custom ones included)."""
    del old
    sets: Doc = {}
    incs: Doc = {}
    for q in new.quotas:
        cur = quotas.get(q.meter)
        if cur is None:
            sets[f"quotas.{q.meter}"] = quota_docs(new)[q.meter]
            continue
        _move(q.meter, cur, q.limit, sets, incs)
        sets[f"quotas.{q.meter}.overage_allowed"] = q.overage_allowed
    return sets, incs


def custom_limit_change(quotas: Mapping[str, Any], limits: Mapping[str, int]) -> tuple[Doc, Doc]:
    """($set, $inc) for Enterprise custom limits (-1 is unlimited), every meter alike."""
    sets: Doc = {}
    incs: Doc = {}
    for meter, limit in limits.items():
        if limit < -1 or meter not in quotas:
            raise BadLimit(f"no quota {meter!r} or a bad limit")
        _move(meter, quotas[meter], limit, sets, incs)
    return sets, incs


def apply(quotas: Doc, sets: Doc, incs: Doc) -> Doc:
    """``quotas`` after a ($set, $inc) of the shape above (the database's semantics,
    for tests and reasoning; the service lets the database apply them)."""
    out = {m: dict(q) for m, q in quotas.items()}
    for path, value in sets.items():
        parts = path.split(".")[1:]
        if len(parts) == 1:
            out[parts[0]] = dict(value)
        else:
            out.setdefault(parts[0], {})[parts[1]] = value
    for path, delta in incs.items():
        _, meter, field = path.split(".")
        out[meter][field] = int(out[meter].get(field, 0)) + int(delta)
    return out


def violations(quotas: Mapping[str, Any]) -> dict[str, tuple[int, int]]:
    """Meters where ``available != cap(limit) - used - reserved``: (have, want)."""
    bad = {}
    for meter, q in quotas.items():
        want = cap(int(q.get("limit", 0))) - int(q.get("used", 0)) - int(q.get("reserved", 0))
        have = int(q.get("available", 0))
        if have != want:
            bad[meter] = (have, want)
    return bad
