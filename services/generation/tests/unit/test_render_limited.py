"""A marketplace template renders in a child process under CPU, memory, wall-clock and
output limits: the same files as in-process, its own errors reported, and a template
that loops or blows up memory fails the build instead of stalling the worker. (Real
child processes; no timing is asserted.)"""

from __future__ import annotations

import pytest

from qlp_generation.blueprint import extract
from qlp_generation.render import render
from qlp_generation.render_limited import RenderLimitExceeded, RenderLimits, render_pack
from qlp_testing.templates import TEMPLATES

SMALL = RenderLimits(cpu_s=2, memory_mb=512, wall_s=10.0, output_mb=4)


def bp():  # type: ignore[no-untyped-def]
    return extract("a CRM for a small agency", "T1", {})


async def test_a_pack_renders_in_the_child_exactly_as_in_process() -> None:
    b = bp()
    assert await render_pack(b, "T1", TEMPLATES, RenderLimits()) == render(b, "T1", TEMPLATES)


async def test_a_template_error_is_reported_with_its_message() -> None:
    with pytest.raises(RuntimeError, match="SecurityError"):
        await render_pack(bp(), "T1", {**TEMPLATES, "x.j2": "{{ bp.__class__ }}"}, SMALL)


@pytest.mark.parametrize(
    "source",
    [
        # within Jinja2's range limit, but 10^10 iterations: the CPU or wall limit ends it
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        # a 2 GB string: over the address-space limit
        "{{ 'x' * 2000000000 }}",
        # 8 MB of output: over the output cap
        "{{ 'x' * 8000000 }}",
    ],
    ids=["cpu", "memory", "output"],
)
async def test_a_template_over_a_limit_fails_the_render(source: str) -> None:
    with pytest.raises(RenderLimitExceeded, match="render limits"):
        await render_pack(bp(), "T1", {**TEMPLATES, "x.j2": source}, SMALL)
