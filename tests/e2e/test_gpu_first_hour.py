"""A newcomer's first GPU job through the gateway (real services): a job no
registered offer could hold is refused with 422 naming the requirement; with no
prepaid balance a submit is refused with 402 and the shortfall, the quote says so
first; after a top-up the same job is accepted; lists are newest first, an unknown
status filter is 422; logs can be followed over SSE through the gateway."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


async def _signup(http: httpx.AsyncClient, name: str) -> dict[str, str]:
    r = await http.post(
        "/v1/auth/signup",
        json={
            "org_name": name,
            "email": f"gpu-first-{uuid.uuid4().hex[:10]}@example.com",
            "password": "correct horse battery staple 42",
        },
    )
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def _eventually(
    probe: Callable[[], Awaitable[Any]], ok: Callable[[Any], bool], what: str, timeout: float = 60
) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await probe()
        if ok(last):
            return last
        await asyncio.sleep(0.5)
    raise AssertionError(f"{what} not reached in {timeout}s; last: {last}")


def _job(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "gpu_count": 1,
        "max_price_per_gpu_hour": {"amount": 150, "currency": "USD"},
        "region": "eu-west",
        "command": ["python", "-m", "qlp_agent.workloads.train", "--steps", "5"],
        "max_duration_s": 3600,
    }
    body.update(over)
    return body


async def test_first_gpu_job_answers_at_submit(qlp_platform: Any) -> None:
    async with httpx.AsyncClient(base_url=qlp_platform.state.gateway_url, timeout=30) as http:
        prov = await _signup(http, "First Hour Provider")
        made = await http.post(
            "/v1/api-keys",
            json={"name": "agent", "scopes": ["provider:agent"]},
            headers={**prov, "Idempotency-Key": uuid.uuid4().hex},
        )
        assert made.status_code == 201, made.text
        agent = {"Authorization": f"Bearer {made.json()['key']}"}
        fp = uuid.uuid4().hex
        machine = {
            "name": "rig",
            "region": "eu-west",
            "price_per_gpu_hour": {"amount": 120, "currency": "USD"},
            "machine": {
                "fingerprint": fp,
                "simulated": True,
                "gpus": [
                    {"uuid": f"GPU-{fp}-{i}", "index": i, "model": "SIM-A100", "memory_gb": 80}
                    for i in range(2)
                ],
            },
        }
        r = await http.post("/v1/providers", json=machine, headers=agent)
        assert r.status_code == 201, r.text
        pid = r.json()["id"]
        assert (
            await http.post(f"/v1/providers/{pid}/heartbeat", json={}, headers=agent)
        ).is_success

        cons = await _signup(http, "First Hour Consumer")
        # more GPUs than any machine: 422 naming the requirement, unless it waits
        r = await http.post("/v1/gpu/jobs", json=_job(gpu_count=8), headers=cons)
        assert r.status_code == 422, r.text
        assert r.json()["requirement"] == "no registered machine has 8 GPUs (largest: 2)"

        # no prepaid balance: the quote says so, the submit is 402 with the shortfall
        need = 150  # 1 GPU x 150 per GPU-hour x 1 h

        async def quote() -> dict[str, Any]:
            q = await http.post("/v1/gpu/jobs/quote", json=_job(), headers=cons)
            assert q.status_code == 200, q.text
            out: dict[str, Any] = q.json()
            return out

        q = await _eventually(quote, lambda q: q["available_balance"] is not None, "balance seen")
        assert q["escrow_estimate"] == {"amount": need, "currency": "USD"}
        assert q["balance_covers"] is False and q["matching_offers"] >= 1
        r = await http.post("/v1/gpu/jobs", json=_job(), headers=cons)
        assert r.status_code == 402, r.text
        assert r.json()["shortfall"] == {"amount": need, "currency": "USD"}

        top = await http.post(
            "/v1/billing/credits",
            json={"amount": {"amount": 5000, "currency": "USD"}},
            headers={**cons, "Idempotency-Key": uuid.uuid4().hex},
        )
        assert top.status_code == 201, top.text
        await _eventually(quote, lambda q: q["balance_covers"] is True, "top-up seen")
        ids = []
        for _ in range(2):
            r = await http.post(
                "/v1/gpu/jobs",
                json=_job(),
                headers={**cons, "Idempotency-Key": uuid.uuid4().hex},
            )
            assert r.status_code == 202, r.text
            ids.append(r.json()["id"])
        listed = (await http.get("/v1/gpu/jobs", headers=cons)).json()["items"]
        assert [j["id"] for j in listed] == ids[::-1]
        bad = await http.get("/v1/gpu/jobs", params={"status": "done"}, headers=cons)
        assert bad.status_code == 422, bad.text

        # a canceled job's log stream ends at once through the gateway
        for jid in ids:
            c = await http.post(f"/v1/gpu/jobs/{jid}/cancel", headers=cons)
            assert c.status_code == 200, c.text
        async with http.stream("GET", f"/v1/gpu/jobs/{ids[0]}/logs/stream", headers=cons) as s:
            assert s.status_code == 200
            assert s.headers["content-type"].startswith("text/event-stream")
            text = "".join([chunk async for chunk in s.aiter_text()])
        assert "event: end" in text and '"status": "canceled"' in text
