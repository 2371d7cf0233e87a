"""Live instance data as server-sent events, pure parts: which GPU samples are new,
and how one event is written."""

from __future__ import annotations

import json
from typing import Any

ENDED = frozenset({"completed", "failed", "canceled", "cancelled", "expired", "refused"})


def sse(event: str, data: Any, event_id: str | None = None) -> bytes:
    """One server-sent event (data as one JSON line)."""
    lines = [f"event: {event}"]
    if event_id:
        lines.append(f"id: {event_id}")
    lines.append("data: " + json.dumps(data, separators=(",", ":")))
    return ("\n".join(lines) + "\n\n").encode()


def metrics_sample(
    metrics: dict[str, Any], seen: str | None
) -> tuple[dict[str, Any] | None, str | None]:
    """The sample to send for a ``GET /v1/gpu/jobs/{id}/metrics`` answer, or None when
    its GPUs report nothing newer than ``seen`` (the latest ``at`` already sent)."""
    gpus = metrics.get("gpus") or []
    stamps = [str(g.get("at") or "") for g in gpus if g.get("at")]
    latest = max(stamps) if stamps else None
    if latest is None or (seen is not None and latest <= seen):
        return None, seen
    sample = {
        "at": latest,
        "status": metrics.get("status"),
        "step": metrics.get("step"),
        "gpu_minutes": metrics.get("gpu_minutes"),
        "cost": metrics.get("cost"),
        "gpus": [
            {
                "uuid": g.get("uuid"),
                "utilization_pct": g.get("utilization_pct"),
                "memory_used_mb": g.get("memory_used_mb"),
                "temperature_c": g.get("temperature_c"),
                "power_w": g.get("power_w"),
            }
            for g in gpus
        ],
    }
    return sample, latest


def relay_lines(buffer: str) -> tuple[list[tuple[str, str, str | None]], str]:
    """Parse complete SSE events out of ``buffer``: ([(event, data, id)], rest)."""
    events: list[tuple[str, str, str | None]] = []
    while "\n\n" in buffer:
        block, buffer = buffer.split("\n\n", 1)
        name, data, eid = "message", [], None
        for line in block.splitlines():
            if line.startswith(":"):
                continue
            key, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if key == "event":
                name = value
            elif key == "data":
                data.append(value)
            elif key == "id":
                eid = value
        if data or name != "message":
            events.append((name, "\n".join(data), eid))
    return events, buffer
