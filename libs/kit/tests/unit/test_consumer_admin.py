"""The consumer stats cache: one broker read per interval, shared by concurrent
callers; a broker that does not answer is a 503 problem (a closed port here, a
stand-in for a broker that is down)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from qlp_kit import consumer_admin
from qlp_kit.consumer import ConsumerSpec
from qlp_kit.consumer_admin import ConsumersOut, ConsumerStats
from qlp_kit.problems import Problem


async def _nothing(ev: Any) -> None:
    return None


SPECS = [ConsumerSpec("g1", ["qlp.t"], _nothing)]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_an_unreachable_broker_is_a_503_problem() -> None:
    stats = ConsumerStats(f"127.0.0.1:{_closed_port()}", "svc", ttl_s=10, timeout_s=3)
    with pytest.raises(Problem) as caught:
        await stats.get(SPECS)
    assert caught.value.status == 503
    assert "svc" in caught.value.detail and caught.value.headers["Retry-After"] == "5"


async def test_reads_are_cached_and_shared(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0

    async def fake_read(bootstrap: str, service: str, specs: Any) -> ConsumersOut:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return ConsumersOut(service=service, replica="r", measured_at_ms=calls, groups=[])

    monkeypatch.setattr(consumer_admin, "read_stats", fake_read)
    stats = ConsumerStats("unused", "svc", ttl_s=60, timeout_s=3)
    outs = await asyncio.gather(*(stats.get(SPECS) for _ in range(5)))
    assert calls == 1 and {o.measured_at_ms for o in outs} == {1}
    stats.ttl_s = 0
    assert (await stats.get(SPECS)).measured_at_ms == 2
