"""Provider agent: checkpoint pack/unpack throughput, job spawn-to-exit latency under
the wrapper, and log tailing throughput (the agent's local hot paths; the network
side is bounded by the gateway).

    uv run python -m benchmarks.agent [--ckpt-mb 64] [--spawns 10] [--lines 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._common import write_results
from qlp_agent import checkpoints
from qlp_agent.runner import JobLimits, JobProcess, LogTailer


def bench_checkpoints(root: Path, mb: int) -> dict[str, float]:
    src = root / "ckpt"
    src.mkdir()
    per = mb // 4
    for i in range(4):
        (src / f"shard-{i}.bin").write_bytes(os.urandom(per * 1024 * 1024))
    t0 = time.perf_counter()
    data = checkpoints.pack(src)
    t_pack = time.perf_counter() - t0
    t0 = time.perf_counter()
    checkpoints.unpack(data, root / "restored")
    t_unpack = time.perf_counter() - t0
    return {
        "checkpoint_mb": float(mb),
        "pack_mb_s": round(mb / t_pack, 1),
        "unpack_mb_s": round(mb / t_unpack, 1),
        "archive_mb": round(len(data) / 2**20, 1),
    }


async def bench_spawn(root: Path, n: int) -> dict[str, float]:
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        proc = JobProcess.spawn(
            [sys.executable, "-c", "pass"], dict(os.environ), root / f"job-{i}", JobLimits()
        )
        while not proc.poll()[0]:
            await asyncio.sleep(0.005)
        times.append(time.perf_counter() - t0)
    return {
        "spawn_to_exit_ms_p50": round(statistics.median(times) * 1000, 1),
        "spawn_to_exit_ms_max": round(max(times) * 1000, 1),
    }


def bench_tail(root: Path, lines: int) -> dict[str, float]:
    f = root / "job.log"
    f.write_text("".join(f"step={i} loss=0.{i:08d}\n" for i in range(lines)))
    tailer = LogTailer(f)
    t0 = time.perf_counter()
    n = 0
    while True:
        got, off = tailer.read()
        if not got:
            break
        n += len(got)
        tailer.offset = off
    dt = time.perf_counter() - t0
    assert n == lines
    return {"log_lines": float(lines), "tail_lines_per_s": round(lines / dt)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--ckpt-mb", type=int, default=64)
    p.add_argument("--spawns", type=int, default=10)
    p.add_argument("--lines", type=int, default=200_000)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        results: dict[str, float] = {}
        results |= bench_checkpoints(root, args.ckpt_mb)
        results |= asyncio.run(bench_spawn(root, args.spawns))
        results |= bench_tail(root, args.lines)
    for k, v in results.items():
        print(f"{k:>24}: {v}")
    write_results("agent", results)


if __name__ == "__main__":
    main()
