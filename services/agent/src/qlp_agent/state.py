"""Restart survival: a JSON state file (atomic write) listing the jobs the agent runs.

Each job runs under a small wrapper (``qlp_agent.wrapper``) that leads the job's own
process group and writes the exit code to a file when the job ends, so a restarted
agent can tell "still running" (re-attach), "finished while I was away" (report its
exit code) and "gone without a trace" (report ``failed``: lost after agent restart).
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

STATE_FILE = "state.json"
LOST_MESSAGE = "lost after agent restart"


@dataclass
class JobRecord:
    job_id: str
    epoch: int
    pid: int
    pid_start: str  # /proc/<pid>/stat starttime; guards against pid reuse
    started_at: float  # unix time
    job_dir: str
    checkpoint_dir: str
    assignment_id: str = ""
    max_duration_s: float | None = None
    checkpoint_interval_s: float = 60.0
    gpu_uuids: list[str] = field(default_factory=list)
    log_offset: int = 0
    checkpoint_sig: str = ""
    last_step: int | None = None
    uploads: int = 0
    # for a job in a container: the command that removes the container once the job
    # was stopped (the engine client may die by SIGKILL before its container does)
    container_rm: list[str] = field(default_factory=list)

    @property
    def exit_file(self) -> Path:
        return Path(self.job_dir) / "exit_code"

    @property
    def log_file(self) -> Path:
        return Path(self.job_dir) / "job.log"

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> JobRecord:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class AgentState:
    provider_id: str | None = None
    fingerprint: str | None = None
    sim_seed: str | None = None
    jobs: dict[str, JobRecord] = field(default_factory=dict)
    # "job_id@epoch" of runs that ended here (bounded): a redelivered start for one of
    # them is not run twice, even across an agent restart
    finished: list[str] = field(default_factory=list)

    def mark_finished(self, job_id: str, epoch: int, keep: int = 500) -> None:
        key = f"{job_id}@{epoch}"
        if key not in self.finished:
            self.finished.append(key)
            del self.finished[:-keep]

    def is_finished(self, job_id: str, epoch: int) -> bool:
        return f"{job_id}@{epoch}" in self.finished

    def to_json(self) -> dict[str, Any]:
        return {
            "provider_id": self.provider_id,
            "fingerprint": self.fingerprint,
            "sim_seed": self.sim_seed,
            "jobs": {k: asdict(v) for k, v in self.jobs.items()},
            "finished": list(self.finished),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> AgentState:
        return cls(
            provider_id=d.get("provider_id"),
            fingerprint=d.get("fingerprint"),
            sim_seed=d.get("sim_seed"),
            jobs={k: JobRecord.from_json(v) for k, v in (d.get("jobs") or {}).items()},
            finished=[str(x) for x in d.get("finished") or []],
        )


def atomic_write_json(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


class StateStore:
    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir
        self.path = state_dir / STATE_FILE

    def load(self) -> AgentState:
        try:
            doc = json.loads(self.path.read_text())
        except FileNotFoundError:
            return AgentState()
        return AgentState.from_json(doc)

    def save(self, state: AgentState) -> None:
        atomic_write_json(self.path, state.to_json())


# ------------------------------------------------------------------ processes


def pid_start_time(pid: int) -> str:
    """Kernel start time of ``pid`` (field 22 of /proc/<pid>/stat); "" when unknown."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    # comm (field 2) may contain spaces and parentheses: split after the last ')'.
    rest = raw[raw.rfind(")") + 2 :].split()
    return rest[19] if len(rest) > 19 else ""


def _is_zombie(pid: int) -> bool:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    rest = raw[raw.rfind(")") + 2 :].split()
    return bool(rest) and rest[0] == "Z"


def pid_alive(pid: int, expected_start: str = "") -> bool:
    """True when ``pid`` exists, is not a zombie and (when known) started when recorded."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    if _is_zombie(pid):
        return False
    if expected_start:
        current = pid_start_time(pid)
        if current and current != expected_start:
            return False  # pid reused by another process
    return True


def read_exit_code(path: Path) -> int | None:
    try:
        txt = path.read_text().strip()
    except OSError:
        return None
    try:
        return int(txt)
    except ValueError:
        return None


# ------------------------------------------------------------------ decisions


class Recovery(enum.Enum):
    REATTACH = "reattach"  # still running: keep monitoring it
    FINISHED = "finished"  # ended while the agent was away: report its exit code
    LOST = "lost"  # neither running nor an exit code: report failed


@dataclass(frozen=True)
class RecoveryDecision:
    action: Recovery
    exit_code: int | None = None
    message: str | None = None


def decide_recovery(alive: bool, exit_code: int | None) -> RecoveryDecision:
    """What a restarted agent does with a job its state file lists."""
    if exit_code is not None:
        return RecoveryDecision(Recovery.FINISHED, exit_code=exit_code)
    if alive:
        return RecoveryDecision(Recovery.REATTACH)
    return RecoveryDecision(Recovery.LOST, message=LOST_MESSAGE)


def final_status(exit_code: int) -> tuple[str, str | None]:
    """Map a wrapper exit code to the reported status and message."""
    if exit_code == 0:
        return "completed", None
    if exit_code < 0:
        return "failed", f"killed by signal {-exit_code}"
    if exit_code == 127:
        return "failed", "command not found or not executable"
    return "failed", f"exited with code {exit_code}"
