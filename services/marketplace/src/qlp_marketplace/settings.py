from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from qlp_kit.settings import ServiceSettings


class MarketplaceSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="QLP_MARKETPLACE_", extra="ignore", populate_by_name=True
    )
    service_name: str = "marketplace"
    consumer_group_prefix: str = "marketplace"
    #: Keep the embedded search index on this replica (rebuilt at start, then kept
    #: current from the listing events by a consumer group of this replica alone).
    search_enabled: bool = True
    #: This replica's name: its search consumer group is ``<prefix>.search.<replica>``
    #: (defaults to host-pid). Set it to the pod name in a cluster.
    replica: str = ""
    #: Largest artifact upload accepted (bytes).
    max_artifact_bytes: int = 25 * 1024 * 1024
    #: Refund window in days.
    refund_window_days: int = 14
    #: How long POST /purchases waits for billing's answer, so that a balance that
    #: cannot pay is a 402 problem at once; a later answer still decides the purchase
    #: (it then ends ``failed`` with the reason). 0: answer 202 at once.
    payment_wait_s: float = 5.0
