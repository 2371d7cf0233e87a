"""What an HTML page loads: for tests that a page works offline under a strict CSP."""

from __future__ import annotations

from html.parser import HTMLParser

#: Content types by file extension of the assets a docs page loads.
CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


class PageRefs(HTMLParser):
    """The URLs a page loads (``src``/``href``), inline scripts and inline handlers."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts = 0
        self.inline_handlers: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        for attr in ("src", "href"):
            if a.get(attr):
                self.urls.append(str(a[attr]))
        self._in_script = tag == "script"
        if tag == "script" and not a.get("src"):
            self.inline_scripts += 1
        self.inline_handlers += [name for name in a if name.startswith("on")]

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts += 1


def page_refs(html: str) -> PageRefs:
    refs = PageRefs()
    refs.feed(html)
    refs.close()
    return refs


def csp_directives(header: str) -> dict[str, str]:
    """``default-src 'self'; script-src 'self'`` → {directive: sources}."""
    out = {}
    for part in header.split(";"):
        name, _, sources = part.strip().partition(" ")
        if name:
            out[name] = sources.strip()
    return out
