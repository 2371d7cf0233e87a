"""Job processes: spawn under the wrapper in their own process group, tail their log,
enforce the time limit, upload checkpoints, report status, and stop on cancel or a
stale epoch.

Why ``subprocess.Popen`` and not ``asyncio.create_subprocess_exec``: asyncio's
subprocess transport kills its child when the transport is closed (at loop
shutdown), which would take every job down with a restarting agent. Jobs must
outlive the agent, so the agent starts the wrapper detached (new session, output to
a file) and monitors every job the same way, whether it started it or re-attached
to it after a restart: poll the pid, read the wrapper's exit-code file, tail the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qlp_agent import checkpoints
from qlp_agent.client import GatewayClient, GatewayError, GatewayUnavailable, StaleEpoch
from qlp_agent.state import (
    JobRecord,
    final_status,
    pid_alive,
    pid_start_time,
    read_exit_code,
)
from qlp_kit.logging import get_logger

log = get_logger("qlp_agent.runner")

MAX_LINE_CHARS = 8192
MAX_BATCH_LINES = 500
LONG_LINE_BYTES = 64 * 1024
READ_CHUNK = 1024 * 1024
TIME_LIMIT_MESSAGE = "time limit"
CANCELED_MESSAGE = "stopped after a cancel"
# Job statuses at the scheduler after which this machine must not run the job any more.
ENDED_AT_SCHEDULER = frozenset({"canceled", "completed", "failed"})
POLL_S = 0.2
SAFE_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")  # job ids become directory names


@dataclass(frozen=True)
class JobLimits:
    max_as_mb: int = 0
    max_cpu_s: int = 0
    max_nofile: int = 0

    @classmethod
    def merge(cls, default: JobLimits, override: dict[str, Any] | None) -> JobLimits:
        """Assignment ``limits`` (optional: address_space_mb, cpu_seconds, open_files)
        override the agent's defaults."""
        o = override or {}

        def pick(key: str, d: int) -> int:
            v = o.get(key)
            return int(v) if isinstance(v, int | float) and v >= 0 else d

        return cls(
            max_as_mb=pick("address_space_mb", default.max_as_mb),
            max_cpu_s=pick("cpu_seconds", default.max_cpu_s),
            max_nofile=pick("open_files", default.max_nofile),
        )


@dataclass(frozen=True)
class Assignment:
    assignment_id: str
    job_id: str
    epoch: int
    role: str
    action: str
    command: list[str]
    env: dict[str, str]
    gpu_uuids: list[str]
    checkpoint_interval_s: float | None
    max_duration_s: float | None
    resume: bool
    limits: dict[str, Any] = field(default_factory=dict)
    image: str = ""
    delivered_ms: int = 0  # when the scheduler delivered it (echoed in heartbeats)
    #: ``stage``: the checkpoint to fetch; a resumed ``start``: the one it restores
    checkpoint_id: str = ""

    @classmethod
    def parse(cls, d: dict[str, Any]) -> Assignment:
        def num(v: Any) -> float | None:
            return (
                float(v)
                if isinstance(v, int | float) and not isinstance(v, bool) and v > 0
                else None
            )

        job_id = str(d["job_id"])
        if not SAFE_ID.fullmatch(job_id) or job_id in (".", ".."):
            raise ValueError(f"unusable job id {job_id!r}")
        return cls(
            assignment_id=str(d.get("assignment_id", "")),
            job_id=job_id,
            epoch=int(d["epoch"]),
            role=str(d.get("role", "primary")),
            action=str(d.get("action", "start")),
            command=[str(a) for a in d.get("command") or []],
            env={str(k): str(v) for k, v in (d.get("env") or {}).items()},
            gpu_uuids=[str(u) for u in d.get("gpu_uuids") or []],
            checkpoint_interval_s=num(d.get("checkpoint_interval_s")),
            max_duration_s=num(d.get("max_duration_s")),
            resume=bool(d.get("resume", False)),
            limits=dict(lim) if isinstance(lim := d.get("limits"), dict) else {},
            image=str(d.get("image") or ""),
            delivered_ms=int(d.get("delivered_ms") or 0),
            checkpoint_id=str(d.get("checkpoint_id") or ""),
        )


# set by the agent for every job; the assignment cannot override them
PINNED_ENV = ("CUDA_VISIBLE_DEVICES", "QLP_CHECKPOINT_DIR", "QLP_JOB_ID", "QLP_EPOCH")


