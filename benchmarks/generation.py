"""Generation benchmarks against the real embedded broker and database.

    uv run python -m benchmarks.generation [--jobs 6] [--quick]

1. Request → gated version: every request of the reference suite (qlp_generation.reference:
   16 requests, every tier, each regulation; ``--quick``: the first of each tier and 3
   throughput jobs, a couple of minutes) is posted to the
   service and followed until it completed or failed, one at a time with one worker:
   seconds from POST to a stored version (the project's own lint and tests included),
   p50/p90 for T1 and T2, and the gate pass rate over the suite.
2. Throughput: ``--jobs`` T1 generations posted at once, consumed by one worker, then by
   two workers (two service instances in one consumer group) in the same run:
   generations per minute.

Quota reservation is off here (no billing running): this measures building and gating.
Targets (issue 10): T1 <= 30 s including its tests (aim <= 10 s), T2 <= 60 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from typing import Any

import httpx

from benchmarks._common import write_results
from qlp_generation.main import service
from qlp_generation.reference import REFERENCE
from qlp_generation.settings import GenerationSettings
from qlp_infra.topics import provision
from qlp_kit.auth import Principal
from qlp_testing.infra import start_infra
from qlp_testing.principals import PrincipalAuth, principal_headers
from qlp_testing.services import running_app

SECRET = "bench-internal-secret"  # noqa: S105 - a test secret


def pct(xs: list[float], p: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, round(p * (len(xs) - 1)))], 2)


class Client:
    def __init__(self, url: str, org: str) -> None:
        p = Principal(org_id=org, subject="usr_bench", roles=["owner"], user_id="usr_bench")
        self.headers = principal_headers(p)
        self.c = httpx.AsyncClient(base_url=url, timeout=60, auth=PrincipalAuth(SECRET))

    async def post(self, prompt: str, tier: str) -> str:
        r = await self.c.post(
            "/v1/generations", json={"prompt": prompt, "tier": tier}, headers=self.headers
        )
        r.raise_for_status()
        return str(r.json()["id"])

    async def wait(self, gen_id: str) -> dict[str, Any]:
        while True:
            r = await self.c.get(f"/v1/generations/{gen_id}", headers=self.headers)
            body: dict[str, Any] = r.json()
            if body["status"] in ("completed", "failed"):
                return body
            await asyncio.sleep(0.1)


def settings(infra: Any, db: str, prefix: str) -> GenerationSettings:
    return GenerationSettings(
        kafka_bootstrap_servers=infra.kafka,
        mongodb_url=infra.mongodb_url,
        mongodb_database=db,
        internal_auth_secret=SECRET,
        relay_poll_interval_s=0.02,
        consumer_group_prefix=prefix,
        quota_enabled=False,
    )


async def throughput(infra: Any, workers: int, jobs: int) -> float:
    prefix = f"generation-bench-{uuid.uuid4().hex[:6]}"
    db = f"bench_gen_{uuid.uuid4().hex[:6]}"
    async with running_app(service, settings(infra, db, prefix), timeout=120) as url:
        apps = [
            running_app(service, settings(infra, db, prefix), timeout=120)
            for _ in range(workers - 1)
        ]
        for a in apps:
            await a.__aenter__()
        try:
            cl = Client(url, f"org_t{uuid.uuid4().hex[:8]}")
            # warm up: one job, so both consumers have joined the group
            await cl.wait(await cl.post("an online store selling tea", "T1"))
            await asyncio.sleep(3)
            start = time.monotonic()
            ids = [await cl.post(f"project management for team {i}", "T1") for i in range(jobs)]
            done = [await cl.wait(i) for i in ids]
            elapsed = time.monotonic() - start
            assert all(d["status"] == "completed" for d in done), [d["failure"] for d in done]
            return round(jobs / elapsed * 60, 2)
        finally:
            for a in apps:
                await a.__aexit__(None, None, None)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=6)
    ap.add_argument("--quick", action="store_true", help="one request per tier, 3 jobs")
    args = ap.parse_args()
    suite = REFERENCE
    if args.quick:
        seen: set[str] = set()
        suite = [r for r in REFERENCE if r[1] not in seen and not seen.add(r[1])]  # type: ignore[func-returns-value]
        args.jobs = min(args.jobs, 3)
    load_start = round(os.getloadavg()[0], 2)
    infra = start_infra()
    try:
        await provision(infra.kafka)
        prefix = f"generation-bench-{uuid.uuid4().hex[:6]}"
        per: list[dict[str, Any]] = []
        async with running_app(
            service, settings(infra, "bench_gen_suite", prefix), timeout=120
        ) as url:
            cl = Client(url, f"org_b{uuid.uuid4().hex[:8]}")
            await cl.wait(await cl.post("warm up crm", "T0"))
            for prompt, tier in suite:
                t0 = time.monotonic()
                done = await cl.wait(await cl.post(prompt, tier))
                secs = time.monotonic() - t0
                gate = done.get("gate") or {}
                per.append(
                    {
                        "prompt": prompt,
                        "tier": tier,
                        "domain": done["blueprint"]["domain"],
                        "status": done["status"],
                        "seconds": round(secs, 2),
                        "gate_seconds": round(gate.get("duration_ms", 0) / 1000, 2),
                        "tests_passed": gate.get("tests_passed"),
                        "coverage_bps": gate.get("coverage_bps"),
                        "features": done["blueprint"]["features"],
                        "regulations": done["blueprint"]["regulations"],
                        "limits_not_applied": gate.get("limits_not_applied"),
                    }
                )
                print(f"{tier} {done['status']:9} {secs:6.2f}s  {prompt}")
        one = await throughput(infra, 1, args.jobs)
        two = await throughput(infra, 2, args.jobs)
        print(f"throughput: {one}/min with one worker, {two}/min with two")
    finally:
        infra.close()

    def lat(t: str) -> list[float]:
        return [p["seconds"] for p in per if p["tier"] == t and p["status"] == "completed"]

    passed = sum(1 for p in per if p["status"] == "completed")
    write_results(
        "generation",
        {
            "request_to_gated_version_s": {
                t: {"n": len(lat(t)), "p50": pct(lat(t), 0.5), "p90": pct(lat(t), 0.9)}
                for t in ("T0", "T1", "T2", "T3")
            },
            "targets_s": {"T1": 30, "T1_aim": 10, "T2": 60},
            "gate_pass_rate": round(passed / len(per), 3),
            "suite": per,
            "generations_per_minute": {"one_worker": one, "two_workers": two, "jobs": args.jobs},
            "mode": "quick" if args.quick else "full",
            "load_average_1m": {"start": load_start, "end": round(os.getloadavg()[0], 2)},
            "notes": "one shared machine for broker, database, service, workers, every gate "
            "and whatever else ran meanwhile (see load_average_1m); quota off",
        },
    )


if __name__ == "__main__":
    asyncio.run(main())
