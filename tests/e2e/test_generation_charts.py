"""The Helm charts of generated projects (one per service; two for T3) lint strictly,
render, and every rendered object validates against the Kubernetes 1.33 schemas; the
blueprint's scale shows in the rendered Deployment and HorizontalPodAutoscaler."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from qlp_generation.blueprint import extract
from qlp_generation.reference import REFERENCE
from qlp_generation.render import SCALES, render

pytestmark = [pytest.mark.e2e]
KUBE_VERSION = "1.33.0"
# one request per tier and scale (T3 twice: small and large)
CASES = sorted(
    {(t, extract(p, t).scale): (p, t) for p, t in REFERENCE}.values(), key=lambda c: c[1]
)


@pytest.mark.parametrize(("prompt", "tier"), CASES)
def test_generated_charts_lint_render_and_validate(prompt: str, tier: str, tmp_path: Path) -> None:
    bp = extract(prompt, tier)  # type: ignore[arg-type]
    files = render(bp, tier)
    for rel, data in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    charts = sorted(
        {Path(r).parent.parent for r in files if r.endswith("templates/deployment.yaml")}
    )
    assert len(charts) == (2 if tier == "T3" else 1)
    scale = SCALES[bp.scale]
    helm.disable_logging()
    for rel in charts:
        chart = tmp_path / rel
        report = helm.lint(chart, None, strict=True, kube_version=f"v{KUBE_VERSION}")
        problems = [m for m in report["messages"] if m["severity"] >= 2]
        assert not report["errors"] and not problems, report
        with helm.Chart.load(chart) as c:
            raw = c.render({}, name="demo", namespace="apps", is_install=True)
        docs: list[dict[str, Any]] = [
            d
            for path, text in sorted(raw.items())
            if path.endswith(".yaml")
            for d in yaml.safe_load_all(text)
            if d
        ]
        for doc in docs:
            kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
        kinds = {d["kind"]: d for d in docs}
        assert {"Deployment", "Service"} <= set(kinds)
        if scale["autoscaling"]:
            hpa = kinds["HorizontalPodAutoscaler"]["spec"]
            assert (hpa["minReplicas"], hpa["maxReplicas"]) == (scale["min"], scale["max"])
            assert "replicas" not in kinds["Deployment"]["spec"]
        else:
            assert "HorizontalPodAutoscaler" not in kinds
            assert kinds["Deployment"]["spec"]["replicas"] == scale["replicas"]
