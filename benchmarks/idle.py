"""Idle cost: CPU of every platform process with N simulated agents connected and no
work at all (what an almost idle platform burns).

    uv run python -m benchmarks.idle                 # N = 0, 1, 20; 30 s samples
    IDLE_SAMPLE_S=5 IDLE_SETTLE_S=5 IDLE_AGENTS=0,1,2 uv run python -m benchmarks.idle

Starts the platform as ``make up`` does (embedded Kafka and MongoDB, every installed
service, the gateway last) in a temporary folder, signs a provider org up through the
gateway, makes an API key of scope ``provider:agent`` and connects N agents
(``qlp-agent run --simulate-gpus 2``, default heartbeat and long-poll settings, one
state folder each, so N providers). After registration it waits ``IDLE_SETTLE_S``,
then reads every process's CPU seconds (``/proc/<pid>/stat``, children included)
over ``IDLE_SAMPLE_S`` and prints % of one core per process. N grows from run to
run; earlier agents stay connected (agent i always uses state folder i).

Environment: ``IDLE_AGENTS`` (comma-separated counts, default ``0,1,20``),
``IDLE_SAMPLE_S`` (default 30), ``IDLE_SETTLE_S`` (default 15), ``IDLE_SERVICES`` (comma-separated services to
start, default every installed one), ``IDLE_NO_WRITE=1`` (print only; a quick check
does not overwrite the committed results).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from pymongo import AsyncMongoClient

from benchmarks._common import write_results
from qlp_infra.embedded import free_port
from qlp_infra.runtime import Runtime
from qlp_testing.agents import spawn_agent

TICKS = os.sysconf("SC_CLK_TCK")


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name) or default)


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            raw = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        ppid = int(raw[raw.rfind(")") + 2 :].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def cpu_seconds(pid: int, kids: dict[int, list[int]]) -> float:
    """User + system CPU seconds of ``pid`` and its live descendants (and the reaped
    children it waited for)."""
    total = 0.0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            raw = Path(f"/proc/{p}/stat").read_text()
        except OSError:
            continue
        f = raw[raw.rfind(")") + 2 :].split()
        # utime stime cutime cstime are fields 14-17 (here 11-14 after the state)
        total += sum(int(x) for x in f[11:15]) / TICKS
        todo += kids.get(p, [])
    return total


def sample(procs: dict[str, list[int]], seconds: float) -> dict[str, float]:
    """% of one core per named group of processes over ``seconds``."""
    kids = _children()
    before = {name: sum(cpu_seconds(p, kids) for p in pids) for name, pids in procs.items()}
    t0 = time.monotonic()
    time.sleep(seconds)
    dt = time.monotonic() - t0
    kids = _children()
    after = {name: sum(cpu_seconds(p, kids) for p in pids) for name, pids in procs.items()}
    return {name: round(100 * (after[name] - before[name]) / dt, 1) for name in procs}


def start_agent(gateway: str, key: str, state: Path) -> subprocess.Popen[bytes]:
    state.mkdir(parents=True, exist_ok=True)
    return spawn_agent(
        gateway,
        key,
        state,
        state / "agent.log",
        "1.50",
        gpus=2,
        timing=None,
        extra=("--container-engine", "none"),
        new_session=True,
    )


async def provider_key(gateway: str) -> str:
    async with httpx.AsyncClient(base_url=gateway, timeout=30) as http:
        r = await http.post(
            "/v1/auth/signup",
            json={
                "org_name": "Idle Provider",
                "email": f"idle-{uuid.uuid4().hex[:8]}@example.com",
                "password": "correct horse battery staple 42",
            },
        )
        r.raise_for_status()
        made = await http.post(
            "/v1/api-keys",
            json={"name": "agents", "scopes": ["provider:agent"]},
            headers={
                "Authorization": f"Bearer {r.json()['access_token']}",
                "Idempotency-Key": uuid.uuid4().hex,
            },
        )
        made.raise_for_status()
        return str(made.json()["key"])


async def wait_providers(mongodb: str, n: int, timeout: float = 300.0) -> None:
    """Until ``n`` providers heartbeat (read from the scheduler's database)."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb)
    try:
        deadline = time.monotonic() + timeout
        while True:
            fresh = int(time.time() * 1000) - 30_000
            got = await client["qlp_scheduler"]["providers"].count_documents(
                {"last_heartbeat_ms": {"$gte": fresh}}, comment="cross-tenant: benchmark"
            )
            if got >= n:
                return
            if time.monotonic() > deadline:
                raise SystemExit(f"only {got} of {n} agents registered after {timeout}s")
            await asyncio.sleep(1.0)
    finally:
        await client.close()


def main() -> None:
    counts = [int(x) for x in os.environ.get("IDLE_AGENTS", "0,1,20").split(",") if x.strip()]
    sample_s = _env_float("IDLE_SAMPLE_S", 30.0)
    settle_s = _env_float("IDLE_SETTLE_S", 15.0)
    runs: list[dict[str, Any]] = []
    agents: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for var in ("KAFKA_BOOTSTRAP_SERVERS", "MONGODB_URL"):
            os.environ.pop(var, None)
        only = [x for x in os.environ.get("IDLE_SERVICES", "").split(",") if x.strip()]
        rt = Runtime(only=only or None, dir_=Path(tmp) / "platform", gateway_port=free_port())
        try:
            st = asyncio.run(rt.start())
            assert st.gateway_url
            key = asyncio.run(provider_key(st.gateway_url))
            platform = {name: [p.pid] for name, p in rt.procs.items()}
            platform |= {p.name: [p.pid] for p in rt.infra}
            for n in sorted(counts):
                while len(agents) < n:
                    agents.append(
                        start_agent(st.gateway_url, key, Path(tmp) / "agents" / str(len(agents)))
                    )
                asyncio.run(wait_providers(st.mongodb, n))
                time.sleep(settle_s)
                groups = dict(platform)
                if n:
                    groups["agents (all)"] = [a.pid for a in agents]
                got = sample(groups, sample_s)
                row: dict[str, Any] = {"agents": n, "cpu_pct_of_one_core": got}
                if n:
                    row["cpu_pct_per_agent"] = round(got["agents (all)"] / n, 2)
                runs.append(row)
                print(f"\nN = {n} agents, {sample_s:g} s sample (% of one core):")
                for name, pct in sorted(got.items(), key=lambda kv: -kv[1]):
                    print(f"  {name:<14} {pct:6.1f}")
        finally:
            for a in agents:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(a.pid, signal.SIGTERM)
            for a in agents:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    a.wait(10)
            rt.stop()
    if os.environ.get("IDLE_NO_WRITE"):
        return
    write_results(
        "idle",
        {
            "sample_s": sample_s,
            "settle_s": settle_s,
            "agent": "qlp-agent run --simulate-gpus 2 (default heartbeat 1 s, long-poll 20 s)",
            "short_mode": sample_s < 20,
            "runs": runs,
        },
    )


if __name__ == "__main__":
    main()
