"""Gateway settings (env prefix ``QLP_GATEWAY_``)."""

from __future__ import annotations

from pydantic import BaseModel, Field
from pydantic_settings import SettingsConfigDict

from qlp_kit.settings import ServiceSettings

MIB = 1024 * 1024

#: The services the gateway routes to, with the per-service settings that may name them
#: one by one (the Helm chart sets ``QLP_GATEWAY_IDENTITY_URL`` etc.).
KNOWN_SERVICES = (
    "identity",
    "billing",
    "generation",
    "marketplace",
    "scheduler",
    "failover",
    "console",
)


class PlanLimit(BaseModel):
    """Token buckets of one plan: requests per minute (refill rate and burst size)."""

    org_per_minute: int = Field(gt=0)
    key_per_minute: int = Field(gt=0)


#: Requests per minute by plan. An org's bucket is shared by all its users and keys;
#: each API key additionally has its own, smaller bucket.
DEFAULT_PLAN_LIMITS: dict[str, PlanLimit] = {
    "free": PlanLimit(org_per_minute=1_200, key_per_minute=600),
    "starter": PlanLimit(org_per_minute=3_000, key_per_minute=1_500),
    "professional": PlanLimit(org_per_minute=12_000, key_per_minute=6_000),
    "enterprise": PlanLimit(org_per_minute=60_000, key_per_minute=30_000),
}


class GatewaySettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="QLP_GATEWAY_", extra="ignore", populate_by_name=True
    )
    service_name: str = "gateway"

    # Routing. QLP_GATEWAY_SERVICE_URLS is a JSON object {name: base URL} (the local
    # runtime sets it); the *_url settings add or override single services.
    service_urls: dict[str, str] = Field(default_factory=dict)
    identity_url: str | None = None
    billing_url: str | None = None
    generation_url: str | None = None
    marketplace_url: str | None = None
    scheduler_url: str | None = None
    failover_url: str | None = None
    console_url: str | None = None  # the web console, served at / (routes.CONSOLE_PATHS)
    upstream_connect_timeout_s: float = 2.0
    upstream_timeout_s: float = 60.0
    upstream_max_connections: int = 200
    max_body_bytes: int = 1 * MIB
    max_upload_bytes: int = 64 * MIB

    # Authentication.
    jwt_issuer: str = "https://qlp.local/identity"
    jwt_audience: str = "qlp-api"
    jwt_algorithms: list[str] = Field(default_factory=lambda: ["EdDSA", "RS256"])
    jwt_leeway_s: float = 30.0
    jwks_url: str | None = None  # default: <identity>/.well-known/jwks.json
    jwks_ttl_s: float = 300.0
    jwks_min_refetch_interval_s: float = 10.0
    api_key_cache_ttl_s: float = 30.0
    api_key_negative_cache_ttl_s: float = 5.0
    api_key_cache_size: int = 10_000
    # Identity's events drop cached keys and refuse outdated tokens; each process
    # consumes them in a group of its own named from this prefix.
    invalidations_consumer_group: str = "gateway.invalidations"

    # Rate limits (token buckets in this process' memory).
    rate_limit_enabled: bool = True
    plan_limits: dict[str, PlanLimit] = Field(default_factory=lambda: dict(DEFAULT_PLAN_LIMITS))
    default_plan: str = "free"
    anonymous_per_minute: int = 600  # public routes, per client address
    auth_failures_per_minute: int = 300  # failed authentications, per client address
    plan_cache_ttl_s: float = 5.0
    plans_consumer_group: str = "gateway.plans"
    rate_limit_max_buckets: int = 100_000

    # Idempotency keys.
    idempotency_lock_s: float = 120.0
    idempotency_max_response_bytes: int = 1 * MIB

    # CORS and docs.
    cors_origins: list[str] = Field(default_factory=list)
    openapi_ttl_s: float = 60.0
    openapi_fetch_timeout_s: float = 2.0

    def upstreams(self) -> dict[str, str]:
        urls = {k: v.rstrip("/") for k, v in self.service_urls.items() if v}
        for name in KNOWN_SERVICES:
            url = getattr(self, f"{name}_url")
            if url:
                urls[name] = str(url).rstrip("/")
        return urls

    def jwks_endpoint(self) -> str | None:
        if self.jwks_url:
            return self.jwks_url
        identity = self.upstreams().get("identity")
        return f"{identity}/.well-known/jwks.json" if identity else None
