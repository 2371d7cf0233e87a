"""The failover service's Prometheus metrics (served with the shared ones at /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HEARTBEATS = Counter(
    "qlp_failover_heartbeats_total", "Heartbeat events this replica's detector observed"
)
PROVIDERS = Gauge(
    "qlp_failover_providers",
    "Providers this replica watches, by verdict (alive, suspected, lost)",
    ["state"],
)
PROVIDERS_LOST = Counter(
    "qlp_failover_providers_lost_total", "Providers declared lost (once per death)"
)
RECOVERIES = Counter(
    "qlp_failover_provider_recoveries_total",
    "Suspected or lost providers heard from again",
    ["previous"],
)
FAILOVERS = Counter(
    "qlp_failovers_total",
    "Failover decisions recorded (one per job and epoch), by reason",
    ["reason"],
)
DUPLICATE_DECISIONS = Counter(
    "qlp_failover_duplicate_decisions_total",
    "Failover decisions that found the (job, epoch) already decided (another replica, "
    "a restart): not failed over twice",
)
DETECTION_SECONDS = Histogram(
    "qlp_failover_detection_seconds",
    "Last heartbeat to declared lost, on this service's clock",
    buckets=(1.0, 2.0, 3.0, 3.5, 4.0, 5.0, 7.5, 10.0, 30.0, 60.0),
)
REBUILDS = Counter(
    "qlp_failover_rebuilds_total", "Partition assignments that rebuilt last-seen state"
)
STALE_HEARTBEATS = Counter(
    "qlp_failover_stale_heartbeats_total",
    "Heartbeat events skipped because they were older than the lost threshold when read "
    "(a replay, or a detector lagging behind its partitions)",
)
RECOVERY_SECONDS = Histogram(
    "qlp_failover_recovery_seconds",
    "Failover decided to the job running again (primary: on the standby or re-placed "
    "from its checkpoint; standby: a new standby placed)",
    ["role"],
    buckets=(0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 20.0, 30.0, 60.0, 120.0),
)
