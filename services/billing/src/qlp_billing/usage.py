"""Metering: raw usage events inserted once each; aggregates are computed on read."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter

from qlp_billing import metering as M
from qlp_billing.base import BillingBase
from qlp_billing.timeutil import dt

Doc = dict[str, Any]


USAGE_REJECTED = Counter(
    "qlp_billing_usage_rejected_total", "usage events rejected by metering", ["reason"]
)
USAGE_ACCEPTED = Counter("qlp_billing_usage_accepted_total", "usage events counted once")


class Metering(BillingBase):
    """Usage ingestion and the usage view."""

    def usage_doc(self, ev: Any, now: datetime) -> Doc:
        msg = ev.message
        occurred = (
            dt(msg.occurred_at.ToDatetime(tzinfo=UTC))
            if msg.HasField("occurred_at")
            else dt(ev.time)
        )
        doc = M.usage_doc(
            source=ev.source,
            event_id=ev.id,
            org_id=msg.org_id or ev.org_id,
            meter=msg.meter,
            quantity=int(msg.quantity),
            occurred_at=occurred,
            subject_id=msg.subject_id,
            attributes=dict(msg.attributes),
            now=now,
            grace=self.grace,
        )
        return doc

    async def ingest_usage(self, events: Sequence[Any]) -> int:
        """Insert raw usage once each (``_id`` = source|id; a replay is a duplicate
        key and changes nothing). Aggregates are computed from these on read."""
        now = self.clock()
        docs = [self.usage_doc(ev, now) for ev in events]
        new = await self.store.insert_usage(docs)
        for d in docs:
            if d["status"] == M.REJECTED:
                USAGE_REJECTED.labels(d["reason"]).inc()
        USAGE_ACCEPTED.inc(sum(1 for d in docs if d["status"] == M.ACCEPTED))
        return new

    async def usage(self, org_id: str, period: str | None) -> Doc:
        key = period or M.period_key(self.clock())
        aggs = await self.store.aggregates(org_id, key)
        start, end = M.period_bounds(key)
        return {
            "period": key,
            "period_start": start,
            "period_end": end,
            "meters": [a.to_dict() for _, a in sorted(aggs.items())],
        }
