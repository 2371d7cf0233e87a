"""Fixtures for the agent's tests: the fake scheduler, in-process agents and agent
processes (for kill -9 restart tests)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from qlp_agent.agent import Agent
from qlp_agent.config import AgentSettings
from qlp_testing.tasks import stop_task

_spec = importlib.util.spec_from_file_location(
    "qlp_agent_tests_fake_scheduler", Path(__file__).with_name("fake_scheduler.py")
)
assert _spec and _spec.loader
fake_scheduler_mod = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = fake_scheduler_mod
_spec.loader.exec_module(fake_scheduler_mod)

FAST = {
    "heartbeat_interval": 0.2,
    "poll_wait_s": 1,
    "log_batch_interval_s": 0.1,
    "cancel_grace_s": 2.0,
    "status_interval_s": 0.5,
    "max_retries": 2,
}


def agent_settings(url: str, state_dir: Path, **kw: Any) -> AgentSettings:
    return AgentSettings(
        gateway_url=url,
        api_key=kw.pop("api_key", "qlp_test_provider_key"),
        price_per_gpu_hour="1.25",
        region="test-region",
        simulate_gpus=kw.pop("simulate_gpus", 1),
        state_dir=state_dir,
        **{**FAST, **kw},
    )


def kill_recorded_jobs(state_dir: Path) -> None:
    """Test hygiene: SIGKILL every job process group an agent's state files list."""
    for rec in recorded_jobs(state_dir).values():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(rec.pid, signal.SIGKILL)


def recorded_jobs(state_dir: Path) -> dict[str, Any]:
    """The jobs the state files in ``state_dir`` list (every provider's)."""
    from qlp_agent.state import StateLayout

    jobs: dict[str, Any] = {}
    for store in StateLayout(state_dir).stores():
        jobs.update(store.load().jobs)
    return jobs


@pytest.fixture
async def fake_scheduler() -> AsyncIterator[Any]:
    async with fake_scheduler_mod.serve_fake_scheduler() as (fs, url):
        fs.url = url
        yield fs


@pytest.fixture
async def start_agent(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """start_agent(url, name="a", **settings) → (agent, task): an in-process agent."""
    started: list[tuple[Agent, asyncio.Task[None], Path]] = []

    async def start(url: str, name: str = "a", state: str | None = None, **kw: Any) -> Agent:
        state_dir = tmp_path / f"agent-{state or name}"
        agent = Agent(agent_settings(url, state_dir, **kw))
        task = asyncio.create_task(agent.run())
        started.append((agent, task, state_dir))
        await asyncio.wait_for(agent.registered.wait(), 60)
        return agent

    async def stop(agent: Agent) -> None:
        """Stop an agent as a restart would (its jobs keep running)."""
        for a, task, _ in started:
            if a is agent:
                await stop_task(task)

    start.stop = stop  # type: ignore[attr-defined]
    yield start
    for agent, task, state_dir in started:
        try:
            await stop_task(task)
        finally:
            kill_recorded_jobs(state_dir)
        for runner in list(agent.runners.values()):
            runner.process.signal_group(signal.SIGKILL)


class AgentProcess:
    """``python -m qlp_agent run`` as a real process (simulated GPU)."""

    def __init__(self, url: str, state_dir: Path, log: Path) -> None:
        self.url, self.state_dir, self.log = url, state_dir, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            "QLP_AGENT_GATEWAY_URL": self.url,
            "QLP_AGENT_API_KEY": "qlp_test_provider_key",
            "QLP_AGENT_PRICE_PER_GPU_HOUR": "0.80",
            "QLP_AGENT_REGION": "test-region",
            "QLP_AGENT_STATUS_INTERVAL_S": "0.5",
            "QLP_AGENT_LOG_BATCH_INTERVAL_S": "0.1",
        }
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "qlp_agent",
                    "run",
                    "--simulate-gpus",
                    "1",
                    "--state-dir",
                    str(self.state_dir),
                    "--heartbeat-interval",
                    "0.2",
                    "--poll-wait",
                    "1",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )

    def kill9(self) -> None:
        assert self.proc
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture
def agent_process(tmp_path: Path) -> Any:
    made: list[AgentProcess] = []

    def make(url: str, name: str = "p") -> AgentProcess:
        p = AgentProcess(url, tmp_path / f"agent-{name}", tmp_path / f"agent-{name}.log")
        made.append(p)
        return p

    yield make
    for p in made:
        p.stop()
        kill_recorded_jobs(p.state_dir)
