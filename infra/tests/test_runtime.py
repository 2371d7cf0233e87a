"""``qlp up``/``qlp down`` as a user runs them: real processes, embedded servers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qlp_infra.embedded import free_port, port_open

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def _qlp(
    args: list[str], env: dict[str, str], timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qlp_infra.cli", *args],
        env=env,
        text=True,
        capture_output=True,
        timeout=timeout,
        check=False,
    )


def test_up_twice_then_down(tmp_path: Path) -> None:
    env = {
        k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "MONGODB_URL")
    }
    gw = free_port()
    env.update(
        {
            "QLP_STATE_DIR": str(tmp_path / "state"),
            "QLP_GATEWAY_PORT": str(gw),
            "QLP_INTERNAL_AUTH_SECRET": "runtime-test",
        }
    )
    first = _qlp(["up", "--detach"], env)
    try:
        assert first.returncode == 0, first.stdout + first.stderr
        assert "QLP is up" in first.stdout
        state = json.loads((tmp_path / "state" / "state.json").read_text())
        assert state["ready"] and state["embedded"]
        for svc in state["services"].values():
            assert port_open("127.0.0.1", int(str(svc["url"]).rsplit(":", 1)[1]))
        if "gateway" in state["services"]:
            assert f":{gw}" in first.stdout
        second = _qlp(["up", "--detach"], env)
        assert second.returncode == 0 and "already up" in second.stdout
        status = _qlp(["status"], env)
        assert status.returncode == 0 and json.loads(status.stdout)["ready"]
        assert (tmp_path / "state" / "logs").is_dir()
    finally:
        down = _qlp(["down"], env)
    assert down.returncode == 0 and "stopped" in down.stdout
    assert not (tmp_path / "state" / "state.json").exists()
    kafka_port = int(state["kafka"].rsplit(":", 1)[1])
    assert not port_open("127.0.0.1", kafka_port)
    again = _qlp(["down"], env)
    assert "not running" in again.stdout


def test_external_infra_starts_nothing(tmp_path: Path, qlp_infra: object) -> None:
    """With KAFKA_BOOTSTRAP_SERVERS and MONGODB_URL set, no infrastructure starts."""
    from qlp_testing.infra import TestInfra

    assert isinstance(qlp_infra, TestInfra)
    env = {
        **os.environ,
        "QLP_STATE_DIR": str(tmp_path / "s"),
        "QLP_GATEWAY_PORT": str(free_port()),
        "KAFKA_BOOTSTRAP_SERVERS": qlp_infra.kafka,
        "MONGODB_URL": qlp_infra.mongodb_url,
        "QLP_INTERNAL_AUTH_SECRET": "x",
    }
    up = _qlp(["up", "--detach", "--only", "none"], env)
    try:
        assert up.returncode == 0, up.stderr
        state = json.loads((tmp_path / "s" / "state.json").read_text())
        assert state["embedded"] is False and state["infra_pids"] == {}
        assert state["kafka"] == qlp_infra.kafka
    finally:
        _qlp(["down"], env)


def test_topics_list() -> None:
    out = _qlp(["topics", "list"], dict(os.environ))
    assert out.returncode == 0 and "qlp.usage.v1" in out.stdout
