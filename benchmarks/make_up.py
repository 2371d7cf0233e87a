"""Seconds from ``qlp up`` (what ``make up`` runs, on a warm install) to every
service ready, with embedded Kafka and MongoDB.

    uv run python -m benchmarks.make_up [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._common import write_results
from qlp_infra.embedded import free_port


def once() -> dict[str, float | int]:
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("KAFKA_BOOTSTRAP_SERVERS", "MONGODB_URL")
        }
        env.update(
            {"QLP_STATE_DIR": str(Path(tmp) / "state"), "QLP_GATEWAY_PORT": str(free_port())}
        )
        t0 = time.monotonic()
        up = subprocess.run(
            [sys.executable, "-m", "qlp_infra.cli", "up", "--detach"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.monotonic() - t0
        if up.returncode != 0:
            raise SystemExit(f"qlp up failed:\n{up.stdout}\n{up.stderr}")
        state = json.loads((Path(tmp) / "state" / "state.json").read_text())
        subprocess.run(
            [sys.executable, "-m", "qlp_infra.cli", "down"],
            env=env,
            capture_output=True,
            check=False,
        )
        return {
            "wall_s": round(wall, 2),
            "ready_after_s": state["ready_after_s"],
            "services": len(state["services"]),
        }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    runs = [once() for _ in range(args.runs)]
    walls = [float(r["wall_s"]) for r in runs]
    res = {
        "runs": runs,
        "median_wall_s": round(statistics.median(walls), 2),
        "services": runs[-1]["services"],
    }
    for r in runs:
        print(f"make up → all ready: {r['wall_s']} s ({r['services']} services)")
    print(f"median: {res['median_wall_s']} s")
    write_results("make_up", res)


if __name__ == "__main__":
    main()
