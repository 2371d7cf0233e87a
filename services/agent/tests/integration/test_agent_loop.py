"""The agent loop against the FAKE scheduler (see tests/fake_scheduler.py): register,
heartbeat, run jobs with checkpoints, fencing, cancel, time limit."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

PY = sys.executable


def train_cmd(steps: int, every: int = 10, sleep: float = 0.0) -> list[str]:
    return [
        PY,
        "-m",
        "qlp_agent.workloads.train",
        "--backend",
        "pure",
        "--steps",
        str(steps),
        "--checkpoint-every",
        str(every),
        "--step-sleep",
        str(sleep),
    ]


def final_loss(lines: list[str]) -> str:
    found = [m.group(1) for line in lines if (m := re.match(r"final_loss=(\S+)", line))]
    assert found, f"no final_loss in {lines[-5:]}"
    return found[-1]


def uninterrupted(steps: int) -> list[str]:
    out = subprocess.run(
        train_cmd(steps),
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "QLP_CHECKPOINT_DIR": ""},
    ).stdout
    return out.splitlines()


def pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    st = Path(f"/proc/{pid}/stat")
    return st.exists() and st.read_text().rsplit(")", 1)[1].split()[0] == "Z"


async def test_register_heartbeat_run_to_completion(fake_scheduler: Any, start_agent: Any) -> None:
    fs = fake_scheduler
    agent = await start_agent(fs.url)
    pid = agent.provider_id
    reg = fs.providers[pid]
    assert reg["region"] == "test-region"
    assert reg["price_per_gpu_hour"] == {"amount": 125, "currency": "USD"}
    m = reg["machine"]
    assert m["simulated"] is True and len(m["gpus"]) == 1
    assert m["gpus"][0]["uuid"].startswith("GPU-sim-") and m["gpus"][0]["model"] == "SIM-A100"
    assert m["cpu_count"] >= 1 and m["fingerprint"]

    hb = await fs.wait_for(lambda: [b for p, b in fs.heartbeats if p == pid], what="heartbeat")
    g = hb[0]["gpus"][0]
    assert set(g) >= {"uuid", "utilization_pct", "memory_used_mb", "temperature_c", "power_w"}
    assert g["simulated"] is True

    gpus = fs.gpu_uuids(pid)
    fs.assign(
        pid, job_id="job_1", epoch=1, command=train_cmd(30, every=10, sleep=0.01), gpu_uuids=gpus
    )
    await fs.wait_for(
        lambda: any(s["status"] == "completed" for s in fs.statuses("job_1")), what="completed"
    )
    statuses = fs.statuses("job_1")
    kinds = [s["status"] for s in statuses]
    assert kinds[0] == "starting" and kinds[1] == "running" and kinds[-1] == "completed"
    assert statuses[-1]["exit_code"] == 0 and statuses[-1]["step"] == 30
    # the running job showed up in a heartbeat with its epoch
    assert any(
        {"job_id": "job_1", "epoch": 1, "status": "running"} in b["running"]
        for _, b in fs.heartbeats
    )
    # checkpoints were uploaded as the job went, the last one at the final step
    steps = [c["step"] for c in fs.checkpoints["job_1"]]
    assert steps[-1] == 30 and steps == sorted(steps)
    lines = fs.log_lines("job_1")
    assert lines[0].startswith("backend=pure")
    assert final_loss(lines) == final_loss(uninterrupted(30))
    assert "job_1" not in agent.state.jobs  # forgotten only after the final report


async def test_job_env_and_failure_exit_code(fake_scheduler: Any, start_agent: Any) -> None:
    fs = fake_scheduler
    agent = await start_agent(fs.url)
    pid = agent.provider_id
    gpus = fs.gpu_uuids(pid)
    code = textwrap.dedent(
        """
        import os, sys
        for k in ("CUDA_VISIBLE_DEVICES", "QLP_JOB_ID", "QLP_EPOCH", "QLP_CHECKPOINT_DIR", "EXTRA"):
            print(f"{k}={os.environ.get(k)}")
        print("to stderr", file=sys.stderr)
        sys.exit(3)
        """
    )
    fs.assign(
        pid, job_id="job_env", epoch=4, command=[PY, "-c", code], env={"EXTRA": "x"}, gpu_uuids=gpus
    )
    await fs.wait_for(
        lambda: any(s["status"] == "failed" for s in fs.statuses("job_env")), what="failed"
    )
    last = fs.statuses("job_env")[-1]
    assert last["exit_code"] == 3 and "3" in last["message"]
    lines = fs.log_lines("job_env")
    assert f"CUDA_VISIBLE_DEVICES={gpus[0]}" in lines
    assert "QLP_JOB_ID=job_env" in lines and "QLP_EPOCH=4" in lines and "EXTRA=x" in lines
    ckpt_line = next(line for line in lines if line.startswith("QLP_CHECKPOINT_DIR="))
    assert str(agent.state_dir) in ckpt_line and "job_env" in ckpt_line
    assert "to stderr" in lines


async def test_failover_resume_matches_uninterrupted_run(
    fake_scheduler: Any, start_agent: Any
) -> None:
    """Primary on agent A checkpoints; failover bumps the epoch: A's next call gets 409
    stale-epoch and A kills its job and goes quiet. Standby B starts with resume: true,
    restores the latest checkpoint and finishes with the uninterrupted run's loss."""
    fs = fake_scheduler
    a = await start_agent(fs.url, name="a")
    b = await start_agent(fs.url, name="b")
    assert a.provider_id != b.provider_id  # two state dirs → two simulated machines
    steps = 150
    fs.assign(b.provider_id, job_id="job_fo", epoch=1, role="standby", action="prepare")
    fs.assign(
        a.provider_id, job_id="job_fo", epoch=1, command=train_cmd(steps, every=10, sleep=0.03)
    )
    await fs.wait_for(
        lambda: any(c["step"] >= 20 for c in fs.checkpoints.get("job_fo", [])), what="checkpoint"
    )
    job_pid = a.runners["job_fo"].process.pid
    fs.bump_epoch("job_fo", 2)  # failover: the lease moves on
    await fs.wait_for(lambda: "job_fo" not in a.runners, what="A to stop the job")
    assert pid_gone(job_pid)
    rejected = [c for c in fs.calls if c.provider_id == a.provider_id and not c.accepted]
    assert rejected, "A should have been told its epoch is stale"
    first_rejection = min(c.at for c in rejected)
    n_calls_then = len([c for c in fs.calls if c.provider_id == a.provider_id])

    fs.assign(
        b.provider_id,
        job_id="job_fo",
        epoch=2,
        command=train_cmd(steps, every=10, sleep=0.0),
        resume=True,
    )
    await fs.wait_for(
        lambda: any(s["status"] == "completed" for s in fs.statuses("job_fo", b.provider_id)),
        what="B completes",
    )
    b_lines = fs.log_lines("job_fo", epoch=2)
    resumed = next(int(line.split("=")[1]) for line in b_lines if line.startswith("resumed_from="))
    assert resumed >= 20
    reference = uninterrupted(steps)
    assert final_loss(b_lines) == final_loss(reference)
    # the resumed trajectory is the uninterrupted one, step for step
    after = [line for line in b_lines if line.startswith("step=")]
    assert after == [line for line in reference if line.startswith("step=")][resumed:]
    # A never reported for the job again after it learned its epoch was stale
    later = [c for c in fs.calls if c.provider_id == a.provider_id and c.at > first_rejection]
    assert all(not c.accepted for c in later)
    assert len([c for c in fs.calls if c.provider_id == a.provider_id]) == n_calls_then
    assert ("job_fo", 1) in a.fenced


