"""The scheduler's public API through the gateway: API-key scopes (`provider:agent`
for the agent API, `gpu:jobs` for consumers), tenant isolation, problem documents.
(The full job flow with real agents is tests/e2e/test_compute_flow.py.)"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from qlp_testing.flows import eventually

pytestmark = pytest.mark.e2e


async def _org_with_key(http: httpx.AsyncClient, scopes: list[str]) -> tuple[dict[str, str], str]:
    signup = await http.post(
        "/v1/auth/signup",
        json={
            "org_name": "Sched E2E",
            "email": f"sched-{uuid.uuid4().hex[:10]}@example.com",
            "password": "correct horse battery staple 42",
        },
    )
    assert signup.status_code == 201, signup.text
    bearer = {"Authorization": f"Bearer {signup.json()['access_token']}"}
    made = await http.post(
        "/v1/api-keys",
        json={"name": "k", "scopes": scopes},
        headers={**bearer, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert made.status_code == 201, made.text
    return {"Authorization": f"Bearer {made.json()['key']}"}, signup.json()["org"]["id"]


def _machine(fp: str) -> dict[str, Any]:
    return {
        "name": "rig",
        "region": "eu-west",
        "price_per_gpu_hour": {"amount": 150, "currency": "USD"},
        "machine": {
            "fingerprint": fp,
            "simulated": True,
            "gpus": [{"uuid": f"GPU-{fp}", "index": 0, "model": "SIM-A100", "memory_gb": 80}],
        },
    }


async def test_scopes_and_tenancy_through_the_gateway(qlp_platform: Any) -> None:
    async with httpx.AsyncClient(base_url=qlp_platform.state.gateway_url, timeout=30) as http:
        agent, prov_org = await _org_with_key(http, ["provider:agent"])
        consumer, _ = await _org_with_key(http, ["gpu:jobs"])
        fp = uuid.uuid4().hex
        r = await http.post("/v1/providers", json=_machine(fp), headers=agent)
        assert r.status_code == 201, r.text
        prov = r.json()
        assert prov["org_id"] == prov_org and prov["simulated"] is True
        again = await http.post("/v1/providers", json=_machine(fp), headers=agent)
        assert again.status_code == 200 and again.json()["id"] == prov["id"]

        # a consumer key cannot act as an agent, an agent key cannot submit jobs
        denied = await http.post("/v1/providers", json=_machine("x" + fp), headers=consumer)
        assert denied.status_code == 403
        assert denied.headers["content-type"].startswith("application/problem+json")
        assert (await http.get("/v1/gpu/jobs", headers=agent)).status_code == 403
        # another org's provider is not found
        assert (await http.get(f"/v1/providers/{prov['id']}", headers=consumer)).status_code in (
            403,
            404,
        )
        other_agent, _ = await _org_with_key(http, ["provider:agent"])
        assert (
            await http.get(f"/v1/providers/{prov['id']}", headers=other_agent)
        ).status_code == 404

        async def offered() -> set[str]:
            r = await http.get("/v1/gpu/offers", params={"model": "A100"}, headers=consumer)
            assert r.status_code == 200, r.text
            return {o["provider_id"] for o in r.json()["items"]}

        # the catalogue is the marketplace's read model of the scheduler's offer events
        await eventually(offered, lambda ids: prov["id"] in ids, 30, "the offer listed")
        bad = await http.post("/v1/gpu/jobs", json={"command": []}, headers=consumer)
        assert bad.status_code == 422
        assert bad.headers["content-type"].startswith("application/problem+json")
        assert (await http.get("/v1/gpu/jobs/job_unknown", headers=consumer)).status_code == 404
        drained = await http.post(f"/v1/providers/{prov['id']}/drain", headers=agent)
        assert drained.status_code == 200 and drained.json()["status"] == "draining"
