#!/usr/bin/env python3
"""Vendor the local (file://) chart dependencies into each chart's charts/ folder.

There is no helm CLI here, and helm_python's Chart.load() only sees dependencies
that sit in the chart's charts/ folder (a file:// entry in Chart.yaml is reported
"missing" otherwise). So each chart carries plain directory copies:

    charts/<service>/charts/qlp-lib/      copy of charts/qlp-lib
    charts/platform/charts/<service>/     copy of charts/<service> (with its qlp-lib)
    charts/platform/charts/qlp-lib/       copy of charts/qlp-lib

Charts whose Chart.yaml carries the annotation
``qlp.quantumlayer.io/values-schema: service`` also get
charts/qlp-lib/service.values.schema.json as their values.schema.json.

Run after editing charts/qlp-lib or any service chart:

    uv run python charts/sync-lib.py           # write the copies
    uv run python charts/sync-lib.py --check   # exit 1 and list drift

tests/charts/test_charts.py runs the check, so a stale copy fails the tests.
(`helm dependency update` would also work with a real helm, but writes .tgz
archives and a timestamped Chart.lock; directory copies diff cleanly in review.)
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
from pathlib import Path

import yaml

CHARTS_DIR = Path(__file__).resolve().parent
LIB = "qlp-lib"
SCHEMA_SOURCE = CHARTS_DIR / LIB / "service.values.schema.json"
SCHEMA_ANNOTATION = "qlp.quantumlayer.io/values-schema"
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".DS_Store", "*.swp", "*.tgz")


def chart_dirs(root: Path = CHARTS_DIR) -> list[Path]:
    """Top-level chart directories (those with a Chart.yaml)."""
    return sorted(p for p in root.iterdir() if (p / "Chart.yaml").is_file())


def load_chart_yaml(chart: Path) -> dict:
    return yaml.safe_load((chart / "Chart.yaml").read_text()) or {}


def local_dependencies(chart: Path) -> list[tuple[str, Path]]:
    """(name, source dir) for every file:// dependency of a chart."""
    deps = []
    for dep in load_chart_yaml(chart).get("dependencies") or []:
        repo = str(dep.get("repository") or "")
        if repo.startswith("file://"):
            source = (chart / repo.removeprefix("file://")).resolve()
            deps.append((dep.get("alias") or dep["name"], source))
    return deps


def wants_schema(chart: Path) -> bool:
    annotations = load_chart_yaml(chart).get("annotations") or {}
    return annotations.get(SCHEMA_ANNOTATION) == "service"


def ordered(charts: list[Path]) -> list[Path]:
    """Dependencies before dependents, so the umbrella copies synced service charts."""
    by_path = {c.resolve(): c for c in charts}
    done: list[Path] = []
    seen: set[Path] = set()

    def visit(chart: Path, stack: tuple[Path, ...]) -> None:
        key = chart.resolve()
        if key in seen:
            return
        if key in stack:
            raise SystemExit(f"dependency cycle through {chart.name}")
        for _, source in local_dependencies(chart):
            if source in by_path:
                visit(by_path[source], (*stack, key))
        seen.add(key)
        done.append(chart)

    for chart in charts:
        visit(chart, ())
    return done


def expected_copies(chart: Path) -> list[tuple[Path, Path]]:
    """(source, destination) pairs, directories or files, that a chart should carry."""
    pairs = [(source, chart / "charts" / name) for name, source in local_dependencies(chart)]
    if wants_schema(chart):
        pairs.append((SCHEMA_SOURCE, chart / "values.schema.json"))
    return pairs


def _tree_diff(source: Path, dest: Path) -> list[str]:
    if source.is_file():
        if not dest.is_file() or not filecmp.cmp(source, dest, shallow=False):
            return [str(dest)]
        return []
    if not dest.is_dir():
        return [f"{dest} (missing)"]
    cmp = filecmp.dircmp(source, dest, ignore=["__pycache__", ".DS_Store"])
    problems = [f"{dest / n} (missing)" for n in cmp.left_only]
    problems += [f"{dest / n} (not in {source.name})" for n in cmp.right_only]
    problems += [f"{dest / n} (differs)" for n in cmp.common_files if n not in cmp.same_files]
    # dircmp compares shallowly (size+mtime); recheck "same" files byte for byte
    problems += [
        f"{dest / n} (differs)"
        for n in cmp.same_files
        if not filecmp.cmp(source / n, dest / n, shallow=False)
    ]
    problems += [f"{dest / n} (type differs)" for n in cmp.common_funny]
    for sub in cmp.common_dirs:
        problems += _tree_diff(source / sub, dest / sub)
    return problems


def check(root: Path = CHARTS_DIR) -> list[str]:
    """Every vendored copy that is missing or differs from its source."""
    problems: list[str] = []
    for chart in chart_dirs(root):
        for source, dest in expected_copies(chart):
            problems += _tree_diff(source, dest)
    return problems


def sync(root: Path = CHARTS_DIR) -> list[Path]:
    written = []
    for chart in ordered(chart_dirs(root)):
        for source, dest in expected_copies(chart):
            if source.is_file():
                shutil.copyfile(source, dest)
            else:
                if dest.exists():
                    shutil.rmtree(dest)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copytree(source, dest, ignore=IGNORED)
            written.append(dest)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report drift, change nothing")
    args = parser.parse_args(argv)
    if args.check:
        problems = check()
        for problem in problems:
            print(f"drift: {problem}", file=sys.stderr)
        if problems:
            print("run: uv run python charts/sync-lib.py", file=sys.stderr)
        return 1 if problems else 0
    for dest in sync():
        print(f"synced {dest.relative_to(CHARTS_DIR)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
