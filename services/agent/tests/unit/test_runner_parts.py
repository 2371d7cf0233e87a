"""Pure pieces of the runner: assignment parsing, job env, limits, log tailing,
the wrapper (exit-code file, rlimits)."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

from qlp_agent.runner import Assignment, JobLimits, LogTailer, job_env, wrapper_argv
from qlp_agent.state import read_exit_code


def test_assignment_parse_defaults_and_types() -> None:
    a = Assignment.parse(
        {
            "assignment_id": "a1",
            "job_id": "job_1",
            "epoch": "3",
            "command": ["x", 1],
            "gpu_uuids": ["GPU-1"],
            "checkpoint_interval_s": 30,
            "max_duration_s": 0,
            "resume": True,
            "env": {"A": 1},
        }
    )
    assert a.epoch == 3 and a.command == ["x", "1"] and a.env == {"A": "1"}
    assert a.checkpoint_interval_s == 30.0 and a.max_duration_s is None and a.resume
    assert a.action == "start" and a.role == "primary" and a.limits == {}


def test_job_env_pins_cannot_be_overridden(tmp_path: Path) -> None:
    env = job_env(
        {"PATH": "/bin", "QLP_AGENT_API_KEY": "qlp_secret"},
        {"CUDA_VISIBLE_DEVICES": "all", "QLP_EPOCH": "99", "FOO": "bar"},
        ["GPU-a", "GPU-b"],
        tmp_path,
        "job_9",
        4,
    )
    assert env["CUDA_VISIBLE_DEVICES"] == "GPU-a,GPU-b" and env["QLP_EPOCH"] == "4"
    assert env["QLP_JOB_ID"] == "job_9" and env["QLP_CHECKPOINT_DIR"] == str(tmp_path)
    assert env["FOO"] == "bar" and env["PATH"] == "/bin"
    assert "QLP_AGENT_API_KEY" not in env  # the provider's key never reaches the job


def test_limits_merge() -> None:
    d = JobLimits(max_as_mb=0, max_cpu_s=100, max_nofile=0)
    m = JobLimits.merge(d, {"address_space_mb": 512, "open_files": -1, "cpu_seconds": "x"})
    assert m == JobLimits(max_as_mb=512, max_cpu_s=100, max_nofile=0)
    assert wrapper_argv(Path("e"), m, ["run"])[-2:] == ["--", "run"]
    assert "--max-as-mb" in wrapper_argv(Path("e"), m, ["run"])


def test_log_tailer_partial_lines(tmp_path: Path) -> None:
    f = tmp_path / "job.log"
    t = LogTailer(f)
    assert t.read() == ([], 0)
    f.write_bytes(b"one\ntwo\nthr")
    lines, off = t.read()
    assert lines == ["one", "two"] and off == 8
    t.offset = off
    with open(f, "ab") as fh:
        fh.write(b"ee\n\xff bad utf8\nlast")
    lines, off = t.read()
    assert lines == ["three", "\ufffd bad utf8"]
    t.offset = off
    assert t.read(final=True)[0] == ["last"]


def test_log_tailer_caps_batches_and_long_lines(tmp_path: Path) -> None:
    f = tmp_path / "job.log"
    f.write_text("x" * 20000 + "\n" + "".join(f"{i}\n" for i in range(50)))
    lines, _ = LogTailer(f).read(max_lines=10)
    assert len(lines) == 10 and lines[0].endswith("[truncated]") and len(lines[0]) < 9000


def run_wrapper(tmp_path: Path, *args: str) -> tuple[int, int | None, str]:
    exit_file = tmp_path / "exit_code"
    p = subprocess.run(
        [sys.executable, "-m", "qlp_agent.wrapper", "--exit-file", str(exit_file), *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return p.returncode, read_exit_code(exit_file), p.stdout + p.stderr


def test_wrapper_records_exit_codes(tmp_path: Path) -> None:
    rc, code, _ = run_wrapper(tmp_path, "--", sys.executable, "-c", "raise SystemExit(5)")
    assert rc == 5 and code == 5
    rc, code, _ = run_wrapper(
        tmp_path,
        "--",
        sys.executable,
        "-c",
        "import os, signal; os.kill(os.getpid(), signal.SIGTERM)",
    )
    assert code == -15 and rc == 128 + 15
    rc, code, out = run_wrapper(tmp_path, "--", "/definitely/not/here")
    assert rc == code == 127 and "cannot start" in out


def test_wrapper_applies_rlimits(tmp_path: Path) -> None:
    code = "import resource as r; print(r.getrlimit(r.RLIMIT_NOFILE)[0], r.getrlimit(r.RLIMIT_CPU)[0], r.getrlimit(r.RLIMIT_AS)[0])"
    rc, _, out = run_wrapper(
        tmp_path,
        "--max-nofile",
        "32",
        "--max-cpu-s",
        "9",
        "--max-as-mb",
        "4096",
        "--",
        sys.executable,
        "-c",
        code,
    )
    assert rc == 0
    assert out.split() == ["32", "9", str(4096 * 1024 * 1024)]
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] != 32  # only the job is limited


def test_wrapper_address_space_limit_stops_a_hog(tmp_path: Path) -> None:
    rc, code, _ = run_wrapper(
        tmp_path,
        "--max-as-mb",
        "300",
        "--",
        sys.executable,
        "-c",
        "x = bytearray(600 * 1024 * 1024)",
    )
    assert rc != 0 and code == 1  # MemoryError


def test_log_tailer_does_not_stall_on_a_runaway_line(tmp_path: Path) -> None:
    f = tmp_path / "job.log"
    f.write_bytes(b"y" * 200_000)
    lines, off = LogTailer(f).read()
    assert len(lines) == 3 and off == 3 * 64 * 1024


def test_assignment_rejects_path_like_job_ids() -> None:
    import pytest

    for bad in ("../x", "a/b", "..", "", "x" * 200):
        with pytest.raises(ValueError, match="job id"):
            Assignment.parse({"job_id": bad, "epoch": 1})
