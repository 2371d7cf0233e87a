from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from qlp_kit.settings import ServiceSettings


class FailoverSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="QLP_FAILOVER_", extra="ignore", populate_by_name=True
    )
    service_name: str = "failover"
    consumer_group_prefix: str = "failover"
    #: The agents' heartbeat interval.
    heartbeat_interval_s: float = 1.0
    #: A provider is lost after this many intervals of silence (plus the grace below),
    #: measured on this service's clock when the heartbeat events arrive.
    miss_threshold: int = 3
    #: Extra silence, in intervals, before "lost": absorbs jitter (±50 %) and the
    #: broker's delivery delay, so one dropped heartbeat never fails a job over.
    grace_intervals: float = 0.5
    #: Silence, in intervals, after which a provider is suspected (an event, no action).
    suspect_intervals: float = 2.0
    #: How often the detector checks the clocks of the providers it watches.
    tick_s: float = 0.25
    #: The last-seen time of a provider that changes nothing is written at most this
    #: often (a rebalance rebuilds from it; liveness itself never waits for the write).
    persist_every_s: float = 10.0
    #: Run the liveness detector (a replica may serve only the API).
    detector_enabled: bool = True
    #: This replica's name in failover records (defaults to host:pid).
    replica: str = ""
