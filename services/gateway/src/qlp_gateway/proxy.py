"""Forwarding one request to a service and its answer back, streaming both bodies
through one pooled ``httpx.AsyncClient``. Status, content type and headers pass
unchanged except hop-by-hop ones; bodies pass as bytes (gzip stays gzip)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy

import httpx
import structlog
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from qlp_kit.auth import INTERNAL_HEADERS, PRINCIPAL_HEADER, request_target
from qlp_kit.problems import NOT_EXECUTED_HEADER, Problem

log = structlog.get_logger("qlp.gateway.proxy")

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
#: Request headers the gateway sets itself.
_REQUEST_DROP = HOP_BY_HOP | {"host", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"}
#: Response headers the gateway's own server writes, and internal ones.
_RESPONSE_DROP = HOP_BY_HOP | {"date", "server", "x-request-id", NOT_EXECUTED_HEADER}


def _connection_listed(headers: Iterable[tuple[str, str]]) -> set[str]:
    listed: set[str] = set()
    for k, v in headers:
        if k.lower() == "connection":
            listed |= {t.strip().lower() for t in v.split(",") if t.strip()}
    return listed


def is_internal(name: str) -> bool:
    """Headers only the gateway may set (a client's are dropped, never forwarded)."""
    n = name.lower()
    return n.startswith(PRINCIPAL_HEADER) or n in INTERNAL_HEADERS


def request_headers(
    raw: list[tuple[str, str]], *, keep_authorization: bool
) -> list[tuple[str, str]]:
    """The client's headers minus hop-by-hop, internal and gateway-set ones."""
    listed = _connection_listed(raw)
    out = []
    for k, v in raw:
        n = k.lower()
        if n in _REQUEST_DROP or n in listed or is_internal(n):
            continue
        if n == "authorization" and not keep_authorization:
            continue
        out.append((k, v))
    return out


def response_headers(raw: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    items = list(raw)
    listed = _connection_listed(items)
    return [(k, v) for k, v in items if k.lower() not in _RESPONSE_DROP | listed]


def upstream_target(url: str) -> str:
    """The raw path and query a service receives for ``url`` (as httpx sends it), which
    the forwarded principal's signature binds."""
    path, _, query = httpx.URL(url).raw_path.partition(b"?")
    return request_target(path, query)


class BodyTooLarge(Exception):
    pass


@dataclass
class LimitedBody:
    """The request body as a stream that stops at ``limit`` bytes."""

    request: Request
    limit: int
    seen: int = 0
    exceeded: bool = False

    async def stream(self) -> AsyncIterator[bytes]:
        async for chunk in self.request.stream():
            self.seen += len(chunk)
            if self.seen > self.limit:
                self.exceeded = True
                raise BodyTooLarge()
            if chunk:
                yield chunk

    async def read(self) -> bytes:
        parts = [c async for c in self.stream()]
        return b"".join(parts)


def too_large(limit: int) -> Problem:
    return Problem(
        413,
        "Payload too large",
        f"the request body is larger than {limit} bytes",
        type_="payload-too-large",
        limit=limit,
    )


class Upstreams:
    """One pooled client for every service."""

    def __init__(self, connect_timeout_s: float, timeout_s: float, max_connections: int) -> None:
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
            limits=httpx.Limits(
                max_connections=max_connections,
                max_keepalive_connections=max_connections,
                keepalive_expiry=30.0,
            ),
            follow_redirects=False,
            trust_env=False,
            # A proxy must never keep cookies: one caller's Set-Cookie would be sent
            # on with every later request of anyone.
            cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
        )

    async def close(self) -> None:
        await self.client.aclose()

    async def send(
        self,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        content: bytes | AsyncIterator[bytes] | None,
        body: LimitedBody | None = None,
        service: str = "",
    ) -> httpx.Response:
        """Send and return the response with its body not yet read (stream)."""
        req = self.client.build_request(method, url, headers=headers, content=content)
        try:
            return await self.client.send(req, stream=True)
        except BodyTooLarge:
            raise too_large(body.limit if body else 0) from None
        except httpx.TimeoutException:
            if body is not None and body.exceeded:
                raise too_large(body.limit) from None
            raise Problem(
                504, "Gateway timeout", f"{service or 'the service'} did not answer in time"
            ) from None
        except httpx.HTTPError as exc:
            if body is not None and body.exceeded:
                raise too_large(body.limit) from None
            log.warning("upstream unreachable", service=service, error=str(exc))
            raise Problem(
                503,
                "Service unavailable",
                f"{service or 'the service'} is not reachable",
                type_="service-unavailable",
                service=service,
            ) from None


#: Answers up to this size (by Content-Length) are read whole and sent in one piece,
#: which is cheaper than streaming them.
SMALL_BODY = 64 * 1024


async def upstream_response(
    resp: httpx.Response, extra_headers: dict[str, str] | None = None
) -> Response:
    """The service's answer, unchanged (bytes as received): small ones in one piece,
    others (or of unknown length) streamed."""
    length = resp.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) <= SMALL_BODY:
        try:
            data = b"".join([chunk async for chunk in resp.aiter_raw()])
        finally:
            await resp.aclose()
        out = Response(content=data, status_code=resp.status_code)
        headers = response_headers(resp.headers.multi_items())
        headers += list((extra_headers or {}).items())
        out.raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        return out
    return streaming_response(resp, extra_headers)


def streaming_response(
    resp: httpx.Response, extra_headers: dict[str, str] | None = None
) -> Response:
    """The service's answer, streamed through unchanged (bytes as received)."""
    out = StreamingResponse(
        resp.aiter_raw(), status_code=resp.status_code, background=BackgroundTask(resp.aclose)
    )
    headers = response_headers(resp.headers.multi_items())
    headers += list((extra_headers or {}).items())
    out.raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    return out


def buffered_response(
    status: int, headers: list[tuple[str, str]], body: bytes, extra: dict[str, str]
) -> Response:
    out = Response(content=body, status_code=status)
    kept = [
        (k, v)
        for k, v in response_headers(headers)
        if k.lower() not in ("content-length", "content-encoding")
    ]
    kept += list(extra.items())
    kept.append(("content-length", str(len(body))))
    out.raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in kept]
    return out
