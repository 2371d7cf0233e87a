"""GPU and machine detection: NVML first, then ``nvidia-smi``, else simulated GPUs.

Parsing is separated from I/O so the ``nvidia-smi`` path is unit-tested on captured
output. Simulated GPUs are explicit: every report carries ``simulated: true`` and the
uuids read ``GPU-sim-…``.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import shutil
import socket
import subprocess
import time
import uuid as uuidlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

SMI_INVENTORY_FIELDS = "index,uuid,name,memory.total,driver_version"
SMI_SAMPLE_FIELDS = "uuid,utilization.gpu,memory.used,temperature.gpu,power.draw"


class NoGpuError(RuntimeError):
    """No NVIDIA GPU could be detected (and simulation was not asked for)."""


@dataclass(frozen=True)
class GpuInfo:
    uuid: str
    index: int
    model: str
    memory_gb: int


@dataclass(frozen=True)
class GpuSample:
    uuid: str
    utilization_pct: float
    memory_used_mb: int
    temperature_c: float
    power_w: float
    simulated: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GpuInventory:
    gpus: list[GpuInfo]
    driver_version: str
    cuda_version: str
    source: str  # nvml | nvidia-smi | simulated


@dataclass(frozen=True)
class MachineInfo:
    fingerprint: str
    hostname: str
    cpu_count: int
    ram_gb: int
    disk_gb: int
    driver_version: str
    cuda_version: str
    simulated: bool
    gpus: list[GpuInfo] = field(default_factory=list)
    source: str = "simulated"

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("source")
        return d


class GpuBackend(Protocol):
    source: str

    def inventory(self) -> GpuInventory: ...

    def sample(self, busy: set[str]) -> list[GpuSample]: ...

    def close(self) -> None: ...


# ---------------------------------------------------------------- nvidia-smi parsing


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.split(",")]


def _num(cell: str, default: float = 0.0) -> float:
    """nvidia-smi prints ``[N/A]``, ``[Not Supported]`` or a number (nounits)."""
    try:
        v = float(cell)
    except ValueError:
        return default
    return v if math.isfinite(v) else default


def parse_smi_inventory(csv_text: str, header_text: str = "") -> GpuInventory:
    """Parse ``nvidia-smi --query-gpu=index,uuid,name,memory.total,driver_version
    --format=csv,noheader,nounits``; ``header_text`` is plain ``nvidia-smi`` output, whose
    banner carries the CUDA version."""
    gpus: list[GpuInfo] = []
    driver = ""
    for line in csv_text.splitlines():
        if not line.strip():
            continue
        cells = _cells(line)
        if len(cells) < 5:
            raise ValueError(f"unexpected nvidia-smi line: {line!r}")
        index, uuid, name, mem_mib, driver = cells[:5]
        gpus.append(
            GpuInfo(
                uuid=uuid,
                index=int(index),
                model=name,
                memory_gb=round(_num(mem_mib) / 1024),
            )
        )
    m = re.search(r"CUDA Version:\s*([0-9.]+)", header_text)
    return GpuInventory(
        gpus=gpus, driver_version=driver, cuda_version=m.group(1) if m else "", source="nvidia-smi"
    )


def parse_smi_samples(csv_text: str) -> list[GpuSample]:
    """Parse ``nvidia-smi --query-gpu=uuid,utilization.gpu,memory.used,temperature.gpu,
    power.draw --format=csv,noheader,nounits``."""
    out: list[GpuSample] = []
    for line in csv_text.splitlines():
        if not line.strip():
            continue
        cells = _cells(line)
        if len(cells) < 5:
            raise ValueError(f"unexpected nvidia-smi line: {line!r}")
        out.append(
            GpuSample(
                uuid=cells[0],
                utilization_pct=_num(cells[1]),
                memory_used_mb=int(_num(cells[2])),
                temperature_c=_num(cells[3]),
                power_w=_num(cells[4]),
            )
        )
    return out


def cuda_version_from_int(v: int) -> str:
    """NVML's ``nvmlSystemGetCudaDriverVersion`` → ``"12.4"`` from 12040."""
    return f"{v // 1000}.{(v % 1000) // 10}"


