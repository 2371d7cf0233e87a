"""On a real NVIDIA GPU: detection (NVML / nvidia-smi), the agent registering real
GPUs, and the sample workload on CUDA. Skipped, with the reason, where there is none."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from qlp_agent.gpu import GpuBackend, NoGpuError, detect_backend, machine_info
from qlp_agent.workloads.train import torch_available

pytestmark = pytest.mark.gpu


@pytest.fixture
def real_gpu() -> Any:
    try:
        backend: GpuBackend = detect_backend()
    except NoGpuError as exc:
        pytest.skip(f"no NVIDIA GPU here: {exc}")
    yield backend
    backend.close()


def test_detects_real_gpus(real_gpu: GpuBackend, tmp_path: Path) -> None:
    inv = real_gpu.inventory()
    assert inv.source in ("nvml", "nvidia-smi") and inv.gpus
    assert inv.driver_version and inv.driver_version != "simulated"
    for g in inv.gpus:
        assert g.uuid.startswith(("GPU-", "MIG-")) and not g.uuid.startswith("GPU-sim-")
        assert g.memory_gb > 0 and g.model
    samples = real_gpu.sample(set())
    assert {s.uuid for s in samples} == {g.uuid for g in inv.gpus}
    assert all(0 <= s.utilization_pct <= 100 and not s.simulated for s in samples)
    m = machine_info(real_gpu, tmp_path)
    assert m.simulated is False and m.to_json()["simulated"] is False


async def test_agent_registers_real_gpus(
    real_gpu: GpuBackend, fake_scheduler: Any, start_agent: Any
) -> None:
    agent = await start_agent(fake_scheduler.url, simulate_gpus=0)
    machine = fake_scheduler.providers[agent.provider_id]["machine"]
    assert machine["simulated"] is False and machine["gpus"]
    hb = await fake_scheduler.wait_for(lambda: fake_scheduler.heartbeats, what="heartbeat")
    assert all(g.get("simulated") is False for g in hb[0][1]["gpus"])


def test_workload_runs_on_cuda_and_resumes(real_gpu: GpuBackend, tmp_path: Path) -> None:
    if not torch_available():
        pytest.skip("torch not installed (optional extra: qlp-agent[workload])")
    import torch

    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA support here (CPU-only wheel or driver mismatch)")
    uuid = real_gpu.inventory().gpus[0].uuid
    base = [
        sys.executable,
        "-m",
        "qlp_agent.workloads.train",
        "--backend",
        "torch",
        "--checkpoint-every",
        "10",
    ]

    def run(steps: int, ckpt: Path | None) -> list[str]:
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": uuid, "QLP_CHECKPOINT_DIR": str(ckpt or "")}
        p = subprocess.run(
            [*base, "--steps", str(steps)], env=env, capture_output=True, text=True, timeout=300
        )
        assert p.returncode == 0, p.stderr[-2000:]
        return p.stdout.splitlines()

    reference = run(60, None)
    assert "device=cuda" in reference
    ck = tmp_path / "ck"
    run(30, ck)  # stops after the checkpoint at step 30
    resumed = run(60, ck)
    assert "resumed_from=30" in resumed
    assert resumed[-1] == reference[-1]
