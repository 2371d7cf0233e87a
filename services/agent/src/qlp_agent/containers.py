"""Jobs in container images, when the machine has a container engine.

A job that names an ``image`` runs as ``docker run`` / ``podman run`` under the same
wrapper, limits, log file and process-group handling as a plain command: the engine's
client is the job's process (it forwards SIGTERM to the container and exits with the
container's status). Only the job's GPUs are passed in (Docker ``--gpus device=…``,
Podman CDI ``nvidia.com/gpu=…``), the checkpoint directory is bind-mounted at the same
path, and the job's environment is passed by name (``-e NAME``, values inherited from
the client's environment, so they never appear on a command line).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable

ENGINES = ("docker", "podman")
_NAME_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


class ContainerEngineError(ValueError):
    pass


def engine_answers(engine: str, timeout_s: float = 10.0) -> bool:
    """The engine is on PATH and its daemon (or service) answers ``<engine> info``; a
    client without a reachable daemon does not count."""
    path = shutil.which(engine)
    if not path:
        return False
    try:
        done = subprocess.run(
            [path, "info"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=timeout_s,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def detect_engine(setting: str, answers: Callable[[str], bool] = engine_answers) -> str:
    """The engine to use: ``auto`` picks a working docker, then podman, else none ("");
    a named engine must work; ``none`` turns containers off."""
    if setting == "none":
        return ""
    if setting == "auto":
        return next((e for e in ENGINES if answers(e)), "")
    if setting not in ENGINES:
        raise ContainerEngineError(f"unknown container engine {setting!r}")
    if not answers(setting):
        raise ContainerEngineError(
            f"container engine {setting!r} is not on PATH or its daemon does not answer"
        )
    return setting


def container_name(job_id: str, epoch: int) -> str:
    return f"qlp-{_NAME_SAFE.sub('-', job_id)}-{epoch}"


def container_rm_argv(engine: str, job_id: str, epoch: int) -> list[str]:
    """Removes the job's container, running or not (a no-op error when it is gone)."""
    return [engine, "rm", "--force", container_name(job_id, epoch)]


def container_argv(
    engine: str,
    image: str,
    command: list[str],
    *,
    job_id: str,
    epoch: int,
    gpu_uuids: list[str],
    simulated: bool,
    env_names: list[str],
    checkpoint_dir: str,
) -> list[str]:
    """The engine command line that runs ``command`` in ``image``."""
    if engine not in ENGINES:
        raise ContainerEngineError(f"unknown container engine {engine!r}")
    argv = [
        engine,
        "run",
        "--rm",
        "--init",
        "--pull=missing",
        "--name",
        container_name(job_id, epoch),
        "--label",
        f"qlp.job_id={job_id}",
        "--label",
        f"qlp.epoch={epoch}",
        "--volume",
        f"{checkpoint_dir}:{checkpoint_dir}",
    ]
    if gpu_uuids and not simulated:
        if engine == "docker":
            argv += ["--gpus", f'"device={",".join(gpu_uuids)}"']
        else:
            for u in gpu_uuids:
                argv += ["--device", f"nvidia.com/gpu={u}"]
    for name in sorted(env_names):
        argv += ["--env", name]
    return [*argv, "--", image, *command]
