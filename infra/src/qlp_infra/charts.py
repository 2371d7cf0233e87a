"""Chart dependencies the Helm way: ``python -m qlp_infra.charts build|update|package``.

Every chart commits its ``Chart.yaml`` and ``Chart.lock`` only. ``charts/*/charts/``
is ignored by git and rebuilt here with helm_python (the Helm SDK in-process), which
packages ``file://`` dependencies offline, exactly as ``helm dependency build`` does:

    build    charts/<chart>/charts/*.tgz from each Chart.lock; fails when a lock is
             out of sync with its Chart.yaml (then run ``update``)
    update   re-resolve Chart.yaml and rewrite Chart.lock (after changing dependencies)
    package  build, then ``helm package`` every application chart into --destination

Charts are handled dependencies first, so the umbrella packages service charts that
already carry their own ``qlp-lib``. helm_python is a development tool: it is imported
only when a command runs, never by the services.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

DEFAULT_ROOT = Path("charts")


def chart_dirs(root: Path) -> list[Path]:
    """Top-level chart directories (those with a Chart.yaml), sorted by name."""
    return sorted(p for p in root.iterdir() if (p / "Chart.yaml").is_file())


def chart_meta(chart: Path) -> dict[str, Any]:
    meta = yaml.safe_load((chart / "Chart.yaml").read_text()) or {}
    assert isinstance(meta, dict), chart
    return meta


def local_dependencies(chart: Path) -> list[Path]:
    """The directories of a chart's ``file://`` dependencies."""
    out = []
    for dep in chart_meta(chart).get("dependencies") or []:
        repo = str(dep.get("repository") or "")
        if repo.startswith("file://"):
            out.append((chart / repo.removeprefix("file://")).resolve())
    return out


def build_order(charts: Iterable[Path]) -> list[Path]:
    """Charts with dependencies, each after the local charts it depends on."""
    by_path = {c.resolve(): c for c in charts}
    done: list[Path] = []
    seen: set[Path] = set()

    def visit(chart: Path, stack: tuple[Path, ...]) -> None:
        key = chart.resolve()
        if key in seen:
            return
        if key in stack:
            raise SystemExit(f"chart dependency cycle through {chart.name}")
        for source in local_dependencies(chart):
            if source in by_path:
                visit(by_path[source], (*stack, key))
        seen.add(key)
        if chart_meta(chart).get("dependencies"):
            done.append(chart)

    for chart in by_path.values():
        visit(chart, ())
    return done


def copy_sources(source: Path, dest: Path) -> Path:
    """A charts/ folder as git has it: no build outputs (each chart's charts/, archives).

    Shared values schemas are symlinks and stay symlinks, relative to the copy.
    """

    def ignore(folder: str, names: list[str]) -> set[str]:
        skip = {n for n in names if n.endswith(".tgz") or n == "__pycache__"}
        if Path(folder) != source and "charts" in names:
            skip.add("charts")
        return skip

    shutil.copytree(source, dest, symlinks=True, ignore=ignore)
    return dest


def build(root: Path = DEFAULT_ROOT, *, update: bool = False) -> list[Path]:
    """``helm dependency build`` (or ``update``) for every chart, in dependency order."""
    import helm_python as helm

    built = []
    for chart in build_order(chart_dirs(root)):
        if update or not (chart / "Chart.lock").is_file():
            helm.dependency_update(chart, skip_refresh=True)
        else:
            try:
                helm.dependency_build(chart, skip_refresh=True)
            except helm.HelmError as exc:
                raise SystemExit(
                    f"{chart.name}: {exc}\n"
                    "Chart.yaml changed its dependencies: run `python -m qlp_infra.charts update`"
                ) from exc
        built.append(chart)
    return built


def package(root: Path, destination: Path) -> list[Path]:
    """Build dependencies, then package every application chart (not the library)."""
    import helm_python as helm

    build(root)
    destination.mkdir(parents=True, exist_ok=True)
    return [
        Path(helm.package(chart, destination=destination))
        for chart in chart_dirs(root)
        if chart_meta(chart).get("type") != "library"
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qlp_infra.charts", description=__doc__)
    parser.add_argument("command", choices=["build", "update", "package"])
    parser.add_argument("--charts", type=Path, default=DEFAULT_ROOT, help="the charts/ folder")
    parser.add_argument("--destination", type=Path, default=Path("dist/charts"))
    args = parser.parse_args(argv)
    if args.command == "package":
        for archive in package(args.charts, args.destination):
            print(f"packaged {archive}")
        return 0
    for chart in build(args.charts, update=args.command == "update"):
        deps = sorted(p.name for p in (chart / "charts").glob("*.tgz"))
        print(f"{chart.name}: {', '.join(deps)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
