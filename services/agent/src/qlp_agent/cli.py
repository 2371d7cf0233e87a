"""``qlp-agent``: thin argparse front of :mod:`qlp_agent.agent`.

Every ``run`` flag can also come from ``QLP_AGENT_<FIELD>``; flags win. Bad input is a
clear one-line error and exit status 2. The API key is best given in a file
(``--api-key-file`` / ``QLP_AGENT_API_KEY_FILE``) or the environment
(``QLP_AGENT_API_KEY``): a ``--api-key`` flag shows in ``ps``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from pydantic import ValidationError

from qlp_agent import __version__
from qlp_agent.config import AgentSettings

# flag → settings field (the env variable is QLP_AGENT_<FIELD upper>)
RUN_FLAGS: dict[str, tuple[str, str]] = {
    "--gateway": ("gateway_url", "platform gateway base URL, e.g. https://api.example.com"),
    "--api-key": (
        "api_key",
        "provider API key (qlp_…, scope provider:agent); prefer --api-key-file or the "
        "environment: a flag shows in ps",
    ),
    "--price-per-gpu-hour": ("price_per_gpu_hour", "price in US dollars per GPU hour, e.g. 1.25"),
    "--region": ("region", "region label, e.g. eu-west"),
    "--name": ("name", "provider display name (default: hostname)"),
    "--simulate-gpus": ("simulate_gpus", "run without a GPU, reporting N simulated GPUs"),
    "--gpu-model": ("gpu_model", "model name of simulated GPUs (default SIM-A100)"),
    "--gpu-memory-gb": ("gpu_memory_gb", "memory of each simulated GPU in GB (default 80)"),
    "--container-engine": (
        "container_engine",
        "auto (docker, then podman), docker, podman or none: runs jobs that name an image",
    ),
    "--state-dir": ("state_dir", "where job state, logs and checkpoints live"),
    "--heartbeat-interval": (
        "heartbeat_interval",
        "seconds between heartbeats (default 1; lost after 3 missed)",
    ),
    "--poll-wait": ("poll_wait_s", "long-poll wait for assignments in seconds (default 20)"),
    "--health-port": ("health_port", "serve /healthz /readyz /metrics on this port"),
    "--cancel-grace": ("cancel_grace_s", "seconds between SIGTERM and SIGKILL (default 10)"),
    "--job-max-address-space-mb": ("job_max_address_space_mb", "RLIMIT_AS for jobs (0: none)"),
    "--job-max-cpu-seconds": ("job_max_cpu_seconds", "RLIMIT_CPU for jobs (0: none)"),
    "--job-max-open-files": ("job_max_open_files", "RLIMIT_NOFILE for jobs (0: none)"),
    "--log-level": ("log_level", "DEBUG, INFO, WARNING or ERROR"),
}
FIELD_TO_FLAG = {f: flag for flag, (f, _) in RUN_FLAGS.items()}


class CliError(Exception):
    pass


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="qlp-agent",
        description="QuantumLayer provider agent: offer this machine's GPUs on the platform.",
    )
    p.add_argument("--version", action="version", version=f"qlp-agent {__version__}")
    sub = p.add_subparsers(dest="cmd")
    run = sub.add_parser("run", help="register, heartbeat and run assigned jobs")
    for flag, (field, help_) in RUN_FLAGS.items():
        run.add_argument(
            flag, dest=field, default=None, help=f"{help_} [QLP_AGENT_{field.upper()}]"
        )
    run.add_argument(
        "--api-key-file",
        dest="api_key_file",
        default=None,
        help="read the API key from this file (the default way: it never shows in ps) "
        "[QLP_AGENT_API_KEY_FILE]",
    )
    run.add_argument(
        "--fail-fast",
        dest="fail_fast",
        action="store_const",
        const=True,
        default=None,
        help="exit at once when the gateway cannot be reached [QLP_AGENT_FAIL_FAST]",
    )
    det = sub.add_parser("detect", help="print the machine and GPUs the agent would register")
    det.add_argument("--simulate-gpus", dest="simulate_gpus", type=int, default=0)
    det.add_argument("--gpu-model", dest="gpu_model", default="SIM-A100")
    det.add_argument("--gpu-memory-gb", dest="gpu_memory_gb", type=int, default=80)
    return p


def _describe(err: dict[str, Any]) -> str:
    loc = err.get("loc") or ()
    field = str(loc[0]) if loc else "?"
    flag = FIELD_TO_FLAG.get(field, field)
    env = f"QLP_AGENT_{field.upper()}"
    if err.get("type") == "missing":
        return f"{flag} is required (or set {env})"
    msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{flag} ({env}): {msg}"


def load_settings(overrides: dict[str, Any]) -> AgentSettings:
    """Settings from the environment, overridden by the flags given. Raises CliError."""
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return AgentSettings(**given)
    except ValidationError as exc:
        raise CliError("; ".join(_describe(dict(e)) for e in exc.errors())) from None


def _fail(msg: str, code: int = 2) -> NoReturn:
    print(f"qlp-agent: error: {msg}", file=sys.stderr)
    sys.exit(code)


def _run(settings: AgentSettings) -> int:
    from qlp_agent.agent import Agent, FatalAgentError
    from qlp_agent.gpu import NoGpuError
    from qlp_kit.logging import configure_logging

    configure_logging("agent", settings.log_level)
    for noisy in ("httpx", "httpcore"):  # one line per request (long polls, logs) is noise
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        agent = Agent(settings)
    except NoGpuError as exc:
        _fail(str(exc), 2)
    except OSError as exc:
        _fail(f"--state-dir (QLP_AGENT_STATE_DIR): cannot use {settings.state_dir}: {exc}", 2)
    except FatalAgentError as exc:  # e.g. --container-engine names one that does not work
        _fail(str(exc), 2)

    async def main() -> None:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, task.cancel if task else (lambda: None))
        with contextlib.suppress(asyncio.CancelledError):
            await agent.run()

    try:
        asyncio.run(main())
    except FatalAgentError as exc:
        _fail(str(exc), 1)
    return 0


def _detect(args: argparse.Namespace) -> int:
    import tempfile
    from pathlib import Path

    from qlp_agent.gpu import NoGpuError, detect_backend, machine_info

    try:
        backend = detect_backend(args.simulate_gpus, args.gpu_model, args.gpu_memory_gb, "detect")
    except NoGpuError as exc:
        _fail(str(exc), 2)
    info = machine_info(backend, Path(tempfile.gettempdir()))
    doc = {
        "source": info.source,
        **info.to_json(),
        "sample": [s.to_json() for s in backend.sample(set())],
    }
    print(json.dumps(doc, indent=2))
    backend.close()
    return 0


def api_key_from_file(path: str | None) -> str | None:
    """The key in ``path`` (flag, else ``QLP_AGENT_API_KEY_FILE``); None when neither."""
    path = path or os.environ.get("QLP_AGENT_API_KEY_FILE") or None
    if not path:
        return None
    try:
        key = Path(path).expanduser().read_text().strip()
    except OSError as exc:
        raise CliError(
            f"--api-key-file (QLP_AGENT_API_KEY_FILE): cannot read {path}: {exc}"
        ) from None
    if not key:
        raise CliError(f"--api-key-file (QLP_AGENT_API_KEY_FILE): {path} is empty")
    return key


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.cmd is None:  # bare ``qlp-agent``: what it can do
        parser.print_help()
        return 0
    if args.cmd == "detect":
        return _detect(args)
    overrides = {field: getattr(args, field) for _, (field, _h) in RUN_FLAGS.items()}
    overrides["fail_fast"] = args.fail_fast
    try:
        if overrides.get("api_key") is None:
            overrides["api_key"] = api_key_from_file(args.api_key_file)
        settings = load_settings(overrides)
    except CliError as exc:
        _fail(str(exc), 2)
    return _run(settings)


if __name__ == "__main__":
    sys.exit(main())
