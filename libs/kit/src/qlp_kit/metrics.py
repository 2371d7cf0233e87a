"""Prometheus metrics shared by every service, exposed at ``/metrics``."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response

HTTP_REQUESTS = Counter(
    "qlp_http_requests_total", "HTTP requests", ["service", "method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "qlp_http_request_duration_seconds", "HTTP request latency", ["service", "method", "route"]
)
EVENTS_PUBLISHED = Counter(
    "qlp_events_published_total", "Events published by the outbox relay", ["service", "topic"]
)
EVENTS_CONSUMED = Counter(
    "qlp_events_consumed_total", "Events handled by consumers", ["service", "group", "outcome"]
)
EVENTS_DEAD_LETTERED = Counter(
    "qlp_events_dead_lettered_total", "Events sent to a dead-letter topic", ["service", "group"]
)
OUTBOX_PENDING = Histogram(
    "qlp_outbox_relay_batch_size", "Events published per relay batch", ["service"]
)


async def metrics_endpoint(_: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


TENANT_GUARD_VIOLATIONS = Counter(
    "qlp_tenant_guard_violations_total",
    "Queries on tenant collections without the tenant in their filter",
    ["database", "collection", "command"],
)

CONSUMER_TRANSIENT_RETRIES = Counter(
    "qlp_consumer_transient_retries_total",
    "Handler attempts that failed for an infrastructure reason and were retried (never DLQ)",
    ["service", "group"],
)
OUTBOX_STUCK = Counter(
    "qlp_outbox_stuck_total",
    "Documents the outbox relay marked stuck: an event the broker can never take",
    ["service", "collection"],
)
OUTBOX_OLDEST_AGE = Gauge(
    "qlp_outbox_oldest_pending_age_seconds",
    "Seconds since the oldest event the relay found waiting was staged, at its last scan "
    "of the collection (0: nothing waiting)",
    ["service", "collection"],
)
OUTBOX_STUCK_DOCUMENTS = Gauge(
    "qlp_outbox_stuck_documents",
    "Documents whose outbox is stuck (``_outbox_pending: 2``), as last counted by the relay",
    ["service", "collection"],
)
