"""The compute flow end to end, through the gateway, with real processes: identity,
billing, scheduler and gateway as services (``qlp_platform``) and two provider agents
(``qlp-agent run --simulate-gpus 1``) as separate OS processes.

A provider org registers two simulated-GPU machines with an API key of scope
``provider:agent``; a consumer tops up its prepaid balance and submits a job with a
hot standby running the agent's sample training workload; billing holds the escrow;
the scheduler places primary and standby on the two machines; the job runs,
checkpoints and completes; billing settles the escrow from the metered GPU minutes:
the provider is owed 95 %, the platform keeps 5 %, the unused rest is refunded.
(Failover after a primary dies is the failover service's flow, not covered here.)
"""

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

PRICE_DOLLARS = "60.00"  # per GPU hour: one GPU minute = 100 cents, so 5 % is exact
PRICE_MINOR = 6000
MAX_PRICE_MINOR = 7000
MAX_DURATION_S = 600


async def test_compute_flow_hot_standby_to_settlement(qlp_platform: Any, tmp_path: Path) -> None:
    gateway = qlp_platform.state.gateway_url
    agents: list[subprocess.Popen[bytes]] = []
    async with httpx.AsyncClient(base_url=gateway, timeout=30) as http:
        provider = await signup(http, "GPU Provider")
        prov_auth = {"Authorization": f"Bearer {provider['access_token']}"}
        made = await http.post(
            "/v1/api-keys",
            json={"name": "agents", "scopes": ["provider:agent"]},
            headers={**prov_auth, "Idempotency-Key": uuid.uuid4().hex},
        )
        assert made.status_code == 201, made.text
        agent_key = made.json()["key"]
        key_auth = {"Authorization": f"Bearer {agent_key}"}
        try:
            for name, price in (("a", PRICE_DOLLARS), ("b", "65.00")):
                agents.append(
                    spawn_agent(
                        gateway, agent_key, tmp_path / name, tmp_path / f"agent-{name}.log", price
                    )
                )

            async def providers() -> list[dict[str, Any]]:
                r = await http.get("/v1/providers", headers=key_auth)
                return list(r.json().get("items", [])) if r.status_code == 200 else []

            regs = await eventually(
                providers,
                lambda items: len(items) == 2 and all(p["last_heartbeat_at"] for p in items),
                60,
                "two registered providers",
            )
            cheap = next(p for p in regs if p["price_per_gpu_hour"]["amount"] == PRICE_MINOR)
            assert all(p["simulated"] for p in regs)

            consumer = await signup(http, "GPU Consumer")
            cons_auth = {"Authorization": f"Bearer {consumer['access_token']}"}
            top = await http.post(
                "/v1/billing/credits",
                json={"amount": {"amount": 5000, "currency": "USD"}},
                headers={**cons_auth, "Idempotency-Key": uuid.uuid4().hex},
            )
            assert top.status_code == 201, top.text
            job_spec: dict[str, Any] = {
                "gpu_count": 1,
                "max_price_per_gpu_hour": {"amount": MAX_PRICE_MINOR, "currency": "USD"},
                "command": ["true"],
                "max_duration_s": MAX_DURATION_S,
            }

            async def quote() -> dict[str, Any]:
                q = await http.post("/v1/gpu/jobs/quote", json=job_spec, headers=cons_auth)
                return dict(q.json()) if q.status_code == 200 else {}

            # the scheduler refuses a job its view of the balance cannot cover (402):
            # wait until it has seen the top-up
            await eventually(quote, lambda q: q.get("balance_covers") is True, 60, "top-up seen")

            async def offered() -> set[str]:
                r = await http.get("/v1/gpu/offers", headers=cons_auth, params={"limit": 200})
                return {o["provider_id"] for o in r.json()["items"]} if r.is_success else set()

            # the public catalogue is the marketplace's read model of the offer events
            await eventually(
                offered, lambda ids: ids >= {p["id"] for p in regs}, 60, "both offers listed"
            )

            submitted = await http.post(
                "/v1/gpu/jobs",
                json={
                    "gpu_count": 1,
                    "max_price_per_gpu_hour": {"amount": MAX_PRICE_MINOR, "currency": "USD"},
                    "region": "eu-west",
                    "command": [
                        sys.executable,
                        "-m",
                        "qlp_agent.workloads.train",
                        "--steps",
                        "40",
                        "--checkpoint-every",
                        "10",
                    ],
                    "checkpoint_interval_s": 1,
                    "redundancy": "hot_standby",
                    "max_duration_s": MAX_DURATION_S,
                },
                headers={**cons_auth, "Idempotency-Key": uuid.uuid4().hex},
            )
            assert submitted.status_code == 202, submitted.text
            job = submitted.json()
            held = -(-(MAX_PRICE_MINOR * MAX_DURATION_S) // 3600)
            assert job["escrow_amount"]["amount"] == held

            async def get_job() -> dict[str, Any]:
                out: dict[str, Any] = (
                    await http.get(f"/v1/gpu/jobs/{job['id']}", headers=cons_auth)
                ).json()
                return out

            placed = await eventually(
                get_job, lambda j: j["status"] not in ("submitted", "escrow_held"), 60, "placement"
            )
            assert placed["provider_id"] == cheap["id"]
            assert placed["standby_provider_id"] in {p["id"] for p in regs} - {cheap["id"]}
            done = await eventually(
                get_job,
                lambda j: j["status"] in ("completed", "failed", "canceled"),
                150,
                "job completion",
            )
            assert done["status"] == "completed", done
            assert done["epoch"] == 1 and done["exit_code"] == 0
            ck = done["latest_checkpoint"]  # the agent ships the final checkpoint first
            assert ck is not None and ck["step"] >= 10 and ck["size_bytes"] > 0
            minutes = done["gpu_minutes"]
            assert minutes >= 1
            charged = minutes * PRICE_MINOR // 60
            assert done["cost"]["amount"] == charged
            logs = (await http.get(f"/v1/gpu/jobs/{job['id']}/logs", headers=cons_auth)).json()
            assert any("final_loss=" in x["line"] for x in logs["items"])

            # billing settles the escrow: 95 % to the provider, 5 % fee, the rest refunded
            async def consumer_balance() -> dict[str, Any]:
                out: dict[str, Any] = (
                    await http.get("/v1/billing/balance", headers=cons_auth)
                ).json()
                return out

            bal = await eventually(
                consumer_balance, lambda b: b["escrow"]["amount"] == 0, 60, "escrow settled"
            )
            assert bal["balance"]["amount"] == 5000 - charged
            prov_bal = (await http.get("/v1/billing/balance", headers=prov_auth)).json()
            fee = (charged * 500 * 2 + 10_000) // 20_000
            assert prov_bal["provider_payable"]["amount"] == charged - fee
            assert fee * 20 == charged  # exactly 5 %
            earn = (
                await http.get(f"/v1/providers/{cheap['id']}/earnings", headers=key_auth)
            ).json()
            assert earn["gross"]["amount"] == charged and earn["net"]["amount"] == charged - fee
            # GPUs are free again on both machines
            after = await eventually(
                providers,
                lambda items: all(p["available_gpus"] == 1 for p in items),
                20,
                "GPUs released",
            )
            assert len(after) == 2
        finally:
            stop_agents(agents)
