"""Fail points for crash tests: off unless ``QLP_FAULTS`` names them.

``QLP_FAULTS="relay.after_publish:3"`` kills this process with SIGKILL the third
time the relay reaches that point. Production never sets the variable; the delivery
tests use it to crash a process exactly between two writes.
"""

from __future__ import annotations

import os
import signal

_counts: dict[str, int] = {}


def _armed() -> dict[str, int]:
    spec = os.environ.get("QLP_FAULTS", "")
    out: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, n = part.partition(":")
        out[name] = int(n or "1")
    return out


_ARMED = _armed()


def hit(point: str) -> None:
    if not _ARMED or point not in _ARMED:
        return
    _counts[point] = _counts.get(point, 0) + 1
    if _counts[point] >= _ARMED[point]:
        os.kill(os.getpid(), signal.SIGKILL)
