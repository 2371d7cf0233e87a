"""Agent settings: pydantic-settings with the ``QLP_AGENT_`` prefix; CLI flags win."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_STATE_DIR = Path.home() / ".qlp-agent"


def usd_to_minor_units(value: Any) -> int:
    """``"1.25"`` → 125 (cents). Rejects non-numbers, negatives and NaN/inf."""
    try:
        dec = Decimal(str(value).strip())
    except (InvalidOperation, ValueError) as exc:
        raise ValueError(f"must be a number of US dollars, e.g. 1.25 (got {value!r})") from exc
    if not dec.is_finite():
        raise ValueError(f"must be a finite number of US dollars (got {value!r})")
    if dec < 0:
        raise ValueError(f"must not be negative (got {value!r})")
    return int((dec * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


class AgentSettings(BaseSettings):
    """Everything the agent needs. Each field reads ``QLP_AGENT_<FIELD>``."""

    model_config = SettingsConfigDict(
        env_prefix="QLP_AGENT_", extra="ignore", populate_by_name=True
    )

    gateway_url: str = Field(description="base URL of the platform gateway")
    api_key: SecretStr = Field(description="provider API key (qlp_…, scope provider:agent)")
    price_per_gpu_hour: Decimal = Field(description="price per GPU hour in US dollars, e.g. 1.25")
    region: str = Field(min_length=1, max_length=64)
    name: str | None = Field(default=None, min_length=1, max_length=120)
    simulate_gpus: int = Field(default=0, ge=0, le=64)
    gpu_model: str = Field(default="SIM-A100", min_length=1, max_length=64)
    gpu_memory_gb: int = Field(default=80, ge=1, le=4096)
    container_engine: Literal["auto", "docker", "podman", "none"] = "auto"
    state_dir: Path = DEFAULT_STATE_DIR
    # 1 s: the failover service declares a provider lost after 3 missed intervals
    heartbeat_interval: float = Field(default=1.0, gt=0, le=3600)
    poll_wait_s: int = Field(default=20, ge=0, le=25)
    log_batch_interval_s: float = Field(default=1.0, gt=0, le=60)
    cancel_grace_s: float = Field(default=10.0, ge=0, le=600)
    default_checkpoint_interval_s: float = Field(default=60.0, gt=0)
    # how often a running job's status is re-asserted (learns of a stale epoch)
    status_interval_s: float = Field(default=15.0, gt=0)
    # Resource limits applied to every job process (0 = none). Address-space limits
    # break CUDA (it reserves huge virtual ranges); use them for CPU-only jobs.
    job_max_address_space_mb: int = Field(default=0, ge=0)
    job_max_cpu_seconds: int = Field(default=0, ge=0)
    job_max_open_files: int = Field(default=0, ge=0)
    health_port: int | None = Field(default=None, ge=0, le=65535)
    # The platform charts set QLP_<NAME>_HTTP_PORT/HOST for every workload: the
    # agent serves its probe endpoint there unless health_port says otherwise.
    http_port: int | None = Field(default=None, ge=0, le=65535)
    http_host: str = "0.0.0.0"
    request_timeout_s: float = Field(default=30.0, gt=0)
    max_retries: int = Field(default=5, ge=0, le=50)
    log_level: str = "INFO"
    # exit at once (status 1) when the gateway cannot be reached at registration,
    # instead of retrying until it can
    fail_fast: bool = False
    # on SIGTERM/SIGINT: tell the platform this machine goes offline before exiting
    offline_on_exit: bool = True

    @field_validator("gateway_url")
    @classmethod
    def _url(cls, v: str) -> str:
        v = v.strip().rstrip("/")
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"must start with https:// or http:// (got {v!r})")
        return v

    @field_validator("api_key")
    @classmethod
    def _key(cls, v: SecretStr) -> SecretStr:
        raw = v.get_secret_value().strip()
        if not raw.startswith("qlp_") or len(raw) <= len("qlp_"):
            raise ValueError("must be a QLP API key starting with 'qlp_'")
        return SecretStr(raw)

    @field_validator("price_per_gpu_hour", mode="before")
    @classmethod
    def _price(cls, v: Any) -> Decimal:
        if isinstance(v, bool):
            raise ValueError("must be a number of US dollars")
        usd_to_minor_units(v)  # validates
        return Decimal(str(v).strip())

    @field_validator("region")
    @classmethod
    def _region(cls, v: str) -> str:
        v = v.strip()
        if not v:
            raise ValueError("must not be empty")
        return v

    @property
    def price_minor_units(self) -> int:
        return usd_to_minor_units(self.price_per_gpu_hour)

    @property
    def probe_port(self) -> int | None:
        return self.health_port if self.health_port is not None else self.http_port

    @property
    def simulated(self) -> bool:
        return self.simulate_gpus > 0
