"""Rendering: the reference suite renders lint-clean projects (the gate itself runs in
the integration tests); rendering is deterministic."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from qlp_generation.blueprint import Tier, extract
from qlp_generation.reference import REFERENCE
from qlp_generation.render import GENERATED_FEATURES, pins, render


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
    # every feature the pack generates, every scale and every monetization is gated in CI
    feats = {f for p, t in REFERENCE for f in extract(p, t).features}
    assert set(GENERATED_FEATURES) <= feats
    assert {extract(p, t).scale for p, t in REFERENCE} == {"small", "medium", "large"}
    mons = {extract(p, t).monetization for p, t in REFERENCE}
    assert {"subscription", "freemium", "transaction_fee"} <= mons


@pytest.mark.parametrize(("prompt", "tier"), REFERENCE)
def test_reference_projects_render_lint_clean(prompt: str, tier: Tier, tmp_path: Path) -> None:
    files = render(extract(prompt, tier), tier)
    assert render(extract(prompt, tier), tier) == files
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


def _with(prompt: str, tier: Tier = "T1", **changes: object) -> dict[str, bytes]:
    bp = extract(prompt, tier)
    return render(bp.model_copy(update=changes), tier)


def test_each_module_is_generated_only_when_the_blueprint_asks_for_it() -> None:
    plain = _with("helpdesk tickets", features=[], regulations=[], monetization="none")
    for path in (
        "app/phi.py",
        "app/approvals.py",
        "app/features.py",
        "app/billing.py",
        "tests/test_phi.py",
        "tests/test_approvals.py",
        "tests/test_features.py",
        "tests/test_billing.py",
    ):
        assert path not in plain, path
    assert "cryptography" not in plain["requirements.txt"].decode()
    full = _with(
        "helpdesk tickets",
        features=["ratings", "approvals", "exports", "search", "file_uploads"],
        regulations=["hipaa", "sox"],
        monetization="subscription",
    )
    assert {"app/phi.py", "app/approvals.py", "app/features.py", "app/billing.py"} <= set(full)
    assert {"tests/test_phi.py", "tests/test_approvals.py", "tests/test_features.py"} <= set(full)
    assert "cryptography==" in full["requirements.txt"].decode()
    feats = full["app/features.py"].decode()
    assert "/ratings" in feats and "/exports/" in feats and "/files/" in feats
    assert "search_fields" in full["app/crud.py"].decode()
    # SOX alone (no approvals feature) still brings segregation of duties
    assert "app/approvals.py" in _with("helpdesk tickets", features=[], regulations=["sox"])


def test_the_chart_carries_the_blueprint_scale() -> None:
    import yaml

    small = yaml.safe_load(_with("helpdesk tickets", scale="small")["chart/values.yaml"])
    large = yaml.safe_load(_with("helpdesk tickets", scale="large")["chart/values.yaml"])
    assert (small["replicaCount"], small["autoscaling"]["enabled"]) == (1, False)
    assert (large["replicaCount"], large["autoscaling"]["enabled"]) == (3, True)
    assert large["autoscaling"]["maxReplicas"] > large["autoscaling"]["minReplicas"]


def test_t3_is_two_services_with_an_event_contract_and_a_chart_each() -> None:
    files = render(extract("helpdesk tickets", "T3"), "T3")
    name = extract("helpdesk tickets", "T3").name
    assert {
        "contracts/events.py",
        "activity/main.py",
        "app/events.py",
        "tests/test_events.py",
    } <= set(files)
    assert f"charts/{name}/values.yaml" in files and f"charts/{name}-activity/Chart.yaml" in files
    assert "chart/values.yaml" not in files and "Dockerfile.activity" in files
    assert b'"activity", "contracts"' in files["pyproject.toml"]
    single = render(extract("helpdesk tickets", "T2"), "T2")
    assert "activity/main.py" not in single and "chart/values.yaml" in single
