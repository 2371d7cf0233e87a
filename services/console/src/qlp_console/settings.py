"""Console settings (env prefix ``QLP_CONSOLE_``)."""

from __future__ import annotations

import hashlib

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from qlp_kit.settings import ServiceSettings


class ConsoleSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="QLP_CONSOLE_", extra="ignore", populate_by_name=True
    )
    service_name: str = "console"
    #: The public API the console calls (the gateway), as the console's server reaches it.
    gateway_url: str = "http://127.0.0.1:8080"
    gateway_timeout_s: float = 15.0
    #: Key of the pre-login CSRF tokens (HMAC). Defaults to one derived from the
    #: internal auth secret, so every replica agrees without another setting.
    secret_key: str = ""
    session_cookie: str = "qlp_session"
    csrf_cookie: str = "qlp_csrf"
    #: A session ends this long after its last use (and never later than max_age).
    session_idle_s: int = 8 * 3600
    session_max_age_s: int = 7 * 24 * 3600
    #: Force the cookie's Secure flag; otherwise it follows the request's scheme
    #: (``X-Forwarded-Proto`` from the gateway).
    cookie_secure: bool | None = None
    #: How often the live instance page asks the API for fresh GPU metrics.
    live_poll_s: float = 1.0
    #: Origins (scheme://host[:port]) allowed to post besides the request's own.
    trusted_origins: list[str] = Field(default_factory=list)

    def signing_key(self) -> bytes:
        base = self.secret_key or f"console|{self.internal_auth_secret}"
        return hashlib.sha256(base.encode()).digest()
