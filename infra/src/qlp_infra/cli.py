"""``qlp``: the operator CLI for the local runtime, topics and dead letters."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time

from qlp_infra import runtime


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
    else:
        print("  no gateway service is installed yet; services:")
        for name, s in st.services.items():
            print(f"  {name:<9} {s['url']}")
    print(f"  logs      {runtime.state_dir() / 'logs'}   (make logs)")
    print("  stop      Ctrl-C here, or `make down`\n", flush=True)


def cmd_up(args: argparse.Namespace) -> int:
    st = runtime.running_state()
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
    rt = runtime.Runtime(only=args.only.split(",") if args.only else None)
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
    from qlp_kit import dlq

    boot = _bootstrap(args)
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
    up.add_argument("--only", help="comma-separated services to start")
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
    dq.add_argument("action", choices=["list", "replay"])
    dq.add_argument("--group", required=True, help="consumer group, e.g. billing.usage")
    dq.add_argument(
        "--limit", type=int, help="replay at most N (the rest stays in the DLQ for the next replay)"
    )
    dq.add_argument("--bootstrap")
    dq.set_defaults(fn=cmd_dlq)
    return p


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    raise SystemExit(args.fn(args))


if __name__ == "__main__":
    main()
