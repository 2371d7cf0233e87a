"""Times stored as epoch milliseconds where a document field is ``$set`` later (the
embedded database stores a datetime given directly to ``$set`` as a string)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def dt(value: Any) -> datetime:
    if isinstance(value, bool):
        raise TypeError("not a time")
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value / 1000, UTC)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise TypeError(f"not a time: {value!r}")
