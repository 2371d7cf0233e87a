"""The CLI for a first-time user: bare ``qlp-agent`` prints its help; the API key from
a file (never in ``ps``); an unreachable gateway is a clear message, and with
``--fail-fast`` an exit; the API's validation errors are shown in full."""

from __future__ import annotations

from pathlib import Path

import pytest

from qlp_agent.cli import CliError, api_key_from_file, main
from qlp_agent.client import GatewayError


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for k in list(os.environ):
        if k.startswith("QLP_AGENT_"):
            monkeypatch.delenv(k)


def test_bare_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "usage: qlp-agent" in out and "run" in out and "detect" in out


def test_api_key_from_file_flag_or_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "key"
    f.write_text("qlp_from_file\n")
    assert api_key_from_file(str(f)) == "qlp_from_file"
    monkeypatch.setenv("QLP_AGENT_API_KEY_FILE", str(f))
    assert api_key_from_file(None) == "qlp_from_file"
    with pytest.raises(CliError, match="cannot read"):
        api_key_from_file(str(tmp_path / "missing"))
    (tmp_path / "empty").write_text("  \n")
    with pytest.raises(CliError, match="is empty"):
        api_key_from_file(str(tmp_path / "empty"))


def test_help_says_the_key_file_is_the_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--api-key-file" in out and "never shows in ps" in out


def test_unreachable_gateway_fails_fast_with_a_clear_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "key"
    key.write_text("qlp_abc")
    monkeypatch.setenv("QLP_AGENT_MAX_RETRIES", "0")
    with pytest.raises(SystemExit) as exc:
        main(
            [
                "run",
                "--gateway",
                "http://127.0.0.1:9",
                "--api-key-file",
                str(key),
                "--price-per-gpu-hour",
                "1.20",
                "--region",
                "eu-west",
                "--simulate-gpus",
                "1",
                "--state-dir",
                str(tmp_path / "state"),
                "--fail-fast",
            ]
        )
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert "cannot reach the gateway at http://127.0.0.1:9" in err, err


def test_validation_errors_are_shown_in_full() -> None:
    problem = {
        "title": "Request is not valid",
        "detail": "region: must not be empty",
        "errors": [
            {"loc": ["body", "region"], "msg": "must not be empty"},
            {"loc": ["body", "name"], "msg": "too long"},
        ],
    }
    text = str(GatewayError(422, problem))
    assert "region: must not be empty" in text
    assert '"name"' in text and "too long" in text
