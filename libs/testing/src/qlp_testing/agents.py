"""Provider agents as OS processes for end-to-end tests: simulated GPUs, 1 s heartbeats,
short long-polls, one state folder each (one provider each)."""

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
) -> subprocess.Popen[bytes]:
    """``qlp-agent run`` with ``gpus`` simulated GPUs offered at ``price`` dollars per
    GPU-hour; its output goes to ``log``."""
    fh = open(log, "ab")
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
            "--heartbeat-interval",
            "1",
            "--poll-wait",
            "2",
        ],
        stdout=fh,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
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
