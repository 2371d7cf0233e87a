"""Start services for tests: in-process (uvicorn in the test's event loop) or as a
real process (``python -m qlp_kit.serve``) that a test can kill -9 and restart."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import uvicorn

from qlp_infra.embedded import free_port
from qlp_kit.app import ServiceDefinition, create_app
from qlp_kit.settings import ServiceSettings


@contextlib.asynccontextmanager
async def running_app(
    definition: ServiceDefinition, settings: ServiceSettings, timeout: float = 30.0
) -> AsyncIterator[str]:
    """Serve the service in this event loop on a free port; yields its base URL."""
    port = free_port()
    settings = settings.model_copy(update={"http_port": port, "http_host": "127.0.0.1"})
    app = create_app(definition, settings)
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on"
        )
    )
    task = asyncio.create_task(server.serve())
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(url, timeout)
        yield url
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


async def wait_ready(
    url: str,
    timeout: float = 30.0,
    proc: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=1.0) as client:
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
                raise RuntimeError(f"service exited with {proc.returncode}:\n{tail}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{url}/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.05)
    raise TimeoutError(f"{url} not ready after {timeout}s")


class ServiceProcess:
    """A service as a separate OS process, for crash tests and end-to-end tests."""

    def __init__(
        self,
        target: str,
        env: dict[str, str],
        log_dir: Path,
        name: str | None = None,
        port: int | None = None,
    ) -> None:
        self.target = target
        self.env = env
        self.name = name or target.split(":")[0].rsplit(".", 1)[-1]
        self.log = log_dir / f"{self.name}.log"
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def spawn(self, extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.log, "ab")
        env = {**os.environ, **self.env, **(extra_env or {}), "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "qlp_kit.serve", self.target, "--port", str(self.port)],
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        return self.proc

    async def start(self, extra_env: dict[str, str] | None = None, timeout: float = 60.0) -> None:
        proc = self.spawn(extra_env)
        await wait_ready(self.url, timeout, proc, self.log)

    def kill9(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    async def wait_exit(self, timeout: float) -> int:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self.proc.poll() is None:
            raise TimeoutError(f"{self.name} still running after {timeout}s")
        return self.proc.returncode

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
