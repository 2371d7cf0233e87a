"""qlpctl's cluster paths at the Kubernetes client boundary (no cluster exists here).

A fake CoreV1Api/AppsV1Api records what qlpctl asks the API server for and answers
like it: Deployments and DaemonSets of the release, the platform Secret, the
service proxy, ready pods and ``pods/exec``. The exec fake runs the exact command
qlpctl sends (``python -c <probes source> <function> <json>``) as a local process
with the environment a service pod has, against the session's real broker: so the
code that would run in the pod is the code tested. What is not tested: a real API
server, RBAC, the proxy's own behaviour, and images on a cluster.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from types import SimpleNamespace as NS
from typing import Any

import pytest
from typer.testing import CliRunner

from qlp_infra.ctl import cli
from qlp_infra.ctl.target import ClusterTarget, CtlError
from qlp_kit.auth import verify_principal

SECRET = "cluster-internal-secret"
NAMESPACE, RELEASE = "qlp-prod", "blue"


def _labels(name: str, component: str = "service") -> dict[str, str]:
    return {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/instance": RELEASE,
        "app.kubernetes.io/part-of": "qlp",
        "app.kubernetes.io/component": component,
    }


class FakeApiClient:
    def __init__(self, answers: dict[str, tuple[int, Any]]) -> None:
        self.answers = answers
        self.calls: list[dict[str, Any]] = []

    def call_api(self, path: str, method: str, **kw: Any) -> Any:
        self.calls.append({"path": path, "method": method, **kw})
        status, body = self.answers.get(path, (404, {"detail": "no such route"}))
        if status >= 400:
            from kubernetes.client.exceptions import ApiException

            exc = ApiException(status=status, reason="error")
            exc.body = json.dumps(body)
            raise exc
        return NS(data=json.dumps(body).encode()), status, {}


class FakeCore:
    def __init__(self, answers: dict[str, tuple[int, Any]], secret: str | None = SECRET) -> None:
        self.api_client = FakeApiClient(answers)
        self.secret = secret
        self.exec_calls: list[dict[str, Any]] = []

    def read_namespaced_secret(self, name: str, namespace: str) -> Any:
        assert (name, namespace) == (f"{RELEASE}-platform-secrets", NAMESPACE)
        if self.secret is None:
            from kubernetes.client.exceptions import ApiException

            raise ApiException(status=403, reason="Forbidden")
        return NS(data={"QLP_INTERNAL_AUTH_SECRET": base64.b64encode(self.secret.encode())})

    def list_namespaced_pod(self, namespace: str, label_selector: str, field_selector: str) -> Any:
        assert namespace == NAMESPACE and f"app.kubernetes.io/instance={RELEASE}" in label_selector
        name = label_selector.split("app.kubernetes.io/name=")[1].split(",")[0]
        ready = NS(type="Ready", status="True")
        return NS(
            items=[NS(metadata=NS(name=f"{RELEASE}-{name}-abc"), status=NS(conditions=[ready]))]
        )

    def connect_get_namespaced_pod_exec(self, *a: Any, **kw: Any) -> None:
        raise AssertionError("called through kubernetes.stream.stream only")


class FakeApps:
    def list_namespaced_deployment(self, namespace: str, label_selector: str) -> Any:
        assert namespace == NAMESPACE
        assert label_selector == (
            f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/part-of=qlp"
        )
        return NS(
            items=[
                NS(
                    metadata=NS(name=f"{RELEASE}-{n}", labels=_labels(n, c)),
                    status=NS(ready_replicas=r),
                    spec=NS(replicas=2),
                )
                for n, c, r in (
                    ("gateway", "gateway", 2),
                    ("billing", "service", 1),
                    ("kafka-ui", "tooling", 1),  # not a QLP service: ignored
                )
            ]
        )

    def list_namespaced_daemon_set(self, namespace: str, label_selector: str) -> Any:
        return NS(items=[])


def target(answers: dict[str, tuple[int, Any]], **kw: Any) -> tuple[ClusterTarget, FakeCore]:
    core = FakeCore(answers, **kw)
    t = ClusterTarget(NAMESPACE, RELEASE)
    t._api = NS(core=core, apps=FakeApps())
    return t, core


def proxy(service: str, path: str) -> str:
    return f"/api/v1/namespaces/{NAMESPACE}/services/{RELEASE}-{service}:http/proxy{path}"


def test_requests_go_through_the_service_proxy_signed_for_the_services_path() -> None:
    t, core = target({proxy("identity", "/internal/v1/signing-keys/rotate"): (200, {"kid": "k1"})})
    resp = t.request(
        "identity", "POST", "/internal/v1/signing-keys/rotate", params={"immediate": "true"}
    )
    assert resp.ok() and resp.body == {"kid": "k1"}
    (call,) = core.api_client.calls
    assert call["method"] == "POST" and call["query_params"] == [("immediate", "true")]
    assert call["auth_settings"] == ["BearerToken"]
    # the service behind the proxy sees /internal/v1/...?immediate=true: the signature binds it
    who = verify_principal(
        call["header_params"],
        SECRET,
        method="POST",
        target="/internal/v1/signing-keys/rotate?immediate=true",
    )
    assert who.kind == "service" and "platform_admin" in who.roles
    with pytest.raises(Exception):  # noqa: B017 (any verification error)
        verify_principal(call["header_params"], SECRET, method="POST", target="/internal/v1/other")


def test_service_errors_come_back_as_responses() -> None:
    t, _ = target({proxy("billing", "/v1/billing/admin/ledger/check"): (403, {"detail": "no"})})
    resp = t.request("billing", "GET", "/v1/billing/admin/ledger/check")
    assert resp.status == 403 and resp.body == {"detail": "no"}


def test_services_are_the_releases_deployments() -> None:
    t, _ = target({})
    services = t.services()
    assert set(services) == {"gateway", "billing"}
    assert (services["billing"].ready, services["billing"].desired) == (1, 2)


def test_a_missing_secret_is_a_clear_error() -> None:
    t, _ = target({}, secret=None)
    with pytest.raises(CtlError, match="cannot read Secret qlp-prod/blue-platform-secrets"):
        t.request("billing", "GET", "/v1/billing/admin/ledger/check")


@pytest.fixture
def cli_against(monkeypatch: pytest.MonkeyPatch) -> Any:
    def make(answers: dict[str, tuple[int, Any]]) -> tuple[CliRunner, FakeCore]:
        t, core = target(answers)
        monkeypatch.setattr(cli, "TARGET_FACTORY", lambda **kw: t)
        return CliRunner(), core

    return make


def test_cli_ledger_check_exits_1_on_a_problem(cli_against: Any) -> None:
    path = proxy("billing", "/v1/billing/admin/ledger/check")
    runner, _ = cli_against({path: (200, {"ok": False, "unbalanced": ["txn_1"]})})
    result = runner.invoke(cli.app, ["--cluster", "-o", "json", "ledger", "check"])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["unbalanced"] == ["txn_1"]


def test_cli_drain_acts_as_the_providers_org_with_the_agent_scope(cli_against: Any) -> None:
    path = proxy("scheduler", "/v1/providers/prv_1/drain")
    runner, core = cli_against({path: (200, {"id": "prv_1", "status": "draining"})})
    result = runner.invoke(
        cli.app, ["--cluster", "-o", "json", "providers", "drain", "prv_1", "--org", "org_p"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "draining"
    who = verify_principal(
        core.api_client.calls[0]["header_params"],
        SECRET,
        method="POST",
        target="/v1/providers/prv_1/drain",
    )
    assert (who.org_id, who.kind, who.scopes) == ("org_p", "api_key", ["provider:agent"])


def test_cli_drain_reports_a_refusal(cli_against: Any) -> None:
    runner, _ = cli_against({})
    result = runner.invoke(cli.app, ["--cluster", "providers", "drain", "prv_x", "--org", "o"])
    assert result.exit_code == 1 and "HTTP 404" in result.output


@pytest.mark.integration
def test_probes_run_in_a_service_pod_through_exec(
    qlp_infra: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``dlq list`` on a cluster: the exact exec command, run as the pod would run it."""
    from qlp_kit.consumer import DLQ_TOPIC
    from qlp_kit.producer import Producer, Record

    group = f"billing.ctl{uuid.uuid4().hex[:6]}"

    async def seed() -> None:
        p = Producer(qlp_infra.kafka, client_id="ctl-cluster-test")
        await p.start()
        try:
            await p.send_many(
                [Record(f"qlp.dlq.{group}", "k", b"{}", {DLQ_TOPIC: "qlp.x.v1", "ce_id": "evt_9"})]
            )
        finally:
            await p.stop()

    import asyncio

    asyncio.run(seed())
    seen: list[dict[str, Any]] = []

    def fake_stream(func: Any, pod: str, namespace: str, **kw: Any) -> str:
        seen.append({"func": func.__name__, "pod": pod, "namespace": namespace, **kw})
        env = {  # what a billing pod has from its ConfigMap
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": qlp_infra.kafka,
            "MONGODB_URL": qlp_infra.mongodb_url,
        }
        cmd = kw["command"]
        assert cmd[:2] == ["python", "-c"]
        done = subprocess.run(
            [sys.executable, *cmd[1:]], env=env, capture_output=True, text=True, timeout=120
        )
        return done.stdout + done.stderr

    monkeypatch.setattr("kubernetes.stream.stream", fake_stream)
    t, _ = target({})
    monkeypatch.setattr(cli, "TARGET_FACTORY", lambda **kw: t)
    result = CliRunner().invoke(cli.app, ["--cluster", "-o", "json", "dlq", "list", group])
    assert result.exit_code == 0, result.output
    assert [d["event_id"] for d in json.loads(result.stdout)] == ["evt_9"]
    (call,) = seen
    assert call["func"] == "connect_get_namespaced_pod_exec"
    assert (call["pod"], call["namespace"], call["container"]) == (
        f"{RELEASE}-billing-abc",
        NAMESPACE,
        "billing",
    )
    assert call["stdin"] is False and call["tty"] is False


