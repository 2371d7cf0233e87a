"""The quality gate: the generated project's lint and tests, run in an isolated work
directory with CPU-time, memory and wall-clock limits and (where the machine allows it)
no network, using this installation's pinned environment (offline)."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path


@dataclass
class Limits:
    cpu_s: int = 120
    memory_mb: int = 2048
    wall_s: float = 180.0


@dataclass
class GateReport:
    passed: bool
    tests_passed: int = 0
    tests_failed: int = 0
    tests_skipped: int = 0
    coverage_bps: int = 0
    lint_findings: int = 0
    lint_output: str = ""
    duration_ms: int = 0
    #: Which limits were applied ("cpu", "memory", "wall", "network") and which not.
    limits_applied: list[str] = field(default_factory=list)
    limits_not_applied: list[str] = field(default_factory=list)
    failure: str = ""
    output_tail: str = ""

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@cache
def _netns_prefix() -> tuple[str, ...] | None:
    """``unshare -rn`` with the loopback up (the tests serve a database on it), when the
    kernel lets this user make a network namespace; None otherwise."""
    unshare = shutil.which("unshare")
    ip = shutil.which("ip")
    if not unshare or not ip:
        return None
    probe = [unshare, "-rn", "sh", "-c", f"{ip} link set lo up && true"]
    try:
        ok = subprocess.run(probe, capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return None
    return (unshare, "-rn", "sh", "-c", f'{ip} link set lo up && exec "$@"', "gate") if ok else None


def _limiter(limits: Limits) -> Callable[[], None]:
    def apply() -> None:  # runs in the child before exec
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s))
        mem = limits.memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        os.setsid()

    return apply


def _run(
    cmd: list[str], cwd: Path, env: dict[str, str], limits: Limits, deadline: float
) -> tuple[int, str]:
    prefix = _netns_prefix()
    full = [*prefix, *cmd] if prefix else cmd
    try:
        proc = subprocess.run(
            full,
            cwd=cwd,
            env=env,
            capture_output=True,
            timeout=max(deadline - time.monotonic(), 1.0),
            preexec_fn=_limiter(limits),
        )
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"") + (exc.stderr or b"")
        return -9, out.decode("utf-8", "replace") + "\n[gate] wall-clock limit reached"
    return proc.returncode, (proc.stdout + proc.stderr).decode("utf-8", "replace")


def run_gate(files: dict[str, bytes], limits: Limits | None = None) -> GateReport:
    """Write the project to a fresh directory and run ``ruff check`` and its tests
    (under coverage) there. Blocking; see :func:`gate`."""
    limits = limits or Limits()
    started = time.monotonic()
    deadline = started + limits.wall_s
    applied = ["cpu", "memory", "wall"]
    not_applied = []
    if _netns_prefix() is not None:
        applied.append("network")
    else:
        not_applied.append("network")
    bin_dir = Path(sys.executable).parent
    work = Path(tempfile.mkdtemp(prefix="qlp-gate-"))
    try:
        for rel, data in files.items():
            target = (work / rel).resolve()
            if not target.is_relative_to(work):
                raise ValueError(f"file outside the project: {rel}")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        env = {
            "PATH": f"{bin_dir}:/usr/bin:/bin",
            "HOME": str(work),
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONPATH": str(work),
            "LANG": "C.UTF-8",
            # only the plugins a generated project declares (this environment has many
            # more; loading them all costs seconds of CPU per run)
            "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
        }
        # the project's own coverage sources when it names them (a T3 project measures
        # each of its services), else its app package
        pyproject = files.get("pyproject.toml", b"")
        source = [] if b"[tool.coverage.run]" in pyproject else ["--source=app"]
        rc, lint = _run(
            [str(bin_dir / "ruff"), "check", "--no-cache", "--output-format", "concise", "."],
            work,
            env,
            limits,
            deadline,
        )
        findings = (
            0 if rc == 0 else max(1, sum(1 for ln in lint.splitlines() if ln.count(":") >= 3))
        )
        rc, out = _run(
            [
                sys.executable,
                "-m",
                "coverage",
                "run",
                *source,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "-p",
                "pytest_asyncio.plugin",
                "--junitxml=.gate-junit.xml",
            ],
            work,
            env,
            limits,
            deadline,
        )
        report = GateReport(
            passed=False,
            lint_findings=findings,
            lint_output=lint[-4000:] if findings else "",
            limits_applied=applied,
            limits_not_applied=not_applied,
            output_tail=out[-4000:],
        )
        junit = work / ".gate-junit.xml"
        if junit.exists():
            suite = ET.parse(junit).getroot()  # noqa: S314
            suite = suite if suite.tag == "testsuite" else suite[0]
            total = int(suite.get("tests", 0))
            failed = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
            skipped = int(suite.get("skipped", 0))
            report.tests_failed, report.tests_skipped = failed, skipped
            report.tests_passed = total - failed - skipped
        crc, _cov = _run(
            [sys.executable, "-m", "coverage", "json", "-q", "-o", ".gate-cov.json"],
            work,
            env,
            limits,
            deadline,
        )
        if crc == 0 and (work / ".gate-cov.json").exists():
            pct = json.loads((work / ".gate-cov.json").read_text())["totals"]["percent_covered"]
            report.coverage_bps = round(float(pct) * 100)
        if rc == -9:
            report.failure = "wall-clock limit reached"
        elif findings:
            report.failure = f"lint: {findings} finding(s)"
        elif rc != 0 or report.tests_failed or report.tests_passed == 0:
            report.failure = f"tests failed (exit {rc})"
        report.passed = not report.failure
        report.duration_ms = int((time.monotonic() - started) * 1000)
        return report
    finally:
        shutil.rmtree(work, ignore_errors=True)


async def gate(files: dict[str, bytes], limits: Limits | None = None) -> GateReport:
    """:func:`run_gate` in a worker thread (the event loop keeps serving)."""
    return await asyncio.to_thread(run_gate, files, limits)
