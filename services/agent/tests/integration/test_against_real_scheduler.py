"""The agent against the REAL scheduler service (in-process, real broker and
database), requests signed as the gateway would sign them: registration, standby
prepare, run with checkpoints and progress, failover through the scheduler's own
``promote_standby``: the old primary is fenced (409 stale-epoch) and kills its job,
the standby resumes from the latest checkpoint and ends with the uninterrupted
run's loss."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("qlp_scheduler")

from qlp_agent.agent import Agent
from qlp_agent.client import GatewayClient
from qlp_agent.config import AgentSettings
from qlp_kit.auth import Principal
from qlp_kit.ids import new_id
from qlp_testing.principals import sign_request
from qlp_testing.tasks import stop_task

pytestmark = pytest.mark.integration

SECRET = "agent-contract-secret"


class Signed(httpx.Auth):
    def __init__(self, principal: Principal) -> None:
        self.principal = principal

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        sign_request(request, SECRET, self.principal)
        yield request


def workload(steps: int, sleep: float) -> list[str]:
    return [
        sys.executable,
        "-m",
        "qlp_agent.workloads.train",
        "--backend",
        "pure",
        "--steps",
        str(steps),
        "--checkpoint-every",
        "10",
        "--step-sleep",
        str(sleep),
    ]


async def test_failover_through_the_real_scheduler(
    qlp_infra: Any, unique: str, tmp_path: Path
) -> None:
    from pymongo import AsyncMongoClient

    from qlp_scheduler.engine import Scheduler
    from qlp_scheduler.main import service
    from qlp_scheduler.repository import Repository
    from qlp_scheduler.settings import SchedulerSettings
    from qlp_testing.services import running_app

    settings = SchedulerSettings(
        kafka_bootstrap_servers=qlp_infra.kafka,
        mongodb_url=qlp_infra.mongodb_url,
        mongodb_database=f"t_agent_sched_{unique}",
        internal_auth_secret=SECRET,
        escrow_required=False,
        escrow_consumer_group=f"scheduler.escrow.agent.{unique}",
        offer_refresh_s=0.2,
    )
    provider_org = new_id("org")
    agent_principal = Principal(
        org_id=provider_org, subject=new_id("key"), kind="api_key", scopes=["provider:agent"]
    )
    consumer_principal = Principal(
        org_id=new_id("org"), subject=new_id("key"), kind="api_key", scopes=["gpu:jobs"]
    )
    mongo: Any = AsyncMongoClient(qlp_infra.mongodb_url, tz_aware=True)
    agents: list[tuple[Agent, asyncio.Task[None]]] = []
    try:
        async with running_app(service, settings) as url:
            for name in ("a", "b"):
                s = AgentSettings(
                    gateway_url=url,
                    api_key="qlp_contract",
                    price_per_gpu_hour="1.00",
                    region="eu-west",
                    simulate_gpus=1,
                    state_dir=tmp_path / name,
                    heartbeat_interval=0.5,
                    poll_wait_s=2,
                    status_interval_s=1,
                    log_batch_interval_s=0.2,
                    cancel_grace_s=2,
                )
                client = GatewayClient(url, "qlp_contract", auth=Signed(agent_principal))
                agent = Agent(s, client=client)
                agents.append((agent, asyncio.create_task(agent.run())))
            for agent, _ in agents:
                await asyncio.wait_for(agent.registered.wait(), 60)

            steps = 200
            body = {
                "gpu_count": 1,
                "max_price_per_gpu_hour": {"amount": 300, "currency": "USD"},
                "region": "eu-west",
                "command": workload(steps, 0.05),
                "checkpoint_interval_s": 1,
                "redundancy": "hot_standby",
                "max_duration_s": 600,
            }
            async with httpx.AsyncClient(
                base_url=url, auth=Signed(consumer_principal), timeout=30
            ) as cons:
                r = await cons.post("/v1/gpu/jobs", json=body)
                assert r.status_code == 202, r.text
                jid = r.json()["id"]

                async def job() -> dict[str, Any]:
                    return (await cons.get(f"/v1/gpu/jobs/{jid}")).json()  # type: ignore[no-any-return]

                deadline = time.monotonic() + 90
                while ((await job()).get("step") or 0) < 40:
                    assert time.monotonic() < deadline, await job()
                    await asyncio.sleep(0.2)
                primary = next(a for a, _ in agents if jid in a.runners)
                standby = next(a for a, _ in agents if a is not primary)
                assert jid in standby.prepared  # the standby holds a prepared lease
                job_pid = primary.runners[jid].process.pid

                engine = Scheduler(Repository(mongo[settings.mongodb_database]), settings)
                promoted = await engine.promote_standby(jid)
                assert promoted["epoch"] == 2
                assert promoted["primary"]["provider_id"] == standby.provider_id

                while (j := await job())["status"] not in ("completed", "failed", "canceled"):
                    assert time.monotonic() < deadline + 60, j
                    await asyncio.sleep(0.3)
                assert j["status"] == "completed" and j["epoch"] == 2 and j["step"] == steps
                assert (jid, 1) in primary.fenced and jid not in primary.runners
                with contextlib.suppress(ProcessLookupError):
                    os.kill(job_pid, 0)
                    st = Path(f"/proc/{job_pid}/stat").read_text()
                    assert st.rsplit(")", 1)[1].split()[0] == "Z", "old primary's job still runs"

                items: list[dict[str, Any]] = []
                cursor = None
                while True:
                    params = {"limit": 500, **({"cursor": cursor} if cursor else {})}
                    page = (await cons.get(f"/v1/gpu/jobs/{jid}/logs", params=params)).json()
                    items += page["items"]
                    if not (cursor := page.get("next_cursor")):
                        break
            resumed = [
                x["line"]
                for x in items
                if x["epoch"] == 2 and x["line"].startswith("resumed_from=")
            ]
            assert resumed and int(resumed[0].split("=")[1]) >= 40
            reference = subprocess.run(
                workload(steps, 0.0),
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, "QLP_CHECKPOINT_DIR": ""},
            ).stdout.splitlines()[-1]
            finals = [x["line"] for x in items if x["line"].startswith("final_loss=")]
            assert finals == [reference]
    finally:
        for agent, task in agents:
            await stop_task(task)
            for rec in agent.state.jobs.values():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(rec.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            await mongo.drop_database(settings.mongodb_database)
        await mongo.close()


async def test_cancel_through_the_real_scheduler_stops_the_workload(
    qlp_infra: Any, unique: str, tmp_path: Path
) -> None:
    """The consumer cancels a running job; the agent's keepalive reports that arrive
    meanwhile do not swallow the cancel: the workload stops, the agent reports it
    stopped, and nothing is left to deliver."""
    from pymongo import AsyncMongoClient

    from qlp_scheduler.main import service
    from qlp_scheduler.settings import SchedulerSettings
    from qlp_testing.services import running_app

    settings = SchedulerSettings(
        kafka_bootstrap_servers=qlp_infra.kafka,
        mongodb_url=qlp_infra.mongodb_url,
        mongodb_database=f"t_agent_cancel_{unique}",
        internal_auth_secret=SECRET,
        escrow_required=False,
        escrow_consumer_group=f"scheduler.escrow.cancel.{unique}",
        offer_refresh_s=0.2,
    )
    agent_principal = Principal(
        org_id=new_id("org"), subject=new_id("key"), kind="api_key", scopes=["provider:agent"]
    )
    consumer_principal = Principal(
        org_id=new_id("org"), subject=new_id("key"), kind="api_key", scopes=["gpu:jobs"]
    )
    mongo: Any = AsyncMongoClient(qlp_infra.mongodb_url, tz_aware=True)
    agent: Agent | None = None
    task: asyncio.Task[None] | None = None
    try:
        async with running_app(service, settings) as url:
            s = AgentSettings(
                gateway_url=url,
                api_key="qlp_contract",
                price_per_gpu_hour="1.00",
                region="eu-west",
                simulate_gpus=1,
                state_dir=tmp_path / "a",
                heartbeat_interval=0.5,
                poll_wait_s=2,
                status_interval_s=0.3,  # keepalives race with the cancel
                log_batch_interval_s=0.2,
                cancel_grace_s=2,
            )
            agent = Agent(
                s, client=GatewayClient(url, "qlp_contract", auth=Signed(agent_principal))
            )
            task = asyncio.create_task(agent.run())
            await asyncio.wait_for(agent.registered.wait(), 60)
            body = {
                "gpu_count": 1,
                "max_price_per_gpu_hour": {"amount": 300, "currency": "USD"},
                "command": [sys.executable, "-c", "import time; time.sleep(300)"],
                "checkpoint_interval_s": 60,
                "redundancy": "none",
                "max_duration_s": 600,
            }
            async with httpx.AsyncClient(
                base_url=url, auth=Signed(consumer_principal), timeout=30
            ) as cons:
                deadline = time.monotonic() + 60
                while True:  # the offer index picks the new provider up
                    r = await cons.post("/v1/gpu/jobs", json=body)
                    assert r.status_code == 202, r.text
                    if r.json()["status"] == "placed":
                        break
                    await cons.post(f"/v1/gpu/jobs/{r.json()['id']}/cancel")
                    assert time.monotonic() < deadline, r.json()
                    await asyncio.sleep(0.3)
                jid = r.json()["id"]
                while (
                    jid not in agent.runners
                    or (await cons.get(f"/v1/gpu/jobs/{jid}")).json()["status"] != "running"
                ):
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.1)
                job_pid = agent.runners[jid].process.pid
                await asyncio.sleep(0.7)  # a few keepalives
                r = await cons.post(f"/v1/gpu/jobs/{jid}/cancel")
                assert r.status_code == 200 and r.json()["status"] == "canceled"
                while jid in agent.runners:
                    assert time.monotonic() < deadline + 30, "the job was not stopped"
                    await asyncio.sleep(0.1)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(job_pid, 0)
                    st = Path(f"/proc/{job_pid}/stat").read_text()
                    assert st.rsplit(")", 1)[1].split()[0] == "Z", "the canceled job still runs"
            db = mongo[settings.mongodb_database]
            left = await db["assignments"].find({"job_id": jid, "acked": 0}).to_list(None)
            assert left == []
            cancel = await db["assignments"].find_one({"job_id": jid, "action": "cancel"})
            assert cancel is not None and cancel["deliveries"] >= 1
    finally:
        if task is not None:
            await stop_task(task)
        if agent is not None:
            for rec in agent.state.jobs.values():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(rec.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            await mongo.drop_database(settings.mongodb_database)
        await mongo.close()
