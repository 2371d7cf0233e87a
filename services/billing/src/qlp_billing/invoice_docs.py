"""Invoices as a person reads them: the bill-to party and the issuer, the HTML view,
and signed, expiring links that open an invoice in a browser without a bearer token.

Pure (no I/O). A link is ``/v1/billing/shared/invoices/{invoice}?org=&exp=&sig=``
where ``sig`` is HMAC-SHA256 over ``org|invoice|exp`` (hex), checked in constant time;
``exp`` is a Unix time after which the link is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import html
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from qlp_kit.money import Money

Doc = dict[str, Any]
SHARED_PREFIX = "/v1/billing/shared/invoices"
#: The id that names the upcoming invoice (the current period, not issued yet).
UPCOMING = "upcoming"
ADDRESS_FIELDS = ("line1", "line2", "city", "postal_code", "region", "country")


class LinkError(ValueError):
    """A signed link that does not open anything (bad signature, expired, malformed)."""


def link_key(link_secret: str, internal_secret: str) -> bytes:
    """The link HMAC key: the configured one, or one derived from the internal auth
    secret (every billing replica has it), never that secret itself."""
    if link_secret:
        return link_secret.encode()
    return hmac.new(internal_secret.encode(), b"qlp-billing-invoice-links", "sha256").digest()


def _mac(key: bytes, org_id: str, invoice_id: str, exp: int) -> str:
    return hmac.new(key, f"{org_id}|{invoice_id}|{exp}".encode(), hashlib.sha256).hexdigest()


def sign_link(key: bytes, org_id: str, invoice_id: str, exp: int) -> str:
    """The path (with query) of a link opening ``invoice_id`` of ``org_id`` until ``exp``."""
    query = urlencode({"org": org_id, "exp": exp, "sig": _mac(key, org_id, invoice_id, exp)})
    return f"{SHARED_PREFIX}/{invoice_id}?{query}"


def verify_link(key: bytes, org_id: str, invoice_id: str, exp: str, sig: str, now: float) -> None:
    """Raise :class:`LinkError` unless the link is intact and not expired."""
    if not org_id or not exp.isdigit() or not sig:
        raise LinkError("the link is incomplete; ask for a new one")
    expected = _mac(key, org_id, invoice_id, int(exp))
    if not hmac.compare_digest(expected, sig.lower()):
        raise LinkError("the link's signature does not match; ask for a new one")
    if int(exp) <= now:
        raise LinkError("the link has expired; ask for a new one")


def issuer(settings: Any) -> Doc:
    return {
        "name": settings.invoice_issuer_name,
        "address": [x for x in settings.invoice_issuer_address.split("\n") if x],
        "email": settings.invoice_issuer_email,
    }


def bill_to(sub: Mapping[str, Any] | None, org_id: str) -> Doc:
    """Who the invoice is addressed to: the org's billing profile, its name from the
    identity service when the profile names none, else the org id."""
    sub = sub or {}
    profile = dict(sub.get("profile") or {})
    address = dict(profile.get("address") or {})
    return {
        "org_id": org_id,
        "name": str(profile.get("name") or sub.get("org_name") or org_id),
        "email": str(profile.get("email") or sub.get("org_email") or ""),
        "address": {k: str(address.get(k) or "") for k in ADDRESS_FIELDS},
        "tax_id": str(profile.get("tax_id") or ""),
    }


def _fmt(m: Mapping[str, Any] | None) -> str:
    m = m or {"amount": 0, "currency": "USD"}
    return Money(int(m["amount"]), str(m.get("currency", "USD"))).format()


def _date(value: Any) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, int | float):
        value = datetime.fromtimestamp(value / 1000, UTC)
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d")
    return str(value)[:10]


_STATUS_WORDS = {
    "upcoming": "Upcoming (not issued yet)",
    "draft": "Draft (not issued yet)",
    "finalized": "Open",
    "paid": "Paid",
    "void": "Void",
}


def invoice_html(inv: Mapping[str, Any]) -> str:
    """A printable HTML invoice: number, dates, issuer, bill-to, lines, totals."""
    esc = html.escape
    to = inv.get("bill_to") or bill_to(None, str(inv["org_id"]))
    src = inv.get("issuer") or {}
    number = str(inv.get("number") or "")
    status = str(inv.get("status") or "")
    title = f"Invoice {number}" if number else f"Invoice preview {inv.get('period', '')}"
    addr = [str(to.get("address", {}).get(k) or "") for k in ADDRESS_FIELDS]
    city_line = " ".join(x for x in (addr[3], addr[2], addr[4]) if x)
    to_lines = [to.get("name", ""), addr[0], addr[1], city_line, addr[5], to.get("email", "")]
    if to.get("tax_id"):
        to_lines.append(f"Tax ID: {to['tax_id']}")
    from_lines = [src.get("name", ""), *src.get("address", []), src.get("email", "")]

    def block(lines: list[Any]) -> str:
        return "<br>".join(esc(str(x)) for x in lines if x)

    rows = "".join(
        f"<tr><td>{esc(str(x['description']))}</td>"
        f"<td class='n'>{int(x.get('quantity', 1))}</td>"
        f"<td class='n'>{esc(_fmt(x['amount']))}"
        f"{' (paid from balance)' if x.get('prepaid') else ''}</td></tr>"
        for x in inv.get("lines") or []
    )
    facts = [
        ("Invoice number", number or "assigned when issued"),
        ("Status", _STATUS_WORDS.get(status, status)),
        ("Billing period", f"{_date(inv.get('period_start'))} to {_date(inv.get('period_end'))}"),
        ("Issue date", _date(inv.get("issued_at")) or "not issued yet"),
        ("Due date", _date(inv.get("due_at")) or "-"),
    ]
    if inv.get("paid_at"):
        facts.append(("Paid on", _date(inv["paid_at"])))
    fact_rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(str(v))}</td></tr>" for k, v in facts)
    prepaid = int((inv.get("total") or {}).get("amount", 0)) - int(
        (inv.get("amount_due") or {}).get("amount", 0)
    )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{esc(title)}</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:50em;margin:2em auto}"
        "td,th{padding:4px 8px;border-bottom:1px solid #ddd;text-align:left}"
        ".n{text-align:right}.parties{display:flex;gap:4em}</style>"
        "</head><body>"
        f"<h1>{esc(title)}</h1>"
        "<div class='parties'>"
        f"<div><h2>From</h2><p>{block(from_lines)}</p></div>"
        f"<div><h2>Bill to</h2><p>{block(to_lines)}</p></div>"
        "</div>"
        f"<table>{fact_rows}</table>"
        "<h2>Lines</h2>"
        "<table><tr><th>Description</th><th class='n'>Quantity</th><th class='n'>Amount</th></tr>"
        f"{rows}</table>"
        "<table>"
        f"<tr><th>Subtotal</th><td class='n'>{esc(_fmt(inv.get('subtotal') or inv.get('total')))}</td></tr>"
        f"<tr><th>Tax</th><td class='n'>{esc(_fmt(inv.get('tax')))}</td></tr>"
        f"<tr><th>Total</th><td class='n'>{esc(_fmt(inv.get('total')))}</td></tr>"
        f"<tr><th>Already paid from the prepaid balance</th><td class='n'>"
        f"{esc(_fmt({'amount': prepaid, 'currency': 'USD'}))}</td></tr>"
        f"<tr><th>Amount due</th><td class='n'><strong>{esc(_fmt(inv.get('amount_due')))}"
        "</strong></td></tr></table>"
        "</body></html>"
    )


def error_html(status: int, message: str) -> str:
    esc = html.escape
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>Invoice link not valid</title></head><body>"
        f"<h1>This invoice link does not open an invoice ({status})</h1>"
        f"<p>{esc(message)}</p></body></html>"
    )
