"""Provider agents as OS processes for end-to-end tests and benchmarks: simulated GPUs,
one state folder each (one provider each); tests use 1 s heartbeats and short long-polls,
benchmarks of idle cost the agent's own defaults."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path


def spawn_agent(
    gateway: str,
    key: str,
    state: Path,
    log: Path,
    price: str,
    gpus: int = 1,
    region: str = "eu-west",
    *,
    timing: tuple[str, ...] | None = ("--heartbeat-interval", "1", "--poll-wait", "2"),
    extra: tuple[str, ...] = (),
    new_session: bool = False,
) -> subprocess.Popen[bytes]:
    """``qlp-agent run`` with ``gpus`` simulated GPUs offered at ``price`` dollars per
    GPU-hour; its output goes to ``log``. ``timing`` are the heartbeat/long-poll flags
    (``None``: the agent's defaults); ``extra`` more flags; ``new_session`` keeps a
    Ctrl-C of the caller's terminal from reaching the agent."""
    fh = open(log, "ab")  # the child keeps it; closed when it exits
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "qlp_agent",
            "run",
            "--gateway",
            gateway,
            "--api-key",
            key,
            "--price-per-gpu-hour",
            price,
            "--region",
            region,
            "--simulate-gpus",
            str(gpus),
            "--state-dir",
            str(state),
            *(timing or ()),
            *extra,
        ],
        stdout=fh,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        start_new_session=new_session,
    )


def kill_workloads(state_dir: Path) -> None:
    """Workloads run in their own process groups: a killed agent leaves them orphaned."""
    for f in state_dir.rglob("state.json"):
        with contextlib.suppress(Exception):
            for rec in (json.loads(f.read_text()).get("jobs") or {}).values():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(int(rec["pid"]), signal.SIGKILL)


def stop_agents(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM (the agent drains and goes offline), then SIGKILL what is left."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
