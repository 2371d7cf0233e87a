"""Reject request input that no database can store, before any handler runs.

JSON allows integers of any size and ``\\ud800``-style escapes that decode to lone
UTF-16 surrogates; BSON holds neither (64-bit integers, valid UTF-8 only). Without
this guard such values pass validation and fail at the write as a 500, possibly after
earlier writes. Every service gets the same answer instead: 422 problem+json.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qlp_kit.problems import NOT_EXECUTED, Problem, problem_response

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_INSPECTED_BODY = 2 * 1024 * 1024
_INT_RE = re.compile(r"^[+-]?\d+$")


def unstorable(value: Any, path: str = "$") -> str | None:
    """Where in ``value`` something cannot be stored, or None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return None if INT64_MIN <= value <= INT64_MAX else f"{path}: integer out of 64-bit range"
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{path}: number is not finite"
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return f"{path}: text is not valid Unicode (lone surrogate)"
        return None
    if isinstance(value, dict):
        for k, v in value.items():
            if "\x00" in k:
                return f"{path}: a key holds a NUL character"
            found = unstorable(k, f"{path} key") or unstorable(v, f"{path}.{k}")
            if found:
                return found
        return None
    if isinstance(value, list):
        for i, v in enumerate(value):
            found = unstorable(v, f"{path}[{i}]")
            if found:
                return found
    return None


def _query_problem(request: Request) -> str | None:
    for key, val in request.query_params.multi_items():
        if _INT_RE.match(val) and not INT64_MIN <= int(val) <= INT64_MAX:
            return f"query {key}: integer out of 64-bit range"
    return None


class StorableInputMiddleware:
    """ASGI middleware: inspects query strings and JSON bodies up to 2 MiB."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        found = _query_problem(request)
        ctype = request.headers.get("content-type", "")
        length = int(request.headers.get("content-length") or 0)
        replay: list[Message] = []
        if not found and "json" in ctype and length <= MAX_INSPECTED_BODY:
            body = b""
            more = True
            while more:
                message = await receive()
                replay.append(message)
                body += message.get("body", b"")
                more = message.get("more_body", False)
                if len(body) > MAX_INSPECTED_BODY:
                    break
            try:
                found = unstorable(json.loads(body)) if body else None
            except (ValueError, RecursionError):
                found = None  # not JSON: the route's own validation answers
        if found:
            response: Response = problem_response(
                Problem(
                    422,
                    "Request is not valid",
                    found,
                    type_="unstorable-value",
                    headers=NOT_EXECUTED,
                ),
                request,
            )
            await response(scope, receive, send)
            return
        if not replay:
            await self.app(scope, receive, send)
            return

        async def replaying() -> Message:
            return replay.pop(0) if replay else await receive()

        await self.app(scope, replaying, send)
