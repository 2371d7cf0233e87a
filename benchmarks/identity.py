"""Identity: login latency with production argon2id parameters (m=19 MiB, t=2, p=1)
through the real HTTP service and database, and offline JWT verification throughput
(what the gateway does per request) on one core.

    uv run python -m benchmarks.identity [--logins 200]

Target (identity issue): offline verification >= 10,000 tokens/s on one core.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ed25519

from benchmarks._common import write_results
from qlp_identity.main import service
from qlp_identity.passwords import Argon2Params, Passwords
from qlp_identity.settings import IdentitySettings
from qlp_identity.tokens import JwksVerifier
from qlp_infra.topics import provision
from qlp_testing.infra import start_embedded
from qlp_testing.services import running_app

PASSWORD = "Bench-password-2024!"  # noqa: S105 - a benchmark account


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    idx = min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))
    return round(ordered[idx], 2)


async def _logins(url: str, n: int, concurrency: int) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as c:
        email = f"bench.{uuid.uuid4().hex[:8]}@example.com"
        r = await c.post(
            "/v1/auth/signup", json={"org_name": "Bench", "email": email, "password": PASSWORD}
        )
        r.raise_for_status()
        token = r.json()["access_token"]
        jwks = (await c.get("/.well-known/jwks.json")).json()
        latencies: list[float] = []
        for _ in range(5):  # warm up
            (
                await c.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
            ).raise_for_status()
        for _ in range(n):
            t0 = time.perf_counter()
            r = await c.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
            latencies.append((time.perf_counter() - t0) * 1000)
            r.raise_for_status()
        # concurrent logins of distinct users: throughput with argon2 in worker threads
        emails = []
        for i in range(concurrency):
            e = f"bench{i}.{uuid.uuid4().hex[:8]}@example.com"
            (
                await c.post(
                    "/v1/auth/signup", json={"org_name": "B", "email": e, "password": PASSWORD}
                )
            ).raise_for_status()
            emails.append(e)
        per = max(1, n // concurrency)

        async def worker(e: str) -> None:
            for _ in range(per):
                (
                    await c.post("/v1/auth/login", json={"email": e, "password": PASSWORD})
                ).raise_for_status()

        t0 = time.perf_counter()
        await asyncio.gather(*[worker(e) for e in emails])
        conc_rate = per * concurrency / (time.perf_counter() - t0)
    return {
        "login_ms": {
            "n": n,
            "p50": _pct(latencies, 50),
            "p90": _pct(latencies, 90),
            "p99": _pct(latencies, 99),
            "mean": round(statistics.fmean(latencies), 2),
        },
        "logins_per_s_concurrent": {"concurrency": concurrency, "rate": round(conc_rate, 1)},
        "_token": token,
        "_jwks": jwks,
    }


def _verify_rate(token: str, jwks: dict[str, Any], seconds: float) -> float:
    v = JwksVerifier(jwks, "https://qlp.local/identity", "qlp-api")
    v.verify(token)
    n = 0
    t0 = time.perf_counter()
    while True:
        for _ in range(500):
            v.verify(token)
        n += 500
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            return n / elapsed


def _eddsa_rate(seconds: float) -> float:
    key = ed25519.Ed25519PrivateKey.generate()
    now = int(time.time())
    claims = {"iss": "i", "aud": "a", "sub": "s", "exp": now + 900, "iat": now, "nbf": now}
    token = jwt.encode(claims, key, algorithm="EdDSA")
    pub = key.public_key()
    n = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(200):
            jwt.decode(token, pub, algorithms=["EdDSA"], audience="a", issuer="i")
        n += 200
    return n / (time.perf_counter() - t0)


def _hash_ms(params: Argon2Params, n: int = 20) -> dict[str, float]:
    pw = Passwords(params)
    h = pw.hash(PASSWORD)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        pw.verify(h, PASSWORD)
        times.append((time.perf_counter() - t0) * 1000)
    return {"p50": _pct(times, 50), "p99": _pct(times, 99)}


async def main(logins: int, concurrency: int, seconds: float) -> None:
    infra = start_embedded()
    try:
        await provision(infra.kafka)
        settings = IdentitySettings(
            kafka_bootstrap_servers=infra.kafka,
            mongodb_url=infra.mongodb_url,
            mongodb_database=f"bench_identity_{uuid.uuid4().hex[:6]}",
            internal_auth_secret="bench-secret",  # noqa: S106
            log_level="WARNING",
        )
        async with running_app(service, settings) as url:
            http = await _logins(url, logins, concurrency)
    finally:
        infra.close()
    token, jwks = http.pop("_token"), http.pop("_jwks")
    rate = _verify_rate(token, jwks, seconds)
    results = {
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        "argon2id": {
            "time_cost": settings.argon2_time_cost,
            "memory_kib": settings.argon2_memory_kib,
            "parallelism": settings.argon2_parallelism,
            "verify_ms": _hash_ms(
                Argon2Params(
                    settings.argon2_time_cost,
                    settings.argon2_memory_kib,
                    settings.argon2_parallelism,
                )
            ),
        },
        **http,
        "jwt_verify_per_s_one_core": {
            "alg": "RS256 (RSA-2048)",
            "rate": round(rate),
            "target": 10_000,
            "meets_target": rate >= 10_000,
        },
        "eddsa_verify_per_s_one_core_for_comparison": round(_eddsa_rate(min(seconds, 2.0))),
    }
    print(f"argon2id verify  p50 {results['argon2id']['verify_ms']['p50']} ms")
    print(f"login (HTTP)     p50 {http['login_ms']['p50']} ms  p99 {http['login_ms']['p99']} ms")
    print(f"logins/s ({concurrency} concurrent users) {http['logins_per_s_concurrent']['rate']}")
    print(f"JWT verify RS256 {round(rate)}/s on one core (target 10,000)")
    print(f"JWT verify EdDSA {results['eddsa_verify_per_s_one_core_for_comparison']}/s")
    write_results("identity", results)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--logins", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=3.0)
    a = ap.parse_args()
    asyncio.run(main(a.logins, a.concurrency, a.seconds))
