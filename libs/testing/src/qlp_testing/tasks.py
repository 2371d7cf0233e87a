"""Stopping a test's background task without hanging the run."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


async def stop_task(task: asyncio.Task[Any], timeout: float = 30.0) -> None:
    """Cancel ``task`` and wait for it to end, cancelling again while it runs on (a
    swallowed cancellation), for at most ``timeout`` seconds: a task still running then
    fails the test with its stack instead of stalling every test after it. Its own
    exception, if any, is not raised here."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not task.done() and loop.time() < deadline:
        task.cancel()
        await asyncio.wait({task}, timeout=min(1.0, max(0.0, deadline - loop.time())))
    if not task.done():
        frames = "".join(f"\n  {f.f_code.co_filename}:{f.f_lineno}" for f in task.get_stack())
        raise AssertionError(f"{task.get_name()} still running {timeout:g}s after cancel:{frames}")
    with contextlib.suppress(asyncio.CancelledError, Exception):
        task.result()