# ---------------------------------------------------------------- backends


class SmiBackend:
    source = "nvidia-smi"

    def __init__(self, exe: str) -> None:
        self.exe = exe

    def _run(self, *args: str) -> str:
        return subprocess.run(
            [self.exe, *args], capture_output=True, text=True, check=True, timeout=20
        ).stdout

    def inventory(self) -> GpuInventory:
        csv_text = self._run(f"--query-gpu={SMI_INVENTORY_FIELDS}", "--format=csv,noheader,nounits")
        try:
            header = self._run()
        except (subprocess.SubprocessError, OSError):
            header = ""
        return parse_smi_inventory(csv_text, header)

    def sample(self, busy: set[str]) -> list[GpuSample]:
        return parse_smi_samples(
            self._run(f"--query-gpu={SMI_SAMPLE_FIELDS}", "--format=csv,noheader,nounits")
        )

    def close(self) -> None:
        return None


class NvmlBackend:
    source = "nvml"

    def __init__(self) -> None:
        import pynvml  # nvidia-ml-py

        self._nv: Any = pynvml
        pynvml.nvmlInit()

    @staticmethod
    def _s(v: Any) -> str:
        return v.decode() if isinstance(v, bytes) else str(v)

    def inventory(self) -> GpuInventory:
        nv = self._nv
        gpus = []
        for i in range(nv.nvmlDeviceGetCount()):
            h = nv.nvmlDeviceGetHandleByIndex(i)
            mem = nv.nvmlDeviceGetMemoryInfo(h)
            gpus.append(
                GpuInfo(
                    uuid=self._s(nv.nvmlDeviceGetUUID(h)),
                    index=i,
                    model=self._s(nv.nvmlDeviceGetName(h)),
                    memory_gb=round(int(mem.total) / 2**30),
                )
            )
        try:
            cuda = cuda_version_from_int(int(nv.nvmlSystemGetCudaDriverVersion()))
        except Exception:
            cuda = ""
        return GpuInventory(
            gpus=gpus,
            driver_version=self._s(nv.nvmlSystemGetDriverVersion()),
            cuda_version=cuda,
            source="nvml",
        )

    def sample(self, busy: set[str]) -> list[GpuSample]:
        nv = self._nv
        out = []
        for i in range(nv.nvmlDeviceGetCount()):
            h = nv.nvmlDeviceGetHandleByIndex(i)
            util = mem_used = temp = power = 0.0
            try:
                util = float(nv.nvmlDeviceGetUtilizationRates(h).gpu)
            except nv.NVMLError:
                pass
            try:
                mem_used = int(nv.nvmlDeviceGetMemoryInfo(h).used) / 2**20
            except nv.NVMLError:
                pass
            try:
                temp = float(nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU))
            except nv.NVMLError:
                pass
            try:
                power = nv.nvmlDeviceGetPowerUsage(h) / 1000.0  # mW → W
            except nv.NVMLError:
                pass
            out.append(
                GpuSample(
                    uuid=self._s(nv.nvmlDeviceGetUUID(h)),
                    utilization_pct=util,
                    memory_used_mb=int(mem_used),
                    temperature_c=temp,
                    power_w=round(power, 1),
                )
            )
        return out

    def close(self) -> None:
        try:
            self._nv.nvmlShutdown()
        except Exception:  # noqa: S110 - shutdown is best effort
            pass


def simulated_uuid(seed: str, index: int) -> str:
    """``GPU-sim-<uuid5>``: stable for one state dir (so re-registering is idempotent),
    distinct across state dirs (two simulated agents on one host are two providers)."""
    u = uuidlib.uuid5(uuidlib.NAMESPACE_URL, f"qlp-agent-sim:{seed}:{index}")
    return f"GPU-sim-{u}"


