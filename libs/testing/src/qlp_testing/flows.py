"""Small helpers the end-to-end tests share: sign up through the gateway, build the
bearer header, wait for an eventually consistent answer."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

PASSWORD = "correct horse battery staple 42"  # noqa: S105 - a test password


async def signup(
    client: httpx.AsyncClient, who: str = "e2e", password: str = PASSWORD
) -> dict[str, Any]:
    """A new org and its owner; the signup response (tokens, ``org``, ``user``)."""
    slug = who.lower().replace(" ", "-")
    r = await client.post(
        "/v1/auth/signup",
        json={
            "org_name": f"E2E {who}",
            "email": f"{slug}-{uuid.uuid4().hex[:8]}@example.com",
            "password": password,
        },
    )
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


def bearer(tokens: dict[str, Any] | str) -> dict[str, str]:
    token = tokens if isinstance(tokens, str) else tokens["access_token"]
    return {"Authorization": f"Bearer {token}"}


async def eventually(
    probe: Callable[[], Awaitable[Any]],
    ok: Callable[[Any], bool],
    timeout: float = 60.0,
    what: str = "condition",
    interval: float = 0.25,
) -> Any:
    """Poll ``probe`` until ``ok`` holds; fail with the last value otherwise."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await probe()
        if ok(last):
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"{what} not reached in {timeout}s; last: {last!r}")


def tenant_guard_violations(metrics_text: str, database: str | None = None) -> list[str]:
    """The non-zero ``qlp_tenant_guard_violations_total`` samples of a ``/metrics``
    page, only those of ``database`` when given (the registry is per process, so
    an in-process app shares it with every other test's databases)."""
    hits = []
    for line in metrics_text.splitlines():
        if not line.startswith("qlp_tenant_guard_violations_total{"):
            continue
        if database is not None and f'database="{database}"' not in line:
            continue
        if float(line.rsplit(" ", 1)[1]) > 0:
            hits.append(line)
    return hits
