"""The page machinery every route shares: the signed-in session, rendering with the
security headers, CSRF and same-origin checks on every form, API problems as pages."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import structlog
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from qlp_console import format as fmt
from qlp_console import security
from qlp_console.client import Api, ApiError
from qlp_console.repository import SessionRepository
from qlp_console.settings import ConsoleSettings

log = structlog.get_logger("qlp.console")

HERE = Path(__file__).parent
STATIC = HERE / "static"


def _static_digest() -> str:
    h = hashlib.sha256()
    for p in sorted(STATIC.rglob("*")):
        if p.is_file():
            h.update(p.name.encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:12]


STATIC_VERSION = _static_digest()

templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.filters.update(
    money=fmt.money,
    when=fmt.when,
    number=fmt.number,
    duration=fmt.duration,
)
templates.globals["static"] = lambda path: f"/static/{STATIC_VERSION}/{path}"


class LoginRequired(Exception):
    pass


class FormRefused(Exception):
    """A state-changing request without a valid CSRF token or from another site."""


@dataclass
class Session:
    key: str
    doc: dict[str, Any]
    api: Api
    csrf: str
    flash: list[dict[str, str]] = field(default_factory=list)

    @property
    def org_id(self) -> str:
        return str(self.doc["org_id"])

    @property
    def role(self) -> str:
        return str(self.doc.get("role") or "")

    @property
    def user(self) -> dict[str, Any]:
        return {
            "id": self.doc.get("user_id"),
            "email": self.doc.get("email"),
            "name": self.doc.get("display_name") or self.doc.get("email"),
        }

    @property
    def platform_admin(self) -> bool:
        return bool(self.doc.get("platform_admin"))

    def can(self, *roles: str) -> bool:
        return self.role in roles


def settings_of(request: Request) -> ConsoleSettings:
    s: ConsoleSettings = request.app.state.ctx.settings
    return s


def http_of(request: Request) -> httpx.AsyncClient:
    client: httpx.AsyncClient = request.app.state.ctx.extras["http"]
    return client


def sessions_of(request: Request) -> SessionRepository:
    repo: SessionRepository = request.app.state.ctx.extras["sessions"]
    return repo


def public_api(request: Request) -> Api:
    return Api(http_of(request))


def secure_request(request: Request) -> bool:
    return security.is_secure(
        request.url.scheme, request.headers, settings_of(request).cookie_secure
    )


async def current_session(request: Request) -> Session | None:
    cached = getattr(request.state, "console_session", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    settings = settings_of(request)
    sid = request.cookies.get(settings.session_cookie)
    if not sid:
        return None
    key = security.session_key(sid)
    repo = sessions_of(request)
    doc = await repo.get(key)
    if doc is None:
        return None
    if token_expiring(doc):
        refreshed = await _refresh(request, repo, key)
        if refreshed is None:
            return None
        doc = refreshed
    elif time.time() - _ts(doc.get("last_seen")) > 60:
        await repo.touch(key, settings.session_idle_s)
    flash = list(doc.get("flash") or [])
    if flash:
        await repo.update_tokens(key, {"flash": []})
    sess = Session(key, doc, Api(http_of(request), doc["access_token"]), doc["csrf"], flash)
    request.state.console_session = sess
    return sess


def token_expiring(doc: dict[str, Any]) -> bool:
    return float(doc.get("access_expires_at", 0)) - 60 < time.time()


#: One refresh at a time per session in this process: a refresh token is used up by
#: its first use, so the page and its two event streams must not all spend it.
_refresh_locks: dict[str, asyncio.Lock] = {}
#: How long one request may hold the right to refresh a session (across replicas).
REFRESH_HOLD_S = 10.0


async def _refresh(request: Request, repo: SessionRepository, key: str) -> dict[str, Any] | None:
    """New tokens for the session (or the ones another request just got); None when
    identity refuses the refresh token: the session is over."""
    if len(_refresh_locks) > 10_000:
        for k in [k for k, lk in _refresh_locks.items() if not lk.locked()]:
            _refresh_locks.pop(k, None)
    lock = _refresh_locks.setdefault(key, asyncio.Lock())
    async with lock:
        doc = await repo.get(key)
        if doc is None or not token_expiring(doc):
            return doc  # gone, or refreshed meanwhile
        if not await repo.claim_refresh(key, doc["refresh_token"], REFRESH_HOLD_S):
            # another replica is spending it: wait for its new tokens
            deadline = time.monotonic() + REFRESH_HOLD_S
            while time.monotonic() < deadline:
                await asyncio.sleep(0.1)
                doc = await repo.get(key)
                if doc is None or not token_expiring(doc):
                    return doc
            raise ApiError(503, {"title": "Try again", "detail": "the session is being renewed"})
        try:
            tokens = await public_api(request).post(
                "/v1/auth/refresh", {"refresh_token": doc["refresh_token"]}
            )
        except ApiError as exc:
            if exc.status not in (400, 401, 403, 404, 422):
                raise
            again = await repo.get(key)  # another replica may have refreshed it
            if again is not None and again.get("refresh_token") != doc["refresh_token"]:
                return again
            await repo.delete(key)
            return None
        update = {**token_fields(tokens), "refreshing_until": 0}
        await repo.update_tokens(key, update)
        doc.update(update)
        return doc


def _ts(value: Any) -> float:
    return value.timestamp() if hasattr(value, "timestamp") else 0.0


def token_fields(tokens: dict[str, Any]) -> dict[str, Any]:
    return {
        "access_token": tokens["access_token"],
        "refresh_token": tokens["refresh_token"],
        "access_expires_at": time.time() + int(tokens.get("expires_in") or 900),
        "org_id": tokens["org"]["id"],
        "org_name": tokens["org"]["name"],
        "user_id": tokens["user"]["id"],
        "email": tokens["user"]["email"],
        "display_name": tokens["user"].get("display_name") or "",
        "role": tokens.get("role") or "",
        # shows the admin views in the navigation; the API decides what they may read
        "platform_admin": bool(tokens.get("platform_admin")),
    }


async def still_signed_in(request: Request, sess: Session) -> bool:
    """For a long-lived stream: is the session still there (not logged out), with a
    fresh access token (refreshed when it runs out)? Updates ``sess`` in place."""
    repo = sessions_of(request)
    doc = await repo.get(sess.key)
    if doc is not None and token_expiring(doc):
        doc = await _refresh(request, repo, sess.key)
    if doc is None:
        return False
    sess.doc = doc
    sess.api.token = doc["access_token"]
    return True


async def signed_in(request: Request) -> Session:
    sess = await current_session(request)
    if sess is None:
        raise LoginRequired()
    return sess


async def flash(sess: Session, request: Request, text: str, level: str = "ok") -> None:
    await sessions_of(request).update_tokens(
        sess.key, {"flash": [*sess.flash, {"text": text, "level": level}]}
    )


# -- CSRF ------------------------------------------------------------------------------


def pre_csrf(request: Request) -> tuple[str, str | None]:
    """The visitor's pre-login CSRF token, and a new cookie value when they had none."""
    settings = settings_of(request)
    value = request.cookies.get(settings.csrf_cookie)
    new = None
    if not value or len(value) < 20:
        value = new = security.new_token()
    return security.pre_session_token(settings.signing_key(), value), new


