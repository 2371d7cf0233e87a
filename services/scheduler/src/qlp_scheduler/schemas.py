"""Request and response models of the scheduler's HTTP API (separate from documents)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# GPU uuids become document field names: no dots, no dollars.
UUID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_:-]{0,127}$"
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# An OCI image reference: [registry[:port]/]path[:tag][@digest], no spaces or options.
IMAGE_PATTERN = (
    r"^[a-z0-9][a-z0-9._-]*(:[0-9]{1,5})?(/[a-z0-9][a-z0-9._-]*)*"
    r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$"
)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


from qlp_kit.money import MoneyIn, MoneyOut  # noqa: E402 - shared API money models

__all__ = ["MoneyIn", "MoneyOut"]


class GpuIn(BaseModel):
    uuid: str = Field(pattern=UUID_PATTERN)
    index: int = Field(ge=0, le=1024)
    model: str = Field(min_length=1, max_length=128)
    memory_gb: float = Field(gt=0, le=4096)


class MachineIn(BaseModel):
    fingerprint: str = Field(min_length=1, max_length=256)
    hostname: str = Field(default="", max_length=256)
    cpu_count: int = Field(default=0, ge=0, le=100_000)
    ram_gb: float = Field(default=0, ge=0, le=1_000_000)
    disk_gb: float = Field(default=0, ge=0, le=100_000_000)
    driver_version: str = Field(default="", max_length=64)
    cuda_version: str = Field(default="", max_length=64)
    simulated: bool = False
    # the container engine the agent found ("" when none): jobs with an image need one
    container_engine: Literal["", "docker", "podman"] = ""
    gpus: list[GpuIn] = Field(min_length=1, max_length=64)

    @model_validator(mode="after")
    def _unique_gpus(self) -> MachineIn:
        uuids = [g.uuid for g in self.gpus]
        if len(set(uuids)) != len(uuids):
            raise ValueError("GPU uuids must be unique")
        return self


class KubernetesPoolIn(BaseModel):
    """Where and how GPU Jobs run for a provider that is a Kubernetes GPU node pool."""

    namespace: str | None = Field(default=None, max_length=63, pattern=r"^[a-z0-9-]+$")
    image: str = Field(min_length=1, max_length=512)
    node_selector: dict[str, str] = Field(default_factory=dict, max_length=16)


class ProviderIn(BaseModel):
    name: str = Field(min_length=1, max_length=120)
    region: str = Field(min_length=1, max_length=64)
    price_per_gpu_hour: MoneyIn
    machine: MachineIn
    stake: MoneyIn | None = None
    backend: Literal["agent", "kubernetes"] = "agent"
    kubernetes: KubernetesPoolIn | None = None

    @model_validator(mode="after")
    def _pool_config(self) -> ProviderIn:
        if self.backend == "kubernetes" and self.kubernetes is None:
            raise ValueError("a kubernetes provider needs its pool settings (kubernetes.image)")
        return self


class GpuOut(BaseModel):
    uuid: str
    index: int
    model: str
    memory_gb: float


class ProviderOut(BaseModel):
    id: str
    org_id: str
    machine_id: str
    offer_id: str
    name: str
    region: str
    status: str
    backend: str
    price_per_gpu_hour: MoneyOut
    gpu_model: str
    gpu_memory_gb: float
    gpu_count: int
    available_gpus: int
    gpus: list[GpuOut]
    simulated: bool
    containers: bool
    reliability: float
    stake: MoneyOut
    last_heartbeat_at: datetime | None
    created_at: datetime
    liveness: Literal["alive", "suspected", "lost"] = Field(
        default="alive",
        description="The failover service's verdict from the heartbeats: a `lost` "
        "provider gets no new work until it is heard from again.",
    )


class ProviderList(BaseModel):
    items: list[ProviderOut]
    next_cursor: str | None


class GpuStatusIn(BaseModel):
    uuid: str = Field(pattern=UUID_PATTERN)
    utilization_pct: float = Field(default=0, ge=0, le=100)
    memory_used_mb: float = Field(default=0, ge=0)
    temperature_c: float = Field(default=0, ge=-50, le=200)
    power_w: float = Field(default=0, ge=0, le=100_000)


class RunningIn(BaseModel):
    job_id: str = Field(min_length=1, max_length=64)
    epoch: int = Field(ge=0)
    status: str = Field(default="running", max_length=32)


class HeartbeatIn(BaseModel):
    gpus: list[GpuStatusIn] = Field(default_factory=list, max_length=64)
    running: list[RunningIn] = Field(default_factory=list, max_length=256)
    # the newest ``delivered_ms`` among the assignments the agent had handled when it
    # built this heartbeat: a delivered cancel is done by a heartbeat that no longer
    # lists its job only when the agent had handled that delivery (an older heartbeat
    # still in flight proves nothing). Absent (older agents): not checked.
    handled_through_ms: int | None = Field(default=None, ge=0)


class HeartbeatOut(BaseModel):
    status: str = "ok"
    server_time: datetime


class AssignmentOut(BaseModel):
    assignment_id: str
    job_id: str
    epoch: int
    role: Literal["primary", "standby"]
    action: Literal["start", "cancel", "prepare", "stage"] = Field(
        description="`start` run it, `prepare` be its standby, `stage` (standby) fetch the "
        "checkpoint `checkpoint_id` now, `cancel` stop it."
    )
    command: list[str]
    image: str = ""
    env: dict[str, str]
    gpu_uuids: list[str]
    checkpoint_interval_s: int
    max_duration_s: int
    resume: bool
    # when this delivery was made (echoed back in heartbeats as handled_through_ms)
    delivered_ms: int | None = None
    checkpoint_id: str | None = Field(
        default=None,
        description="`stage`: the checkpoint to fetch; a resumed `start`: the checkpoint "
        "it restores (a standby that staged it restores its local copy).",
    )
    step: int | None = None


class AssignmentList(BaseModel):
    items: list[AssignmentOut]


class StatusIn(BaseModel):
    epoch: int = Field(ge=0)
    # "canceled": the agent stopped the workload after a cancel (acknowledges it)
    status: Literal["starting", "running", "completed", "failed", "canceled"]
    step: int | None = Field(default=None, ge=0)
    message: str | None = Field(default=None, max_length=2000)
    exit_code: int | None = None


class StatusOut(BaseModel):
    status: str
    job_status: str
    role: str


class LogsIn(BaseModel):
    epoch: int = Field(ge=0)
    lines: list[str] = Field(max_length=1000)


class CheckpointOut(BaseModel):
    checkpoint_id: str
    step: int


class EarningsOut(BaseModel):
    provider_id: str
    jobs: int
    gpu_minutes: int
    gross: MoneyOut
    platform_fee: MoneyOut
    platform_fee_bps: int
    net: MoneyOut
    note: str = "estimate from metered usage; settled amounts are in billing"


class JobIn(Strict):
    gpu_count: int = Field(default=1, ge=1, le=64)
    gpu_model: str | None = Field(default=None, max_length=128)
    min_gpu_memory_gb: float | None = Field(default=None, ge=0, le=4096)
    max_price_per_gpu_hour: MoneyIn
    region: str | None = Field(default=None, max_length=64)
    region_strict: bool = False
    command: list[str] = Field(min_length=1, max_length=256)
    # run the command in this container image (only on providers with a container
    # engine, or a Kubernetes pool); without it the command runs as a process
    image: str | None = Field(default=None, max_length=512, pattern=IMAGE_PATTERN)
    env: dict[str, str] = Field(default_factory=dict, max_length=64)
    checkpoint_interval_s: int = Field(default=300, ge=0, le=86_400)
    redundancy: Literal["none", "hot_standby"] = "none"
    max_duration_s: int = Field(default=3600, ge=1, le=7 * 86_400)
    # accept a job that no registered offer could hold today and let it wait (its
    # placement_reason says why); without it such a job is refused with 422
    wait_for_capacity: bool = False

    @field_validator("env")
    @classmethod
    def _env_names(cls, v: dict[str, str]) -> dict[str, str]:
        for name, value in v.items():
            if not ENV_NAME.match(name) or "\x00" in value or len(value) > 4096:
                raise ValueError(f"invalid environment variable {name!r}")
        return v

    @field_validator("command")
    @classmethod
    def _argv(cls, v: list[str]) -> list[str]:
        if any(len(a) > 4096 for a in v) or not v[0]:
            raise ValueError("command is an argv list with a non-empty program")
        return v

    @field_validator("max_price_per_gpu_hour")
    @classmethod
    def _positive(cls, v: MoneyIn) -> MoneyIn:
        if v.amount <= 0:
            raise ValueError("max price must be positive")
        return v

    def to_spec(self) -> dict[str, Any]:
        return {
            "gpu_count": self.gpu_count,
            "gpu_model": self.gpu_model or "",
            "min_gpu_memory_gb": self.min_gpu_memory_gb or 0.0,
            "max_price_minor": self.max_price_per_gpu_hour.amount,
            "currency": self.max_price_per_gpu_hour.currency,
            "region": self.region or "",
            "region_strict": self.region_strict,
            "command": list(self.command),
            "image": self.image or "",
            "env": dict(self.env),
            "checkpoint_interval_s": self.checkpoint_interval_s,
            "redundancy": self.redundancy,
            "max_duration_s": self.max_duration_s,
            "wait_for_capacity": self.wait_for_capacity,
        }


class QuoteOut(BaseModel):
    """What submitting this job would do, without submitting it."""

    escrow_estimate: MoneyOut = Field(
        description="held from the prepaid balance at submit: gpu_count x max price "
        "per GPU-hour x max_duration_s, rounded up; the unused rest comes back"
    )
    matching_offers: int = Field(description="offers that could take the job right now")
    satisfiable: bool = Field(
        description="false when no registered offer could ever hold the job: a submit "
        "is refused with 422 unless it sets wait_for_capacity"
    )
    unsatisfied_requirement: str | None = Field(
        default=None, description="the requirement no registered offer meets"
    )
    placement_reason: str | None = Field(
        default=None, description="why the job would wait when no offer matches now"
    )
    available_balance: MoneyOut | None = Field(
        default=None,
        description="the prepaid balance the scheduler sees for new holds (billing's "
        "events, less holds still pending); null when it has not heard of the org yet",
    )
    balance_covers: bool | None = Field(
        default=None, description="whether that balance covers the estimate (null: unknown)"
    )
    shortfall: MoneyOut | None = Field(
        default=None, description="what is missing when the balance does not cover it"
    )


class CancelIn(BaseModel):
    reason: str = Field(default="canceled by the consumer", max_length=500)


class CheckpointRef(BaseModel):
    checkpoint_id: str
    step: int
    epoch: int
    size_bytes: int
    sha256: str
    at: datetime


class JobOut(BaseModel):
    id: str
    org_id: str
    status: str
    gpu_count: int
    gpu_model: str | None
    min_gpu_memory_gb: float | None
    max_price_per_gpu_hour: MoneyOut
    region: str | None
    command: list[str]
    image: str | None
    checkpoint_interval_s: int
    redundancy: str
    max_duration_s: int
    provider_id: str | None
    standby_provider_id: str | None
    epoch: int
    escrow_id: str | None
    escrow_amount: MoneyOut
    cost: MoneyOut
    gpu_minutes: int
    step: int | None
    message: str
    # why a job waits for a placement: no registered machine could ever hold it (e.g.
    # "no registered machine has 64 GPUs (largest: 8)"), or the matching ones are busy
    placement_reason: str | None = None
    failure: dict[str, str] | None
    exit_code: int | None
    latest_checkpoint: CheckpointRef | None
    created_at: datetime
    placed_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None


class JobList(BaseModel):
    items: list[JobOut]
    next_cursor: str | None


class LogLine(BaseModel):
    at: datetime
    epoch: int
    provider_id: str
    line: str


class LogList(BaseModel):
    items: list[LogLine]
    next_cursor: str | None


class GpuMetrics(BaseModel):
    uuid: str
    utilization_pct: float
    memory_used_mb: float
    temperature_c: float
    power_w: float
    at: datetime | None


class JobMetrics(BaseModel):
    job_id: str
    status: str
    epoch: int
    step: int | None
    gpu_minutes: int
    cost: MoneyOut
    gpus: list[GpuMetrics]
    latest_checkpoint: CheckpointRef | None


class FailoverOut(BaseModel):
    """One provider loss the job went through."""

    failover_id: str
    at: datetime = Field(description="When the scheduler acted on the failover decision.")
    outcome: str = Field(
        description="`promoted` (the hot standby took over), `requeued` (no standby: "
        "placed again from the checkpoint) or `standby_replaced` (the standby was lost)."
    )
    failed_provider_id: str
    failed_role: str = Field(description="`primary` or `standby`.")
    old_epoch: int
    epoch: int = Field(description="The job's lease epoch after the failover.")
    provider_id: str | None = Field(description="Who runs the job now (unset while requeued).")
    standby_provider_id: str | None
    checkpoint_id: str | None = Field(description="The checkpoint the job resumes from.")
    checkpoint_step: int | None
    steps_redone: int | None = Field(
        description="Steps the lost primary had reported past the checkpoint, run again."
    )


class FailoverList(BaseModel):
    job_id: str
    items: list[FailoverOut] = Field(description="Oldest first.")
