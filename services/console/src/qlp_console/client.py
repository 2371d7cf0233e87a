"""Calls to the public API through the gateway, with the signed-in user's token.
The token lives only here, on the server: never in a page, a script or a URL."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from qlp_console.format import problem_words


class ApiError(Exception):
    """The API answered a problem (RFC 9457) or could not be reached."""

    def __init__(self, status: int, problem: dict[str, Any] | None = None) -> None:
        self.status = status
        self.problem = problem or {}
        super().__init__(
            f"{status} {self.problem.get('title', '')}: {self.problem.get('detail', '')}"
        )

    @property
    def words(self) -> dict[str, Any]:
        return problem_words(self.status, self.problem)


def _problem(resp: httpx.Response) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError:
        return {"title": resp.reason_phrase, "detail": resp.text[:300]}
    return body if isinstance(body, dict) else {"detail": str(body)[:300]}


class Api:
    """One caller's view of the API (``token`` None: the public routes only)."""

    def __init__(self, http: httpx.AsyncClient, token: str | None = None) -> None:
        self.http = http
        self.token = token

    def _headers(self, idempotency_key: str | None) -> dict[str, str]:
        h = {"Accept": "application/json"}
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        if idempotency_key:
            h["Idempotency-Key"] = idempotency_key
        return h

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        idempotency_key: str | None = None,
        raw: bool = False,
    ) -> Any:
        clean = {k: v for k, v in (params or {}).items() if v not in (None, "")}
        try:
            resp = await self.http.request(
                method, path, params=clean, json=json, headers=self._headers(idempotency_key)
            )
        except httpx.TimeoutException:
            raise ApiError(
                504, {"title": "Timeout", "detail": "the platform did not answer in time"}
            ) from None
        except httpx.HTTPError:
            raise ApiError(
                503, {"title": "Service unavailable", "detail": "the platform API is not reachable"}
            ) from None
        if resp.status_code >= 400:
            raise ApiError(resp.status_code, _problem(resp))
        if raw:
            return resp
        if resp.status_code == 204 or not resp.content:
            return None
        try:
            return resp.json()
        except ValueError:
            return resp.text

    async def get(self, path: str, **params: Any) -> Any:
        return await self.request("GET", path, params=params)

    async def post(self, path: str, json: Any = None, *, idempotent: str | bool = False) -> Any:
        key = (uuid.uuid4().hex if idempotent is True else idempotent) or None
        return await self.request("POST", path, json=json, idempotency_key=key)

    async def put(self, path: str, json: Any = None) -> Any:
        return await self.request("PUT", path, json=json)

    async def patch(self, path: str, json: Any = None) -> Any:
        return await self.request("PATCH", path, json=json)

    async def delete(self, path: str) -> Any:
        return await self.request("DELETE", path)

    async def maybe(self, path: str, **params: Any) -> tuple[Any, ApiError | None]:
        """GET that answers (data, None) or (None, error): for page parts that degrade."""
        try:
            return await self.get(path, **params), None
        except ApiError as exc:
            return None, exc

    def stream(self, path: str) -> Any:
        """An event stream from the API (``async with api.stream(path) as resp``)."""
        return self.http.stream(
            "GET",
            path,
            headers={**self._headers(None), "Accept": "text/event-stream"},
            timeout=httpx.Timeout(None, connect=5.0),
        )