def test_cli_status_on_a_cluster(cli_against: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    ready = {"checks": {"started": True, "mongodb": True, "kafka": True}}
    asyncapi = {
        "channels": {
            "billing.metering": {
                "address": "qlp.usage.v1",
                "messages": {"SubscribeMessage": {}},
            },
            "billing publishes qlp.billing.events.v1": {
                "address": "qlp.billing.events.v1",
                "messages": {"Message": {}},
            },
        }
    }
    runner, _ = cli_against(
        {
            proxy("gateway", "/readyz"): (200, ready),
            proxy("billing", "/readyz"): (503, {"checks": {**ready["checks"], "kafka": False}}),
            proxy("billing", "/asyncapi.json"): (200, asyncapi),
            proxy("gateway", "/asyncapi.json"): (200, {"channels": {}}),
        }
    )
    probed: list[tuple[str, str, dict[str, Any]]] = []

    def fake_probe(function: str, *, service: str, **kwargs: Any) -> Any:
        probed.append((function, service, kwargs))
        if function == "consumer_lag":
            return [{"group": "billing.metering", "topic": "qlp.usage.v1", "lag": 7}]
        return [
            {
                "group": "billing.metering",
                "topic": "qlp.dlq.billing.metering",
                "records": 2,
                "not_replayed": 1,
            }
        ]

    t = cli.TARGET_FACTORY()
    monkeypatch.setattr(t, "probe", fake_probe)
    result = runner.invoke(cli.app, ["--cluster", "-o", "json", "status"])
    # billing is 1/2 ready and its /readyz says kafka: false
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["target"] == "cluster" and data["healthy"] is False
    by_name = {s["name"]: s for s in data["services"]}
    assert by_name["billing"]["readyz"] is False and by_name["billing"]["checks"]["kafka"] is False
    assert by_name["gateway"]["readyz"] is True
    assert data["consumer_lag"] == [
        {"group": "billing.metering", "topic": "qlp.usage.v1", "lag": 7}
    ]
    assert data["dlq"][0]["not_replayed"] == 1
    # lag is computed in a billing pod, for billing's own groups and topics
    assert (
        "consumer_lag",
        "billing",
        {"groups": ["billing.metering"], "topics_of": {"billing.metering": ["qlp.usage.v1"]}},
    ) in probed


def test_cli_admins_grant_goes_to_identity_as_the_platform_service(cli_against: Any) -> None:
    path = proxy("identity", "/internal/v1/platform-admins/ops@example.com")
    answer = {"id": "usr_1", "email": "ops@example.com", "platform_admin": True, "changed": True}
    runner, core = cli_against({path: (200, answer)})
    result = runner.invoke(cli.app, ["--cluster", "admins", "grant", " ops@example.com "])
    assert result.exit_code == 0, result.output
    assert "is a platform admin" in result.output and "sign out and in again" in result.output
    call = core.api_client.calls[0]
    who = verify_principal(
        call["header_params"],
        SECRET,
        method="PUT",
        target="/internal/v1/platform-admins/ops@example.com",
    )
    assert who.kind == "service" and "platform_admin" in who.roles


def test_cli_admins_revoke_of_an_unknown_user_exits_1(cli_against: Any) -> None:
    runner, _ = cli_against({})
    result = runner.invoke(cli.app, ["--cluster", "admins", "revoke", "nobody@example.com"])
    assert result.exit_code == 1 and "HTTP 404" in result.output
