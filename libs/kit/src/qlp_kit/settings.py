"""Service settings: one pydantic-settings class per service, each with its own prefix.

Shared infrastructure URLs are read from their conventional unprefixed names
(``KAFKA_BOOTSTRAP_SERVERS``, ``MONGODB_URL``) as well as from the prefixed form, so
the same code runs locally, in tests and on Kubernetes. Missing required settings
stop the process at start with a message that names them.
"""

from __future__ import annotations

import sys
from typing import TypeVar

from pydantic import AliasChoices, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

S = TypeVar("S", bound="ServiceSettings")


class ServiceSettings(BaseSettings):
    """Base settings every service extends (set ``model_config`` with an env prefix)."""

    model_config = SettingsConfigDict(env_prefix="QLP_", extra="ignore", populate_by_name=True)

    service_name: str = "service"
    kafka_bootstrap_servers: str = Field(
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "kafka_bootstrap_servers"),
    )
    mongodb_url: str = Field(validation_alias=AliasChoices("MONGODB_URL", "mongodb_url"))
    mongodb_database: str = ""
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    log_level: str = Field(
        default="INFO", validation_alias=AliasChoices("QLP_LOG_LEVEL", "log_level")
    )
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None,
        validation_alias=AliasChoices("OTEL_EXPORTER_OTLP_ENDPOINT", "otel_exporter_otlp_endpoint"),
    )
    internal_auth_secret: str = Field(
        default="",
        validation_alias=AliasChoices("QLP_INTERNAL_AUTH_SECRET", "internal_auth_secret"),
        description="HMAC key the gateway signs forwarded principals with",
    )
    tenant_guard: bool = Field(
        default=False,
        validation_alias=AliasChoices("QLP_TENANT_GUARD", "tenant_guard"),
        description="count queries on tenant collections that lack the tenant (tests, dev)",
    )
    relay_enabled: bool = True
    relay_poll_interval_s: float = 0.05
    relay_batch_size: int = 500
    consumers_enabled: bool = True
    consumer_max_attempts: int = 5
    consumer_backoff_initial_s: float = 0.05
    consumer_backoff_max_s: float = 2.0
    #: Longest wait between retries while the database or broker is unreachable.
    consumer_transient_backoff_max_s: float = 10.0
    consumer_batch_max_records: int = 500
    #: GET /v1/admin/consumers/<service>: how long one broker read is reused, and how
    #: long the broker may take to answer (then 503).
    consumer_stats_ttl_s: float = 10.0
    consumer_stats_timeout_s: float = 15.0

    @property
    def database_name(self) -> str:
        return self.mongodb_database or f"qlp_{self.service_name}"


def load_settings(cls: type[S], **overrides: object) -> S:
    """Build settings or exit with a clear message naming what is missing or wrong."""
    try:
        return cls(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        prefix = cls.model_config.get("env_prefix", "")
        lines = [f"invalid or missing settings for {cls.__name__} (env prefix {prefix!r}):"]
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            lines.append(f"  - {loc}: {err['msg']}")
        print("\n".join(lines), file=sys.stderr)
        raise SystemExit(2) from None
