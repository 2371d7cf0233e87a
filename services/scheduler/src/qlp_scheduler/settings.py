"""Scheduler settings (env prefix ``QLP_SCHEDULER_``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from qlp_kit.settings import ServiceSettings


class SchedulerSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="QLP_SCHEDULER_", extra="ignore", populate_by_name=True
    )

    service_name: str = "scheduler"
    # Jobs wait for billing's EscrowHeld before placement. Turn off ONLY for isolated
    # tests of the scheduler alone (no billing running): jobs are then placed at once.
    escrow_required: bool = True
    platform_fee_bps: int = 500
    # A provider whose last heartbeat is older than this is not placed on.
    heartbeat_timeout_s: float = 30.0
    # A placed job whose start no agent picked up for this long (its provider stopped
    # polling right after it was chosen) goes back to waiting and is placed again.
    start_pickup_timeout_s: float = 45.0
    # A heartbeat that changes nothing (same leases, this minute already counted) is
    # written (with its ProviderHeartbeat event) at most this often.
    heartbeat_write_s: float = 10.0
    # Reliability = share of minutes with a heartbeat over this rolling window.
    reliability_window_min: int = 60
    # How often the in-memory offer index pulls changed offers from the database (this
    # process's own writes update it at once; the pull is for other replicas' writes).
    # Pulls that find nothing new back off, doubling up to offer_refresh_max_s.
    offer_refresh_s: float = 0.5
    offer_refresh_max_s: float = 5.0
    offer_refresh_overlap_s: float = 1.0
    # The offer feed (OfferAvailabilityChanged for the catalogue): a change in this
    # process is published offer_feed_coalesce_s later, at most that often (a burst is
    # one event per offer); marks a crashed process left by a sweep that backs off to
    # offer_feed_sweep_s while there are none.
    offer_feed_coalesce_s: float = Field(default=0.1, gt=0, le=5)
    offer_feed_sweep_s: float = Field(default=10.0, gt=0, le=300)
    # Unplaced jobs (no capacity yet) are retried at once when this process sees
    # capacity appear, else every placement_retry_idle_s (capacity seen by another
    # replica), never more often than placement_retry_s; they fail after the timeout.
    placement_retry_s: float = 2.0
    placement_retry_idle_s: float = 15.0
    placement_timeout_s: float = 600.0
    # Long-poll: waiters are woken by this process's writes and by a change stream on
    # new assignments (any replica). Without the change stream a waiting request
    # re-checks the database every assignment_poll_s; with it, every
    # assignment_recheck_s (safety net). An empty change-stream answer that came back
    # at once is followed by a pause of up to assignment_watch_idle_s.
    assignment_poll_s: float = 1.0
    assignment_recheck_s: float = 10.0
    assignment_watch_idle_s: float = 0.5
    max_wait_s: float = 25.0
    # Assignments written for placed jobs are reconciled after this many seconds.
    reconcile_interval_s: float = 5.0
    checkpoint_max_bytes: int = 256 * 1024 * 1024
    # Checkpoint blobs: "gridfs" (the scheduler's MongoDB, bucket checkpoint_bucket) or
    # "s3" (any S3-compatible store; checkpoint_bucket is the S3 bucket).
    checkpoint_store: Literal["gridfs", "s3"] = "gridfs"
    checkpoint_bucket: str = "checkpoints"
    checkpoint_s3_endpoint: str = ""  # host[:port], e.g. s3.eu-west-1.amazonaws.com
    checkpoint_s3_region: str = ""
    checkpoint_s3_access_key: str = ""
    checkpoint_s3_secret_key: SecretStr = SecretStr("")
    checkpoint_s3_prefix: str = "checkpoints/"
    checkpoint_s3_secure: bool = True
    # Kubernetes backend: providers registered with backend "kubernetes" get batch/v1
    # Jobs (in-cluster credentials). Off by default; never run against a live cluster.
    k8s_enabled: bool = False
    k8s_jobs_namespace: str = "default"
    k8s_default_image: str = "python:3.11-slim"
    # Consumer group of the escrow answers (tests give each instance its own).
    escrow_consumer_group: str = "scheduler.escrow"
    # Consumer group of the failover decisions (FailoverStarted → promotion).
    failover_consumer_group: str = "scheduler.failover"
    # Publish one ProviderAlive per received heartbeat (the failover service's input).
    liveness_events: bool = True
    # Background loops (placement retries, reconciler, timeouts); off in benchmarks.
    background_enabled: bool = True

    @model_validator(mode="after")
    def _s3_complete(self) -> SchedulerSettings:
        if self.checkpoint_store == "s3" and not (
            self.checkpoint_s3_endpoint
            and self.checkpoint_s3_access_key
            and self.checkpoint_s3_secret_key.get_secret_value()
        ):
            raise ValueError(
                "checkpoint_store=s3 needs QLP_SCHEDULER_CHECKPOINT_S3_ENDPOINT, "
                "QLP_SCHEDULER_CHECKPOINT_S3_ACCESS_KEY and QLP_SCHEDULER_CHECKPOINT_S3_SECRET_KEY"
            )
        return self
