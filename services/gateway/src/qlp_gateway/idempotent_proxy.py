"""Forwarding a POST that carries an Idempotency-Key: at most once per key and caller.

The rules and states are in idempotency.py, the records in repository.py. Here:
claim the key, mark it ``sent`` right before sending, and settle the record from
what happened. The exchange with the service runs in its own task, shielded from the
client: a client that disconnects does not abort it, so its answer is still stored
and a retry replays it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import structlog
from starlette.requests import Request
from starlette.responses import Response

from qlp_gateway import idempotency as idem
from qlp_gateway.metrics import IDEMPOTENCY, UPSTREAM_LATENCY, UPSTREAM_REQUESTS
from qlp_gateway.proxy import LimitedBody, buffered_response, too_large
from qlp_gateway.repository import IdempotencyRepository
from qlp_gateway.routes import Route
from qlp_kit.auth import Principal
from qlp_kit.mongo import utcnow
from qlp_kit.problems import NOT_EXECUTED_HEADER, Problem

log = structlog.get_logger("qlp.gateway.idempotency")

#: Pauses between attempts to store an answer (the request is never sent again,
#: whether storing succeeds or not).
COMPLETE_BACKOFF_S = (0.05, 0.2, 0.5, 1.0, 2.0)

Answer = tuple[int, list[tuple[str, str]], bytes]


def _conflict(
    type_: str, detail: str, headers: dict[str, str], retry_after_s: int = 1, **ext: Any
) -> Problem:
    return Problem(
        409,
        "Idempotency key conflict",
        detail,
        type_=type_,
        headers={**headers, "Retry-After": str(retry_after_s)},
        **ext,
    )


def _store_unavailable(headers: dict[str, str]) -> Problem:
    return Problem(
        503,
        "Service unavailable",
        "idempotency keys cannot be recorded right now; retry later",
        type_="service-unavailable",
        headers={**headers, "Retry-After": "1"},
    )


class IdempotentForwarder:
    def __init__(
        self,
        repo: IdempotencyRepository,
        client: httpx.AsyncClient,
        *,
        lock_s: float,
        max_response_bytes: int,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.repo = repo
        self.client = client
        self.lock_s = lock_s
        self.max_response_bytes = max_response_bytes
        self.sleep = sleep
        self._tasks: set[asyncio.Task[Answer]] = set()

    async def forward(
        self,
        request: Request,
        route: Route,
        url: str,
        headers: list[tuple[str, str]],
        principal: Principal,
        key: str,
        limit: int,
        limit_headers: dict[str, str],
    ) -> Response:
        if not idem.valid_key(key):
            raise Problem(
                400,
                "Bad request",
                "Idempotency-Key must be 1 to 255 visible ASCII characters",
                type_="invalid-idempotency-key",
                headers=limit_headers,
            )
        body = LimitedBody(request, limit)
        try:
            content = await body.read()
        except Exception:
            if body.exceeded:
                raise too_large(limit) from None
            raise
        fp = idem.fingerprint(request.method, request.url.path, request.url.query, content)
        rid = idem.record_id(principal.org_id, principal.subject, key)
        token = uuid.uuid4().hex
        try:
            legacy = await self.repo.legacy(principal.org_id, key, fp)
            if legacy is not None:  # claimed before the upgrade: never run it again
                raise self._legacy_conflict(legacy, limit_headers)
            existing = await self.repo.claim(rid, principal.org_id, principal.subject, fp, token)
        except Problem:
            raise
        except Exception as exc:  # the store is down: nothing was sent, nothing is held
            log.warning("idempotency key not claimed", error=str(exc))
            raise _store_unavailable(limit_headers) from None
        if existing is None:
            IDEMPOTENCY.labels("claimed").inc()
        else:
            replay = await self._existing(rid, existing, fp, token, limit_headers)
            if replay is not None:
                return replay
        try:
            sent = await self.repo.mark_sent(rid, token)
        except Exception as exc:
            log.warning("idempotency record not marked sent", error=str(exc))
            await self._release(rid, token)  # nothing was sent
            raise _store_unavailable(limit_headers) from None
        if not sent:  # another request took the claim over meanwhile
            raise _conflict(
                "idempotency-key-in-flight",
                "a request with this Idempotency-Key is still being processed",
                limit_headers,
            )
        task = asyncio.create_task(self._exchange(route, url, headers, content, rid, token))
        self._tasks.add(task)
        task.add_done_callback(self._settled)
        status, raw, data = await asyncio.shield(task)
        return buffered_response(status, raw, data, limit_headers)

    async def _existing(
        self, rid: str, existing: idem.Existing, fp: str, token: str, limit_headers: dict[str, str]
    ) -> Response | None:
        """The answer for a key claimed before; None when this request took it over."""
        outcome = idem.decide(existing, fp, utcnow(), self.lock_s)
        IDEMPOTENCY.labels(outcome).inc()
        if outcome == "mismatch":
            raise Problem(
                422,
                "Idempotency key reused",
                "this Idempotency-Key was used with a different request",
                type_="idempotency-key-mismatch",
                headers=limit_headers,
            )
        if outcome == "replay":
            stored = await self.repo.stored(rid)
            if stored is not None:
                status, hdrs, data = stored
                return buffered_response(
                    status,
                    list(hdrs.items()),
                    data,
                    {**limit_headers, idem.REPLAYED_HEADER: "true"},
                )
        if outcome == "take_over" and await self.repo.take_over(rid, existing.token, token):
            return None
        if outcome == "not_stored":
            raise _conflict(
                "idempotency-response-not-stored",
                f"the request with this Idempotency-Key was executed (status "
                f"{existing.status}); its answer was too large to keep for a replay",
                limit_headers,
                retry_after_s=int(self.lock_s),
                executed_status=existing.status,
            )
        if outcome == "unknown":
            raise _conflict(
                "idempotency-outcome-unknown",
                "the request with this Idempotency-Key may have been executed, but its "
                "outcome is not known; it is not executed again (check the resource, or "
                "use a new key for a new request)",
                limit_headers,
                retry_after_s=int(self.lock_s),
            )
        raise _conflict(
            "idempotency-key-in-flight",
            "a request with this Idempotency-Key is still being processed",
            limit_headers,
        )

    def _legacy_conflict(self, legacy: idem.Existing, headers: dict[str, str]) -> Problem:
        IDEMPOTENCY.labels("legacy").inc()
        if legacy.state == idem.DONE:
            return _conflict(
                "idempotency-response-not-stored",
                f"the request with this Idempotency-Key was executed (status "
                f"{legacy.status}) before this gateway's upgrade; its answer is not replayed",
                headers,
                retry_after_s=int(self.lock_s),
                executed_status=legacy.status,
            )
        return _conflict(
            "idempotency-outcome-unknown",
            "the request with this Idempotency-Key may have been executed before this "
            "gateway's upgrade; it is not executed again",
            headers,
            retry_after_s=int(self.lock_s),
        )

    async def _exchange(
        self,
        route: Route,
        url: str,
        headers: list[tuple[str, str]],
        content: bytes,
        rid: str,
        token: str,
    ) -> Answer:
        """Send once and settle the record; raises the Problem to answer on failure."""
        service = route.service
        req = self.client.build_request("POST", url, headers=headers, content=content)
        start = time.perf_counter()
        try:
            resp = await self.client.send(req, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # No connection was made: the request never left the gateway.
            log.warning("upstream unreachable", service=service, error=str(exc))
            await self._release(rid, token)
            raise Problem(
                503,
                "Service unavailable",
                f"{service} is not reachable",
                type_="service-unavailable",
                service=service,
            ) from None
        except httpx.TimeoutException:
            await self._unknown(rid, token, "timeout")
            raise Problem(504, "Gateway timeout", f"{service} did not answer in time") from None
        except httpx.HTTPError as exc:
            await self._unknown(rid, token, f"send failed: {type(exc).__name__}")
            raise Problem(
                502, "Bad gateway", f"the connection to {service} broke off", service=service
            ) from None
        UPSTREAM_LATENCY.labels(service).observe(time.perf_counter() - start)
        UPSTREAM_REQUESTS.labels(service, str(resp.status_code)).inc()
        try:
            data = await resp.aread()
        except httpx.TimeoutException:
            await self._unknown(rid, token, "timeout reading the answer")
            raise Problem(504, "Gateway timeout", f"{service} did not answer in time") from None
        except httpx.HTTPError as exc:
            await self._unknown(rid, token, f"answer broke off: {type(exc).__name__}")
            raise Problem(
                502, "Bad gateway", f"the answer of {service} broke off", service=service
            ) from None
        finally:
            await resp.aclose()
        raw = list(resp.headers.multi_items())
        if idem.not_executed(resp.status_code, raw):
            await self._release(rid, token)
            IDEMPOTENCY.labels("released").inc()
        else:
            keep = data if len(data) <= self.max_response_bytes else None
            await self._complete(rid, token, resp.status_code, idem.stored_headers(raw), keep)
        return resp.status_code, [(k, v) for k, v in raw if k.lower() != NOT_EXECUTED_HEADER], data

    async def _complete(
        self, rid: str, token: str, status: int, headers: dict[str, str], body: bytes | None
    ) -> None:
        """Store the answer, retrying; if it cannot be stored the record stays ``sent``
        and retries get 409 (never a second execution)."""
        for attempt, pause in enumerate((*COMPLETE_BACKOFF_S, None)):
            try:
                await self.repo.complete(rid, token, status, headers, body)
                return
            except Exception as exc:
                log.warning("storing an idempotent answer failed", attempt=attempt, error=str(exc))
                if pause is None:
                    IDEMPOTENCY.labels("store_failed").inc()
                    log.error("idempotent answer not stored; retries get 409", record=rid)
                    return
                await self.sleep(pause)

    async def _unknown(self, rid: str, token: str, reason: str) -> None:
        IDEMPOTENCY.labels("outcome_unknown").inc()
        try:
            await self.repo.mark_unknown(rid, token, reason)
        except Exception as exc:  # it stays "sent": retries get 409 all the same
            log.warning("idempotency record not marked unknown", error=str(exc))

    async def _release(self, rid: str, token: str) -> None:
        try:
            await self.repo.release(rid, token)
        except Exception as exc:  # the record stays: retries get 409, never a rerun
            log.warning("idempotency key not released", error=str(exc))

    def _settled(self, task: asyncio.Task[Answer]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: the client may have gone before it ended

    async def drain(self, timeout_s: float = 10.0) -> None:
        """Let exchanges still running finish storing their answers (shutdown)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_s)