def job_env(
    base: dict[str, str],
    extra: dict[str, str],
    gpu_uuids: list[str],
    checkpoint_dir: Path,
    job_id: str,
    epoch: int,
) -> dict[str, str]:
    """The job's environment: the agent's, the assignment's, then the agent's pins
    (GPUs, checkpoint dir, job id, epoch), which the assignment cannot override."""
    env = {k: v for k, v in base.items() if not k.startswith("QLP_AGENT_")}
    env.update(extra)
    env.update(
        {
            "CUDA_VISIBLE_DEVICES": ",".join(gpu_uuids),
            "QLP_CHECKPOINT_DIR": str(checkpoint_dir),
            "QLP_JOB_ID": job_id,
            "QLP_EPOCH": str(epoch),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def wrapper_argv(exit_file: Path, limits: JobLimits, command: list[str]) -> list[str]:
    argv = [sys.executable, "-m", "qlp_agent.wrapper", "--exit-file", str(exit_file)]
    if limits.max_as_mb:
        argv += ["--max-as-mb", str(limits.max_as_mb)]
    if limits.max_cpu_s:
        argv += ["--max-cpu-s", str(limits.max_cpu_s)]
    if limits.max_nofile:
        argv += ["--max-nofile", str(limits.max_nofile)]
    return [*argv, "--", *command]


class JobProcess:
    """A job's process group, whether this agent started it (``popen``) or not."""

    def __init__(
        self,
        pid: int,
        pid_start: str,
        exit_file: Path,
        popen: subprocess.Popen[bytes] | None = None,
    ) -> None:
        self.pid = pid
        self.pid_start = pid_start
        self.exit_file = exit_file
        self.popen = popen

    @classmethod
    def spawn(
        cls, command: list[str], env: dict[str, str], job_dir: Path, limits: JobLimits
    ) -> JobProcess:
        job_dir.mkdir(parents=True, exist_ok=True)
        exit_file = job_dir / "exit_code"
        with contextlib.suppress(FileNotFoundError):
            exit_file.unlink()
        with open(job_dir / "job.log", "ab") as out:
            popen = subprocess.Popen(
                wrapper_argv(exit_file, limits, command),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=job_dir,
                start_new_session=True,  # own session → own process group (pgid = pid)
            )
        return cls(popen.pid, pid_start_time(popen.pid), exit_file, popen)

    def poll(self) -> tuple[bool, int | None]:
        """(finished, exit_code). Finished with ``None``: vanished without an exit code."""
        code = read_exit_code(self.exit_file)
        if code is not None:
            self._reap()
            return True, code
        if self.popen is not None:
            rc = self.popen.poll()
            if rc is None:
                return False, None
            code = read_exit_code(self.exit_file)  # written just before it exited?
            return True, code if code is not None else rc
        if pid_alive(self.pid, self.pid_start):
            return False, None
        code = read_exit_code(self.exit_file)
        return True, code

    def _reap(self) -> None:
        if self.popen is not None:
            self.popen.poll()  # non-blocking; a wrapper still exiting is reaped later

    def signal_group(self, sig: int) -> bool:
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            return False
        except PermissionError:
            return False
        return True

    def group_alive(self) -> bool:
        if self.popen is not None:
            self.popen.poll()  # reap the wrapper so a zombie leader doesn't count
        try:
            os.killpg(self.pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    async def terminate(self, grace_s: float) -> None:
        """SIGTERM the whole group, wait up to ``grace_s``, then SIGKILL it."""
        if not self.signal_group(signal.SIGTERM):
            return
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            if not self.group_alive():
                return
            await asyncio.sleep(0.05)
        self.signal_group(signal.SIGKILL)
        for _ in range(100):
            if not self.group_alive():
                return
            await asyncio.sleep(0.02)


class LogTailer:
    """Complete lines of a growing file from a byte offset."""

    def __init__(self, path: Path, offset: int = 0) -> None:
        self.path = path
        self.offset = offset

    def read(self, max_lines: int = MAX_BATCH_LINES, final: bool = False) -> tuple[list[str], int]:
        """Lines after ``offset`` and the offset after them; a trailing partial line is
        only returned when ``final``."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read(READ_CHUNK)
        except FileNotFoundError:
            return [], self.offset
        lines: list[str] = []
        consumed = 0
        while len(lines) < max_lines:
            nl = data.find(b"\n", consumed)
            if nl < 0 and len(data) - consumed >= LONG_LINE_BYTES:
                # a runaway line without newline: ship it in pieces rather than stall
                lines.append(self._decode(data[consumed : consumed + LONG_LINE_BYTES]))
                consumed += LONG_LINE_BYTES
                continue
            if nl < 0:
                if final and consumed < len(data):
                    lines.append(self._decode(data[consumed:]))
                    consumed = len(data)
                break
            lines.append(self._decode(data[consumed:nl]))
            consumed = nl + 1
        return lines, self.offset + consumed

    @staticmethod
    def _decode(b: bytes) -> str:
        s = b.decode("utf-8", errors="replace").rstrip("\r")
        return s if len(s) <= MAX_LINE_CHARS else s[:MAX_LINE_CHARS] + "…[truncated]"


class JobRunner:
    """Monitors one job until it ends, is cancelled, times out or is fenced."""

    def __init__(
        self,
        *,
        client: GatewayClient,
        provider_id: str,
        record: JobRecord,
        process: JobProcess,
        persist: Callable[[], None],
        log_batch_interval_s: float = 1.0,
        cancel_grace_s: float = 10.0,
        status_interval_s: float = 15.0,
    ) -> None:
        self.client = client
        self.provider_id = provider_id
        self.record = record
        self.process = process
        self.persist = persist
        self.log_batch_interval_s = log_batch_interval_s
        self.cancel_grace_s = cancel_grace_s
        self.tailer = LogTailer(record.log_file, record.log_offset)
        self.outcome: str | None = None  # completed | failed | cancelled | fenced | time-limit
        self._cancel = asyncio.Event()
        self._next_logs = 0.0
        self._next_ckpt = time.monotonic() + record.checkpoint_interval_s
        self.status_interval_s = status_interval_s
        self._next_status = time.monotonic() + status_interval_s

    @property
    def job_id(self) -> str:
        return self.record.job_id

    @property
    def epoch(self) -> int:
        return self.record.epoch

    def cancel(self) -> None:
        self._cancel.set()

    # -------------------------------------------------------------- monitor loop

    async def run(self) -> str:
        """Returns the outcome. Cancelling this coroutine (agent shutdown) leaves the job
        running and its record in the state file, for the next agent to re-attach."""
        bound = log.bind(job_id=self.job_id, epoch=self.epoch)
        try:
            while True:
                try:
                    done = await self._tick(bound)
                except (StaleEpoch, asyncio.CancelledError):
                    raise
                except Exception:  # a local hiccup must not orphan the job
                    bound.exception("job.monitor_error")
                    done = False
                if done:
                    break
                await asyncio.sleep(POLL_S)
        except StaleEpoch:
            bound.warning("job.stale_epoch: stopping the job; no more reports for it")
            await self._stop(min(self.cancel_grace_s, 2.0))
            self.outcome = "fenced"
        bound.info("job.done", outcome=self.outcome)
        return self.outcome or "failed"

    async def _stop(self, grace_s: float) -> None:
        """Stop the job's process group, then its container if it runs in one."""
        await self.process.terminate(grace_s)
        if self.record.container_rm:
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                await asyncio.to_thread(
                    subprocess.run,
                    self.record.container_rm,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    timeout=60,
                    check=False,
                )

    async def _tick(self, bound: Any) -> bool:
        """One monitoring step; True when the run is over."""
        finished, code = self.process.poll()
        await self._ship_logs(final=finished)
        if finished:
            await self._finish(code)
            return True
        if self._cancel.is_set():
            await self._stop(self.cancel_grace_s)
            await self._ship_logs(final=True, quiet=True)
            # say so: a terminal report is what tells the scheduler the cancel is done
            # (the GPUs it gave back are really free now)
            with contextlib.suppress(StaleEpoch):
                await self._report_final("canceled", CANCELED_MESSAGE, None)
            self.outcome = "cancelled"
            return True
        if self._over_time():
            bound.warning("job.time_limit", max_duration_s=self.record.max_duration_s)
            await self._stop(min(self.cancel_grace_s, 5.0))
            await self._ship_logs(final=True)
            await self._maybe_checkpoint(force=True)
            await self._report_final("failed", TIME_LIMIT_MESSAGE, None)
            self.outcome = "time-limit"
            return True
        if time.monotonic() >= self._next_ckpt:
            self._next_ckpt = time.monotonic() + self.record.checkpoint_interval_s
            await self._maybe_checkpoint()
        if time.monotonic() >= self._next_status:
            self._next_status = time.monotonic() + self.status_interval_s
            await self._keepalive()
        return False

    async def _keepalive(self) -> None:
        """Re-assert ``running`` with the lease epoch now and then: a job that neither
        logs nor checkpoints still learns promptly that its epoch went stale."""
        try:
            answer = await self.client.job_status(
                self.provider_id, self.job_id, self.epoch, "running", step=self.record.last_step
            )
        except StaleEpoch:
            raise
        except (GatewayUnavailable, GatewayError) as exc:
            log.info("job.keepalive_not_reported", job_id=self.job_id, error=str(exc))
            return
        self.learn(answer)

    def learn(self, answer: dict[str, Any]) -> None:
        """The scheduler answered that the job already ended there (canceled, say,
        while its cancel assignment has not reached this machine yet): stop it."""
        ended = answer.get("job_status")
        if ended in ENDED_AT_SCHEDULER and not self._cancel.is_set():
            log.warning("job.ended_at_scheduler", job_id=self.job_id, job_status=ended)
            self._cancel.set()

    def _over_time(self) -> bool:
        m = self.record.max_duration_s
        return bool(m) and time.time() - self.record.started_at > float(m or 0)

    async def _finish(self, code: int | None) -> None:
        await self._maybe_checkpoint(force=True)
        message: str | None
        if code is None:
            status, message, exit_code = "failed", "job process vanished without an exit code", None
        else:
            status, message = final_status(code)
            exit_code = code
        await self._report_final(status, message, exit_code)
        self.outcome = status

    async def _report_final(self, status: str, message: str | None, exit_code: int | None) -> None:
        """The terminal status must arrive: retry until the gateway takes it (or the
        epoch turns out stale, which raises)."""
        attempt = 0
        while True:
            try:
                await self.client.job_status(
                    self.provider_id,
                    self.job_id,
                    self.epoch,
                    status,
                    step=self.record.last_step,
                    message=message,
                    exit_code=exit_code,
                )
                return
            except GatewayUnavailable as exc:
                log.warning("job.status_retry", job_id=self.job_id, error=str(exc))
            except GatewayError as exc:
                if isinstance(exc, StaleEpoch):
                    raise
                log.error("job.status_rejected", job_id=self.job_id, error=str(exc))
                return
            attempt += 1
            await asyncio.sleep(min(30.0, 0.5 * 2 ** min(attempt, 6)))

    # -------------------------------------------------------------- logs

    async def _ship_logs(self, final: bool = False, quiet: bool = False) -> None:
        now = time.monotonic()
        if not final and now < self._next_logs:
            return
        self._next_logs = now + self.log_batch_interval_s
        while True:
            lines, offset = self.tailer.read(final=final)
            if not lines:
                if offset != self.tailer.offset:
                    self.tailer.offset = offset
                return
            try:
                await self.client.logs(self.provider_id, self.job_id, self.epoch, lines)
            except StaleEpoch:
                if quiet:
                    return
                raise
            except (GatewayUnavailable, GatewayError) as exc:
                log.warning("job.logs_failed", job_id=self.job_id, error=str(exc))
                return  # keep the offset: resend later
            self.tailer.offset = offset
            self.record.log_offset = offset
            self.persist()
            if len(lines) < MAX_BATCH_LINES:
                return

    # -------------------------------------------------------------- checkpoints

    async def _maybe_checkpoint(self, force: bool = False) -> None:
        ckpt_dir = Path(self.record.checkpoint_dir)
        sig = checkpoints.signature(ckpt_dir)
        if sig == self.record.checkpoint_sig or not checkpoints.has_files(ckpt_dir):
            return
        data = await asyncio.to_thread(checkpoints.pack, ckpt_dir)
        step = checkpoints.read_step(ckpt_dir)
        if step is None:
            step = self.record.uploads + 1
        try:
            await self.client.upload_checkpoint(
                self.provider_id, self.job_id, self.epoch, step, data
            )
        except (GatewayUnavailable, GatewayError) as exc:
            if isinstance(exc, StaleEpoch):
                raise
            log.warning("job.checkpoint_failed", job_id=self.job_id, error=str(exc), force=force)
            return
        self.record.checkpoint_sig = sig
        self.record.last_step = step
        self.record.uploads += 1
        self.persist()
        log.info("job.checkpoint_uploaded", job_id=self.job_id, step=step, bytes=len(data))
        if not force:  # progress report; best effort
            try:
                answer = await self.client.job_status(
                    self.provider_id, self.job_id, self.epoch, "running", step=step
                )
            except StaleEpoch:
                raise
            except (GatewayUnavailable, GatewayError) as exc:
                log.info("job.progress_not_reported", job_id=self.job_id, error=str(exc))
            else:
                self.learn(answer)
