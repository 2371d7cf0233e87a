"""The GPU offer catalogue end to end, through the gateway: every service as a real
process and a simulated provider agent (``qlp-agent run``) as another. The agent
registers; its offer shows up in ``GET /v1/gpu/offers`` (served by the marketplace's
read model of the scheduler's offer events); a job placed on it lowers its free GPUs;
cancelling the job gives them back; a second org sees the same public offer; filters
that exclude it do; bad input is a problem."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from qlp_testing.agents import spawn_agent, stop_agents
from qlp_testing.flows import eventually, signup

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


async def test_agent_offer_listed_and_taken(qlp_platform: Any, tmp_path: Path) -> None:
    gateway = qlp_platform.state.gateway_url
    region = f"e2e-{uuid.uuid4().hex[:8]}"
    agents: list[subprocess.Popen[bytes]] = []
    async with httpx.AsyncClient(base_url=gateway, timeout=30) as http:
        provider = await signup(http, "Offer Provider")
        prov_auth = {"Authorization": f"Bearer {provider['access_token']}"}
        made = await http.post(
            "/v1/api-keys",
            json={"name": "agent", "scopes": ["provider:agent"]},
            headers={**prov_auth, "Idempotency-Key": uuid.uuid4().hex},
        )
        assert made.status_code == 201, made.text
        try:
            agents.append(
                spawn_agent(
                    gateway,
                    made.json()["key"],
                    tmp_path / "a",
                    tmp_path / "agent.log",
                    "1.50",
                    gpus=2,
                    region=region,
                )
            )
            consumer = await signup(http, "Offer Consumer")
            cons_auth = {"Authorization": f"Bearer {consumer['access_token']}"}
            other = await signup(http, "Offer Browser")
            other_auth = {"Authorization": f"Bearer {other['access_token']}"}

            async def offers(auth: dict[str, str], **params: Any) -> list[dict[str, Any]]:
                r = await http.get("/v1/gpu/offers", params={"region": region, **params},
                                   headers=auth)  # fmt: skip
                assert r.status_code == 200, r.text
                return list(r.json()["items"])

            listed = await eventually(
                lambda: offers(cons_auth), lambda xs: len(xs) == 1, 60, "the agent's offer"
            )
            offer = listed[0]
            assert offer["available_gpus"] == 2 and offer["gpu_count"] == 2
            assert offer["simulated"] is True
            assert offer["price_per_gpu_hour"] == {"amount": 150, "currency": "USD"}
            # the same public offer for every org
            assert [o["id"] for o in await offers(other_auth)] == [offer["id"]]
            assert await offers(other_auth, simulated="false") == []
            assert await offers(other_auth, count=3) == []
            assert await offers(other_auth, max_price=149) == []
            page = await offers(other_auth, sort="price_per_performance", min_reliability=0)
            assert [o["id"] for o in page] == [offer["id"]]
            bad = await http.get("/v1/gpu/offers", params={"sort": "nope"}, headers=other_auth)
            assert bad.status_code == 422
            assert bad.headers["content-type"].startswith("application/problem+json")

            top = await http.post(
                "/v1/billing/credits",
                json={"amount": {"amount": 5000, "currency": "USD"}},
                headers={**cons_auth, "Idempotency-Key": uuid.uuid4().hex},
            )
            assert top.status_code == 201, top.text
            spec: dict[str, Any] = {
                "gpu_count": 1,
                "max_price_per_gpu_hour": {"amount": 200, "currency": "USD"},
                "region": region,
                "command": [sys.executable, "-c", "import time; time.sleep(120)"],
                "max_duration_s": 600,
            }

            async def quote() -> dict[str, Any]:
                q = await http.post("/v1/gpu/jobs/quote", json=spec, headers=cons_auth)
                return dict(q.json()) if q.status_code == 200 else {}

            await eventually(quote, lambda q: q.get("balance_covers") is True, 60, "top-up seen")
            submitted = await http.post(
                "/v1/gpu/jobs",
                json=spec,
                headers={**cons_auth, "Idempotency-Key": uuid.uuid4().hex},
            )
            assert submitted.status_code == 202, submitted.text
            job_id = submitted.json()["id"]
            await eventually(
                lambda: offers(other_auth),
                lambda xs: len(xs) == 1 and xs[0]["available_gpus"] == 1,
                60,
                "one GPU taken by the job",
            )
            assert await offers(other_auth, count=2) == []
            r = await http.post(
                f"/v1/gpu/jobs/{job_id}/cancel",
                json={"reason": "done looking"},
                headers={**cons_auth, "Idempotency-Key": uuid.uuid4().hex},
            )
            assert r.status_code == 200, r.text
            await eventually(
                lambda: offers(other_auth),
                lambda xs: len(xs) == 1 and xs[0]["available_gpus"] == 2,
                60,
                "the GPU given back",
            )
        finally:
            stop_agents(agents)