async def verified_form(request: Request, sess: Session | None) -> FormData:
    """The posted form, once the request is shown to come from the console's own page:
    same origin, and the CSRF token of this session (or of this visitor)."""
    settings = settings_of(request)
    if not security.same_origin(request.headers, request.url.scheme, settings.trusted_origins):
        raise FormRefused("cross-site request")
    form = await request.form()
    given = request.headers.get(security.CSRF_HEADER) or form.get(security.CSRF_FIELD)
    if sess is not None:
        expected: str | None = sess.csrf
    else:
        cookie = request.cookies.get(settings.csrf_cookie)
        expected = security.pre_session_token(settings.signing_key(), cookie) if cookie else None
    if not security.tokens_match(expected, given if isinstance(given, str) else None):
        raise FormRefused("missing or wrong CSRF token")
    return form


# -- responses -------------------------------------------------------------------------


def secured(response: Response, *, cache: bool = False) -> Response:
    for k, v in security.SECURITY_HEADERS.items():
        response.headers.setdefault(k, v)
    if not cache:
        response.headers["Cache-Control"] = "no-store"
    return response


def render(
    request: Request,
    template: str,
    sess: Session | None = None,
    *,
    status: int = 200,
    **context: Any,
) -> Response:
    csrf = sess.csrf if sess else None
    new_cookie = None
    if sess is None:
        csrf, new_cookie = pre_csrf(request)
    html = templates.get_template(template).render(
        request=request,
        sess=sess,
        csrf=csrf,
        path=request.url.path,
        flash=sess.flash if sess else [],
        **context,
    )
    resp = HTMLResponse(html, status_code=status)
    if new_cookie:
        resp.set_cookie(
            settings_of(request).csrf_cookie,
            new_cookie,
            max_age=7 * 24 * 3600,
            **security.cookie_flags(secure_request(request)),  # type: ignore[arg-type]
        )
    return secured(resp)


def redirect(url: str, status: int = 303) -> Response:
    return secured(RedirectResponse(url, status_code=status))


def error_page(request: Request, sess: Session | None, err: ApiError) -> Response:
    status = err.status if 400 <= err.status < 600 else 502
    return render(request, "error.html", sess, status=status, problem=err.words)


Handler = Callable[..., Awaitable[Response]]


def page(fn: Handler) -> Handler:
    """A console page: not signed in → the login page (coming back here after);
    an API problem → a page saying it in words; a refused form → 403."""

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Response:
        request: Request = kwargs["request"]
        try:
            return await fn(*args, **kwargs)
        except LoginRequired:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            if request.headers.get("hx-request"):
                resp = Response(status_code=204, headers={"HX-Redirect": "/login"})
                return secured(resp)
            return redirect(f"/login?next={quote(target, safe='')}")
        except FormRefused as exc:
            log.info("form refused", reason=str(exc), path=request.url.path)
            return render(
                request,
                "error.html",
                getattr(request.state, "console_session", None),
                status=403,
                problem={
                    "status": 403,
                    "title": "Request refused",
                    "detail": f"This form could not be accepted ({exc}).",
                    "errors": [],
                    "advice": "Reload the page and submit the form again.",
                },
            )
        except ApiError as err:
            if err.status == 401:
                return redirect("/login")
            sess = getattr(request.state, "console_session", None)
            return error_page(request, sess, err)

    return wrapper
