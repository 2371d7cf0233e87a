"""The README's "Try it" walkthrough, run as written: its bash blocks, in its order,
against the platform (``make up`` is the qlp_platform fixture: every service as a
process, exactly as ``make up`` runs them). Terminal 2 runs in a folder outside the
checkout; the agent block runs in the checkout, as a second terminal would."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
_BLOCK = re.compile(r"<!-- walkthrough: ([a-z0-9 ]+) -->\s*```bash\n(.*?)```", re.S)
_ASSIGNED = re.compile(r"(?:^|[;(])\s*([A-Z_][A-Z0-9_]*)=", re.M)


def walkthrough() -> list[tuple[str, str]]:
    """(terminal, commands) of each walkthrough block of the README's Try it section."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Try it", 1)[1].split("\n## ", 1)[0]
    return [(name.strip(), body) for name, body in _BLOCK.findall(section)]


def test_the_readme_walkthrough_has_every_step() -> None:
    blocks = walkthrough()
    assert [name for name, _ in blocks] == ["platform", "terminal 2", "agent", "terminal 2"]
    assert blocks[0][1].strip() == "make up"
    text = "\n".join(body for _, body in blocks)
    for step in (
        "/v1/auth/signup",
        "/v1/billing/credits",
        "/v1/billing/subscription",
        "/v1/api-keys",
        "make agent",
        "/v1/gpu/offers",
        "/v1/gpu/jobs/quote",
        "/v1/gpu/jobs/$JOB_ID/logs",
        "/earnings",
        "/v1/billing/invoices/upcoming",
        "/v1/auth/refresh",
        "/v1/marketplace/listings",
        "/v1/marketplace/purchases",
        "/reviews",
        "/download",
        "/v1/marketplace/creator/earnings",
        "template_listing_id",
    ):
        assert step in text, step
    assert "--api-key " not in text, "an API key flag shows in ps"


def _env(home: Path, gateway: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QLP_AGENT_")}
    env.update(
        {
            "HOME": str(home),
            "GW": gateway,
            "UV_CACHE_DIR": os.environ.get("UV_CACHE_DIR", str(Path.home() / ".cache" / "uv")),
            "PYENV_ROOT": os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv")),
        }
    )
    return env


def _bash(script: str, cwd: Path, env: dict[str, str], timeout: float) -> str:
    done = subprocess.run(
        ["bash", "-e", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, (
        f"exit {done.returncode}\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    )
    return done.stdout


def test_the_readme_walkthrough_runs_as_written(qlp_platform: Any, tmp_path: Path) -> None:
    gateway = qlp_platform.state.gateway_url
    assert gateway
    blocks = walkthrough()
    first, agent_block, second = blocks[1][1], blocks[2][1], blocks[3][1]
    home = tmp_path / "home"
    anywhere = tmp_path / "somewhere" / "else"
    home.mkdir()
    anywhere.mkdir(parents=True)
    env = _env(home, gateway)
    state = tmp_path / "terminal2.sh"
    names = sorted(set(_ASSIGNED.findall(first)))
    keep = f"\n{{ declare -p {' '.join(names)}; declare -f; }} > {state}\n"
    out1 = _bash(first + keep, anywhere, env, 300)
    assert "access_token" not in out1 or "Bearer" not in out1
    key_file = home / ".qlp-agent-key"
    assert key_file.read_text().startswith("qlp_")
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"

    agent_log = tmp_path / "agent.log"
    with open(agent_log, "wb") as log:
        agent = subprocess.Popen(
            ["bash", "-c", agent_block],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        out2 = _bash(f"source {state}\n{second}", anywhere, env, 420)
    finally:
        os.killpg(agent.pid, signal.SIGTERM)
        try:
            agent.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(agent.pid, signal.SIGKILL)
            agent.wait(10)
    said = agent_log.read_text(errors="replace")
    assert re.search(
        r"registered prv_\S+ offering 2 \S+ SIM-A100 at \$1\.20/GPU-hour in eu-west", said
    ), said[-3000:]
    lines = out2.splitlines()
    assert "completed" in lines, out2[-3000:]
    assert '"escrow' in out2 and '"gross"' in out2 and '"net"' in out2
    link = next(line.removeprefix("open: ") for line in lines if line.startswith("open: "))
    deadline = time.monotonic() + 30
    page = httpx.get(link, timeout=30)  # no bearer header: the signed link is enough
    while page.status_code != 200 and time.monotonic() < deadline:
        time.sleep(1)
        page = httpx.get(link, timeout=30)
    assert page.status_code == 200 and "<html" in page.text.lower()
    assert '"user_id"' in out2 or '"org_id"' in out2  # /v1/me with the refreshed token
    # the marketplace: published, bought by another org, reviewed, downloaded, 70 % earned
    assert "published" in lines, out2[-3000:]
    assert any(line.startswith("pack.json ") for line in lines), out2[-3000:]
    # generated from the bought template: the gate passed, the listing shows 1 of 1
    assert "True" in lines, out2[-3000:]
    assert "'projects_built': 1, 'projects_passed': 1" in out2, out2[-3000:]
    assert '"earnings":{"amount":1050' in out2, out2[-3000:]
