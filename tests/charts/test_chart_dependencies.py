"""Chart dependencies as Helm intends: Chart.yaml + Chart.lock in git, charts/ built.

``charts/*/charts/`` is a build output of ``python -m qlp_infra.charts build`` (helm
dependency build through helm_python, offline for ``file://``). These tests check
that git carries no copy, that every lock matches its Chart.yaml, that a stale lock
fails the build instead of rendering old templates, that one values schema serves
every service chart, and that the packaged umbrella is complete.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from qlp_infra import charts as chart_deps

REPO = Path(__file__).resolve().parents[2]
SOURCES = REPO / "charts"
LIB_SCHEMA = SOURCES / "qlp-lib" / "service.values.schema.json"


def _meta(chart: Path) -> dict[str, Any]:
    return yaml.safe_load((chart / "Chart.yaml").read_text())


CHARTS_WITH_DEPS = [c for c in chart_deps.chart_dirs(SOURCES) if _meta(c).get("dependencies")]
SERVICE_CHARTS = [
    c
    for c in chart_deps.chart_dirs(SOURCES)
    if (_meta(c).get("annotations") or {}).get("qlp.quantumlayer.io/values-schema") == "service"
]


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def tracked() -> list[str]:
    out = _git("ls-files", "charts")
    if out.returncode != 0:
        pytest.fail(f"git ls-files failed (the tests run in a git checkout): {out.stderr}")
    return out.stdout.splitlines()


def test_git_carries_no_dependency_copies(tracked: list[str]) -> None:
    copies = [p for p in tracked if len(Path(p).parts) > 3 and Path(p).parts[2] == "charts"]
    assert not copies, copies[:10]
    assert "charts/sync-lib.py" not in tracked
    assert not (SOURCES / "sync-lib.py").exists()
    # the build outputs are ignored, so `git add charts` cannot bring copies back
    for chart in CHARTS_WITH_DEPS:
        probe = f"charts/{chart.name}/charts/qlp-lib-0.1.0.tgz"
        assert _git("check-ignore", "-q", probe).returncode == 0, f"{probe} is not ignored"


@pytest.mark.parametrize("chart", CHARTS_WITH_DEPS, ids=lambda p: p.name)
def test_every_chart_commits_a_lock_matching_its_chart_yaml(
    chart: Path, tracked: list[str]
) -> None:
    assert f"charts/{chart.name}/Chart.lock" in tracked, "commit Chart.lock"
    lock = yaml.safe_load((chart / "Chart.lock").read_text())
    declared = [
        {"name": d["name"], "version": d["version"], "repository": d["repository"]}
        for d in _meta(chart)["dependencies"]
    ]
    assert lock["dependencies"] == declared
    assert lock["digest"].startswith("sha256:")


def test_build_from_sources_creates_every_archive(built_charts: Path) -> None:
    for chart in CHARTS_WITH_DEPS:
        archives = sorted(p.name for p in (built_charts / chart.name / "charts").iterdir())
        expected = sorted(f"{d['name']}-{d['version']}.tgz" for d in _meta(chart)["dependencies"])
        assert archives == expected, chart.name


def test_a_stale_lock_fails_the_build(tmp_path: Path) -> None:
    root = chart_deps.copy_sources(SOURCES, tmp_path / "charts")
    chart_yaml = root / "identity" / "Chart.yaml"
    meta = yaml.safe_load(chart_yaml.read_text())
    meta["dependencies"].append(
        {"name": "billing", "version": "0.1.0", "repository": "file://../billing"}
    )
    chart_yaml.write_text(yaml.safe_dump(meta))
    with pytest.raises(SystemExit, match=r"run `python -m qlp_infra\.charts update`"):
        chart_deps.build(root)
    # `update` re-resolves and rewrites the lock
    chart_deps.build(root, update=True)
    lock = yaml.safe_load((root / "identity" / "Chart.lock").read_text())
    assert [d["name"] for d in lock["dependencies"]] == ["qlp-lib", "billing"]


def test_a_library_change_reaches_the_umbrella_on_rebuild(tmp_path: Path) -> None:
    root = chart_deps.copy_sources(SOURCES, tmp_path / "charts")
    chart_deps.build(root)
    helpers = root / "qlp-lib" / "templates" / "_helpers.tpl"
    helpers.write_text(helpers.read_text() + '\n{{- define "qlp-lib.probe" -}}rebuilt{{- end }}\n')
    (root / "identity" / "templates" / "probe.yaml").write_text(
        'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: probe\ndata:\n  v: {{ include "qlp-lib.probe" . | quote }}\n'
    )
    chart_deps.build(root)
    with helm.Chart.load(root / "platform") as chart:
        raw = chart.render({}, name="qlp", namespace="qlp", is_install=True)
    assert any("rebuilt" in text for path, text in raw.items() if path.endswith("probe.yaml"))


@pytest.mark.parametrize("chart", SERVICE_CHARTS, ids=lambda p: p.name)
def test_service_charts_share_one_values_schema(chart: Path) -> None:
    schema = chart / "values.schema.json"
    assert schema.is_symlink(), f"{schema} must link to the library's schema, not copy it"
    assert schema.resolve() == LIB_SCHEMA.resolve()


def test_packaged_umbrella_is_complete(tmp_path: Path) -> None:
    root = chart_deps.copy_sources(SOURCES, tmp_path / "charts")
    archives = {p.name: p for p in chart_deps.package(root, tmp_path / "dist")}
    assert "platform-0.1.0.tgz" in archives and "qlp-lib-0.1.0.tgz" not in archives
    unpacked = tmp_path / "unpacked"
    helm.expand(unpacked, archives["platform-0.1.0.tgz"])
    shutil.rmtree(root)  # the archive alone must be enough
    with helm.Chart.load(archives["platform-0.1.0.tgz"]) as chart:
        raw = chart.render({}, name="qlp", namespace="qlp", is_install=True)
        with pytest.raises(helm.HelmValuesError, match="autoscalling"):
            chart.render({"identity": {"autoscalling": {}}}, name="qlp", namespace="qlp")
    assert any(p.startswith("platform/charts/identity/") for p in raw)
    assert (unpacked / "platform" / "charts" / "identity" / "values.schema.json").is_file()
