"""Invoices as PDF: billing's printable HTML rendered with WeasyPrint, off the event
loop, fetching nothing (the document is self-contained; any URL in it is refused)."""

from __future__ import annotations

import asyncio
from typing import Any


class PdfUnavailable(Exception):
    """WeasyPrint or its system libraries (Pango) are not installed here."""


def _no_fetch(url: str, *_: Any, **__: Any) -> dict[str, Any]:
    raise ValueError(f"external resources are not fetched: {url[:80]}")


def render_pdf(html: str) -> bytes:
    try:
        import weasyprint
    except (ImportError, OSError) as exc:  # OSError: Pango missing
        raise PdfUnavailable(str(exc)) from None
    out: bytes = weasyprint.HTML(string=html, url_fetcher=_no_fetch).write_pdf()
    return out


async def html_to_pdf(html: str) -> bytes:
    return await asyncio.to_thread(render_pdf, html)
