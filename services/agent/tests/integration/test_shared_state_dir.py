"""Several agents (several providers) on one machine may share one state folder:
each keeps its own state, none recovers or reports another provider's job; a legacy
shared state file is migrated by its own provider's agent and ignored by the others.
Against the FAKE scheduler (one provider per API key and machine, like the real one)."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from qlp_agent.state import LEGACY_MIGRATED, STATE_FILE, StateLayout

pytestmark = pytest.mark.integration

SLEEPER = [sys.executable, "-c", "import time; time.sleep(300)"]


async def test_agents_sharing_a_state_folder_keep_their_own_jobs(
    fake_scheduler: Any, start_agent: Any
) -> None:
    fs = fake_scheduler
    a = await start_agent(fs.url, name="a", state="shared", api_key="qlp_provider_a")
    fs.assign(a.provider_id, job_id="job_a", epoch=1, command=SLEEPER)
    await fs.wait_for(lambda: "job_a" in a.runners, what="a runs its job")

    b = await start_agent(fs.url, name="b", state="shared", api_key="qlp_provider_b")
    assert b.provider_id != a.provider_id
    assert fs.gpu_uuids(b.provider_id) != fs.gpu_uuids(a.provider_id)  # two machines
    await fs.wait_for(
        lambda: any(p == b.provider_id for p, _ in fs.heartbeats), what="b heartbeats"
    )
    await asyncio.sleep(1.0)  # b has recovered whatever it believes is its own
    assert "job_a" not in b.runners and b.state.jobs == {}
    assert [c for c in fs.calls if c.provider_id == b.provider_id] == []
    assert all(hb["running"] == [] for p, hb in fs.heartbeats if p == b.provider_id)
    # a's job is still a's, running and recorded under a's provider
    assert "job_a" in a.runners
    assert "job_a" in a.layout.store(a.provider_id).load().jobs
    assert "job_a" not in a.layout.store(b.provider_id).load().jobs


async def test_a_legacy_shared_state_is_migrated_by_its_own_provider(
    fake_scheduler: Any, start_agent: Any, tmp_path: Path
) -> None:
    fs = fake_scheduler
    old = await start_agent(fs.url, name="old", state="legacy", api_key="qlp_owner")
    fs.assign(old.provider_id, job_id="job_l", epoch=1, command=SLEEPER)
    await fs.wait_for(lambda: "job_l" in old.runners, what="the job runs")
    pid = old.provider_id
    job_pid = old.runners["job_l"].process.pid
    await start_agent.stop(old)  # the job keeps running
    # lay the state out as the previous version did: one state.json at the top
    root = tmp_path / "agent-legacy"
    doc = json.loads((root / "providers" / pid / STATE_FILE).read_text())
    doc["sim_seed"] = old.identity.sim_seed
    assert "job_l" in doc["jobs"]
    (root / STATE_FILE).write_text(json.dumps(doc))
    shutil.rmtree(root / "providers")
    shutil.rmtree(root / "keys")

    # the owner's agent comes back: same machine → same provider, legacy state migrated
    new = await start_agent(fs.url, name="new", state="legacy", api_key="qlp_owner")
    assert new.provider_id == pid
    await fs.wait_for(lambda: "job_l" in new.runners, what="re-attached to the legacy job")
    assert new.runners["job_l"].process.pid == job_pid
    assert not (root / STATE_FILE).exists() and (root / LEGACY_MIGRATED).exists()
    assert "job_l" in StateLayout(root).store(pid).load().jobs


async def test_another_providers_legacy_state_is_left_alone(
    fake_scheduler: Any, start_agent: Any, tmp_path: Path
) -> None:
    """The legacy file names a provider this agent is not: its jobs are not recovered
    or reported here (no 404s), and the file stays for its own agent."""
    fs = fake_scheduler
    root = tmp_path / "agent-foreign"
    root.mkdir()
    legacy = {
        "provider_id": "prv_elsewhere",
        "fingerprint": "f" * 32,
        "sim_seed": None,
        "finished": [],
        "jobs": {
            "job_theirs": {
                "job_id": "job_theirs",
                "epoch": 4,
                "pid": 999_999,
                "pid_start": "",
                "started_at": 1.0,
                "job_dir": str(root / "jobs" / "job_theirs" / "epoch-4"),
                "checkpoint_dir": str(root / "jobs" / "job_theirs" / "checkpoints"),
            }
        },
    }
    (root / STATE_FILE).write_text(json.dumps(legacy))
    agent = await start_agent(fs.url, name="mine", state="foreign", api_key="qlp_mine")
    await fs.wait_for(
        lambda: any(p == agent.provider_id for p, _ in fs.heartbeats), what="heartbeat"
    )
    await asyncio.sleep(0.5)
    assert agent.state.jobs == {} and "job_theirs" not in agent.runners
    assert [c for c in fs.calls if c.job_id == "job_theirs"] == []
    assert json.loads((root / STATE_FILE).read_text()) == legacy
