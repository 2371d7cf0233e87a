"""Sign-up, sign-in, invitations and sign-out; the static files."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from qlp_console import security
from qlp_console.client import ApiError
from qlp_console.web import (
    STATIC,
    STATIC_VERSION,
    current_session,
    page,
    public_api,
    redirect,
    render,
    secure_request,
    secured,
    sessions_of,
    settings_of,
    token_fields,
    verified_form,
)
from qlp_kit.permissions import public

router = APIRouter(include_in_schema=False, dependencies=[public()])

_TYPES = {".js": "text/javascript", ".css": "text/css", ".txt": "text/plain", ".md": "text/plain"}


@router.get("/static/{version}/{path:path}")
async def static(version: str, path: str) -> Response:
    """The console's own files and the vendored libraries; long-cached under the
    digest of their contents."""
    target = (STATIC / path).resolve()
    if not target.is_file() or STATIC.resolve() not in target.parents:
        return secured(Response("not found", status_code=404, media_type="text/plain"))
    resp = FileResponse(target, media_type=_TYPES.get(target.suffix, None))
    if version == STATIC_VERSION:
        resp.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    else:
        resp.headers["Cache-Control"] = "no-cache"
    return secured(resp, cache=True)


async def _start_session(request: Request, tokens: dict[str, object], target: str) -> Response:
    settings = settings_of(request)
    sid = security.new_token()
    doc = token_fields(tokens)
    doc["csrf"] = security.new_token()
    await sessions_of(request).create(
        security.session_key(sid), doc, settings.session_idle_s, settings.session_max_age_s
    )
    resp = redirect(security.safe_next(target))
    resp.set_cookie(
        settings.session_cookie,
        sid,
        max_age=settings.session_max_age_s,
        **security.cookie_flags(secure_request(request)),  # type: ignore[arg-type]
    )
    return resp


@router.get("/")
@page
async def home(request: Request) -> Response:
    sess = await current_session(request)
    return redirect("/app" if sess else "/login")


@router.get("/login")
@page
async def login_form(request: Request) -> Response:
    if await current_session(request):
        return redirect("/app")
    nxt = request.query_params.get("next")
    return render(request, "login.html", next=security.safe_next(nxt) if nxt else None)


@router.post("/login")
@page
async def login(request: Request) -> Response:
    form = await verified_form(request, None)
    email = str(form.get("email") or "").strip()
    nxt = security.safe_next(request.query_params.get("next"))
    try:
        tokens = await public_api(request).post(
            "/v1/auth/login", {"email": email, "password": str(form.get("password") or "")}
        )
    except ApiError as err:
        return render(
            request,
            "login.html",
            status=err.status if err.status < 500 else 503,
            problem=err.words,
            email=email,
            next=nxt,
        )
    return await _start_session(request, tokens, nxt)


@router.get("/signup")
@page
async def signup_form(request: Request) -> Response:
    return render(request, "signup.html", form={})


@router.post("/signup")
@page
async def signup(request: Request) -> Response:
    form = await verified_form(request, None)
    body = {
        "org_name": str(form.get("org_name") or "").strip(),
        "email": str(form.get("email") or "").strip(),
        "password": str(form.get("password") or ""),
        "display_name": str(form.get("display_name") or "").strip(),
    }
    try:
        tokens = await public_api(request).post("/v1/auth/signup", body)
    except ApiError as err:
        shown = {k: v for k, v in body.items() if k != "password"}
        return render(
            request,
            "signup.html",
            status=err.status if err.status < 500 else 503,
            problem=err.words,
            form=shown,
        )
    return await _start_session(request, tokens, "/app?welcome=1")


@router.get("/invite")
@page
async def invite_form(request: Request) -> Response:
    return render(request, "invite.html")


@router.post("/invite")
@page
async def invite_accept(request: Request) -> Response:
    form = await verified_form(request, None)
    body = {
        "token": str(form.get("token") or "").strip(),
        "password": str(form.get("password") or ""),
        "display_name": str(form.get("display_name") or "").strip(),
    }
    try:
        tokens = await public_api(request).post("/v1/auth/invitations/accept", body)
    except ApiError as err:
        return render(
            request,
            "invite.html",
            status=err.status if err.status < 500 else 503,
            problem=err.words,
        )
    return await _start_session(request, tokens, "/app")


@router.post("/logout")
@page
async def logout(request: Request) -> Response:
    sess = await current_session(request)
    settings = settings_of(request)
    if sess is not None:  # nothing to protect once the session is gone
        await verified_form(request, sess)
    if sess is not None:
        await sessions_of(request).delete(sess.key)
        try:  # revoke the refresh token too; the session is gone either way
            await public_api(request).post(
                "/v1/auth/logout", {"refresh_token": sess.doc["refresh_token"]}
            )
        except ApiError:
            pass
    resp = redirect("/login")
    resp.delete_cookie(settings.session_cookie, path="/")
    resp.headers["Clear-Site-Data"] = '"cache"'
    return resp
