"""Rendering: the reference suite renders lint-clean projects (the gate itself runs in
the integration tests); rendering is deterministic."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from qlp_generation.blueprint import Tier, extract
from qlp_generation.reference import REFERENCE
from qlp_generation.render import pins, render


def _write(files: dict[str, bytes], root: Path) -> None:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)


def test_the_reference_suite_covers_every_tier_and_regulation() -> None:
    assert len(REFERENCE) >= 12
    assert {t for _, t in REFERENCE} == {"T0", "T1", "T2", "T3"}
    regs = {r for p, t in REFERENCE for r in extract(p, t).regulations}
    assert regs == {"gdpr", "hipaa", "sox"}
    types = {f.type for p, t in REFERENCE for e in extract(p, t).entities for f in e.fields}
    assert types == {"str", "text", "int", "money", "bool", "date", "datetime", "email", "ref"}


@pytest.mark.parametrize(("prompt", "tier"), REFERENCE)
def test_reference_projects_render_lint_clean(prompt: str, tier: Tier, tmp_path: Path) -> None:
    files = render(extract(prompt, tier))
    assert render(extract(prompt, tier)) == files
    assert {"Makefile", "README.md", "requirements.txt", "app/main.py", "tests/test_api.py"} <= set(
        files
    )
    _write(files, tmp_path)
    ruff = Path(sys.executable).with_name("ruff")
    p = subprocess.run(
        [str(ruff), "check", "--no-cache", "."], cwd=tmp_path, capture_output=True, text=True
    )
    assert p.returncode == 0, p.stdout
    p = subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "."],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stdout + p.stderr


def test_requirements_pin_the_versions_installed_here() -> None:
    from importlib import metadata

    req = render(extract("crm"))["requirements.txt"].decode()
    for name, version in pins():
        assert f"{name}=={version}" in req
    assert f"fastapi=={metadata.version('fastapi')}" in req and "nx-27017==" in req
