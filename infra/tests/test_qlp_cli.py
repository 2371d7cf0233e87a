"""``qlp`` as a user types it: from any folder of the checkout, with names it does not
know, with bad input (a clear message, never a traceback), ``dlq groups``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from qlp_infra.embedded import free_port


def _qlp(
    args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("QLP_STATE_DIR", "KAFKA_BOOTSTRAP_SERVERS", "MONGODB_URL")
    }
    return subprocess.run(
        [sys.executable, "-m", "qlp_infra.cli", *args],
        cwd=cwd,
        env={**base, **(env or {})},
        text=True,
        capture_output=True,
        timeout=timeout,
        check=False,
    )


def _checkout(tmp_path: Path) -> Path:
    """A checkout whose platform is up: the workspace pyproject and a state file whose
    supervisor is this (live) test process."""
    root = tmp_path / "checkout"
    (root / "services" / "billing" / "src").mkdir(parents=True)
    (root / "pyproject.toml").write_text('[tool.uv.workspace]\nmembers = ["services/*"]\n')
    state = {
        "supervisor_pid": os.getpid(),
        "kafka": "127.0.0.1:1",
        "mongodb": "mongodb://127.0.0.1:2",
        "embedded": True,
        "gateway_url": "http://127.0.0.1:8080",
        "services": {},
        "ready": True,
    }
    (root / ".qlp" / "logs").mkdir(parents=True)
    (root / ".qlp" / "state.json").write_text(json.dumps(state))
    (root / ".qlp" / "logs" / "billing.log").write_text("billing says hello\n")
    return root


def _no_traceback(done: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in done.stderr + done.stdout, done.stderr


def test_status_and_logs_work_from_a_subfolder_of_the_checkout(tmp_path: Path) -> None:
    root = _checkout(tmp_path)
    deep = root / "services" / "billing" / "src"
    status = _qlp(["status"], deep)
    assert status.returncode == 0, status.stdout + status.stderr
    assert json.loads(status.stdout)["gateway"] == "http://127.0.0.1:8080"
    logs = _qlp(["logs", "billing", "-n", "5"], deep)
    assert logs.returncode == 0, logs.stderr
    assert "billing says hello" in logs.stdout
    assert not (deep / ".qlp").exists()


def test_an_unknown_service_name_says_so_and_lists_the_known_ones(tmp_path: Path) -> None:
    root = _checkout(tmp_path)
    logs = _qlp(["logs", "biling"], root)
    assert logs.returncode == 2
    assert "unknown service 'biling'" in logs.stderr
    assert "billing" in logs.stderr and "gateway" in logs.stderr
    _no_traceback(logs)
    up = _qlp(["up", "--only", "identity,biling"], root)
    assert up.returncode == 2
    assert "unknown service 'biling'" in up.stderr
    _no_traceback(up)


def test_bad_input_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    dead = f"127.0.0.1:{free_port()}"
    bad_group = _qlp(["dlq", "list", "--group", "no such group!", "--bootstrap", dead], tmp_path)
    assert bad_group.returncode == 2
    assert "cannot name a topic" in bad_group.stderr
    _no_traceback(bad_group)
    no_group = _qlp(["dlq", "replay", "--bootstrap", dead], tmp_path)
    assert no_group.returncode == 2 and "--group" in no_group.stderr
    _no_traceback(no_group)
    unreachable = _qlp(["dlq", "groups", "--bootstrap", dead], tmp_path)
    assert unreachable.returncode == 1
    assert f"cannot reach the broker at {dead}" in unreachable.stderr
    _no_traceback(unreachable)
    not_up = _qlp(["dlq", "groups"], tmp_path)
    assert not_up.returncode == 1 and "the platform is not up" in not_up.stderr
    _no_traceback(not_up)


@pytest.mark.integration
async def test_dlq_groups_lists_the_consumer_groups(qlp_infra: Any, tmp_path: Path) -> None:
    from qlp_contracts.topics import dlq_topic
    from qlp_kit.producer import Producer, Record

    group = f"clitest{uuid.uuid4().hex[:6]}.usage"
    producer = Producer(qlp_infra.kafka, client_id="qlp-cli-test")
    await producer.start()
    try:
        await producer.send_many([Record(dlq_topic(group), "k", b"{}", {})])
    finally:
        await producer.stop()
    done = _qlp(["dlq", "groups", "--bootstrap", qlp_infra.kafka], tmp_path)
    assert done.returncode == 0, done.stderr
    assert group in done.stdout.split()
    _no_traceback(done)
