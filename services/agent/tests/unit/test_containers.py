"""Container engine selection and the engine command line (pure logic; the engine
probe is replaced by a function)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from qlp_agent.containers import (
    ContainerEngineError,
    container_argv,
    container_name,
    detect_engine,
)


def answers(*working: str) -> Callable[[str], bool]:
    return lambda engine: engine in working


def test_auto_prefers_a_working_docker_then_podman_then_none() -> None:
    assert detect_engine("auto", answers("docker", "podman")) == "docker"
    assert detect_engine("auto", answers("podman")) == "podman"
    assert detect_engine("auto", answers()) == ""
    assert detect_engine("none", answers("docker")) == ""


def test_a_named_engine_must_work() -> None:
    assert detect_engine("podman", answers("podman")) == "podman"
    with pytest.raises(ContainerEngineError, match="does not answer"):
        detect_engine("docker", answers("podman"))
    with pytest.raises(ContainerEngineError, match="unknown"):
        detect_engine("lxc", answers("lxc"))


def _argv(engine: str, **kw: Any) -> list[str]:
    args: dict[str, Any] = {
        "job_id": "job_1",
        "epoch": 3,
        "gpu_uuids": ["GPU-a", "GPU-b"],
        "simulated": False,
        "env_names": ["QLP_JOB_ID", "EXTRA"],
        "checkpoint_dir": "/var/lib/qlp/jobs/job_1/checkpoints",
        **kw,
    }
    argv: list[str] = container_argv(
        engine, "ghcr.io/acme/train:1.2", ["python", "train.py"], **args
    )
    return argv


def test_docker_passes_only_the_jobs_gpus_and_env_names() -> None:
    argv = _argv("docker")
    assert argv[:3] == ["docker", "run", "--rm"]
    assert argv[argv.index("--gpus") + 1] == '"device=GPU-a,GPU-b"'
    assert argv[argv.index("--name") + 1] == "qlp-job_1-3"
    ck = "/var/lib/qlp/jobs/job_1/checkpoints"
    assert argv[argv.index("--volume") + 1] == f"{ck}:{ck}"
    envs = [argv[i + 1] for i, a in enumerate(argv) if a == "--env"]
    assert envs == ["EXTRA", "QLP_JOB_ID"]  # names only: values never on a command line
    assert not any("=" in e for e in envs)
    # the image and the command come last, after the end of options
    assert argv[-4:] == ["--", "ghcr.io/acme/train:1.2", "python", "train.py"]


def test_podman_uses_cdi_devices() -> None:
    argv = _argv("podman")
    devices = [argv[i + 1] for i, a in enumerate(argv) if a == "--device"]
    assert devices == ["nvidia.com/gpu=GPU-a", "nvidia.com/gpu=GPU-b"]
    assert "--gpus" not in argv


def test_simulated_gpus_are_not_passed_to_the_engine() -> None:
    argv = _argv("docker", simulated=True)
    assert "--gpus" not in argv and "--device" not in argv


def test_container_names_are_safe() -> None:
    assert container_name("job/../x y", 1) == "qlp-job-..-x-y-1"
    with pytest.raises(ContainerEngineError):
        _argv("lxc")
