"""``qlp``: the operator CLI for the local runtime, topics and dead letters."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from qlp_infra import runtime

#: what else writes a log under .qlp/logs besides the services
INFRA_LOGS = ("kafka", "mongodb", "runtime")


class UsageError(Exception):
    """Bad input: printed as one line, exit status 2."""


def checkout_root(start: Path | None = None) -> Path | None:
    """The checkout ``start`` (default: the current folder) is in: the nearest folder
    above it with the workspace ``pyproject.toml``; None outside a checkout."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        project = folder / "pyproject.toml"
        try:
            if project.is_file() and "[tool.uv.workspace]" in project.read_text():
                return folder
        except OSError:
            continue
    return None


def _use_checkout_state() -> None:
    """``qlp`` means the checkout's platform from any folder inside it: its state lives
    in ``.qlp`` at the checkout root (where ``make up`` runs), unless QLP_STATE_DIR says."""
    if os.environ.get("QLP_STATE_DIR"):
        return
    root = checkout_root()
    if root is not None:
        os.environ["QLP_STATE_DIR"] = str(root / ".qlp")


def _known_services() -> list[str]:
    st = runtime.read_state()
    return sorted({*runtime.installed_services(), *(st.services if st else {})})


def _check_service(name: str, known: list[str]) -> None:
    if name not in known:
        raise UsageError(f"unknown service {name!r}; known: {', '.join(known) or '-'}")


def _bootstrap(args: argparse.Namespace) -> str:
    if getattr(args, "bootstrap", None):
        return str(args.bootstrap)
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        return os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    st = runtime.running_state()
    if st is None:
        raise SystemExit(
            "qlp: no broker given (--bootstrap or KAFKA_BOOTSTRAP_SERVERS) and the platform is not up"
        )
    return st.kafka


def _print_up(st: runtime.State) -> None:
    print(f"\nQLP is up in {st.ready_after_s}s.")
    if st.gateway_url:
        print(f"  gateway   {st.gateway_url}   (OpenAPI: {st.gateway_url}/docs)")
        if "console" in st.services:
            print(f"  console   {st.gateway_url}/   (the web console: sign up or sign in there)")
            print(
                "  admin     uv run qlpctl admins grant <e-mail>   (then sign in again: the"
                " console's admin views)"
            )
    else:
        print("  no gateway service is installed yet; services:")
        for name, s in st.services.items():
            print(f"  {name:<9} {s['url']}")
    print(f"  logs      {runtime.state_dir() / 'logs'}   (make logs)")
    print("  stop      Ctrl-C here, or `make down`\n", flush=True)