class SimulatedBackend:
    """Synthetic GPUs for development and tests. Samples are synthetic and say so."""

    source = "simulated"

    def __init__(self, count: int, model: str, memory_gb: int, seed: str) -> None:
        self.gpus = [
            GpuInfo(uuid=simulated_uuid(seed, i), index=i, model=model, memory_gb=memory_gb)
            for i in range(count)
        ]

    def inventory(self) -> GpuInventory:
        return GpuInventory(
            gpus=list(self.gpus),
            driver_version="simulated",
            cuda_version="simulated",
            source="simulated",
        )

    def sample(self, busy: set[str]) -> list[GpuSample]:
        t = time.time()
        out = []
        for g in self.gpus:
            if g.uuid in busy:
                util = 85.0 + 10.0 * math.sin(t / 7.0 + g.index)
                mem = int(g.memory_gb * 1024 * 0.6)
            else:
                util, mem = 0.0, 0
            out.append(
                GpuSample(
                    uuid=g.uuid,
                    utilization_pct=round(util, 1),
                    memory_used_mb=mem,
                    temperature_c=round(32.0 + util * 0.45, 1),
                    power_w=round(55.0 + util * 3.0, 1),
                    simulated=True,
                )
            )
        return out

    def close(self) -> None:
        return None


def detect_backend(
    simulate_gpus: int = 0,
    gpu_model: str = "SIM-A100",
    gpu_memory_gb: int = 80,
    sim_seed: str = "",
) -> GpuBackend:
    """Simulated when asked; otherwise NVML, then ``nvidia-smi``; else :class:`NoGpuError`."""
    if simulate_gpus > 0:
        return SimulatedBackend(simulate_gpus, gpu_model, gpu_memory_gb, sim_seed)
    reasons = []
    try:
        nvml = NvmlBackend()
        if nvml.inventory().gpus:
            return nvml
        nvml.close()
        reasons.append("NVML found no GPUs")
    except Exception as exc:  # ImportError, NVMLError_LibraryNotFound, ...
        reasons.append(f"NVML unavailable ({exc})")
    exe = shutil.which("nvidia-smi")
    if exe:
        smi = SmiBackend(exe)
        try:
            if smi.inventory().gpus:
                return smi
            reasons.append("nvidia-smi lists no GPUs")
        except (subprocess.SubprocessError, OSError, ValueError) as exc:
            reasons.append(f"nvidia-smi failed ({exc})")
    else:
        reasons.append("nvidia-smi not found")
    raise NoGpuError(
        "no NVIDIA GPU detected: "
        + "; ".join(reasons)
        + ". Run on a machine with an NVIDIA GPU and driver, or pass --simulate-gpus N "
        "for a simulated provider (every report then says simulated: true)."
    )


# ---------------------------------------------------------------- machine facts


def _machine_id() -> str:
    for p in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            v = Path(p).read_text().strip()
        except OSError:
            continue
        if v:
            return v
    return socket.gethostname()


def _ram_bytes() -> int:
    try:
        import psutil

        return int(psutil.virtual_memory().total)
    except Exception:  # noqa: S110 - fall back to /proc below
        pass
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def fingerprint(gpu_uuids: list[str], machine_id: str) -> str:
    h = hashlib.sha256()
    h.update(machine_id.encode())
    for u in sorted(gpu_uuids):
        h.update(b"\0" + u.encode())
    return h.hexdigest()[:32]


def machine_info(backend: GpuBackend, disk_path: Path) -> MachineInfo:
    inv = backend.inventory()
    simulated = inv.source == "simulated"
    disk_path.mkdir(parents=True, exist_ok=True)
    return MachineInfo(
        fingerprint=fingerprint([g.uuid for g in inv.gpus], _machine_id()),
        hostname=socket.gethostname(),
        cpu_count=os.cpu_count() or 1,
        ram_gb=round(_ram_bytes() / 2**30),
        disk_gb=round(shutil.disk_usage(disk_path).total / 2**30),
        driver_version=inv.driver_version,
        cuda_version=inv.cuda_version,
        simulated=simulated,
        gpus=inv.gpus,
        source=inv.source,
    )
