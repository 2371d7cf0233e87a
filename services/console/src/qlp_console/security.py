"""Browser security, pure: CSRF tokens, the Content-Security-Policy, cookie flags and
the same-origin check for state-changing requests. No I/O."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from urllib.parse import urlsplit

#: Scripts and styles only from the console itself: no inline script, no eval, no CDN.
CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def new_token(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


def session_key(session_id: str) -> str:
    """What the store keeps for a session id: its digest (a leaked store holds no
    usable cookie)."""
    return hashlib.sha256(session_id.encode()).hexdigest()


def pre_session_token(key: bytes, cookie_value: str) -> str:
    """The CSRF token of a visitor not signed in: an HMAC of their random cookie
    (double submit, signed so that a cookie planted by a sibling domain is not enough)."""
    return hmac.new(key, f"pre|{cookie_value}".encode(), hashlib.sha256).hexdigest()


def tokens_match(expected: str | None, given: str | None) -> bool:
    return bool(expected) and bool(given) and hmac.compare_digest(str(expected), str(given))


def is_secure(scheme: str, headers: Mapping[str, str], forced: bool | None = None) -> bool:
    if forced is not None:
        return forced
    proto = headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return (proto or scheme) == "https"


def origin_of(url: str) -> str | None:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def same_origin(headers: Mapping[str, str], scheme: str, trusted: list[str] | None = None) -> bool:
    """A state-changing request comes from the console's own pages: the browser's
    ``Sec-Fetch-Site`` says same-origin, or ``Origin`` (else ``Referer``) names the host
    the request was sent to. A request that carries neither is let through to the CSRF
    token check (older clients); one naming another site is refused."""
    site = headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    host = headers.get("x-forwarded-host") or headers.get("host") or ""
    proto = headers.get("x-forwarded-proto", "").split(",")[0].strip() or scheme
    allowed = {f"{proto}://{host}".lower(), *(o.lower().rstrip("/") for o in trusted or [])}
    origin = headers.get("origin")
    if origin is not None and origin != "null":
        return origin.lower().rstrip("/") in allowed
    if origin == "null":
        return False
    referer = headers.get("referer")
    if referer:
        return origin_of(referer) in allowed
    return True


def cookie_flags(secure: bool) -> dict[str, object]:
    return {"httponly": True, "samesite": "lax", "secure": secure, "path": "/"}


def safe_next(target: str | None, default: str = "/app") -> str:
    """A redirect target after login that stays on this site (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target
