"""The optional probe endpoint (/healthz, /readyz, /metrics)."""

from __future__ import annotations

from typing import Any

import httpx

from qlp_agent.health import HealthServer


class Src:
    def __init__(self) -> None:
        self.h: dict[str, Any] = {"registered": False, "jobs_running": 2, "heartbeats_sent": 5}

    def health(self) -> dict[str, Any]:
        return self.h


async def test_probe_endpoints() -> None:
    src = Src()
    srv = HealthServer(src, 0, host="127.0.0.1")
    await srv.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{srv.port}") as c:
            assert (await c.get("/healthz")).status_code == 200
            assert (await c.get("/readyz")).status_code == 503
            src.h["registered"] = True
            assert (await c.get("/readyz")).json()["status"] == "ready"
            m = (await c.get("/metrics")).text
            assert "qlp_agent_jobs_running 2" in m and "qlp_agent_registered 1" in m
            assert (await c.get("/nope")).status_code == 404
    finally:
        await srv.stop()
