"""The background loop helper: rounds that find nothing back off, work resets the
pace, a wake event runs the next round at once."""

from __future__ import annotations

import asyncio
import time

from qlp_scheduler.main import loop_every


async def test_idle_rounds_back_off_and_work_resets_the_pace() -> None:
    calls: list[float] = []
    work = {"left": 0}

    async def step() -> int:
        calls.append(time.monotonic())
        if work["left"]:
            work["left"] -= 1
            return 1
        return 0

    task = asyncio.create_task(loop_every("t", 0.05, step, idle_max_s=0.4)())
    await asyncio.sleep(1.6)
    idle_calls = len(calls)
    # without backing off it would have run ~32 times; 0.05, 0.1, 0.2, then 0.4 apart
    assert 1 <= idle_calls <= 9, idle_calls
    work["left"] = 5
    deadline = time.monotonic() + 30
    while work["left"]:  # work is taken at the base pace again
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    task.cancel()


async def test_a_wake_runs_the_next_round_at_once() -> None:
    woke: list[str] = []
    wake = asyncio.Event()

    async def step() -> int:
        woke.append("step")
        return 0

    async def on_wake() -> int:
        woke.append("wake")
        return 0

    task = asyncio.create_task(
        loop_every("t", 0.05, step, idle_max_s=60.0, wake=wake, on_wake=on_wake)()
    )
    await asyncio.sleep(0.5)  # backed off far beyond the test's length
    before = len(woke)
    wake.set()
    deadline = time.monotonic() + 30
    while "wake" not in woke[before:]:  # long before the 60 s back-off would end
        assert time.monotonic() < deadline, woke
        await asyncio.sleep(0.05)
    task.cancel()


async def test_a_failing_round_keeps_the_loop_alive() -> None:
    n = {"calls": 0}

    async def step() -> int:
        n["calls"] += 1
        raise RuntimeError("database hiccup")

    task = asyncio.create_task(loop_every("t", 0.02, step, idle_max_s=1.0)())
    deadline = time.monotonic() + 30
    while n["calls"] < 5:  # a failure is not "idle": no long back-off, no crash
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    task.cancel()
