"""GPU detection: nvidia-smi parsing on captured output, NVML version decoding,
simulated GPUs, and the refusal to run without a GPU."""

from __future__ import annotations

from pathlib import Path

import pytest

import qlp_agent.gpu as gpu
from qlp_agent.gpu import (
    NoGpuError,
    SimulatedBackend,
    cuda_version_from_int,
    detect_backend,
    fingerprint,
    machine_info,
    parse_smi_inventory,
    parse_smi_samples,
)

# captured: nvidia-smi --query-gpu=index,uuid,name,memory.total,driver_version --format=csv,noheader,nounits
SMI_INVENTORY = """\
0, GPU-5c3b1b9e-8f3e-1b0a-7f0e-2a5d6c1f9e01, NVIDIA A100-SXM4-80GB, 81920, 535.129.03
1, GPU-0d2a4c61-77aa-4e2b-9c3d-1f2e3d4c5b6a, NVIDIA A100-SXM4-80GB, 81920, 535.129.03
"""
SMI_HEADER = """\
+---------------------------------------------------------------------------------------+
| NVIDIA-SMI 535.129.03             Driver Version: 535.129.03   CUDA Version: 12.2     |
|-----------------------------------------+----------------------+----------------------+
"""
# captured: nvidia-smi --query-gpu=uuid,utilization.gpu,memory.used,temperature.gpu,power.draw ...
SMI_SAMPLES = """\
GPU-5c3b1b9e-8f3e-1b0a-7f0e-2a5d6c1f9e01, 97, 40211, 71, 389.52
GPU-0d2a4c61-77aa-4e2b-9c3d-1f2e3d4c5b6a, 0, 4, 33, [N/A]
"""


def test_parse_smi_inventory() -> None:
    inv = parse_smi_inventory(SMI_INVENTORY, SMI_HEADER)
    assert inv.source == "nvidia-smi"
    assert inv.driver_version == "535.129.03" and inv.cuda_version == "12.2"
    assert [g.index for g in inv.gpus] == [0, 1]
    g = inv.gpus[0]
    assert g.uuid == "GPU-5c3b1b9e-8f3e-1b0a-7f0e-2a5d6c1f9e01"
    assert g.model == "NVIDIA A100-SXM4-80GB" and g.memory_gb == 80


def test_parse_smi_inventory_without_header_and_blank_lines() -> None:
    inv = parse_smi_inventory("\n" + SMI_INVENTORY.splitlines()[0] + "\n\n")
    assert len(inv.gpus) == 1 and inv.cuda_version == ""


def test_parse_smi_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="unexpected"):
        parse_smi_inventory("No devices were found")


def test_parse_smi_samples_handles_not_available() -> None:
    a, b = parse_smi_samples(SMI_SAMPLES)
    assert (a.utilization_pct, a.memory_used_mb, a.temperature_c, a.power_w) == (
        97.0,
        40211,
        71.0,
        389.52,
    )
    assert b.power_w == 0.0 and b.simulated is False


def test_cuda_version_from_nvml_int() -> None:
    assert cuda_version_from_int(12040) == "12.4"
    assert cuda_version_from_int(11080) == "11.8"


def test_simulated_gpus_are_labelled_and_stable() -> None:
    a = SimulatedBackend(2, "SIM-A100", 80, seed="s1")
    again = SimulatedBackend(2, "SIM-A100", 80, seed="s1")
    other = SimulatedBackend(2, "SIM-A100", 80, seed="s2")
    uuids = [g.uuid for g in a.inventory().gpus]
    assert all(u.startswith("GPU-sim-") for u in uuids) and len(set(uuids)) == 2
    assert uuids == [g.uuid for g in again.inventory().gpus]
    assert not set(uuids) & {g.uuid for g in other.inventory().gpus}
    busy, idle = a.sample({uuids[0]})
    assert busy.simulated and idle.simulated
    assert busy.utilization_pct > 50 and idle.utilization_pct == 0
    assert busy.power_w > idle.power_w


def test_machine_info_simulated(tmp_path: Path) -> None:
    m = machine_info(SimulatedBackend(1, "SIM-A100", 40, seed="x"), tmp_path)
    d = m.to_json()
    assert d["simulated"] is True and "source" not in d
    assert d["gpus"][0]["memory_gb"] == 40 and d["cpu_count"] >= 1 and d["disk_gb"] > 0
    assert (
        m.fingerprint
        == machine_info(SimulatedBackend(1, "SIM-A100", 40, seed="x"), tmp_path).fingerprint
    )


def test_fingerprint_ignores_gpu_order() -> None:
    assert fingerprint(["b", "a"], "m") == fingerprint(["a", "b"], "m") != fingerprint(["a"], "m")


def test_detect_refuses_without_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    class NoNvml:
        def __init__(self) -> None:
            raise RuntimeError("NVML Shared Library Not Found")

    monkeypatch.setattr(gpu, "NvmlBackend", NoNvml)
    monkeypatch.setattr(gpu.shutil, "which", lambda _: None)
    with pytest.raises(NoGpuError, match="--simulate-gpus"):
        detect_backend()
    assert detect_backend(simulate_gpus=1).source == "simulated"


def test_detect_falls_back_to_nvidia_smi(monkeypatch: pytest.MonkeyPatch) -> None:
    class NoNvml:
        def __init__(self) -> None:
            raise RuntimeError("no nvml")

    def fake_run(argv: list[str], **_: object) -> object:
        class R:
            stdout = (
                SMI_INVENTORY
                if any(a.startswith("--query-gpu=index") for a in argv)
                else (
                    SMI_SAMPLES
                    if any(a.startswith("--query-gpu=uuid") for a in argv)
                    else SMI_HEADER
                )
            )

        return R()

    monkeypatch.setattr(gpu, "NvmlBackend", NoNvml)
    monkeypatch.setattr(gpu.shutil, "which", lambda _: "/usr/bin/nvidia-smi")
    monkeypatch.setattr(gpu.subprocess, "run", fake_run)
    b = detect_backend()
    assert b.source == "nvidia-smi"
    assert b.inventory().cuda_version == "12.2" and len(b.sample(set())) == 2
