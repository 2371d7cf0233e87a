"""The gateway API as the agent uses it: an ``httpx.AsyncClient`` wrapper.

Connection errors, 429 and 5xx are retried with capped exponential backoff and
jitter. A 409 whose problem ``type`` ends in ``/stale-epoch`` raises
:class:`StaleEpoch`: the lease moved on and the caller must stop the job.
"""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass
from typing import Any

import httpx

from qlp_agent import __version__

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class GatewayError(Exception):
    def __init__(self, status: int, problem: dict[str, Any] | None, message: str = "") -> None:
        self.status = status
        self.problem = problem or {}
        detail = self.problem.get("detail") or self.problem.get("title") or message
        # a validation problem lists every error: all of them are shown, not the first
        errors = self.problem.get("errors")
        if isinstance(errors, list) and errors:
            detail = f"{detail} (errors: {json.dumps(errors, separators=(',', ':'))})"
        super().__init__(f"gateway answered {status}: {detail}")

    @property
    def type(self) -> str:
        return str(self.problem.get("type", ""))


class StaleEpoch(GatewayError):
    """The job's lease epoch is stale (failover happened): stop and never report again."""


class GatewayUnavailable(Exception):
    """Retries exhausted on connection errors or 5xx."""


@dataclass(frozen=True)
class Checkpoint:
    data: bytes
    checkpoint_id: str
    step: int


def backoff_delay(attempt: int, base: float = 0.2, cap: float = 10.0) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, base * 2**attempt)]."""
    return random.uniform(0, min(cap, base * (2**attempt)))  # noqa: S311 - not crypto


def _problem(resp: httpx.Response) -> dict[str, Any] | None:
    try:
        body = resp.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def is_stale_epoch(status: int, problem: dict[str, Any] | None) -> bool:
    if status != 409:
        return False
    type_ = str((problem or {}).get("type", "")).rstrip("/")
    return type_ == "stale-epoch" or type_.endswith("/stale-epoch")


class GatewayClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        max_retries: int = 5,
        backoff_base: float = 0.2,
        backoff_cap: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        auth: httpx.Auth | None = None,
    ) -> None:
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=timeout,
            headers={
                "Authorization": f"Bearer {api_key}",
                "User-Agent": f"qlp-agent/{__version__}",
            },
            transport=transport,
            auth=auth,  # tests: sign requests as the gateway would
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        expect: tuple[int, ...] = (200, 201, 202),
        allow: tuple[int, ...] = (),
        **kw: Any,
    ) -> httpx.Response:
        attempt = 0
        while True:
            try:
                resp = await self._http.request(method, path, **kw)
            except (httpx.TransportError, httpx.TimeoutException) as exc:
                if attempt >= self.max_retries:
                    raise GatewayUnavailable(f"{method} {path}: {exc!r}") from exc
            else:
                if resp.status_code in expect or resp.status_code in allow:
                    return resp
                problem = _problem(resp)
                if is_stale_epoch(resp.status_code, problem):
                    raise StaleEpoch(resp.status_code, problem)
                if resp.status_code not in RETRY_STATUSES:
                    raise GatewayError(resp.status_code, problem, resp.text[:300])
                if attempt >= self.max_retries:
                    raise GatewayUnavailable(f"{method} {path}: HTTP {resp.status_code}")
            await asyncio.sleep(backoff_delay(attempt, self.backoff_base, self.backoff_cap))
            attempt += 1

    # ------------------------------------------------------------------ provider

    async def go_offline(self, provider_id: str) -> dict[str, Any]:
        """The agent stops: no new jobs for this machine until it registers again (the
        platform shows it ``offline`` at once)."""
        resp = await self._request("POST", f"/v1/providers/{provider_id}/offline")
        body: dict[str, Any] = resp.json()
        return body

    async def register(self, payload: dict[str, Any]) -> dict[str, Any]:
        resp = await self._request("POST", "/v1/providers", json=payload, expect=(200, 201))
        body: dict[str, Any] = resp.json()
        return body

    async def heartbeat(self, provider_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        resp = await self._request(
            "POST", f"/v1/providers/{provider_id}/heartbeat", json=payload, expect=(200, 202, 204)
        )
        if not resp.content:
            return {}
        body = resp.json()
        return body if isinstance(body, dict) else {}

    async def assignments(self, provider_id: str, wait_s: int) -> list[dict[str, Any]]:
        resp = await self._request(
            "GET",
            f"/v1/providers/{provider_id}/assignments",
            params={"wait_s": wait_s},
            expect=(200,),
            timeout=self.timeout + wait_s,
        )
        items = resp.json().get("items") or []
        return [i for i in items if isinstance(i, dict)]

    # ------------------------------------------------------------------ jobs

    async def job_status(
        self,
        provider_id: str,
        job_id: str,
        epoch: int,
        status: str,
        *,
        step: int | None = None,
        message: str | None = None,
        exit_code: int | None = None,
    ) -> dict[str, Any]:
        """Report a job's status; returns the answer (``job_status``: the job's status
        at the scheduler, e.g. ``canceled`` while this machine still runs it)."""
        body: dict[str, Any] = {"epoch": epoch, "status": status}
        if step is not None:
            body["step"] = step
        if message is not None:
            body["message"] = message
        if exit_code is not None:
            body["exit_code"] = exit_code
        resp = await self._request(
            "POST", f"/v1/providers/{provider_id}/jobs/{job_id}/status", json=body
        )
        try:
            out = resp.json() if resp.content else {}
        except ValueError:
            return {}
        return out if isinstance(out, dict) else {}

    async def logs(self, provider_id: str, job_id: str, epoch: int, lines: list[str]) -> None:
        await self._request(
            "POST",
            f"/v1/providers/{provider_id}/jobs/{job_id}/logs",
            json={"epoch": epoch, "lines": lines},
        )

    async def upload_checkpoint(
        self, provider_id: str, job_id: str, epoch: int, step: int, data: bytes
    ) -> dict[str, Any]:
        resp = await self._request(
            "POST",
            f"/v1/providers/{provider_id}/jobs/{job_id}/checkpoints",
            params={"epoch": epoch, "step": step},
            content=data,
            headers={"Content-Type": "application/octet-stream"},
            expect=(200, 201),
        )
        body = resp.json() if resp.content else {}
        return body if isinstance(body, dict) else {}

    async def latest_checkpoint(
        self, provider_id: str, job_id: str, epoch: int
    ) -> Checkpoint | None:
        resp = await self._request(
            "GET",
            f"/v1/providers/{provider_id}/jobs/{job_id}/checkpoints/latest",
            params={"epoch": epoch},
            expect=(200,),
            allow=(404,),
        )
        if resp.status_code == 404:
            return None
        return Checkpoint(
            data=resp.content,
            checkpoint_id=resp.headers.get("X-Checkpoint-Id", ""),
            step=int(resp.headers.get("X-Checkpoint-Step", "0") or 0),
        )
