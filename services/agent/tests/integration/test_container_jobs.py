"""Jobs that name an image, against the FAKE scheduler. No container engine runs here:
the engine is a FAKE ``docker`` on PATH that answers ``info``, records its command
line and runs the command after the image as a plain process. What this proves is the
agent side (engine selection, the command line, env and checkpoint handling, failure
without an engine); a real engine was never run by these tests."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

FAKE_DOCKER = """#!{python}
import json, os, sys
args = sys.argv[1:]
if args[:1] == ["info"]:
    sys.exit(0)
with open({record!r}, "a") as f:
    f.write(json.dumps(args) + "\\n")
if args[:1] == ["rm"]:
    sys.exit(0)
assert args[:1] == ["run"], args
rest = args[args.index("--") + 1:]
image, command = rest[0], rest[1:]
os.environ["FAKE_IMAGE"] = image
os.execvp(command[0], command)
"""


@pytest.fixture
def fake_docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "docker-calls.jsonl"
    exe = bin_dir / "docker"
    exe.write_text(FAKE_DOCKER.format(python=sys.executable, record=str(record)))
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    return record


async def test_image_job_runs_through_the_engine(
    fake_scheduler: Any, start_agent: Any, fake_docker: Path
) -> None:
    fs = fake_scheduler
    agent = await start_agent(fs.url, container_engine="docker")
    assert agent.container_engine == "docker"
    pid = agent.provider_id
    assert fs.providers[pid]["machine"]["container_engine"] == "docker"
    code = "import os; print('image', os.environ['FAKE_IMAGE'], 'extra', os.environ['EXTRA'])"
    fs.assign(
        pid,
        job_id="job_img",
        epoch=2,
        command=[sys.executable, "-c", code],
        image="ghcr.io/acme/train:1.2",
        env={"EXTRA": "secret-value"},
        gpu_uuids=fs.gpu_uuids(pid),
    )
    await fs.wait_for(
        lambda: any(s["status"] == "completed" for s in fs.statuses("job_img")), what="completed"
    )
    assert "image ghcr.io/acme/train:1.2 extra secret-value" in fs.log_lines("job_img")
    (call,) = [json.loads(line) for line in fake_docker.read_text().splitlines()]
    assert call[call.index("--name") + 1] == "qlp-job_img-2"
    envs = {call[i + 1] for i, a in enumerate(call) if a == "--env"}
    assert {"EXTRA", "QLP_CHECKPOINT_DIR", "QLP_JOB_ID", "QLP_EPOCH"} <= envs
    assert "secret-value" not in " ".join(call)  # values are inherited, never on argv
    assert "--gpus" not in call  # simulated GPUs are not handed to the engine
    volume = call[call.index("--volume") + 1]
    assert volume.split(":")[0] == volume.split(":")[1] and "job_img" in volume


async def test_a_cancelled_image_job_has_its_container_removed(
    fake_scheduler: Any, start_agent: Any, fake_docker: Path
) -> None:
    fs = fake_scheduler
    agent = await start_agent(fs.url, container_engine="docker")
    pid = agent.provider_id
    fs.assign(
        pid,
        job_id="job_long",
        epoch=1,
        command=[sys.executable, "-c", "import time; time.sleep(120)"],
        image="alpine:3",
    )
    await fs.wait_for(lambda: "job_long" in agent.runners, what="start")
    fs.assign(pid, job_id="job_long", epoch=1, action="cancel")
    await fs.wait_for(lambda: "job_long" not in agent.runners, what="cancel")
    calls = [json.loads(line) for line in fake_docker.read_text().splitlines()]
    assert [c[0] for c in calls] == ["run", "rm"]
    assert calls[1] == ["rm", "--force", "qlp-job_long-1"]


async def test_image_job_fails_clearly_without_an_engine(
    fake_scheduler: Any, start_agent: Any
) -> None:
    fs = fake_scheduler
    agent = await start_agent(fs.url, container_engine="none")
    assert fs.providers[agent.provider_id]["machine"]["container_engine"] == ""
    fs.assign(
        agent.provider_id,
        job_id="job_noeng",
        epoch=1,
        command=["true"],
        image="alpine:3",
    )
    await fs.wait_for(
        lambda: any(s["status"] == "failed" for s in fs.statuses("job_noeng")), what="failed"
    )
    last = fs.statuses("job_noeng")[-1]
    assert "no container engine" in last["message"] and last["exit_code"] == 127
    assert "job_noeng" not in agent.state.jobs
