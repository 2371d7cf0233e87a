"""What a person running the agent sees, against the REAL scheduler (in-process, real
broker and database): a human-readable startup summary beside the JSON logs, and on
shutdown (SIGTERM cancels the agent's main task) the platform is told at once that
the machine goes offline (the provider shows ``offline``) and the agent says so; it
is active again when the agent starts again."""

from __future__ import annotations

import asyncio
import contextlib
import re
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

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SECRET = "agent-first-hour-secret"


class Signed(httpx.Auth):
    def __init__(self, principal: Principal) -> None:
        self.principal = principal

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        sign_request(request, SECRET, self.principal)
        yield request


async def test_summary_at_start_and_offline_on_stop(
    qlp_infra: Any, unique: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pymongo import AsyncMongoClient

    from qlp_scheduler.main import service
    from qlp_scheduler.settings import SchedulerSettings
    from qlp_testing.services import running_app

    settings = SchedulerSettings(
        kafka_bootstrap_servers=qlp_infra.kafka,
        mongodb_url=qlp_infra.mongodb_url,
        mongodb_database=f"t_agent_fh_{unique}",
        internal_auth_secret=SECRET,
        escrow_required=False,
        escrow_consumer_group=f"scheduler.escrow.fh.{unique}",
        offer_refresh_s=0.2,
    )
    principal = Principal(
        org_id=new_id("org"), subject=new_id("key"), kind="api_key", scopes=["provider:agent"]
    )
    mongo: Any = AsyncMongoClient(qlp_infra.mongodb_url, tz_aware=True)
    try:
        async with running_app(service, settings) as url:
            s = AgentSettings(
                gateway_url=url,
                api_key="qlp_first_hour",
                price_per_gpu_hour="1.20",
                region="eu-west",
                simulate_gpus=2,
                gpu_model="A100",
                state_dir=tmp_path / "a",
                heartbeat_interval=0.5,
                poll_wait_s=1,
            )
            agent = Agent(s, client=GatewayClient(url, "qlp_first_hour", auth=Signed(principal)))
            task = asyncio.create_task(agent.run())
            await asyncio.wait_for(agent.registered.wait(), 60)
            pid = agent.provider_id
            err = capsys.readouterr().err
            assert re.search(
                rf"registered {pid} offering 2 \u00d7 A100 at \$1\.20/GPU-hour in eu-west "
                r"\(simulated GPUs\)",
                err,
            ), err

            task.cancel()  # what SIGTERM does in the CLI
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 30)
            err = capsys.readouterr().err
            assert f"told the platform {pid} is offline" in err, err
            async with httpx.AsyncClient(base_url=url, auth=Signed(principal), timeout=30) as http:
                got = (await http.get(f"/v1/providers/{pid}")).json()
                assert got["status"] == "offline", got
                # started again: the same provider, active again
                client = GatewayClient(url, "qlp_first_hour", auth=Signed(principal))
                again = Agent(s, client=client)
                task = asyncio.create_task(again.run())
                await asyncio.wait_for(again.registered.wait(), 60)
                assert again.provider_id == pid
                got = (await http.get(f"/v1/providers/{pid}")).json()
                assert got["status"] == "active", got
                await stop_task(task)
        await mongo.drop_database(settings.mongodb_database)
    finally:
        await mongo.close()
