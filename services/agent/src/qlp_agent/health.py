"""Optional tiny HTTP endpoint for Kubernetes probes (``--health-port``):
``/healthz`` (the loop is alive), ``/readyz`` (registered with the platform) and
``/metrics`` (Prometheus text). The agent itself has no other inbound API."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any, Protocol

from qlp_kit.aio import within


class _Source(Protocol):
    def health(self) -> dict[str, Any]: ...


def render_metrics(h: dict[str, Any]) -> str:
    return (
        "# HELP qlp_agent_registered 1 when registered with the platform\n"
        "# TYPE qlp_agent_registered gauge\n"
        f"qlp_agent_registered {1 if h.get('registered') else 0}\n"
        "# HELP qlp_agent_jobs_running jobs this agent monitors\n"
        "# TYPE qlp_agent_jobs_running gauge\n"
        f"qlp_agent_jobs_running {int(h.get('jobs_running', 0))}\n"
        "# HELP qlp_agent_heartbeats_sent_total heartbeats the gateway accepted\n"
        "# TYPE qlp_agent_heartbeats_sent_total counter\n"
        f"qlp_agent_heartbeats_sent_total {int(h.get('heartbeats_sent', 0))}\n"
    )


class HealthServer:
    def __init__(self, source: _Source, port: int, host: str = "0.0.0.0") -> None:
        self.source = source
        self.port = port
        self.host = host
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        sock = self._server.sockets[0] if self._server.sockets else None
        if sock is not None:
            self.port = int(sock.getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await within(reader.readline(), 5)
            while (await within(reader.readline(), 5)) not in (b"\r\n", b"\n", b""):
                pass
            parts = line.decode("latin-1").split()
            path = parts[1].split("?")[0] if len(parts) > 1 else "/"
            h = self.source.health()
            if path == "/healthz":
                status, ctype, body = 200, "application/json", json.dumps({"status": "ok"})
            elif path == "/readyz":
                ok = bool(h.get("registered"))
                status, ctype = (200 if ok else 503), "application/json"
                body = json.dumps({"status": "ready" if ok else "registering", **h})
            elif path == "/metrics":
                status, ctype, body = 200, "text/plain; version=0.0.4", render_metrics(h)
            else:
                status, ctype, body = 404, "application/json", json.dumps({"status": "not found"})
            data = body.encode()
            reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[status]
            writer.write(
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
                + data
            )
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
