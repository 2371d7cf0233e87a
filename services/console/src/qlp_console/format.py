"""Formatting helpers for the templates, pure: money in minor units, percentages,
quota bars, durations, API problems in words."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£"}


def money(value: Mapping[str, Any] | None, *, per: str = "") -> str:
    """``{"amount": 123456, "currency": "USD"}`` → ``$1,234.56``."""
    if not value:
        return "—"
    amount = int(value.get("amount", 0))
    currency = str(value.get("currency", "USD")).upper()
    sign = "-" if amount < 0 else ""
    major, minor = divmod(abs(amount), 100)
    sym = _SYMBOLS.get(currency)
    text = f"{sign}{sym}{major:,}.{minor:02d}" if sym else f"{sign}{major:,}.{minor:02d} {currency}"
    return f"{text}/{per}" if per else text


def parse_money(text: str) -> int:
    """``"12.50"`` → 1250 minor units; raises ValueError on anything else."""
    t = text.strip().replace(",", "").lstrip("$€£")
    if not t or t.startswith("-"):
        raise ValueError("enter a positive amount, e.g. 25.00")
    major, _, minor = t.partition(".")
    if not major.isdigit() and major != "":
        raise ValueError("enter an amount such as 25.00")
    if minor and (not minor.isdigit() or len(minor) > 2):
        raise ValueError("use at most two decimals, e.g. 25.50")
    value = int(major or "0") * 100 + int((minor + "00")[:2] if minor else "0")
    if value <= 0:
        raise ValueError("enter an amount above zero")
    return value


def quota_bar(used: int, limit: int | None) -> dict[str, Any]:
    """What a quota bar shows: value, max and a level (ok / warn / over)."""
    if limit is None or limit <= 0:
        return {"value": used, "max": None, "pct": None, "level": "ok"}
    pct = round(100 * used / limit, 1)
    level = "over" if used >= limit else "warn" if pct >= 80 else "ok"
    return {"value": min(used, limit), "max": limit, "pct": pct, "level": level}


def number(n: int | float | None) -> str:
    if n is None:
        return "—"
    if isinstance(n, float) and not n.is_integer():
        return f"{n:,.1f}"
    return f"{int(n):,}"


def when(value: str | None) -> str:
    """An ISO timestamp as ``2026-12-02 10:15 UTC``."""
    if not value:
        return "—"
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def duration(seconds: int | float | None) -> str:
    if seconds is None:
        return "—"
    s = int(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s" if s % 60 else f"{s // 60} min"
    h, rest = divmod(s, 3600)
    return f"{h} h {rest // 60} min" if rest // 60 else f"{h} h"


#: What a person can do about an API answer, by status.
_ADVICE = {
    400: "Check the values you entered and try again.",
    401: "Your session has ended. Please sign in again.",
    402: "Your prepaid balance does not cover this. Top up your credits and try again.",
    403: "Your role does not allow this. Ask an owner or admin of the organization.",
    404: "It does not exist, or it belongs to another organization.",
    409: "It changed meanwhile. Reload the page and try again.",
    413: "That is too large.",
    422: "Some values are not valid; see the details.",
    429: "Too many requests right now. Wait a moment and try again.",
    502: "A service behind the console failed. Try again in a moment.",
    503: "This part of the platform is not available right now. Try again later.",
    504: "The platform took too long to answer. Try again in a moment.",
}


def problem_words(status: int, problem: Mapping[str, Any] | None) -> dict[str, Any]:
    """An RFC 9457 problem as a title, the detail and advice a person can act on."""
    p = problem or {}
    title = str(p.get("title") or _default_title(status))
    detail = str(p.get("detail") or "")
    errors = []
    for e in p.get("errors") or []:
        if isinstance(e, Mapping):
            loc = ".".join(str(x) for x in (e.get("loc") or []) if x not in ("body", "query"))
            msg = str(e.get("msg") or e.get("message") or "")
            errors.append(f"{loc}: {msg}" if loc else msg)
    advice = _ADVICE.get(status, "Something went wrong. Try again, or contact support.")
    return {"status": status, "title": title, "detail": detail, "errors": errors, "advice": advice}


def _default_title(status: int) -> str:
    return {
        400: "Bad request",
        401: "Not signed in",
        402: "Payment required",
        403: "Not allowed",
        404: "Not found",
        409: "Conflict",
        422: "Invalid input",
        429: "Too many requests",
        503: "Service unavailable",
    }.get(status, "Error")


def json_for_html(value: Any) -> str:
    """JSON safe inside ``<script type="application/json">``: no ``<``, ``>`` or ``&``
    can close the element or start markup (a provider names its own GPU model)."""
    text = json.dumps(value, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
