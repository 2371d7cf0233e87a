from __future__ import annotations

import pytest

from qlp_console import security


def test_csp_allows_no_inline_script_eval_or_other_origins() -> None:
    csp = security.CSP
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
    assert "http" not in csp  # no CDN anywhere


def test_cookie_flags_are_httponly_lax_and_secure_under_https() -> None:
    assert security.cookie_flags(True) == {
        "httponly": True,
        "samesite": "lax",
        "secure": True,
        "path": "/",
    }
    assert security.is_secure("http", {"x-forwarded-proto": "https"})
    assert not security.is_secure("http", {})
    assert security.is_secure("https", {})
    assert security.is_secure("http", {}, forced=True)
    assert not security.is_secure("https", {"x-forwarded-proto": "https"}, forced=False)


def test_pre_session_tokens_are_bound_to_the_cookie_and_the_key() -> None:
    key = b"k" * 32
    t = security.pre_session_token(key, "cookie-a")
    assert security.tokens_match(t, security.pre_session_token(key, "cookie-a"))
    assert not security.tokens_match(t, security.pre_session_token(key, "cookie-b"))
    assert not security.tokens_match(t, security.pre_session_token(b"x" * 32, "cookie-a"))
    assert not security.tokens_match(t, None)
    assert not security.tokens_match(None, None)
    assert not security.tokens_match("", "")


def test_session_key_is_a_digest_not_the_id() -> None:
    sid = security.new_token()
    key = security.session_key(sid)
    assert sid not in key and len(key) == 64
    assert security.session_key(sid) == key


@pytest.mark.parametrize(
    ("headers", "ok"),
    [
        ({"host": "c.example", "origin": "http://c.example"}, True),
        ({"host": "c.example", "origin": "http://evil.example"}, False),
        ({"host": "c.example", "origin": "null"}, False),
        ({"host": "c.example", "sec-fetch-site": "cross-site"}, False),
        ({"host": "c.example", "sec-fetch-site": "same-site"}, False),
        (
            {"host": "c.example", "sec-fetch-site": "same-origin", "origin": "http://c.example"},
            True,
        ),
        ({"host": "c.example", "referer": "http://c.example/app/x"}, True),
        ({"host": "c.example", "referer": "http://evil.example/app/x"}, False),
        ({"host": "c.example"}, True),  # neither: left to the CSRF token
        # behind the gateway: the forwarded host and scheme count
        (
            {
                "host": "10.0.0.5:8000",
                "x-forwarded-host": "qlp.example",
                "x-forwarded-proto": "https",
                "origin": "https://qlp.example",
            },
            True,
        ),
        (
            {
                "host": "10.0.0.5:8000",
                "x-forwarded-host": "qlp.example",
                "x-forwarded-proto": "https",
                "origin": "http://qlp.example",
            },
            False,
        ),
    ],
)
def test_same_origin(headers: dict[str, str], ok: bool) -> None:
    assert security.same_origin(headers, "http") is ok


def test_trusted_origins_are_allowed() -> None:
    h = {"host": "a", "origin": "https://admin.example"}
    assert security.same_origin(h, "http", ["https://admin.example/"])


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/app/billing", "/app/billing"),
        ("/app?x=1", "/app?x=1"),
        ("//evil.example/x", "/app"),
        ("https://evil.example", "/app"),
        ("/\\evil.example", "/app"),
        ("", "/app"),
        (None, "/app"),
    ],
)
def test_safe_next_never_leaves_the_site(target: str | None, expected: str) -> None:
    assert security.safe_next(target) == expected
