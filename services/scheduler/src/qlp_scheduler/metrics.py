"""The scheduler's own Prometheus metrics (served with the shared ones at /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

PLACEMENTS = Counter(
    "qlp_scheduler_placements_total",
    "Placement attempts by outcome (placed, no_capacity)",
    ["outcome"],
)
PLACEMENT_SECONDS = Histogram(
    "qlp_scheduler_placement_seconds",
    "Candidate selection plus atomic claims of one placement",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
CLAIM_CONFLICTS = Counter(
    "qlp_scheduler_claim_conflicts_total",
    "Claims that lost a race (stale index view); the next candidate is tried",
)
STALE_EPOCH_REPORTS = Counter(
    "qlp_scheduler_stale_epoch_total", "Agent calls refused for a stale lease epoch"
)
OFFERS_INDEXED = Gauge("qlp_scheduler_offers_indexed", "Active offers in the in-memory index")
JOBS_AT_RISK = Gauge(
    "qlp_scheduler_jobs_at_risk",
    "Live jobs a provider loss would set back: running without a standby, or whose "
    "latest checkpoint is older than two checkpoint intervals (as of the last sweep)",
    ["reason"],
)
