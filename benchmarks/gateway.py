"""Gateway overhead: an authenticated GET through the gateway against the same request
straight to the upstream service, in the same run, against the real embedded broker
and database with identity and the gateway as real processes.

    uv run python -m benchmarks.gateway [--requests 2000] [--concurrency 16] [--seconds 10]

The request is identity's ``GET /v1/me``: through the gateway with the JWT from a
sign-up (verified locally against the cached JWKS, rate-limited, principal signed and
forwarded); directly with the principal signed by the benchmark itself.

Targets (issue: gateway): p99 overhead <= 5 ms (sequential requests) and gateway
throughput >= 50 % of direct (concurrent clients).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from benchmarks._common import write_results
from qlp_infra.topics import provision
from qlp_kit.auth import Principal
from qlp_testing.infra import start_embedded
from qlp_testing.principals import PrincipalAuth, principal_headers
from qlp_testing.services import ServiceProcess

SECRET = "bench-internal-secret"  # noqa: S105 - a throwaway benchmark secret
UNLIMITED = {"org_per_minute": 10**9, "key_per_minute": 10**9}


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    idx = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[idx]


def _summary(lat_s: list[float], elapsed_s: float) -> dict[str, float]:
    ms = [v * 1000 for v in lat_s]
    return {
        "requests": len(ms),
        "rps": round(len(ms) / elapsed_s, 1),
        "p50_ms": round(_pct(ms, 50), 3),
        "p99_ms": round(_pct(ms, 99), 3),
        "mean_ms": round(statistics.fmean(ms), 3),
    }


async def _get(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> float:
    s = time.perf_counter()
    r = await client.get(url, headers=headers)
    took = time.perf_counter() - s
    if r.status_code != 200:
        raise RuntimeError(f"{url}: {r.status_code} {r.text[:300]}")
    return took


async def _sequential(
    client: httpx.AsyncClient, paths: dict[str, tuple[str, dict[str, str]]], n: int
) -> dict[str, dict[str, float]]:
    """One request at a time, alternating the paths, so both see the same machine."""
    lat: dict[str, list[float]] = {name: [] for name in paths}
    spent: dict[str, float] = dict.fromkeys(paths, 0.0)
    names = list(paths)
    for i in range(n):
        for name in names if i % 2 == 0 else reversed(names):
            url, headers = paths[name]
            took = await _get(client, url, headers)
            lat[name].append(took)
            spent[name] += took
    return {name: _summary(lat[name], spent[name]) for name in names}


async def _concurrent(
    client: httpx.AsyncClient,
    paths: dict[str, tuple[str, dict[str, str]]],
    workers: int,
    seconds: float,
    slice_s: float = 1.0,
) -> dict[str, dict[str, float]]:
    """``workers`` clients in slices of ``slice_s``, alternating the paths."""
    lat: dict[str, list[float]] = {name: [] for name in paths}
    spent: dict[str, float] = dict.fromkeys(paths, 0.0)
    errors: dict[str, int] = dict.fromkeys(paths, 0)
    rounds = max(1, round(seconds / slice_s))
    for r in range(rounds):
        for name in list(paths) if r % 2 == 0 else reversed(list(paths)):
            url, headers = paths[name]
            stop = time.perf_counter() + slice_s

            async def worker(
                name: str = name,
                url: str = url,
                headers: dict[str, str] = headers,
                stop: float = stop,
            ) -> None:
                while time.perf_counter() < stop:
                    s = time.perf_counter()
                    resp = await client.get(url, headers=headers)
                    lat[name].append(time.perf_counter() - s)
                    if resp.status_code != 200:
                        errors[name] += 1

            t0 = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(workers)))
            spent[name] += time.perf_counter() - t0
    out = {}
    for name in paths:
        out[name] = _summary(lat[name], spent[name])
        out[name]["errors"] = errors[name]
    return out


async def run(requests: int, concurrency: int, seconds: float) -> dict[str, Any]:
    base = Path(tempfile.mkdtemp(prefix="qlp-bench-gateway-"))
    infra = start_embedded(base)
    procs: list[ServiceProcess] = []
    try:
        await provision(infra.kafka)
        common = {
            "KAFKA_BOOTSTRAP_SERVERS": infra.kafka,
            "MONGODB_URL": infra.mongodb_url,
            "QLP_INTERNAL_AUTH_SECRET": SECRET,
            "QLP_LOG_LEVEL": "WARNING",
        }
        identity = ServiceProcess("identity", common, base / "logs", name="identity")
        procs.append(identity)
        await identity.start()
        gateway = ServiceProcess(
            "gateway",
            {
                **common,
                "QLP_GATEWAY_SERVICE_URLS": json.dumps({"identity": identity.url}),
                "QLP_GATEWAY_PLAN_LIMITS": json.dumps({"free": UNLIMITED}),
            },
            base / "logs",
            name="gateway",
        )
        procs.append(gateway)
        await gateway.start()

        limits = httpx.Limits(max_connections=concurrency * 2, max_keepalive_connections=64)
        # The direct path plays the gateway: each request is signed for itself.
        auth = PrincipalAuth(SECRET)
        async with httpx.AsyncClient(timeout=30, limits=limits, auth=auth) as client:
            signup = await client.post(
                f"{gateway.url}/v1/auth/signup",
                json={
                    "org_name": "bench",
                    "email": f"bench-{uuid.uuid4().hex[:8]}@example.com",
                    "password": "benchmark password 123",
                },
            )
            signup.raise_for_status()
            body = signup.json()
            via_gateway = {"Authorization": f"Bearer {body['access_token']}"}
            principal = Principal(
                org_id=body["org"]["id"],
                subject=body["user"]["id"],
                kind="user",
                roles=["owner"],
                user_id=body["user"]["id"],
            )

            def direct() -> dict[str, str]:
                return principal_headers(principal)

            def paths() -> dict[str, tuple[str, dict[str, str]]]:
                return {
                    "direct": (f"{identity.url}/v1/me", direct()),
                    "gateway": (f"{gateway.url}/v1/me", via_gateway),
                }

            await _sequential(client, paths(), 200)  # warm both paths

            assert gateway.proc is not None and identity.proc is not None
            g0, i0 = _cpu_s(gateway.proc.pid), _cpu_s(identity.proc.pid)
            seq = await _sequential(client, paths(), requests)
            g1, i1 = _cpu_s(gateway.proc.pid), _cpu_s(identity.proc.pid)
            cpu = {
                # Identity serves both paths' requests; the gateway only its own.
                "gateway_cpu_ms_per_request": round((g1 - g0) * 1000 / requests, 3),
                "identity_cpu_ms_per_request": round((i1 - i0) * 1000 / (2 * requests), 3),
            }
            con = await _concurrent(client, paths(), concurrency, seconds)
            seq_direct, seq_gateway = seq["direct"], seq["gateway"]
            con_direct, con_gateway = con["direct"], con["gateway"]
    finally:
        for p in reversed(procs):
            p.stop()
        infra.close()

    overhead_p50 = round(seq_gateway["p50_ms"] - seq_direct["p50_ms"], 3)
    overhead_p99 = round(seq_gateway["p99_ms"] - seq_direct["p99_ms"], 3)
    ratio = round(con_gateway["rps"] / con_direct["rps"], 3)
    return {
        "upstream": "identity GET /v1/me",
        "sequential": {
            "direct": seq_direct,
            "gateway": seq_gateway,
            "overhead_p50_ms": overhead_p50,
            "overhead_p99_ms": overhead_p99,
            **cpu,
        },
        "concurrent": {
            "clients": concurrency,
            "seconds": seconds,
            "direct": con_direct,
            "gateway": con_gateway,
            "throughput_ratio": ratio,
            "overhead_p99_ms": round(con_gateway["p99_ms"] - con_direct["p99_ms"], 3),
        },
        "targets": {"overhead_p99_ms_max": 5.0, "throughput_ratio_min": 0.5},
        "met": {
            "overhead_p99": overhead_p99 <= 5.0,
            "throughput_ratio": ratio >= 0.5,
        },
        "note": (
            "load generator, gateway, identity, broker and database share the machine; "
            "sequential = one client, one request at a time; direct and gateway requests "
            "alternate (concurrent: in 1 s slices) so both see the same machine load"
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gateway")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    res = asyncio.run(run(args.requests, args.concurrency, args.seconds))
    print(json.dumps(res, indent=2))
    write_results("gateway", res)


if __name__ == "__main__":
    main()
