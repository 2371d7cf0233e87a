"""Every Helm chart under charts/: lint, render, Kubernetes-schema validation, conventions.

No helm binary and no cluster are needed: helm_python (the Helm v4 SDK) loads,
renders and lints the charts in-process, and kubernetes_validate checks each
rendered object against the Kubernetes 1.33 OpenAPI schemas (strict: unknown
fields fail). Each chart is loaded once and rendered once per value variation
(module-scoped fixture); the tests below only read those renders.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHARTS = REPO / "charts"
KUBE_VERSION = "1.33.0"
RELEASE = "qlp"
NAMESPACE = "qlp"
IMAGE_PREFIX = "ghcr.io/quantumlayer/qlp-"
WORKLOAD_KINDS = {"Deployment", "DaemonSet", "StatefulSet", "Job"}
STANDARD_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
)
SCHEMA_ANNOTATION = "qlp.quantumlayer.io/values-schema"
# Third-party images with their own start scripts: TCP probes are enough there.
TCP_PROBE_COMPONENTS = {"kafka", "mongodb"}
# The one writable path of a read-only container (an emptyDir), not a temp file here.
TMP_MOUNT = "/tmp"  # noqa: S108


# ---------------------------------------------------------------- discovery --


def _chart_yaml(chart: Path) -> dict[str, Any]:
    return yaml.safe_load((chart / "Chart.yaml").read_text())


ALL_CHARTS = sorted(p for p in CHARTS.iterdir() if (p / "Chart.yaml").is_file())
LIBRARY_CHARTS = [p for p in ALL_CHARTS if _chart_yaml(p).get("type") == "library"]
APP_CHARTS = [p for p in ALL_CHARTS if p not in LIBRARY_CHARTS]
SERVICE_CHARTS = [
    p
    for p in APP_CHARTS
    if (_chart_yaml(p).get("annotations") or {}).get(SCHEMA_ANNOTATION) == "service"
]
SERVICE_NAMES = [p.name for p in SERVICE_CHARTS]
# Services the umbrella turns on by default (charts of services not built yet are off).
UMBRELLA_ON = [
    s
    for s in SERVICE_NAMES
    if (yaml.safe_load((CHARTS / "platform" / "values.yaml").read_text()).get(s) or {}).get(
        "enabled", True
    )
]
UMBRELLA_CHARTS = [
    p
    for p in APP_CHARTS
    if {d["name"] for d in _chart_yaml(p).get("dependencies") or []} & set(SERVICE_NAMES)
]

EXTERNAL_KAFKA = "kafka-0.kafka.example.internal:9092"
EXTERNAL_MONGODB = "mongodb+srv://mongo.example.internal/?retryWrites=true"
EXTERNAL_GLOBAL = {
    "externalKafka": {"bootstrapServers": EXTERNAL_KAFKA},
    "externalMongodb": {"url": EXTERNAL_MONGODB},
}
GATEWAY_INGRESS = {
    "enabled": True,
    "className": "nginx",
    "hosts": [{"host": "api.qlp.test", "paths": [{"path": "/", "pathType": "Prefix"}]}],
    "tls": [{"hosts": ["api.qlp.test"], "secretName": "qlp-gateway-tls"}],
}


def variations(chart: Path) -> dict[str, dict[str, Any]]:
    """Value sets each chart is rendered with (name -> values)."""
    cases: dict[str, dict[str, Any]] = {"default": {}}
    if chart in SERVICE_CHARTS:
        cases["no-autoscaling"] = {"autoscaling": {"enabled": False}, "pdb": {"enabled": False}}
        cases["external-infra"] = {"global": EXTERNAL_GLOBAL}
        if chart.name == "gateway":
            cases["ingress"] = {"ingress": GATEWAY_INGRESS}
        if chart.name == "scheduler":
            cases["jobs-namespace"] = {"rbac": {"namespace": "qlp-gpu-jobs"}}
    if chart in UMBRELLA_CHARTS:
        cases["external-infra"] = {
            "kafka": {"enabled": False},
            "mongodb": {"enabled": False},
            "global": EXTERNAL_GLOBAL,
        }
        cases["everything-on"] = {
            "agent": {"enabled": True},
            "gateway": {"ingress": GATEWAY_INGRESS},
            "platformSecrets": {"extra": {"PAYMENT_PROVIDER_KEY": "test"}},
            "global": {"otel": {"endpoint": "http://otel-collector.observability:4318"}},
        }
        cases["no-autoscaling"] = {
            **{name: {"autoscaling": {"enabled": False}} for name in SERVICE_NAMES},
            "kafka": {"persistence": {"enabled": False}},
            "mongodb": {"persistence": {"enabled": False}, "replicaSet": ""},
            "networkPolicy": {"enabled": False},
            "topics": {"enabled": False},
        }
    return cases


CASES = [(chart.name, name) for chart in APP_CHARTS for name in variations(chart)]
CASE_IDS = [f"{chart}-{name}" for chart, name in CASES]


# ---------------------------------------------------------------- rendering --


@dataclass
class Render:
    chart: str
    variation: str
    values: dict[str, Any]
    merged: dict[str, Any]
    app_version: str
    raw: dict[str, str]
    docs: list[dict[str, Any]]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] == kind]

    def named(self, kind: str, name: str) -> dict[str, Any]:
        found = [d for d in self.of_kind(kind) if d["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
        return found[0]

    def service_values(self, service: str) -> dict[str, Any]:
        """The effective values of a service chart (itself, or under its key in the umbrella)."""
        return self.merged if self.chart == service else self.merged[service]


def _manifests(raw: dict[str, str]) -> list[dict[str, Any]]:
    docs = []
    for path, text in sorted(raw.items()):
        if not path.endswith((".yaml", ".yml")):
            continue  # NOTES.txt
        docs.extend(d for d in yaml.safe_load_all(text) if d)
    return docs


@pytest.fixture(scope="module")
def renders(built_charts: Path) -> dict[tuple[str, str], Render]:
    out: dict[tuple[str, str], Render] = {}
    for chart_dir in APP_CHARTS:
        for name, values in variations(chart_dir).items():
            # One load per render: Helm prunes the subcharts a render disables from
            # the loaded chart, so a reused handle could not re-enable them.
            with helm.Chart.load(built_charts / chart_dir.name) as chart:
                raw = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
                out[(chart_dir.name, name)] = Render(
                    chart=chart_dir.name,
                    variation=name,
                    values=values,
                    merged=chart.merge_values(values),
                    app_version=chart.metadata["appVersion"],
                    raw=raw,
                    docs=_manifests(raw),
                )
    return out


@pytest.fixture(params=CASES, ids=CASE_IDS)
def render(request: pytest.FixtureRequest, renders: dict[tuple[str, str], Render]) -> Render:
    return renders[request.param]


def _pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"]["template"]["spec"]


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = _pod_spec(doc)
    return [*spec.get("initContainers", []), *spec["containers"]]


def _workloads(render: Render) -> list[dict[str, Any]]:
    return [d for d in render.docs if d["kind"] in WORKLOAD_KINDS]


def _component(doc: dict[str, Any]) -> str:
    return doc["metadata"]["labels"]["app.kubernetes.io/component"]


def _service_workloads(render: Render) -> list[dict[str, Any]]:
    """Deployments and DaemonSets of QLP services (not Kafka, MongoDB or hook Jobs)."""
    return [
        d
        for d in render.docs
        if d["kind"] in {"Deployment", "DaemonSet"}
        and _component(d) in {"gateway", "service", "agent"}
    ]


def _configmap_data(render: Render, name: str) -> dict[str, str]:
    return render.named("ConfigMap", name)["data"]


# -------------------------------------------------------------------- lint --


@pytest.mark.parametrize("chart", LIBRARY_CHARTS, ids=lambda p: p.name)
def test_library_chart_lints(chart: Path) -> None:
    report = helm.lint(chart, None, strict=True, kube_version=f"v{KUBE_VERSION}")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not report["errors"] and not problems, report


@pytest.mark.parametrize(("chart", "variation"), CASES, ids=CASE_IDS)
def test_chart_lints_strictly(chart: str, variation: str, built_charts: Path) -> None:
    values = variations(CHARTS / chart)[variation]
    report = helm.lint(
        built_charts / chart,
        values,
        strict=True,
        namespace=NAMESPACE,
        kube_version=f"v{KUBE_VERSION}",
    )
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not report["errors"] and not problems, report


def test_charts_are_discovered() -> None:
    assert LIBRARY_CHARTS == [CHARTS / "qlp-lib"]
    assert set(SERVICE_NAMES) >= {
        "gateway",
        "identity",
        "billing",
        "generation",
        "marketplace",
        "scheduler",
        "failover",
        "agent",
    }
    assert UMBRELLA_CHARTS == [CHARTS / "platform"]


# ------------------------------------------------------ chart dependencies --
# (more in test_chart_dependencies.py)


@pytest.mark.parametrize("chart", APP_CHARTS, ids=lambda p: p.name)
def test_every_declared_dependency_is_built(chart: Path, built_charts: Path) -> None:
    deps = helm.dependency_list(built_charts / chart.name)
    assert deps, chart.name
    for dep in deps:
        assert dep["repository"].startswith("file://../"), dep
        assert dep["status"] == "ok", dep


@pytest.mark.parametrize("chart", SERVICE_CHARTS, ids=lambda p: p.name)
def test_service_chart_templates_are_one_include(chart: Path) -> None:
    templates = sorted(p.name for p in (chart / "templates").iterdir())
    assert templates == ["service.yaml"]
    assert (chart / "templates/service.yaml").read_text().strip() == (
        '{{- include "qlp-lib.service" . }}'
    )
    deps = _chart_yaml(chart)["dependencies"]
    assert {"name": "qlp-lib", "version": "0.1.0", "repository": "file://../qlp-lib"} in deps


# ------------------------------------------------------ Kubernetes schemas --

_validated: set[str] = set()


def test_rendered_objects_match_kubernetes_schemas(render: Render) -> None:
    assert render.docs, "nothing rendered"
    failures = []
    for doc in render.docs:
        key = json.dumps(doc, sort_keys=True)
        if key in _validated:
            continue  # the same object rendered by another variation
        try:
            kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
        except (kubernetes_validate.ValidationError, kubernetes_validate.SchemaNotFoundError) as e:
            failures.append(f"{doc['kind']}/{doc['metadata'].get('name')}: {e}")
        else:
            _validated.add(key)
    assert not failures, "\n".join(failures)


def test_object_names_are_unique(render: Render) -> None:
    keys = [(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]) for d in render.docs]
    assert len(keys) == len(set(keys)), sorted(k for k in keys if keys.count(k) > 1)


# ------------------------------------------------------------- conventions --


def test_every_object_carries_the_standard_labels(render: Render) -> None:
    for doc in render.docs:
        labels = doc["metadata"].get("labels") or {}
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        missing = [k for k in STANDARD_LABELS if not labels.get(k)]
        assert not missing, f"{where} lacks {missing}"
        assert labels["app.kubernetes.io/part-of"] == "qlp", where
        assert labels["app.kubernetes.io/instance"] == RELEASE, where
        assert labels["app.kubernetes.io/managed-by"] == "Helm", where
        assert doc["metadata"].get("namespace") in (NAMESPACE, "qlp-gpu-jobs"), where


def test_workloads_follow_the_pod_conventions(render: Render) -> None:
    for doc in _workloads(render):
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        pod_labels = doc["spec"]["template"]["metadata"]["labels"]
        assert all(pod_labels.get(k) for k in STANDARD_LABELS), f"{where} pod labels"
        if doc["kind"] != "Job":
            selector = doc["spec"]["selector"]["matchLabels"]
            assert selector.items() <= pod_labels.items(), f"{where} selector"

        spec = _pod_spec(doc)
        pod_sc = spec["securityContext"]
        assert pod_sc["runAsNonRoot"] is True, where
        assert pod_sc["runAsUser"] > 0, where
        assert pod_sc["seccompProfile"]["type"] == "RuntimeDefault", where
        assert spec.get("hostNetwork") is not True and spec.get("hostPID") is not True, where
        volumes = {v["name"]: v for v in spec.get("volumes", [])}

        for c in _containers(doc):
            cwhere = f"{where} container {c['name']}"
            res = c.get("resources") or {}
            assert {"cpu", "memory"} <= set(res.get("requests", {})), f"{cwhere} requests"
            assert "memory" in res.get("limits", {}), f"{cwhere} limits"

            sc = c["securityContext"]
            assert sc.get("runAsNonRoot", pod_sc["runAsNonRoot"]) is True, cwhere
            assert sc.get("runAsUser", pod_sc["runAsUser"]) > 0, cwhere
            assert sc["readOnlyRootFilesystem"] is True, cwhere
            assert sc["allowPrivilegeEscalation"] is False, cwhere
            assert sc.get("privileged") is not True, cwhere
            assert "ALL" in sc["capabilities"]["drop"], cwhere
            assert not sc["capabilities"].get("add"), cwhere

            mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
            assert "emptyDir" in volumes[mounts[TMP_MOUNT]], f"{cwhere}: /tmp must be an emptyDir"

            image = c["image"]
            assert ":" in image.rsplit("/", 1)[-1], f"{cwhere}: image {image} has no tag"
            assert not image.endswith(":latest"), cwhere

            if doc["kind"] == "Job":
                continue
            assert c.get("livenessProbe") and c.get("readinessProbe"), f"{cwhere} probes"
            if _component(doc) in TCP_PROBE_COMPONENTS:
                assert "tcpSocket" in c["livenessProbe"] and "tcpSocket" in c["readinessProbe"]
            else:
                live, ready = c["livenessProbe"]["httpGet"], c["readinessProbe"]["httpGet"]
                assert (live["path"], live["port"]) == ("/healthz", "http"), cwhere
                assert (ready["path"], ready["port"]) == ("/readyz", "http"), cwhere


def test_service_pods_are_scraped_and_roll_on_config_change(render: Render) -> None:
    for doc in _service_workloads(render):
        name = doc["metadata"]["name"]
        annotations = doc["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/path"] == "/metrics"
        assert annotations["prometheus.io/port"] == "8000"
        # the checksum is the sha256 of the ConfigMap exactly as rendered
        chunks = [c for text in render.raw.values() for c in text.split("\n---\n")]
        configmap = [c for c in chunks if "\nkind: ConfigMap\n" in c and f"\n  name: {name}\n" in c]
        assert len(configmap) == 1, name
        digest = hashlib.sha256(configmap[0].strip("\n").encode()).hexdigest()
        assert annotations["checksum/config"] == digest, name
        spec = _pod_spec(doc)
        env_from = spec["containers"][0]["envFrom"]
        assert env_from[0] == {"configMapRef": {"name": name}}
        assert all(e["secretRef"]["name"] for e in env_from[1:])


def test_deployments_have_pdb_and_hpa_where_enabled(render: Render) -> None:
    deployments = [d for d in _service_workloads(render) if d["kind"] == "Deployment"]
    hpas = {
        h["spec"]["scaleTargetRef"]["name"]: h for h in render.of_kind("HorizontalPodAutoscaler")
    }
    pdbs = render.of_kind("PodDisruptionBudget")
    for dep in deployments:
        name = dep["metadata"]["name"]
        values = render.service_values(dep["metadata"]["labels"]["app.kubernetes.io/name"])
        pod_labels = dep["spec"]["template"]["metadata"]["labels"]
        if values["autoscaling"]["enabled"]:
            hpa = hpas[name]
            assert hpa["spec"]["scaleTargetRef"]["kind"] == "Deployment"
            assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
            assert "replicas" not in dep["spec"], f"{name}: the HPA owns replicas"
        else:
            assert name not in hpas
            assert dep["spec"]["replicas"] == values["replicaCount"]
        matching = [
            p for p in pdbs if p["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
        ]
        assert len(matching) == (1 if values["pdb"]["enabled"] else 0), name
    # nothing autoscales or is budgeted that is not a Deployment of this render
    names = {d["metadata"]["name"] for d in deployments}
    assert set(hpas) <= names


def test_every_pod_is_covered_by_a_network_policy(render: Render) -> None:
    policies = render.of_kind("NetworkPolicy")
    for doc in render.docs:
        if doc["kind"] not in {"Deployment", "DaemonSet", "StatefulSet"}:
            continue
        name = doc["metadata"]["name"]
        component = _component(doc)
        if component in TCP_PROBE_COMPONENTS:
            expected = render.merged["networkPolicy"]["enabled"]
        else:
            values = render.service_values(doc["metadata"]["labels"]["app.kubernetes.io/name"])
            expected = values["networkPolicy"]["enabled"]
        pod_labels = doc["spec"]["template"]["metadata"]["labels"]
        matching = [
            p
            for p in policies
            if p["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
        ]
        if not expected:
            assert not matching, name
            continue
        assert len(matching) == 1, name
        spec = matching[0]["spec"]
        assert spec["policyTypes"] == ["Ingress", "Egress"]
        egress_ports = {p.get("port") for rule in spec["egress"] for p in rule.get("ports", [])}
        assert 53 in egress_ports, f"{name}: DNS egress"
        open_ingress = [rule for rule in spec["ingress"] if not rule.get("from")]
        if component == "gateway":
            assert open_ingress, "the gateway accepts traffic from anywhere"
        else:
            assert not open_ingress, f"{name}: ingress must name its sources"
            sources = [peer for rule in spec["ingress"] for peer in rule["from"]]
            assert {
                "podSelector": {
                    "matchLabels": {
                        "app.kubernetes.io/part-of": "qlp",
                        "app.kubernetes.io/instance": RELEASE,
                    }
                }
            } in sources


# --------------------------------------------------------- service charts --


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_service_chart_runs_its_image_and_entry(
    service: str, renders: dict[tuple[str, str], Render]
) -> None:
    render = renders[(service, "default")]
    fullname = f"{RELEASE}-{service}"
    kind = "DaemonSet" if service == "agent" else "Deployment"
    workload = render.named(kind, fullname)
    (container,) = _pod_spec(workload)["containers"]
    assert container["image"] == f"{IMAGE_PREFIX}{service}:{render.app_version}"
    if service == "agent":  # the agent is a CLI of its own, not a platform service
        assert container["command"] == ["qlp-agent"] and container["args"] == ["run"]
    else:
        assert container["command"] == ["python", "-m", "qlp_kit.serve"]
        assert container["args"] == [service]
    assert container["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    assert _pod_spec(workload)["serviceAccountName"] == fullname

    svc = render.named("Service", fullname)
    assert svc["spec"]["ports"][0]["port"] == 8000
    assert svc["spec"]["ports"][0]["targetPort"] == "http"

    sa = render.named("ServiceAccount", fullname)
    assert sa["automountServiceAccountToken"] is (service == "scheduler")

    data = _configmap_data(render, fullname)
    prefix = f"QLP_{service.upper()}_"
    assert data[f"{prefix}HTTP_HOST"] == "0.0.0.0"
    assert data[f"{prefix}HTTP_PORT"] == "8000"
    assert data[f"{prefix}SERVICE_NAME"] == service
    if service == "agent":
        assert "KAFKA_BOOTSTRAP_SERVERS" not in data and "MONGODB_URL" not in data
    else:
        assert data["KAFKA_BOOTSTRAP_SERVERS"] == f"{RELEASE}-kafka.{NAMESPACE}.svc:9092"
        assert data["MONGODB_URL"].startswith(f"mongodb://{RELEASE}-mongodb.{NAMESPACE}.svc:27017")


@pytest.mark.parametrize("service", [s for s in SERVICE_NAMES if s != "agent"])
def test_service_chart_follows_external_infra(
    service: str, renders: dict[tuple[str, str], Render]
) -> None:
    render = renders[(service, "external-infra")]
    data = _configmap_data(render, f"{RELEASE}-{service}")
    assert data["KAFKA_BOOTSTRAP_SERVERS"] == EXTERNAL_KAFKA
    assert data["MONGODB_URL"] == EXTERNAL_MONGODB
    (policy,) = render.of_kind("NetworkPolicy")
    open_egress = [r for r in policy["spec"]["egress"] if "to" not in r]
    ports = {p["port"] for r in open_egress for p in r["ports"]}
    assert {9092, 27017, 53} <= ports


def test_values_schema_rejects_unknown_keys(built_charts: Path) -> None:
    with helm.Chart.load(built_charts / "identity") as chart:
        with pytest.raises(helm.HelmValuesError, match="autoscalling"):
            chart.render({"autoscalling": {"enabled": False}}, name=RELEASE, namespace=NAMESPACE)
        with pytest.raises(helm.HelmValuesError):
            chart.render({"image": {"tag": "latest"}}, name=RELEASE, namespace=NAMESPACE)


def test_gateway_is_open_and_has_an_optional_ingress(
    renders: dict[tuple[str, str], Render],
) -> None:
    assert not renders[("gateway", "default")].of_kind("Ingress")
    render = renders[("gateway", "ingress")]
    (ingress,) = render.of_kind("Ingress")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": f"{RELEASE}-gateway", "port": {"number": 8000}}
    assert ingress["spec"]["tls"][0]["secretName"] == "qlp-gateway-tls"
    data = _configmap_data(render, f"{RELEASE}-gateway")
    for service in SERVICE_NAMES:
        if service not in {"gateway", "agent"}:
            assert data[f"QLP_GATEWAY_{service.upper()}_URL"] == f"http://{RELEASE}-{service}:8000"


@pytest.mark.parametrize(
    ("variation", "jobs_namespace"), [("default", NAMESPACE), ("jobs-namespace", "qlp-gpu-jobs")]
)
def test_scheduler_may_manage_gpu_jobs(
    variation: str, jobs_namespace: str, renders: dict[tuple[str, str], Render]
) -> None:
    render = renders[("scheduler", variation)]
    fullname = f"{RELEASE}-scheduler"
    role = render.named("Role", fullname)
    binding = render.named("RoleBinding", fullname)
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == jobs_namespace
    rules = {(tuple(r["apiGroups"]), tuple(r["resources"])): set(r["verbs"]) for r in role["rules"]}
    assert rules[(("batch",), ("jobs",))] >= {"create", "get", "list", "watch", "delete"}
    assert rules[(("",), ("pods", "pods/log"))] >= {"get", "list"}
    assert all("*" not in verbs for verbs in rules.values())
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": fullname,
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": fullname, "namespace": NAMESPACE}
    ]
    deployment = render.named("Deployment", fullname)
    assert _pod_spec(deployment)["automountServiceAccountToken"] is True
    data = _configmap_data(render, fullname)
    assert data["QLP_SCHEDULER_K8S_JOBS_NAMESPACE"] == jobs_namespace
    (policy,) = render.of_kind("NetworkPolicy")
    egress_ports = {p["port"] for r in policy["spec"]["egress"] for p in r.get("ports", [])}
    assert {443, 6443} <= egress_ports, "the scheduler talks to the Kubernetes API"


def test_no_other_chart_gets_rbac(render: Render) -> None:
    for kind in ("Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"):
        owners = {d["metadata"]["name"] for d in render.of_kind(kind)}
        assert owners <= {f"{RELEASE}-scheduler"}, (kind, owners)


def test_agent_is_a_gpu_daemonset(renders: dict[tuple[str, str], Render]) -> None:
    render = renders[("agent", "default")]
    assert not render.of_kind("Deployment")
    assert not render.of_kind("HorizontalPodAutoscaler")
    assert not render.of_kind("PodDisruptionBudget")
    ds = render.named("DaemonSet", f"{RELEASE}-agent")
    spec = _pod_spec(ds)
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec[
        "tolerations"
    ]
    assert spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    data = _configmap_data(render, f"{RELEASE}-agent")
    assert data["QLP_AGENT_GATEWAY_URL"] == f"http://{RELEASE}-gateway:8000"


# ------------------------------------------------------------ umbrella chart --


def test_umbrella_depends_on_every_service_chart() -> None:
    for umbrella in UMBRELLA_CHARTS:
        deps = {d["name"]: d for d in _chart_yaml(umbrella)["dependencies"]}
        for service in SERVICE_NAMES:
            assert deps[service]["repository"] == f"file://../{service}"
            assert deps[service]["condition"] == f"{service}.enabled"


def test_umbrella_default_brings_services_kafka_mongodb_and_topics(
    renders: dict[tuple[str, str], Render],
) -> None:
    render = renders[("platform", "default")]
    deployments = {d["metadata"]["name"] for d in render.of_kind("Deployment")}
    assert deployments == {f"{RELEASE}-{s}" for s in UMBRELLA_ON if s != "agent"}
    assert not render.of_kind("DaemonSet"), "the agent is opt-in"

    kafka = render.named("StatefulSet", f"{RELEASE}-kafka")
    (kc,) = _pod_spec(kafka)["containers"]
    assert kc["image"].startswith("apache/kafka:")
    env = {e["name"]: e.get("value") for e in kc["env"]}
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_ADVERTISED_LISTENERS"] == (
        f"PLAINTEXT://{RELEASE}-kafka-0.{RELEASE}-kafka-headless.{NAMESPACE}.svc.cluster.local:9092"
    )
    assert kafka["spec"]["serviceName"] == f"{RELEASE}-kafka-headless"
    assert kafka["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"

    mongo = render.named("StatefulSet", f"{RELEASE}-mongodb")
    (mc,) = _pod_spec(mongo)["containers"]
    assert mc["image"].startswith("mongo:")
    assert {e["name"]: e.get("value") for e in mc["env"]}["REPLICA_SET"] == "rs0"

    job = render.named("Job", f"{RELEASE}-topics")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "post-install,post-upgrade"
    (jc,) = _pod_spec(job)["containers"]
    assert jc["command"] == ["python", "-m", "qlp_kit.topics", "provision"]
    assert jc["image"] == f"{IMAGE_PREFIX}gateway:{render.app_version}"
    job_env = {e["name"]: e["value"] for e in jc["env"]}
    assert job_env["KAFKA_BOOTSTRAP_SERVERS"] == f"{RELEASE}-kafka.{NAMESPACE}.svc:9092"

    secret = render.named("Secret", f"{RELEASE}-platform-secrets")
    assert "QLP_INTERNAL_AUTH_SECRET" in secret["data"]
    for service in UMBRELLA_ON:
        if service == "agent":
            continue
        env_from = _pod_spec(render.named("Deployment", f"{RELEASE}-{service}"))["containers"][0][
            "envFrom"
        ]
        assert {"secretRef": {"name": secret["metadata"]["name"], "optional": True}} in env_from


def test_umbrella_with_external_kafka_and_mongodb(renders: dict[tuple[str, str], Render]) -> None:
    render = renders[("platform", "external-infra")]
    assert not render.of_kind("StatefulSet")
    for service in UMBRELLA_ON:
        if service == "agent":
            continue
        data = _configmap_data(render, f"{RELEASE}-{service}")
        assert data["KAFKA_BOOTSTRAP_SERVERS"] == EXTERNAL_KAFKA
        assert data["MONGODB_URL"] == EXTERNAL_MONGODB
    (jc,) = _pod_spec(render.named("Job", f"{RELEASE}-topics"))["containers"]
    assert {"name": "KAFKA_BOOTSTRAP_SERVERS", "value": EXTERNAL_KAFKA} in jc["env"]


def test_umbrella_everything_on(renders: dict[tuple[str, str], Render]) -> None:
    render = renders[("platform", "everything-on")]
    render.named("DaemonSet", f"{RELEASE}-agent")
    render.named("Ingress", f"{RELEASE}-gateway")
    secret = render.named("Secret", f"{RELEASE}-platform-secrets")
    assert "PAYMENT_PROVIDER_KEY" in secret["data"]
    data = _configmap_data(render, f"{RELEASE}-billing")
    assert data["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.observability:4318"
    assert data["OTEL_SERVICE_NAME"] == "qlp-billing"


def test_umbrella_minimal(renders: dict[tuple[str, str], Render]) -> None:
    render = renders[("platform", "no-autoscaling")]
    assert not render.of_kind("HorizontalPodAutoscaler")
    assert not render.of_kind("NetworkPolicy") or all(
        _component(p) in {"gateway", "service"} for p in render.of_kind("NetworkPolicy")
    )
    assert f"{RELEASE}-topics" not in {j["metadata"]["name"] for j in render.of_kind("Job")}
    for sts in render.of_kind("StatefulSet"):
        assert "volumeClaimTemplates" not in sts["spec"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"kafka": {"enabled": False}}, "global.externalKafka.bootstrapServers"),
        ({"mongodb": {"enabled": False}}, "global.externalMongodb.url"),
        ({"externalKafka": {"bootstrapServers": "k:9092"}}, "must be set under global"),
        ({"global": {"externalKafka": {"bootstrapServers": "k:9092"}}}, "kafka.enabled=false"),
    ],
    ids=["kafka-off-no-url", "mongodb-off-no-url", "top-level-external", "both-kafkas"],
)
def test_umbrella_refuses_half_configured_infra(
    values: dict[str, Any], message: str, built_charts: Path
) -> None:
    with helm.Chart.load(built_charts / "platform") as chart:
        with pytest.raises(helm.HelmError, match=message):
            chart.render(values, name=RELEASE, namespace=NAMESPACE)
