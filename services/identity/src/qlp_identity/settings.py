"""Identity settings (env prefix ``QLP_IDENTITY_``)."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from qlp_kit.settings import ServiceSettings


class IdentitySettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="QLP_IDENTITY_", extra="ignore", populate_by_name=True
    )

    service_name: str = "identity"

    # --- access tokens (the gateway uses the same issuer/audience defaults)
    issuer: str = Field(
        default="https://qlp.local/identity",
        validation_alias=AliasChoices("QLP_IDENTITY_ISSUER", "QLP_IDENTITY_JWT_ISSUER", "issuer"),
    )
    audience: str = Field(
        default="qlp-api",
        validation_alias=AliasChoices(
            "QLP_IDENTITY_AUDIENCE", "QLP_IDENTITY_JWT_AUDIENCE", "audience"
        ),
    )
    access_token_ttl_s: int = Field(default=900, ge=30, le=24 * 3600)
    refresh_token_ttl_s: int = Field(default=30 * 24 * 3600, ge=60)

    # --- signing keys (RS256, RSA 2048)
    key_rotation_interval_s: int = Field(default=7 * 24 * 3600, ge=60)
    key_check_interval_s: float = Field(default=60.0, gt=0)
    # How long a replica may keep signing with a key it cached before it sees the
    # rotation; retired keys stay published for the token TTL plus this margin.
    key_cache_s: float = Field(default=30.0, ge=0)
    key_publish_leeway_s: int = Field(default=120, ge=0)
    # A scheduled new key is in the JWKS this long before it signs (longer than the
    # gateway's JWKS cache TTL, so no verifier meets an unknown kid).
    key_prepublish_s: int = Field(default=360, ge=0)
    rsa_key_size: int = Field(default=2048, ge=2048)
    # Private keys are stored PKCS#8-encrypted with this secret (falls back to the
    # internal auth secret; with neither set they are stored unencrypted and a warning
    # is logged at start).
    key_encryption_secret: str = ""

    # --- passwords (argon2id; OWASP: m=19 MiB, t=2, p=1)
    argon2_time_cost: int = Field(default=2, ge=1)
    argon2_memory_kib: int = Field(default=19 * 1024, ge=8)
    argon2_parallelism: int = Field(default=1, ge=1)
    # Hashes computed at once per process: each holds argon2_memory_kib of RAM, so this
    # bounds memory (4 x 19 MiB) and keeps the event loop's threads from piling up.
    argon2_max_concurrency: int = Field(default=4, ge=1)

    # --- brute-force protection
    max_failed_logins: int = Field(default=5, ge=1)
    failure_window_s: int = Field(default=900, ge=1)
    lockout_base_s: int = Field(default=60, ge=1)
    lockout_max_s: int = Field(default=3600, ge=1)

    # --- invitations and API keys
    invitation_ttl_s: int = Field(default=7 * 24 * 3600, ge=60)
    api_key_last_used_throttle_s: int = Field(default=60, ge=0)

    def encryption_secret(self) -> str:
        return self.key_encryption_secret or self.internal_auth_secret
