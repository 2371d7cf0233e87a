"""RFC 9457 problem details: every error leaves a service as application/problem+json.

``type`` is a stable URI per kind of problem, so clients can branch on it.

A problem given before the endpoint executed anything (the request failed
validation, or no route or method matched) carries ``x-qlp-not-executed: 1``: the gateway then stores no
idempotent answer for it and strips the header before answering the client.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://qlp.dev/problems/"
#: Internal response header: the request was refused before anything executed.
NOT_EXECUTED_HEADER = "x-qlp-not-executed"
NOT_EXECUTED = {NOT_EXECUTED_HEADER: "1"}

_STATUS_TYPES = {
    400: "bad-request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    409: "conflict",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "validation-error",
    429: "rate-limited",
    500: "internal",
    502: "bad-gateway",
    503: "service-unavailable",
    504: "gateway-timeout",
}

log = structlog.get_logger("qlp.problems")


class Problem(Exception):
    """Raise anywhere in a request to answer with a problem document."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        type_: str | None = None,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.type = TYPE_BASE + (type_ or _STATUS_TYPES.get(status, "error"))
        self.headers = headers or {}
        if clash := RESERVED_MEMBERS & extensions.keys():
            raise TypeError(f"problem extensions may not replace {sorted(clash)}")
        self.extensions = extensions

    def body(self, instance: str | None = None) -> dict[str, Any]:
        doc: dict[str, Any] = {"type": self.type, "title": self.title, "status": self.status}
        if self.detail:
            doc["detail"] = self.detail
        if instance:
            doc["instance"] = instance
        doc.update(self.extensions)
        return doc


#: RFC 9457's own members: an extension of the same name would change their meaning.
RESERVED_MEMBERS = frozenset({"type", "title", "status", "detail", "instance"})


def not_found(what: str = "resource") -> Problem:
    return Problem(404, "Not found", f"{what} not found")


#: One title per status, used wherever a problem has no more specific one.
STATUS_TITLES = {
    400: "Bad request",
    401: "Unauthenticated",
    402: "Payment required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflict",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Request is not valid",
    429: "Too many requests",
    500: "Internal error",
    502: "Bad gateway",
    503: "Service unavailable",
    504: "Gateway timeout",
}
MALFORMED_JSON_TITLE = "Malformed JSON"


def status_title(status: int) -> str:
    return STATUS_TITLES.get(status, "Error")


def _where(loc: Sequence[Any]) -> str:
    """``("body", "amount", "amount")`` → ``amount.amount``; query and path
    parameters are named as such."""
    parts = [str(p) for p in loc]
    if parts and parts[0] == "body":
        return ".".join(parts[1:]) or "body"
    if len(parts) >= 2 and parts[0] in ("query", "path", "header", "cookie"):
        return f"{parts[0]} parameter {'.'.join(parts[1:])}"
    return ".".join(parts)


def _sentence(err: Mapping[str, Any]) -> str:
    where = _where(err.get("loc", ()))
    msg = str(err.get("msg", "is not valid"))
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if err.get("type") == "missing":
        return f"{where} is required"
    return f"{where}: {msg}" if where else msg


def validation_problem(raw_errors: Sequence[Any]) -> Problem:
    """The problem for a request that failed validation.

    A body that is not JSON at all is 400 (``Malformed JSON``); a well-formed one that
    breaks the schema is 422. ``detail`` says in words what to fix first; ``errors``
    keeps every problem (``loc``, ``msg``, ``type``). Both are marked not executed.
    """
    errors = [
        {
            "loc": [str(p) for p in e.get("loc", ())],
            "msg": str(e.get("msg", "")),
            "type": str(e.get("type", "")),
        }
        for e in raw_errors
    ]
    if any(e["type"] == "json_invalid" for e in errors):
        bad = next(e for e in raw_errors if e.get("type") == "json_invalid")
        reason = str((bad.get("ctx") or {}).get("error", "")).strip()
        detail = "the request body is not valid JSON" + (f" ({reason})" if reason else "")
        return Problem(
            400,
            MALFORMED_JSON_TITLE,
            detail + "; send a JSON document with content-type application/json",
            type_="malformed-json",
            headers=NOT_EXECUTED,
            errors=errors,
        )
    detail = _sentence(raw_errors[0]) if raw_errors else "the request is not valid"
    if len(errors) > 1:
        detail += f" (and {len(errors) - 1} more in errors)"
    return Problem(422, STATUS_TITLES[422], detail, headers=NOT_EXECUTED, errors=errors)


def problem_response(problem: Problem, request: Request | None = None) -> JSONResponse:
    instance = request.url.path if request is not None else None
    headers = dict(problem.headers)
    rid = getattr(getattr(request, "state", None), "request_id", None) if request else None
    body = problem.body(instance)
    if rid:
        body["request_id"] = rid
    return JSONResponse(body, status_code=problem.status, media_type=PROBLEM_JSON, headers=headers)


def install_problem_handlers(app: FastAPI) -> None:
    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        return problem_response(exc, request)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        title = status_title(exc.status_code)
        detail = exc.detail if isinstance(exc.detail, str) else None
        # Services raise Problem, never HTTPException: this one is the framework's own
        # (no such route, wrong method, body too large), given before any endpoint ran.
        headers = {**(exc.headers or {}), **NOT_EXECUTED}
        return problem_response(Problem(exc.status_code, title, detail, headers=headers), request)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        # FastAPI validates the request before it calls the endpoint: nothing executed.
        return problem_response(validation_problem(exc.errors()), request)

    async def on_unhandled(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", path=request.url.path)
        return problem_response(
            Problem(500, status_title(500), "an unexpected error occurred"), request
        )

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(Exception, on_unhandled)
