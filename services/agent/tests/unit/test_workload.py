"""The sample workload resumes EXACTLY: interrupted (SIGKILL after a checkpoint),
the checkpoint shipped through the agent's pack/unpack, resumed → the same per-step
losses and final loss as an uninterrupted run. Pure backend always; torch when
importable."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qlp_agent import checkpoints
from qlp_agent.workloads.train import torch_available


def cmd(backend: str, steps: int, sleep: float = 0.0, every: int = 10) -> list[str]:
    return [
        sys.executable,
        "-m",
        "qlp_agent.workloads.train",
        "--backend",
        backend,
        "--cpu",
        "--steps",
        str(steps),
        "--checkpoint-every",
        str(every),
        "--step-sleep",
        str(sleep),
    ]


def run(argv: list[str], ckpt: Path | None) -> list[str]:
    env = {**os.environ, "QLP_CHECKPOINT_DIR": str(ckpt) if ckpt else ""}
    out = subprocess.run(argv, capture_output=True, text=True, check=True, env=env, timeout=240)
    return out.stdout.splitlines()


def steps_of(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith(("step=", "final_loss="))]


def interrupted_then_resumed(
    backend: str, tmp_path: Path, steps: int, sleep: float
) -> tuple[int, list[str]]:
    first = tmp_path / "first"
    env = {**os.environ, "QLP_CHECKPOINT_DIR": str(first)}
    p = subprocess.Popen(
        cmd(backend, steps, sleep), env=env, stdout=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 120
    while (checkpoints.read_step(first) or 0) < 20:
        assert p.poll() is None, "workload ended before it could be interrupted"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    step = checkpoints.read_step(first)
    assert step is not None and step < steps
    second = tmp_path / "second"  # another machine: the checkpoint travels as bytes
    checkpoints.unpack(checkpoints.pack(first), second)
    return step, run(cmd(backend, steps), second)


def test_pure_workload_resumes_exactly(tmp_path: Path) -> None:
    reference = run(cmd("pure", 60), None)
    step, resumed = interrupted_then_resumed("pure", tmp_path, 60, 0.02)
    assert f"resumed_from={step}" in resumed
    assert steps_of(resumed) == steps_of(reference)[step:]


@pytest.mark.skipif(
    not torch_available(), reason="torch not installed (optional extra: qlp-agent[workload])"
)
def test_torch_workload_resumes_exactly(tmp_path: Path) -> None:
    reference = run(cmd("torch", 60), None)
    step, resumed = interrupted_then_resumed("torch", tmp_path, 60, 0.05)
    assert f"resumed_from={step}" in resumed
    assert steps_of(resumed) == steps_of(reference)[step:]
    assert resumed[-1] == reference[-1]  # final_loss=… identical


def test_workload_without_checkpoint_dir_and_bad_args() -> None:
    lines = run(cmd("pure", 5), None)
    assert lines[-1].startswith("final_loss=") and len(steps_of(lines)) == 6
    bad = subprocess.run(
        [*cmd("pure", 5)[:-4], "--checkpoint-every", "0"], capture_output=True, text=True
    )
    assert bad.returncode == 2