def cmd_up(args: argparse.Namespace) -> int:
    st = runtime.running_state()
    if args.only and args.only != "none":  # none: the infrastructure alone
        for name in args.only.split(","):
            _check_service(name.strip(), _known_services())
    if st is not None:
        where = st.gateway_url or ", ".join(str(s["url"]) for s in st.services.values())
        print(
            f"QLP is already up (supervisor pid {st.supervisor_pid}) at {where}. `make down` stops it."
        )
        return 0
    if args.detach:
        log = runtime.state_dir() / "logs" / "runtime.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "qlp_infra.cli", "up"] + (
            ["--only", args.only] if args.only else []
        )
        with open(log, "ab") as fh:
            proc = subprocess.Popen(
                cmd,
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            st = runtime.read_state()
            if st and st.ready and st.supervisor_pid == proc.pid:
                _print_up(st)
                return 0
            if proc.poll() is not None:
                print(log.read_text(errors="replace")[-4000:], file=sys.stderr)
                return 1
            time.sleep(0.1)
        print(f"qlp: not ready after {args.timeout}s; see {log}", file=sys.stderr)
        runtime.down()
        return 1
    only = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else None
    rt = runtime.Runtime(only=only)
    try:
        st = asyncio.run(rt.start())
    except KeyboardInterrupt:
        print("\ninterrupted; stopping", file=sys.stderr)
        rt.stop()
        return 130
    except Exception as exc:
        print(f"qlp: start failed: {exc}", file=sys.stderr)
        rt.stop()
        return 1
    _print_up(st)
    dead = rt.watch()
    if dead:
        print(
            f"qlp: {dead} exited; stopping everything (see {runtime.state_dir() / 'logs' / dead}.log)",
            file=sys.stderr,
        )
    print("stopping...", flush=True)
    rt.stop()
    print("stopped.")
    return 1 if dead else 0


def cmd_down(_: argparse.Namespace) -> int:
    print("stopped." if runtime.down() else "QLP is not running.")
    return 0


def cmd_status(_: argparse.Namespace) -> int:
    st = runtime.running_state()
    if st is None:
        print("QLP is not running.")
        return 1
    print(
        json.dumps(
            {
                "ready": st.ready,
                "gateway": st.gateway_url,
                "kafka": st.kafka,
                "mongodb": st.mongodb,
                "services": st.services,
            },
            indent=2,
        )
    )
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    logs = runtime.state_dir() / "logs"
    if args.name:
        _check_service(args.name, sorted({*_known_services(), *INFRA_LOGS}))
    files = sorted(logs.glob(f"{args.name or '*'}.log"))
    if not files:
        print(f"no logs under {logs}")
        return 1
    cmd = (
        ["tail", "-n", str(args.lines)] + (["-F"] if args.follow else []) + [str(f) for f in files]
    )
    return subprocess.call(cmd)


def cmd_topics(args: argparse.Namespace) -> int:
    from qlp_contracts.topics import all_topics

    if args.action == "list":
        for t in all_topics():
            print(f"{t.name:<32} partitions={t.partitions:<3} retention_ms={t.retention_ms}")
        return 0
    created = asyncio.run(runtime.provision(_bootstrap(args)))
    print(f"provisioned {len(created)} new topic(s): {', '.join(created) or '-'}")
    return 0


def cmd_dlq(args: argparse.Namespace) -> int:
    from qlp_contracts.topics import dlq_topic
    from qlp_kit import dlq

    if args.action != "groups":
        if not args.group:
            raise UsageError(f"qlp dlq {args.action} needs --group (see `qlp dlq groups`)")
        try:
            dlq_topic(args.group)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    boot = _bootstrap(args)
    if args.action == "groups":
        from qlp_infra.ctl.probes import consumer_groups

        for group in asyncio.run(consumer_groups(boot)):
            print(group)
        return 0
    if args.action == "list":
        for d in asyncio.run(dlq.peek(boot, args.group)):
            print(
                f"offset={d.offset} from={d.original_topic} type={d.event_type} id={d.event_id} reason={d.reason}"
            )
        return 0
    n = asyncio.run(dlq.replay(boot, args.group, limit=args.limit))
    more = " (limit reached; `qlp dlq list` shows what is left)" if args.limit == n else ""
    print(f"replayed {n} message(s) from the DLQ of {args.group}{more}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="qlp", description="QuantumLayer Platform local runtime and operations"
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="start infrastructure and every service")
    up.add_argument("--detach", action="store_true", help="run in the background")
    up.add_argument(
        "--only", help="comma-separated services to start (none: the infrastructure alone)"
    )
    up.add_argument("--timeout", type=float, default=180.0)
    up.set_defaults(fn=cmd_up)
    sub.add_parser("down", help="stop the platform").set_defaults(fn=cmd_down)
    sub.add_parser("status", help="what is running").set_defaults(fn=cmd_status)
    lg = sub.add_parser("logs", help="show logs")
    lg.add_argument("name", nargs="?")
    lg.add_argument("-f", "--follow", action="store_true")
    lg.add_argument("-n", "--lines", type=int, default=50)
    lg.set_defaults(fn=cmd_logs)
    tp = sub.add_parser("topics", help="the topic registry")
    tp.add_argument("action", choices=["list", "provision"])
    tp.add_argument("--bootstrap")
    tp.set_defaults(fn=cmd_topics)
    dq = sub.add_parser("dlq", help="dead-letter topics")
    dq.add_argument(
        "action",
        choices=["groups", "list", "replay"],
        help="groups: the consumer groups; list/replay: the dead letters of --group",
    )
    dq.add_argument("--group", help="consumer group, e.g. billing.metering (see `qlp dlq groups`)")
    dq.add_argument(
        "--limit", type=int, help="replay at most N (the rest stays in the DLQ for the next replay)"
    )
    dq.add_argument("--bootstrap")
    dq.set_defaults(fn=cmd_dlq)
    return p


def _run(args: argparse.Namespace) -> int:
    from aiokafka.errors import KafkaConnectionError, KafkaError

    try:
        return int(args.fn(args))
    except UsageError as exc:
        print(f"qlp: {exc}", file=sys.stderr)
        return 2
    except KafkaConnectionError:
        print(
            f"qlp: cannot reach the broker at {_bootstrap(args)} (is the platform up? `make up`)",
            file=sys.stderr,
        )
        return 1
    except KafkaError as exc:
        print(f"qlp: the broker answered an error: {exc}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"qlp: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def main(argv: list[str] | None = None) -> None:
    _use_checkout_state()
    args = build_parser().parse_args(argv)
    raise SystemExit(_run(args))


if __name__ == "__main__":
    main()
