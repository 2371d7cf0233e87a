"""Restart survival: a JSON state file (atomic write) listing the jobs the agent runs.

State is kept per provider: several agents (several API keys, so several providers)
may share one state folder on one machine, and none may "recover" another's jobs.

    <state dir>/keys/<key id>.json          what an API key's agent needs before it
                                            registers (simulated GPU seed, provider id)
    <state dir>/providers/<provider>/       state.json and jobs/ of that provider
    <state dir>/state.json                  legacy shared state (before this layout):
                                            migrated by the agent of the provider it
                                            names, ignored by every other agent

The key id is a digest of the API key (the key itself is never written).

Each job runs under a small wrapper (``qlp_agent.wrapper``) that leads the job's own
process group and writes the exit code to a file when the job ends, so a restarted
agent can tell "still running" (re-attach), "finished while I was away" (report its
exit code) and "gone without a trace" (report ``failed``: lost after agent restart).
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
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


# ------------------------------------------------------------------ layout

PROVIDERS_DIR = "providers"
KEYS_DIR = "keys"
LEGACY_MIGRATED = "state.json.migrated"
LEGACY_SEED_OWNER = "legacy-sim-seed.owner"


def key_id(api_key: str) -> str:
    """A stable, non-reversible name for an API key."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]


@dataclass
class KeyIdentity:
    """What one API key's agent keeps before it knows its provider."""

    sim_seed: str | None = None
    provider_id: str | None = None


class StateLayout:
    """The state folder, shared safely by the agents of several providers."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def legacy_path(self) -> Path:
        return self.root / STATE_FILE

    def provider_dir(self, provider_id: str) -> Path:
        if not provider_id or "/" in provider_id or provider_id in (".", ".."):
            raise ValueError(f"unusable provider id {provider_id!r}")
        return self.root / PROVIDERS_DIR / provider_id

    def store(self, provider_id: str) -> StateStore:
        return StateStore(self.provider_dir(provider_id))

    def stores(self) -> list[StateStore]:
        """Every provider's store in this folder (and the legacy one, when present)."""
        base = self.root / PROVIDERS_DIR
        out = [StateStore(d) for d in sorted(base.iterdir()) if d.is_dir()] if base.is_dir() else []
        if self.legacy_path.exists():
            out.append(StateStore(self.root))
        return out

    def _identity_path(self, api_key: str) -> Path:
        return self.root / KEYS_DIR / f"{key_id(api_key)}.json"

    def identity(self, api_key: str) -> KeyIdentity:
        """This key's identity; a new one takes the legacy simulated-GPU seed once (an
        upgraded single agent keeps its GPUs and so its provider), else a fresh one."""
        path = self._identity_path(api_key)
        try:
            d = json.loads(path.read_text())
            return KeyIdentity(sim_seed=d.get("sim_seed"), provider_id=d.get("provider_id"))
        except FileNotFoundError:
            pass
        ident = KeyIdentity(sim_seed=self._take_legacy_seed(key_id(api_key)))
        self.save_identity(api_key, ident)
        return ident

    def save_identity(self, api_key: str, ident: KeyIdentity) -> None:
        atomic_write_json(self._identity_path(api_key), asdict(ident))

    def _take_legacy_seed(self, kid: str) -> str | None:
        try:
            legacy = json.loads(self.legacy_path.read_text())
        except (FileNotFoundError, ValueError):
            return None
        seed = legacy.get("sim_seed")
        if not seed:
            return None
        owner = self.root / KEYS_DIR / LEGACY_SEED_OWNER
        owner.parent.mkdir(parents=True, exist_ok=True)
        try:  # exactly one key takes it, even with agents starting together
            fd = os.open(owner, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return None
        with os.fdopen(fd, "w") as f:
            f.write(kid)
        return str(seed)

    def adopt_legacy(self, provider_id: str, state: AgentState) -> bool:
        """Move the legacy shared state into ``state`` when it is this provider's (its
        job records keep their paths); another provider's is left alone. True when
        migrated; the legacy file is then renamed so nobody migrates it twice."""
        try:
            legacy = AgentState.from_json(json.loads(self.legacy_path.read_text()))
        except (FileNotFoundError, ValueError):
            return False
        if legacy.provider_id != provider_id:
            return False
        for job_id, rec in legacy.jobs.items():
            state.jobs.setdefault(job_id, rec)
        for key in legacy.finished:
            if key not in state.finished:
                state.finished.append(key)
        state.sim_seed = state.sim_seed or legacy.sim_seed
        state.fingerprint = state.fingerprint or legacy.fingerprint
        StateStore(self.provider_dir(provider_id)).save(state)
        os.replace(self.legacy_path, self.root / LEGACY_MIGRATED)
        return True

    def foreign_legacy(self, provider_id: str) -> str | None:
        """The provider a legacy state belongs to, when it is not ``provider_id``."""
        try:
            legacy = json.loads(self.legacy_path.read_text())
        except (FileNotFoundError, ValueError):
            return None
        owner = legacy.get("provider_id")
        return str(owner) if owner and owner != provider_id else None


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
