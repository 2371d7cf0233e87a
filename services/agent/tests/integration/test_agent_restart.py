"""Restart survival with real agent processes killed with SIGKILL: the next agent
re-attaches to a job that is still running, or reports one that vanished."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from qlp_agent.state import LOST_MESSAGE, JobRecord, StateLayout

pytestmark = pytest.mark.integration


def recorded_jobs(state_dir: Path) -> dict[str, JobRecord]:
    """The jobs the agent's state files list (state is kept per provider)."""
    jobs: dict[str, JobRecord] = {}
    for store in StateLayout(state_dir).stores():
        jobs.update(store.load().jobs)
    return jobs


async def test_restarted_agent_reattaches_to_running_job(
    fake_scheduler: Any, agent_process: Any
) -> None:
    fs = fake_scheduler
    ap = agent_process(fs.url)
    ap.start()
    await fs.wait_for(lambda: fs.providers, timeout=30, what="registration")
    (pid,) = fs.providers
    cmd = [
        sys.executable,
        "-m",
        "qlp_agent.workloads.train",
        "--backend",
        "pure",
        "--steps",
        "120",
        "--checkpoint-every",
        "20",
        "--step-sleep",
        "0.03",
    ]
    fs.assign(pid, job_id="job_r", epoch=1, command=cmd)
    await fs.wait_for(lambda: len(fs.log_lines("job_r")) > 10, timeout=30, what="job output")
    ap.kill9()
    rec = recorded_jobs(ap.state_dir)["job_r"]
    os.kill(rec.pid, 0)  # the job outlived its agent

    ap.start()  # same state dir → same fingerprint → same provider, re-attaches
    await fs.wait_for(
        lambda: any(s["status"] == "completed" for s in fs.statuses("job_r")),
        timeout=60,
        what="completed",
    )
    assert len(fs.registrations) == 2 and len(fs.providers) == 1
    done = [s for s in fs.statuses("job_r") if s["status"] == "completed"]
    assert len(done) == 1 and done[0]["exit_code"] == 0 and done[0]["step"] == 120
    lines = fs.log_lines("job_r")
    # the log continued where the dead agent left off: every step exactly once or more, in order
    step_lines = [line for line in lines if line.startswith("step=")]
    numbers = sorted({int(line.split()[0].split("=")[1]) for line in step_lines})
    assert numbers == list(range(1, 121))
    assert lines[-1].startswith("final_loss=")
    await fs.wait_for(lambda: "job_r" not in recorded_jobs(ap.state_dir), what="state cleared")


async def test_restarted_agent_reports_vanished_job_lost(
    fake_scheduler: Any, agent_process: Any
) -> None:
    fs = fake_scheduler
    ap = agent_process(fs.url, name="lost")
    ap.start()
    await fs.wait_for(lambda: fs.providers, timeout=30, what="registration")
    (pid,) = fs.providers
    fs.assign(
        pid, job_id="job_x", epoch=3, command=[sys.executable, "-c", "import time; time.sleep(300)"]
    )
    await fs.wait_for(
        lambda: "job_x" in recorded_jobs(ap.state_dir), timeout=30, what="job recorded"
    )
    ap.kill9()
    rec = recorded_jobs(ap.state_dir)["job_x"]
    os.killpg(rec.pid, signal.SIGKILL)  # the whole group dies: no exit-code file

    ap.start()
    await fs.wait_for(
        lambda: any(s["status"] == "failed" for s in fs.statuses("job_x")),
        timeout=30,
        what="lost report",
    )
    last = fs.statuses("job_x")[-1]
    assert last["message"] == LOST_MESSAGE and last["epoch"] == 3
    await fs.wait_for(lambda: "job_x" not in recorded_jobs(ap.state_dir), what="state cleared")