async def test_stale_epoch_kills_a_quiet_job(fake_scheduler: Any, start_agent: Any) -> None:
    """A job that neither logs nor checkpoints still learns of the stale epoch (the
    periodic running re-assertion) and is killed."""
    fs = fake_scheduler
    agent = await start_agent(fs.url)
    fs.assign(
        agent.provider_id,
        job_id="job_q",
        epoch=1,
        command=[PY, "-c", "import time; time.sleep(120)"],
    )
    await fs.wait_for(lambda: "job_q" in agent.runners, what="start")
    job_pid = agent.runners["job_q"].process.pid
    fs.bump_epoch("job_q", 5)
    await fs.wait_for(lambda: "job_q" not in agent.runners, timeout=15, what="fenced")
    await fs.wait_for(lambda: pid_gone(job_pid), timeout=10, what="job killed")
    assert not any(s["status"] in ("completed", "failed") for s in fs.statuses("job_q"))


async def test_cancel_kills_the_process_group(
    fake_scheduler: Any, start_agent: Any, tmp_path: Path
) -> None:
    fs = fake_scheduler
    agent = await start_agent(fs.url)
    pidfile = tmp_path / "child.pid"
    code = textwrap.dedent(
        f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
        open({str(pidfile)!r}, "w").write(str(child.pid))
        print("spawned", child.pid, flush=True)
        time.sleep(300)
        """
    )
    fs.assign(agent.provider_id, job_id="job_c", epoch=1, command=[PY, "-c", code])
    await fs.wait_for(lambda: pidfile.exists() and pidfile.read_text(), what="grandchild")
    grandchild = int(pidfile.read_text())
    leader = agent.runners["job_c"].process.pid
    fs.cancel(agent.provider_id, "job_c", 1)
    await fs.wait_for(lambda: "job_c" not in agent.runners, timeout=15, what="cancelled")
    await fs.wait_for(
        lambda: pid_gone(grandchild) and pid_gone(leader), timeout=10, what="group gone"
    )
    assert not any(s["status"] in ("completed", "failed") for s in fs.statuses("job_c"))
    assert "job_c" not in agent.state.jobs
    # once the workload is gone the agent says so, which acknowledges the cancel
    assert fs.statuses("job_c")[-1]["status"] == "canceled"
    assert fs.pending(agent.provider_id) == []
    # and its heartbeats say which deliveries it had handled when they were built
    (cancel,) = [a for a in fs.queues[agent.provider_id] if a["action"] == "cancel"]
    await fs.wait_for(
        lambda: any(
            b.get("handled_through_ms", 0) >= cancel["delivered_ms"] > 0
            for p, b in fs.heartbeats
            if p == agent.provider_id
        ),
        what="a heartbeat built after the cancel was handled",
    )


async def test_a_keepalive_answered_canceled_stops_the_job(
    fake_scheduler: Any, start_agent: Any
) -> None:
    """The scheduler says the job was canceled before its cancel reached this machine:
    the workload stops at once and the agent reports it stopped."""
    fs = fake_scheduler
    agent = await start_agent(fs.url, status_interval_s=0.3)
    fs.assign(
        agent.provider_id,
        job_id="job_k",
        epoch=1,
        command=[PY, "-c", "import time; time.sleep(300)"],
    )
    await fs.wait_for(lambda: "job_k" in agent.runners, what="running")
    leader = agent.runners["job_k"].process.pid
    fs.cancel(agent.provider_id, "job_k", 1, deliver=False)
    await fs.wait_for(lambda: "job_k" not in agent.runners, timeout=15, what="stopped")
    await fs.wait_for(lambda: pid_gone(leader), timeout=10, what="job gone")
    assert fs.statuses("job_k")[-1]["status"] == "canceled"


async def test_max_duration_kills_and_reports_time_limit(
    fake_scheduler: Any, start_agent: Any
) -> None:
    fs = fake_scheduler
    agent = await start_agent(fs.url)
    fs.assign(
        agent.provider_id,
        job_id="job_t",
        epoch=1,
        max_duration_s=1,
        command=[PY, "-c", "import time; print('working', flush=True); time.sleep(120)"],
    )
    await fs.wait_for(lambda: "job_t" in agent.runners, what="start")
    job_pid = agent.runners["job_t"].process.pid
    await fs.wait_for(
        lambda: any(s["status"] == "failed" for s in fs.statuses("job_t")),
        timeout=20,
        what="time limit",
    )
    assert fs.statuses("job_t")[-1]["message"] == "time limit"
    assert pid_gone(job_pid)
    assert "working" in fs.log_lines("job_t")


async def test_resource_limits_apply_to_the_job(fake_scheduler: Any, start_agent: Any) -> None:
    fs = fake_scheduler
    agent = await start_agent(fs.url, job_max_open_files=64, job_max_cpu_seconds=50)
    code = "import resource; print('nofile', resource.getrlimit(resource.RLIMIT_NOFILE)[0]); print('cpu', resource.getrlimit(resource.RLIMIT_CPU)[0])"
    fs.assign(agent.provider_id, job_id="job_l", epoch=1, command=[PY, "-c", code])
    await fs.wait_for(
        lambda: any(s["status"] == "completed" for s in fs.statuses("job_l")), what="done"
    )
    lines = fs.log_lines("job_l")
    assert "nofile 64" in lines and "cpu 50" in lines


async def test_retries_through_gateway_errors(fake_scheduler: Any, start_agent: Any) -> None:
    fs = fake_scheduler
    fs.fail_next = 2  # the first two calls (registration) get 503
    agent = await start_agent(fs.url)
    assert agent.provider_id in fs.providers


async def test_probe_endpoint_reports_ready(fake_scheduler: Any, start_agent: Any) -> None:
    import httpx

    agent = await start_agent(fake_scheduler.url, health_port=0, http_host="127.0.0.1")
    assert agent.probe_server is not None
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{agent.probe_server.port}") as c:
        ready = (await c.get("/readyz")).json()
        assert ready["status"] == "ready" and ready["provider_id"] == agent.provider_id
        assert ready["simulated"] is True


async def test_redelivered_start_does_not_rerun_a_finished_job(
    fake_scheduler: Any, start_agent: Any
) -> None:
    fs = fake_scheduler
    agent = await start_agent(fs.url)
    cmd = [PY, "-c", "print('ran', flush=True)"]
    fs.assign(agent.provider_id, job_id="job_d", epoch=1, command=cmd)
    await fs.wait_for(
        lambda: any(s["status"] == "completed" for s in fs.statuses("job_d")), what="done"
    )
    fs.assign(
        agent.provider_id, job_id="job_d", epoch=1, command=cmd
    )  # new assignment id, same run
    fs.assign(agent.provider_id, job_id="job_e", epoch=1, command=cmd)
    await fs.wait_for(
        lambda: any(s["status"] == "completed" for s in fs.statuses("job_e")), what="next"
    )
    assert fs.log_lines("job_d").count("ran") == 1
    assert agent.state.is_finished("job_d", 1)


async def test_standby_prepare_is_held_and_acknowledged_without_spinning(
    fake_scheduler: Any, start_agent: Any
) -> None:
    """Like the real scheduler, the fake redelivers an assignment until the agent
    acknowledges it: prepare by listing the standby lease in a heartbeat, cancel by
    no longer listing it. The agent must not spin on redeliveries meanwhile."""
    import asyncio

    fs = fake_scheduler
    agent = await start_agent(fs.url, heartbeat_interval=5.0)  # acks come from pokes
    pid = agent.provider_id
    fs.assign(pid, job_id="job_s", epoch=2, role="standby", action="prepare")
    await fs.wait_for(lambda: not fs.pending(pid), timeout=10, what="prepare acknowledged")
    assert any(
        {"job_id": "job_s", "epoch": 2, "status": "standby"} in b["running"]
        for _, b in fs.heartbeats
    )
    polls = fs.polls[pid]
    await asyncio.sleep(1.5)
    assert fs.polls[pid] - polls <= 4  # long-polling, not hammering
    fs.assign(pid, job_id="job_s", epoch=2, role="standby", action="cancel")
    await fs.wait_for(lambda: not fs.pending(pid), timeout=10, what="cancel acknowledged")
    assert "job_s" not in agent.prepared
