"""The logic behind the blueprint and listing editors (no I/O): a blueprint typed as
JSON read with the place of a syntax error, the API's validation problems mapped onto
the fields a person edits, and the listing form turned into the API's body."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from qlp_console.format import parse_money

#: At most this much JSON in the blueprint editor (the API's blueprint is far smaller).
MAX_BLUEPRINT_CHARS = 64_000

LISTING_KINDS = ("template", "component", "skill", "workflow", "model")
LISTING_CATEGORIES = ("web", "api", "data", "ml", "devops", "security", "productivity", "other")
LISTING_LICENSES = ("MIT", "Apache-2.0", "BSD-3-Clause", "GPL-3.0", "MPL-2.0", "proprietary")


class EditorError(ValueError):
    """Input the console can refuse before asking the API: field -> message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def blueprint_text(blueprint: Mapping[str, Any] | None) -> str:
    """A blueprint as the editor shows it: indented JSON, keys in the API's order."""
    return json.dumps(dict(blueprint or {}), indent=2, ensure_ascii=False)


def parse_blueprint(text: str) -> dict[str, Any]:
    """The edited blueprint, or :class:`EditorError` saying where the JSON is wrong."""
    if len(text) > MAX_BLUEPRINT_CHARS:
        raise EditorError({"blueprint": f"at most {MAX_BLUEPRINT_CHARS:,} characters"})
    if not text.strip():
        raise EditorError({"blueprint": "the blueprint is empty"})
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EditorError(
            {"blueprint": f"not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"}
        ) from None
    if not isinstance(value, dict):
        raise EditorError({"blueprint": "the blueprint is a JSON object ({ … })"})
    return value


def _path(loc: list[Any], drop: tuple[str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int) or str(part).isdigit():  # the kit sends loc as strings
            out += f"[{part}]"
        elif not out and str(part) in drop:
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


def field_errors(
    problem: Mapping[str, Any] | None, drop: tuple[str, ...] = ("body",)
) -> list[dict[str, str]]:
    """The problem+json ``errors`` as ``{"field": "entities[0].fields[1].name",
    "message": …}`` (``drop``: leading location parts that are not the person's field,
    such as ``body`` or ``blueprint``); problems without ``errors`` give none."""
    out = []
    for e in (problem or {}).get("errors") or []:
        if not isinstance(e, Mapping):
            continue
        loc = [x for x in (e.get("loc") or []) if x != "body"]
        msg = str(e.get("msg") or e.get("message") or "").removeprefix("Value error, ")
        out.append({"field": _path(loc, drop) or "(the whole blueprint)", "message": msg})
    return out


def what_if_body(
    blueprint: dict[str, Any], tier: str, project_id: str, parent_version_id: str
) -> dict[str, Any]:
    """``POST /v1/generations`` for a "what if" branch from an edited blueprint."""
    body: dict[str, Any] = {"blueprint": blueprint, "tier": tier, "project_id": project_id}
    if parent_version_id:
        body["parent_version_id"] = parent_version_id
    return body


def _tags(raw: str) -> list[str]:
    return list(dict.fromkeys(t.strip().lower() for t in raw.split(",") if t.strip()))


def listing_body(form: Mapping[str, Any], *, creating: bool) -> dict[str, Any]:
    """The listing form as the API's body (``ListingIn`` when creating, a patch of the
    editable fields otherwise); a price the console cannot read is an EditorError."""

    def get(key: str) -> str:
        return str(form.get(key) or "").strip()

    body: dict[str, Any] = {
        "title": get("title"),
        "summary": get("summary"),
        "description": get("description"),
        "category": get("category"),
        "tags": _tags(get("tags")),
        "license": get("license"),
    }
    price = get("price")
    try:
        amount = 0 if not price.strip("$0.") else parse_money(price)
    except ValueError as exc:
        raise EditorError({"price": str(exc)}) from None
    body["price"] = {"amount": amount, "currency": "USD"}
    if creating:
        body["kind"] = get("kind")
    return body


#: Where a listing is and what the creator can do next.
LISTING_STATES: dict[str, str] = {
    "draft": "Draft: add a version, then publish it for review.",
    "in_review": "In review: the automatic review is running.",
    "published": "Published: searchable and for sale.",
    "deprecated": "Deprecated: holders keep it, it is no longer sold.",
    "delisted": "Delisted: no longer shown or sold.",
}


def listing_state(listing: Mapping[str, Any]) -> str:
    status = str(listing.get("status") or "")
    return LISTING_STATES.get(status, status)
