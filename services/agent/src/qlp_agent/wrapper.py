"""Job wrapper: ``python -m qlp_agent.wrapper --exit-file F [limits] -- argv...``.

The agent starts this as the leader of a new session/process group; it starts the
job in the same group with resource limits applied (``setrlimit`` in the child
before ``exec``), waits for it and writes the exit code atomically to ``F``
(negative: killed by that signal). Because the exit code lands in a file, an agent
that restarted meanwhile (and so is not the parent) still learns how the job ended.
Signals sent to the group reach the job directly; the wrapper itself only waits.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from types import FrameType


def limits_preexec(
    max_as_mb: int = 0, max_cpu_s: int = 0, max_nofile: int = 0
) -> Callable[[], None] | None:
    """A ``preexec_fn`` that applies RLIMIT_AS / RLIMIT_CPU / RLIMIT_NOFILE (0 = unset)."""
    if not (max_as_mb or max_cpu_s or max_nofile):
        return None

    def apply() -> None:
        import resource

        if max_as_mb:
            b = max_as_mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (b, b))
        if max_cpu_s:
            # soft limit → SIGXCPU, hard limit (a little later) → SIGKILL
            resource.setrlimit(resource.RLIMIT_CPU, (max_cpu_s, max_cpu_s + 5))
        if max_nofile:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max_nofile, max_nofile))

    return apply


def write_exit_code(path: str, code: int) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(f"{code}\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="qlp_agent.wrapper")
    p.add_argument("--exit-file", required=True)
    p.add_argument("--max-as-mb", type=int, default=0)
    p.add_argument("--max-cpu-s", type=int, default=0)
    p.add_argument("--max-nofile", type=int, default=0)
    p.add_argument("command", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not cmd:
        print("qlp-agent wrapper: empty command", file=sys.stderr, flush=True)
        write_exit_code(args.exit_file, 127)
        return 127

    def _note(signum: int, _frame: FrameType | None) -> None:
        # The job gets group signals itself; the wrapper stays to record its exit.
        return None

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _note)  # a Python handler (not SIG_IGN): reset by exec

    try:
        proc = subprocess.Popen(
            cmd,
            preexec_fn=limits_preexec(args.max_as_mb, args.max_cpu_s, args.max_nofile),
            stdin=subprocess.DEVNULL,
        )
    except OSError as exc:
        print(f"qlp-agent wrapper: cannot start {cmd[0]!r}: {exc}", file=sys.stderr, flush=True)
        write_exit_code(args.exit_file, 127)
        return 127
    code = proc.wait()
    write_exit_code(args.exit_file, code)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
