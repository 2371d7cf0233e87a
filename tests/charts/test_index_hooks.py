"""MongoDB index creation as Helm hook Jobs, one per service that uses MongoDB.

The Job runs ``python -m qlp_kit.indexes ensure <service>`` in the service's own
image with the service's own environment, before every upgrade, and before the
first install when MongoDB is external (after it with the umbrella's in-cluster
MongoDB, which cannot exist earlier). What the command does against a real database
is tested in libs/kit/tests/integration/test_indexes.py.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from qlp_kit.serve import installed_services

REPO = Path(__file__).resolve().parents[2]
RELEASE = NAMESPACE = "qlp"
EXTERNAL = {
    "global": {
        "externalKafka": {"bootstrapServers": "kafka.example:9092"},
        "externalMongodb": {"url": "mongodb+srv://mongo.example/"},
    }
}


def _service_charts() -> list[str]:
    out = []
    for chart in sorted((REPO / "charts").iterdir()):
        meta_file = chart / "Chart.yaml"
        if meta_file.is_file():
            meta = yaml.safe_load(meta_file.read_text())
            if (meta.get("annotations") or {}).get("qlp.quantumlayer.io/values-schema"):
                out.append(chart.name)
    return out


SERVICES = _service_charts()
WITH_MONGODB = [
    s
    for s in SERVICES
    if yaml.safe_load((REPO / "charts" / s / "values.yaml").read_text())["mongodb"]["enabled"]
]


def _render(built: Path, chart: str, values: dict[str, Any]) -> list[dict[str, Any]]:
    with helm.Chart.load(built / chart) as c:
        raw = c.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    return [
        d
        for path, text in sorted(raw.items())
        if path.endswith(".yaml")
        for d in yaml.safe_load_all(text)
        if d
    ]


def _one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)}"
    return found[0]


def test_the_hook_command_exists() -> None:
    assert importlib.util.find_spec("qlp_kit.indexes") is not None


@pytest.mark.parametrize("service", WITH_MONGODB)
def test_index_job_runs_in_the_services_image_with_its_environment(
    service: str, built_charts: Path
) -> None:
    docs = _render(built_charts, service, {})
    job = _one(docs, "Job", f"{RELEASE}-{service}-indexes")
    deployment = _one(docs, "Deployment", f"{RELEASE}-{service}")
    configmap = _one(docs, "ConfigMap", f"{RELEASE}-{service}")
    annotations = job["metadata"]["annotations"]
    # the umbrella's in-cluster MongoDB does not exist before the first install
    assert annotations["helm.sh/hook"] == "post-install,pre-upgrade"
    assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation"
    (c,) = job["spec"]["template"]["spec"]["containers"]
    (app,) = deployment["spec"]["template"]["spec"]["containers"]
    assert c["image"] == app["image"]
    assert c["command"] == ["python", "-m", "qlp_kit.indexes"]
    assert c["args"] == ["ensure", service]
    # the ConfigMap may not exist yet (install) or be the old one (upgrade): env inline
    assert {e["name"]: e["value"] for e in c["env"]} == configmap["data"]
    secrets = [e for e in app["envFrom"] if "secretRef" in e]
    assert c["envFrom"] == secrets
    assert job["metadata"]["labels"]["app.kubernetes.io/component"] == "job"


@pytest.mark.parametrize("service", WITH_MONGODB)
def test_index_job_runs_before_install_with_an_external_mongodb(
    service: str, built_charts: Path
) -> None:
    job = _one(_render(built_charts, service, EXTERNAL), "Job", f"{RELEASE}-{service}-indexes")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    (c,) = job["spec"]["template"]["spec"]["containers"]
    assert {"name": "MONGODB_URL", "value": "mongodb+srv://mongo.example/"} in c["env"]


@pytest.mark.parametrize("service", SERVICES)
def test_no_index_job_without_mongodb_or_when_switched_off(
    service: str, built_charts: Path
) -> None:
    off = _render(built_charts, service, {"indexes": {"enabled": False}})
    assert not [d for d in off if d["kind"] == "Job"]
    if service not in WITH_MONGODB:
        assert not [d for d in _render(built_charts, service, {}) if d["kind"] == "Job"]


def test_umbrella_runs_the_index_job_of_every_installed_service(built_charts: Path) -> None:
    docs = _render(built_charts, "platform", {})
    umbrella = yaml.safe_load((REPO / "charts/platform/values.yaml").read_text())
    jobs = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Job"}
    # every service whose code is installed here declares indexes
    for service in installed_services():
        if (umbrella.get(service) or {}).get("enabled", True):
            job = jobs[f"{RELEASE}-{service}-indexes"]
            # before the services roll on an upgrade; the topics hook comes after
            assert int(job["metadata"]["annotations"]["helm.sh/hook-weight"]) < 0
    topics = jobs[f"{RELEASE}-topics"]["metadata"]["annotations"]["helm.sh/hook"]
    assert "pre-upgrade" not in topics
