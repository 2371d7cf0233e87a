"""Marketplace templates render in Jinja2's sandbox: the built-in pack renders the
same there, and a template that reaches for internals fails the render safely."""

from __future__ import annotations

import pytest
from jinja2.exceptions import SecurityError, UndefinedError

from qlp_generation.blueprint import extract
from qlp_generation.render import builtin_templates, render
from qlp_testing.templates import TEMPLATES


def bp():  # type: ignore[no-untyped-def]
    return extract("a CRM for a small agency", "T1", {})


def test_the_builtin_pack_renders_the_same_in_the_sandbox() -> None:
    b = bp()
    assert render(b, "T1", builtin_templates()) == render(b, "T1")


def test_a_template_pack_renders_its_own_files() -> None:
    files = render(bp(), "T1", TEMPLATES)
    assert set(files) == {
        "README.md",
        "app/__init__.py",
        "app/main.py",
        "tests/__init__.py",
        "tests/test_main.py",
    }
    assert b"TITLE = " in files["app/main.py"]


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ bp.__class__ }}",
        "{{ cycler.__init__.__globals__.os }}",
        "{{ lipsum.__globals__['os'].system('id') }}",
        "{{ bp.model_dump.__func__.__globals__ }}",
        "{% set x = entities.append(1) %}",
        "{{ self._TemplateReference__context }}",
    ],
)
def test_reaching_for_internals_fails_safely(source: str) -> None:
    with pytest.raises((SecurityError, UndefinedError)):
        render(bp(), "T1", {**TEMPLATES, "evil.txt.j2": source})
