"""Rendering a marketplace template's pack under limits, in a child process.

A pack comes from an untrusted creator. Jinja2's sandbox stops attribute and mutation
tricks, not a template that loops for minutes or builds a huge string within its range
limit. So a pack renders in a child process with the gate's kind of limits
(``RLIMIT_CPU``, ``RLIMIT_AS``, a wall clock) and a cap on the size of what it sends
back; a pack that exceeds one fails the build (:class:`RenderLimitExceeded`), and the
service's event loop is never blocked by it.

Children are forked from a ``multiprocessing`` fork server that has the renderer
imported already (a fresh interpreter would spend seconds importing the inflection
library per render); the fork server is single-threaded, so forking it is safe, unlike
forking the service process with its client threads.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import resource
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from qlp_generation.blueprint import Blueprint


class RenderLimitExceeded(RuntimeError):
    """The template's rendering went over a limit (CPU, memory, wall clock, output)."""


@dataclass(frozen=True)
class RenderLimits:
    cpu_s: int = 10
    memory_mb: int = 1024
    wall_s: float = 30.0
    #: The rendered project as the child sends it back.
    output_mb: int = 64


_CTX = multiprocessing.get_context("forkserver")
_CTX.set_forkserver_preload(["qlp_generation.render"])


def _child(conn: Connection, request: bytes, cpu_s: int, memory_mb: int) -> None:
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s))
    mem = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    from qlp_generation.render import render

    req = json.loads(request)
    try:
        files = render(Blueprint.model_validate(req["blueprint"]), req["tier"], req["templates"])
    except MemoryError:
        return  # the parent reports the memory limit
    except Exception as exc:  # the template's own error: the build fails with it
        conn.send(("error", f"{type(exc).__name__}: {exc}"[:900]))
        return
    conn.send(("files", files))


def _wait(conn: Connection, proc: Any, limits: RenderLimits) -> tuple[str, Any] | None:
    """The child's answer, or None when it went over a limit (blocking; in a thread)."""
    try:
        if not conn.poll(limits.wall_s):
            return None
        raw = conn.recv_bytes(limits.output_mb * 1024 * 1024)
    except (EOFError, OSError):  # died (CPU limit, memory) or answered too much
        return None
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join(5)
        conn.close()
    import pickle

    answer: tuple[str, Any] = pickle.loads(raw)  # noqa: S301 - from our own child
    return answer


async def render_pack(
    bp: Blueprint, tier: str, templates: dict[str, str], limits: RenderLimits
) -> dict[str, bytes]:
    """The project's files from ``templates`` rendered in a limited child process."""
    request = json.dumps(
        {"blueprint": bp.model_dump(mode="json"), "tier": tier, "templates": templates}
    ).encode()
    parent, child = _CTX.Pipe(duplex=False)
    proc = _CTX.Process(
        target=_child, args=(child, request, limits.cpu_s, limits.memory_mb), daemon=True
    )
    await asyncio.to_thread(proc.start)
    child.close()
    answer = await asyncio.to_thread(_wait, parent, proc, limits)
    if answer is None:
        raise RenderLimitExceeded(
            f"the template exceeded its render limits (CPU {limits.cpu_s} s, memory "
            f"{limits.memory_mb} MiB, wall clock {limits.wall_s:g} s, output "
            f"{limits.output_mb} MiB)"
        )
    kind, value = answer
    if kind == "error":
        raise RuntimeError(str(value))
    return dict(value)
