"""Fail points for crash tests: off unless ``QLP_FAULTS`` names them.

``QLP_FAULTS="relay.after_publish:3"`` kills this process with SIGKILL the third
time the relay reaches that point; ``name@scope:n`` counts only the hits made for
that scope (a consumer's hits carry its group:
``consumer.after_effect@billing.metering:3``). Production never sets the variable;
the delivery tests use it to crash a process exactly between two writes.
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


def hit(point: str, scope: str | None = None) -> None:
    if not _ARMED:
        return
    for name in (point, f"{point}@{scope}" if scope else None):
        if name is None or name not in _ARMED:
            continue
        _counts[name] = _counts.get(name, 0) + 1
        if _counts[name] >= _ARMED[name]:
            os.kill(os.getpid(), signal.SIGKILL)
