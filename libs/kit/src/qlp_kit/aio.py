"""Waiting with a time limit without losing a cancellation.

On Python 3.11, ``asyncio.wait_for`` runs its awaitable as an inner task; when the
caller is cancelled in the same loop iteration as that task finishes (an event set, a
reply arrived, the timeout fired), ``wait_for`` returns the result and the
cancellation is lost (CPython gh-86296, fixed in 3.12). A loop built on it can then
run on after ``task.cancel()``, and whoever awaits that task waits forever.
``asyncio.timeout`` cancels the awaiting task itself and keeps count of other
cancellations, so use these instead of ``wait_for``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Wait until ``event`` is set, at most ``timeout`` seconds; whether it was set."""
    if event.is_set():
        return True
    try:
        async with asyncio.timeout(max(0.0, timeout)):
            await event.wait()
    except TimeoutError:
        return event.is_set()
    return True


async def within(awaitable: Awaitable[T], timeout: float) -> T:
    """``await awaitable`` with a time limit (TimeoutError past it)."""
    async with asyncio.timeout(timeout):
        return await awaitable
