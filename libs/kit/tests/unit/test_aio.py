"""qlp_kit.aio keeps a cancellation that arrives as the awaited thing completes (pure
asyncio, no servers). The same scenario with ``asyncio.wait_for`` loses it on 3.11,
which is what hung the agent's shutdown: shown here so the test is known to bite."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable

import pytest

from qlp_kit.aio import wait_event, within


async def _stdlib_wait(ev: asyncio.Event, timeout: float) -> bool:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(ev.wait(), timeout)
    return ev.is_set()


async def _cancel_as_set(waiter: Callable[[asyncio.Event, float], Awaitable[bool]]) -> bool:
    """A loop waiting on an event is cancelled in the iteration its wait completes:
    whether the loop stopped (True) or ran on."""
    ev = asyncio.Event()
    rounds = 0

    async def loop() -> None:
        nonlocal rounds
        while True:
            await waiter(ev, 10)
            ev.clear()
            rounds += 1

    task = asyncio.create_task(loop())
    await asyncio.sleep(0.01)
    ev.set()
    await asyncio.sleep(0)  # the wait completes; the loop has not resumed yet
    task.cancel()
    await asyncio.wait({task}, timeout=0.5)
    stopped = task.done()
    while not task.done():  # tidy up the stdlib case
        task.cancel()
        await asyncio.wait({task}, timeout=0.1)
    return stopped


async def test_wait_event_keeps_a_cancellation_that_races_the_event() -> None:
    assert await _cancel_as_set(wait_event)


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="fixed in CPython 3.12")
async def test_wait_for_loses_that_cancellation_on_311() -> None:
    assert not await _cancel_as_set(_stdlib_wait)


async def test_wait_event_answers_set_or_timed_out() -> None:
    ev = asyncio.Event()
    assert await wait_event(ev, 0.01) is False
    ev.set()
    assert await wait_event(ev, 0) is True
    asyncio.get_running_loop().call_later(0.01, ev.clear)
    assert await wait_event(ev, 1) is True


async def test_within_returns_or_times_out() -> None:
    assert await within(asyncio.sleep(0, "x"), 1) == "x"
    with pytest.raises(TimeoutError):
        await within(asyncio.sleep(1), 0.01)
