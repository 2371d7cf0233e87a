"""Settings and CLI: env and flags, flags win, clear errors with exit status 2."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from qlp_agent.cli import CliError, load_settings, main
from qlp_agent.config import usd_to_minor_units

GOOD = {
    "gateway_url": "https://api.example.test/",
    "api_key": "qlp_abc123",
    "price_per_gpu_hour": "1.25",
    "region": "eu-west",
}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for k in list(os.environ):
        if k.startswith("QLP_AGENT_"):
            monkeypatch.delenv(k)


def test_flags_build_settings() -> None:
    s = load_settings(GOOD)
    assert s.gateway_url == "https://api.example.test"
    assert s.price_per_gpu_hour == Decimal("1.25") and s.price_minor_units == 125
    assert s.api_key.get_secret_value() == "qlp_abc123"
    assert "qlp_abc123" not in repr(s)  # the key is a secret
    assert not s.simulated


def test_env_is_read_and_flags_win(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("QLP_AGENT_GATEWAY_URL", "http://from-env:8000")
    monkeypatch.setenv("QLP_AGENT_API_KEY", "qlp_env")
    monkeypatch.setenv("QLP_AGENT_PRICE_PER_GPU_HOUR", "2")
    monkeypatch.setenv("QLP_AGENT_REGION", "us-east")
    monkeypatch.setenv("QLP_AGENT_SIMULATE_GPUS", "2")
    monkeypatch.setenv("QLP_AGENT_STATE_DIR", str(tmp_path))
    s = load_settings({"region": "ap-south", "price_per_gpu_hour": None})
    assert s.gateway_url == "http://from-env:8000"
    assert s.region == "ap-south"  # flag wins
    assert s.price_minor_units == 200 and s.simulate_gpus == 2 and s.state_dir == tmp_path


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ({"price_per_gpu_hour": "abc"}, "--price-per-gpu-hour"),
        ({"price_per_gpu_hour": "-1"}, "negative"),
        ({"price_per_gpu_hour": "nan"}, "--price-per-gpu-hour"),
        ({"api_key": "sk_live_123"}, "qlp_"),
        ({"gateway_url": "ftp://x"}, "--gateway"),
        ({"simulate_gpus": "two"}, "--simulate-gpus"),
        ({"heartbeat_interval": "0"}, "--heartbeat-interval"),
        ({"region": None}, "--region is required"),
    ],
)
def test_bad_input_is_a_clear_error(override: dict[str, str | None], needle: str) -> None:
    with pytest.raises(CliError, match=needle):
        load_settings({**GOOD, **override})


def test_cli_exits_2_on_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(
            [
                "run",
                "--gateway",
                "https://x",
                "--api-key",
                "nope",
                "--price-per-gpu-hour",
                "cheap",
                "--region",
                "r",
            ]
        )
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("qlp-agent: error:")
    assert "qlp_" in err and "--price-per-gpu-hour" in err


def test_cli_exits_2_without_gpu(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import qlp_agent.gpu as gpu

    class NoNvml:
        def __init__(self) -> None:
            raise RuntimeError("NVML Shared Library Not Found")

    monkeypatch.setattr(gpu, "NvmlBackend", NoNvml)
    monkeypatch.setattr(gpu.shutil, "which", lambda _: None)
    with pytest.raises(SystemExit) as e:
        main(
            [
                "run",
                "--gateway",
                "https://x",
                "--api-key",
                "qlp_k",
                "--price-per-gpu-hour",
                "1",
                "--region",
                "r",
                "--state-dir",
                str(tmp_path),
            ]
        )
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "no NVIDIA GPU detected" in err and "--simulate-gpus" in err


def test_detect_simulated_prints_machine(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    assert main(["detect", "--simulate-gpus", "2", "--gpu-model", "SIM-H100"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["simulated"] is True and len(doc["gpus"]) == 2
    assert all(g["model"] == "SIM-H100" for g in doc["gpus"])


@pytest.mark.parametrize(
    ("usd", "cents"), [("1.25", 125), ("0", 0), ("0.005", 1), ("12", 1200), (" 3.10 ", 310)]
)
def test_usd_to_minor_units(usd: str, cents: int) -> None:
    assert usd_to_minor_units(usd) == cents
