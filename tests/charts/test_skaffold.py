"""skaffold.yaml: one image per service chart, wired into the umbrella release.

Skaffold and helm are not installed here, so this checks the file's structure
against the parts of the skaffold/v4beta13 schema it uses and cross-checks it
with the charts: every service chart has an artifact built from the shared
Dockerfile, whose image name is the chart's image.repository, and the helm
release sets that chart's image.repository/tag/digest from the build.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHARTS = REPO / "charts"
SKAFFOLD = REPO / "skaffold.yaml"
SCHEMA_ANNOTATION = "qlp.quantumlayer.io/values-schema"

# Fields of skaffold/v4beta13 used here (Artifact, DockerArtifact, HelmRelease).
ARTIFACT_KEYS = {"image", "context", "docker", "sync", "requires", "hooks", "platforms"}
DOCKER_KEYS = {"dockerfile", "target", "buildArgs", "network", "cacheFrom", "secrets", "ssh"}
RELEASE_KEYS = {
    "name",
    "chartPath",
    "remoteChart",
    "valuesFiles",
    "namespace",
    "version",
    "setValues",
    "setValueTemplates",
    "setFiles",
    "createNamespace",
    "wait",
    "recreatePods",
    "skipBuildDependencies",
    "skipTests",
    "useHelmSecrets",
    "repo",
    "upgradeOnChange",
    "overrides",
    "packaged",
    "dependsOn",
}


def _service_charts() -> dict[str, dict[str, Any]]:
    """service name -> its chart's values.yaml."""
    out = {}
    for chart in sorted(CHARTS.iterdir()):
        meta_file = chart / "Chart.yaml"
        if not meta_file.is_file():
            continue
        meta = yaml.safe_load(meta_file.read_text())
        if (meta.get("annotations") or {}).get(SCHEMA_ANNOTATION) == "service":
            out[chart.name] = yaml.safe_load((chart / "values.yaml").read_text())
    return out


def _template_key(image: str) -> str:
    """Skaffold's per-artifact template suffix: '/', '-' and '.' become '_'."""
    return re.sub(r"[^A-Za-z0-9_]", "_", image)


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return yaml.safe_load(SKAFFOLD.read_text())


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    charts = _service_charts()
    assert charts, "no service charts found"
    return charts


def test_api_version_and_kind(config: dict[str, Any]) -> None:
    assert re.fullmatch(r"skaffold/v4beta(1[1-9]|[2-9]\d)", config["apiVersion"])
    assert config["kind"] == "Config"


def test_one_artifact_per_service_chart(
    config: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    artifacts = config["build"]["artifacts"]
    by_service = {a["docker"]["buildArgs"]["SERVICE"]: a for a in artifacts}
    assert len(by_service) == len(artifacts), "one artifact per SERVICE"
    # an image needs a package to build (uv sync --package qlp-<service>)
    packaged = {s for s in services if (REPO / "services" / s / "pyproject.toml").is_file()}
    assert set(by_service) <= packaged, "an artifact without a package cannot build"
    umbrella = yaml.safe_load((CHARTS / "platform/values.yaml").read_text())
    for service in services:
        enabled = umbrella[service]["enabled"]
        if service not in packaged:
            assert enabled is False, f"{service} has no image to run"
        elif enabled:
            assert service in by_service, f"the umbrella runs {service}: skaffold must build it"
    for service, values in services.items():
        if service not in by_service:
            continue
        artifact = by_service[service]
        assert set(artifact) <= ARTIFACT_KEYS
        assert set(artifact["docker"]) <= DOCKER_KEYS
        assert artifact["image"] == values["image"]["repository"]
        assert artifact["image"] == f"ghcr.io/quantumlayer/qlp-{service}"
        assert artifact["context"] == "."
        assert artifact["docker"]["dockerfile"] == "infra/docker/service.Dockerfile"
        assert (REPO / artifact["docker"]["dockerfile"]).is_file()


def test_topics_hook_runs_the_kit_provisioner(config: dict[str, Any]) -> None:
    umbrella = yaml.safe_load((CHARTS / "platform/values.yaml").read_text())
    # every service image has qlp-kit, so no extra packages are needed in the gateway image
    assert umbrella["topics"]["command"] == ["python", "-m", "qlp_kit.topics", "provision"]
    assert not umbrella["topics"]["image"]["repository"], "the hook uses the gateway image"


def test_deploy_builds_chart_dependencies(config: dict[str, Any]) -> None:
    """charts/*/charts/ is not committed: skaffold must build it before installing."""
    helm = config["deploy"]["helm"]
    (release,) = helm["releases"]
    assert release.get("skipBuildDependencies", False) is False
    assert set(helm) <= {"releases", "flags", "hooks"}
    (hook,) = helm["hooks"]["before"]
    assert set(hook) == {"host"} and set(hook["host"]) <= {"command", "os", "dir"}
    script = " ".join(hook["host"]["command"])
    assert "helm dependency build" in script and "charts/*/Chart.lock" in script


def test_release_sets_the_image_of_every_built_artifact_only(config: dict[str, Any]) -> None:
    (release,) = config["deploy"]["helm"]["releases"]
    templates = release["setValueTemplates"]
    built = {a["docker"]["buildArgs"]["SERVICE"]: a["image"] for a in config["build"]["artifacts"]}
    for service, image in built.items():
        key = _template_key(image)
        assert templates[f"{service}.image.repository"] == f"{{{{.IMAGE_REPO_{key}}}}}"
        assert templates[f"{service}.image.tag"] == f"{{{{.IMAGE_TAG_{key}}}}}"
        assert templates[f"{service}.image.digest"] == f"{{{{.IMAGE_DIGEST_{key}}}}}"
    image_keys = {k.split(".")[0] for k in templates if ".image." in k}
    assert image_keys == set(built), "a template for an image that is not built fails the deploy"
