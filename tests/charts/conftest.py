"""The charts as a fresh clone has them, with their dependencies built the Helm way.

Git carries each chart's Chart.yaml and Chart.lock, never ``charts/*/charts/``. The
session fixture copies the chart sources (no build outputs) to a temporary folder and
runs ``helm dependency build`` semantics on it (``qlp_infra.charts.build``), so the
tests never read whatever happens to sit in the working tree and concurrent runs do
not write the same archives.
"""

from __future__ import annotations

from pathlib import Path

import helm_python as helm
import pytest

from qlp_infra import charts as chart_deps

REPO = Path(__file__).resolve().parents[2]
SOURCES = REPO / "charts"


@pytest.fixture(scope="session")
def built_charts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    helm.disable_logging()  # "found symbolic link" for every shared values schema
    root = chart_deps.copy_sources(SOURCES, tmp_path_factory.mktemp("fresh") / "charts")
    chart_deps.build(root)
    return root
