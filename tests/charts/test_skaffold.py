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
    assert set(by_service) == set(services)
    for service, values in services.items():
        artifact = by_service[service]
        assert set(artifact) <= ARTIFACT_KEYS
        assert set(artifact["docker"]) <= DOCKER_KEYS
        assert artifact["image"] == values["image"]["repository"]
        assert artifact["image"] == f"ghcr.io/quantumlayer/qlp-{service}"
        assert artifact["context"] == "."
        assert artifact["docker"]["dockerfile"] == "infra/docker/service.Dockerfile"
        assert (REPO / artifact["docker"]["dockerfile"]).is_file()


def test_gateway_image_carries_the_topics_cli(config: dict[str, Any]) -> None:
    (gateway,) = [
        a for a in config["build"]["artifacts"] if a["docker"]["buildArgs"]["SERVICE"] == "gateway"
    ]
    assert "qlp-infra" in gateway["docker"]["buildArgs"]["EXTRA_PACKAGES"].split()
    umbrella = yaml.safe_load((CHARTS / "platform/values.yaml").read_text())
    assert umbrella["topics"]["command"][:1] == ["qlp"]
    assert not umbrella["topics"]["image"]["repository"], "the hook uses the gateway image"


def test_helm_release_deploys_the_umbrella_with_built_images(
    config: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    (release,) = config["deploy"]["helm"]["releases"]
    assert set(release) <= RELEASE_KEYS
    assert release["chartPath"] == "charts/platform"
    assert (REPO / release["chartPath"] / "Chart.yaml").is_file()
    assert release["skipBuildDependencies"] is True, "charts/ holds vendored copies"
    templates = release["setValueTemplates"]
    for service, values in services.items():
        key = _template_key(values["image"]["repository"])
        assert templates[f"{service}.image.repository"] == f"{{{{.IMAGE_REPO_{key}}}}}"
        assert templates[f"{service}.image.tag"] == f"{{{{.IMAGE_TAG_{key}}}}}"
        assert templates[f"{service}.image.digest"] == f"{{{{.IMAGE_DIGEST_{key}}}}}"
    umbrella_values = yaml.safe_load((CHARTS / "platform/values.yaml").read_text())
    for path in templates:
        head = path.split(".")[0]
        assert head in umbrella_values or head in services, f"unknown value {path}"


def test_profiles_patch_existing_paths(config: dict[str, Any]) -> None:
    for profile in config.get("profiles", []):
        for patch in profile["patches"]:
            assert patch["op"] in {"add", "replace", "remove"}
            assert patch["path"].startswith("/deploy/helm/releases/0/"), patch["path"]
