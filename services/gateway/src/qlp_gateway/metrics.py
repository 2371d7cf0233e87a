"""The gateway's own Prometheus metrics (next to the kit's HTTP ones at /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

UPSTREAM_REQUESTS = Counter(
    "qlp_gateway_upstream_requests_total",
    "Requests forwarded to services, by service and answer status",
    ["service", "status"],
)
UPSTREAM_LATENCY = Histogram(
    "qlp_gateway_upstream_seconds",
    "Time from forwarding a request to the service's response headers",
    ["service"],
)
REJECTED = Counter(
    "qlp_gateway_rejected_total",
    "Requests the gateway answered itself, by reason",
    ["reason"],
)
IDEMPOTENCY = Counter(
    "qlp_gateway_idempotency_total",
    "Idempotency-Key outcomes (claimed, replay, mismatch, in_flight, take_over, unknown, "
    "not_stored, released, outcome_unknown, store_failed)",
    ["outcome"],
)
