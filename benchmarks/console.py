"""Console: server render time of the five busiest pages with realistic data, and how
long a GPU sample takes from the agent's heartbeat to the instance page's live stream.

    uv run python -m benchmarks.console [--requests 200] [--job-seconds 20] [--quick]

The whole platform runs as ``make up`` runs it (every service a process, embedded
broker and database), with the gateway's rate limits off. A consumer org signs up
through the console's own forms (session cookie, CSRF token), tops up, invites 5
members and creates 5 API keys; a provider runs one simulated-GPU agent (2 GPUs,
1 s heartbeats); the consumer launches 3 jobs (one runs while we measure).

- render: sequential GETs through the gateway of /app, /app/gpu/offers,
  /app/gpu/instances, /app/gpu/instances/{id} and /app/billing/usage (each one is
  the console's own work plus its API calls through the gateway), p50/p99;
- live: the instance page's SSE stream (/app/gpu/instances/{id}/live) open while the
  job runs; for every GPU sample, its arrival time minus the agent's timestamp of that
  reading (same machine clock): p50/p99/max; and the time from opening the stream to
  its first sample.

The scheduler keeps the GPU samples of a heartbeat only when it writes the provider
document, at most every ``heartbeat_write_s`` (10 s by default) unless leases change;
``--scheduler-write-s 1`` stores every heartbeat's samples, so that each one reaches
the page and the lag is measured on many more samples.

Target (issue 12): first live update <= 2 s after a heartbeat.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from benchmarks._common import write_results
from qlp_infra.embedded import free_port
from qlp_infra.runtime import Runtime

PASSWORD = "correct horse battery staple 42"  # noqa: S105 - a throwaway benchmark account
PAGES = ("overview", "offers", "instances", "instance", "usage")
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    idx = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[idx]


def _summary(ms: list[float]) -> dict[str, float]:
    return {
        "n": len(ms),
        "p50_ms": round(_pct(ms, 50), 1),
        "p99_ms": round(_pct(ms, 99), 1),
        "mean_ms": round(statistics.fmean(ms), 1),
        "max_ms": round(max(ms), 1),
    }


async def _csrf(client: httpx.AsyncClient, path: str) -> str:
    r = await client.get(path)
    m = _CSRF.search(r.text)
    assert m, f"no CSRF token on {path} ({r.status_code})"
    return m.group(1)


async def _post(
    client: httpx.AsyncClient, path: str, form: dict[str, Any], page: str
) -> httpx.Response:
    token = await _csrf(client, page)
    r = await client.post(path, data={**form, "csrf_token": token})
    assert r.status_code in (200, 201, 303), (path, r.status_code, r.text[:500])
    return r


async def _console_user(base: str, org: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=base, timeout=60, follow_redirects=False)
    email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
    await _post(
        client, "/signup",
        {"org_name": org, "email": email, "password": PASSWORD, "display_name": "Bench"},
        "/signup",
    )  # fmt: skip
    assert "qlp_session" in client.cookies
    return client


def _agent(gateway: str, key: str, state: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "qlp_agent", "run", "--gateway", gateway, "--api-key", key,
         "--price-per-gpu-hour", "60.00", "--region", "eu-west", "--simulate-gpus", "2",
         "--state-dir", str(state), "--heartbeat-interval", "1", "--poll-wait", "2"],
        stdout=open(state.parent / "agent.log", "ab"), stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip


async def _until(probe: Any, ok: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await probe()
        if ok(last):
            return last
        await asyncio.sleep(0.5)
    raise TimeoutError(f"{what} not reached in {timeout}s: {last!r}"[:500])


async def _launch(client: httpx.AsyncClient, seconds: float) -> str:
    steps = max(10, int(seconds / 0.1))
    form = {
        "gpu_count": "1", "max_price": "70.00", "max_minutes": "10", "redundancy": "none",
        "checkpoint_interval_s": "60", "action": "submit", "idem": uuid.uuid4().hex,
        "command": f"{sys.executable} -m qlp_agent.workloads.train --steps {steps}"
                   " --step-sleep 0.1 --checkpoint-every 50",
    }  # fmt: skip
    r = await _post(client, "/app/gpu/launch", form, "/app/gpu/launch")
    assert r.status_code == 303, r.text[:800]
    return r.headers["location"].rsplit("/", 1)[1]


async def _live(client: httpx.AsyncClient, job_id: str, budget_s: float) -> dict[str, Any]:
    lags: list[float] = []
    first: float | None = None
    opened = time.time()
    async with client.stream("GET", f"/app/gpu/instances/{job_id}/live", timeout=None) as resp:
        assert resp.status_code == 200
        buf = ""
        deadline = time.monotonic() + budget_s
        async for chunk in resp.aiter_text():
            now = time.time()
            buf += chunk
            while "\n\n" in buf:
                block, buf = buf.split("\n\n", 1)
                name = next((ln[7:] for ln in block.splitlines() if ln.startswith("event: ")), "")
                data = next((ln[6:] for ln in block.splitlines() if ln.startswith("data: ")), "")
                if name == "sample":
                    at = datetime.fromisoformat(json.loads(data)["at"].replace("Z", "+00:00"))
                    lags.append((now - at.timestamp()) * 1000)
                    if first is None:
                        first = (now - opened) * 1000
                if name == "end":
                    deadline = 0
            if time.monotonic() > deadline:
                break
    return {
        "heartbeat_to_page": _summary(lags) if lags else None,
        "stream_open_to_first_sample_ms": round(first, 1) if first is not None else None,
    }


async def run(requests: int, job_seconds: float, write_s: float | None) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="qlp-bench-console-"))
    env = {"QLP_INTERNAL_AUTH_SECRET": "bench-secret", "QLP_GATEWAY_RATE_LIMIT_ENABLED": "false"}
    if write_s is not None:
        env["QLP_SCHEDULER_HEARTBEAT_WRITE_S"] = str(write_s)
    rt = Runtime(gateway_port=free_port(), dir_=tmp, extra_env=env)
    agent: subprocess.Popen[bytes] | None = None
    try:
        await rt.start()
        base = str(rt.state.gateway_url) if rt.state else ""
        prov = await _console_user(base, "Bench Provider")
        r = await _post(prov, "/app/provider/agent-key", {"name": "bench agent"}, "/app/provider")
        key = re.search(r'<code id="agent-key">([^<]+)</code>', r.text)
        assert key, r.text[:500]
        (tmp / "agent").mkdir()
        agent = _agent(base, key.group(1), tmp / "agent")

        user = await _console_user(base, "Bench Consumer")
        await _post(
            user,
            "/app/billing/credits",
            {"amount": "500.00", "idem": uuid.uuid4().hex},
            "/app/billing/credits",
        )
        for i in range(5):
            await _post(
                user,
                "/app/members/invite",
                {"email": f"m{i}-{uuid.uuid4().hex[:6]}@example.com", "role": "developer"},
                "/app/members",
            )
            await _post(
                user, "/app/api-keys", {"name": f"key {i}", "scopes": "gpu:jobs"}, "/app/api-keys"
            )

        async def offers() -> str:
            return (await user.get("/app/gpu/offers")).text

        await _until(offers, lambda t: "$60.00" in t, 90, "the agent's offer")

        async def quote() -> str:
            token = await _csrf(user, "/app/gpu/launch")
            form = {"csrf_token": token, "gpu_count": "1", "max_price": "70.00", "max_minutes": "10",
                    "command": "true", "action": "quote"}  # fmt: skip
            return (await user.post("/app/gpu/launch", data=form)).text

        await _until(quote, lambda t: "enough" in t, 60, "top-up seen by the scheduler")
        for _ in range(2):  # finished jobs for the list
            done = await _launch(user, 1)

            async def status(j: str = done) -> str:
                return (await user.get(f"/app/gpu/instances/{j}")).text

            await _until(status, lambda t: ">completed<" in t, 120, "a short job done")
        job = await _launch(user, job_seconds)

        async def running() -> str:
            return (await user.get(f"/app/gpu/instances/{job}")).text

        await _until(running, lambda t: ">running<" in t, 60, "the measured job running")
        live_task = asyncio.create_task(_live(user, job, job_seconds + 30))

        paths = {
            "overview": "/app",
            "offers": "/app/gpu/offers",
            "instances": "/app/gpu/instances",
            "instance": f"/app/gpu/instances/{job}",
            "usage": "/app/billing/usage",
        }
        render: dict[str, Any] = {}
        for name in PAGES:
            lat: list[float] = []
            for _ in range(requests):
                t0 = time.perf_counter()
                resp = await user.get(paths[name])
                lat.append((time.perf_counter() - t0) * 1000)
                assert resp.status_code == 200, (name, resp.status_code)
            render[name] = _summary(lat)
            print(
                f"render {name:<10} p50 {render[name]['p50_ms']:>7} ms  p99 {render[name]['p99_ms']:>7} ms"
            )
        live = await live_task
        print(f"live: {live}")
        await prov.aclose()
        await user.aclose()
        return {
            "params": {
                "requests_per_page": requests,
                "job_seconds": job_seconds,
                "scheduler_heartbeat_write_s": write_s or "default (10 s)",
            },
            "render": render,
            "live": live,
            "target": {"first_live_update_after_heartbeat_ms": 2000},
        }
    finally:
        if agent is not None:
            agent.terminate()
            try:
                agent.wait(20)
            except subprocess.TimeoutExpired:
                agent.kill()
        rt.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--job-seconds", type=float, default=40)
    ap.add_argument("--quick", action="store_true", help="50 requests per page, a 20 s job")
    ap.add_argument(
        "--scheduler-write-s",
        type=float,
        default=None,
        help="the scheduler stores GPU samples from a heartbeat at most this often (default 10 s)",
    )
    args = ap.parse_args()
    if args.quick:
        args.requests, args.job_seconds = 50, 20
    out = asyncio.run(run(args.requests, args.job_seconds, args.scheduler_write_s))
    write_results("console", out)


if __name__ == "__main__":
    main()
