"""Metering, pure: which period a usage event belongs to and whether it is accepted.

Periods are calendar months in UTC ("2026-03"). An event lands in the period of
``occurred_at``; it is accepted while that period plus the grace window has not
passed (late events within the window still land in the right period), and rejected
visibly afterwards (reason ``late``) — as it is when it claims a time too far in the
future (``future``) or a negative quantity (``invalid``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

ACCEPTED = "accepted"
REJECTED = "rejected"
PREMIUM_ATTRS = ("premium", "model_class")


def period_key(ts: datetime) -> str:
    ts = ts.astimezone(UTC)
    return f"{ts.year:04d}-{ts.month:02d}"


def period_bounds(key: str) -> tuple[datetime, datetime]:
    year, month = (int(p) for p in key.split("-"))
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def period_of(ts: datetime) -> tuple[str, datetime, datetime]:
    key = period_key(ts)
    start, end = period_bounds(key)
    return key, start, end


def next_period_key(key: str) -> str:
    return period_key(period_bounds(key)[1])


def parse_period(value: str) -> str:
    """Validate "YYYY-MM"."""
    try:
        year, month = value.split("-")
        if len(year) != 4 or len(month) != 2 or not 1 <= int(month) <= 12:
            raise ValueError
        return f"{int(year):04d}-{int(month):02d}"
    except ValueError:
        raise ValueError(f"period must be YYYY-MM, got {value!r}") from None


def latest_value(latest_key: object) -> int:
    if not isinstance(latest_key, str) or ":" not in latest_key:
        return 0
    return int(latest_key.rsplit(":", 1)[1])


def is_premium(attributes: dict[str, str]) -> bool:
    return attributes.get("premium", "").lower() in ("1", "true", "yes") or (
        attributes.get("model_class", "").lower() == "premium"
    )


@dataclass(frozen=True)
class Verdict:
    status: str
    period: str
    reason: str = ""


def classify(
    occurred_at: datetime,
    quantity: int,
    now: datetime,
    grace: timedelta,
    max_future: timedelta = timedelta(minutes=5),
) -> Verdict:
    key, _, end = period_of(occurred_at)
    if quantity < 0:
        return Verdict(REJECTED, key, "invalid")
    if occurred_at > now + max_future:
        return Verdict(REJECTED, key, "future")
    if now > end + grace:
        return Verdict(REJECTED, key, "late")
    return Verdict(ACCEPTED, key)


def usage_doc(
    *,
    source: str,
    event_id: str,
    org_id: str,
    meter: str,
    quantity: int,
    occurred_at: datetime,
    subject_id: str,
    attributes: dict[str, str],
    now: datetime,
    grace: timedelta,
) -> dict[str, Any]:
    """The raw usage document; ``_id`` = source|id is the dedupe key."""
    v = classify(occurred_at, quantity, now, grace)
    premium = is_premium(attributes)
    return {
        "_id": f"{source}|{event_id}",
        "org_id": org_id,
        "meter": meter,
        "quantity": quantity,
        "premium_quantity": quantity if premium else 0,
        "occurred_at": occurred_at,
        "period": v.period,
        "status": v.status,
        "reason": v.reason,
        "subject_id": subject_id,
        "received_at": now,
        # "latest" per meter = $max of this (time first, then the value)
        "latest_key": f"{int(occurred_at.timestamp() * 1000):015d}:{quantity}",
    }


@dataclass
class MeterAggregate:
    meter: str
    sum: int = 0
    count: int = 0
    max: int = 0
    latest: int = 0
    premium_sum: int = 0
    rejected_count: int = 0
    rejected_sum: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "meter": self.meter,
            "sum": self.sum,
            "count": self.count,
            "max": self.max,
            "latest": self.latest,
            "premium_sum": self.premium_sum,
            "rejected_count": self.rejected_count,
            "rejected_sum": self.rejected_sum,
        }
