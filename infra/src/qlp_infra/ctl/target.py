"""Where qlpctl's commands go: a local ``make up`` platform or a Kubernetes release.

Both targets offer the same three things, so every command is written once:

- ``services()``: name -> what runs (pods ready / desired, or the local process),
- ``request(service, method, path, ...)``: an HTTP call to one service, signed as a
  platform service principal with the platform's internal secret,
- ``probe(function, service=..., **kwargs)``: one function of :mod:`.probes`, run
  where the broker and the database are reachable.

Locally the services' URLs, the broker and the database come from the runtime
state (``.qlp/state.json``) and the secret from ``.qlp/internal-auth-secret``. On a
cluster (the kubeconfig's context): Deployments and DaemonSets labelled with the
release, HTTP through the API server's service proxy, the secret from
``<release>-platform-secrets``, probes through ``pods/exec`` in a service pod.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlencode

import httpx

from qlp_infra.ctl import probes
from qlp_kit.auth import Principal, request_target, sign_principal

RESULT_MARK = "QLPCTL-RESULT "
#: The organisation qlpctl names when a call is not about one.
PLATFORM_ORG = "org_platform"


class CtlError(Exception):
    """A failure to report to the operator (exit 1), not a bug."""


@dataclass
class Response:
    status: int
    body: Any

    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass
class ServiceInfo:
    name: str
    ready: int
    desired: int
    detail: str = ""


def operator_principal(org_id: str, scopes: list[str] | None = None) -> Principal:
    """The principal qlpctl acts as. Without scopes: a platform service with the
    admin role (internal and admin endpoints). With scopes: an API key of ``org_id``
    limited to them (an organisation's own endpoints, e.g. a provider's drain)."""
    if scopes:
        return Principal(org_id=org_id, subject="key_qlpctl", kind="api_key", scopes=scopes)
    return Principal(org_id=org_id, subject="svc_qlpctl", kind="service", roles=["platform_admin"])


def signed_headers(
    secret: str, principal: Principal, method: str, path: str, query: str
) -> dict[str, str]:
    return sign_principal(principal, secret, method=method, target=request_target(path, query))


class Target(Protocol):
    where: str

    def services(self) -> dict[str, ServiceInfo]: ...

    def request(
        self,
        service: str,
        method: str,
        path: str,
        *,
        principal: Principal | None = None,
        params: dict[str, Any] | None = None,
        body: Any = None,
    ) -> Response: ...

    def probe(self, function: str, *, service: str, **kwargs: Any) -> Any: ...


# --------------------------------------------------------------------- local --


@dataclass
class LocalTarget:
    """The platform ``make up`` runs (``qlp up``), found through its state file."""

    state_dir: Path | None = None
    timeout_s: float = 30.0
    where: str = "local"

    def _base(self) -> Path:
        from qlp_infra import runtime

        return self.state_dir or runtime.state_dir()

    def _state(self) -> Any:
        from qlp_infra.runtime import State, _alive

        path = self._base() / "state.json"
        try:
            st = State(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            st = None
        if st is None or not _alive(st.supervisor_pid):
            raise CtlError(f"the local platform is not running ({path}): start it with `make up`")
        return st

    def _secret(self) -> str:
        if os.environ.get("QLP_INTERNAL_AUTH_SECRET"):
            return os.environ["QLP_INTERNAL_AUTH_SECRET"]
        path = self._base() / "internal-auth-secret"
        if not path.is_file():
            raise CtlError(f"no internal auth secret at {path} (set QLP_INTERNAL_AUTH_SECRET)")
        return path.read_text().strip()

    def services(self) -> dict[str, ServiceInfo]:
        st = self._state()
        from qlp_infra.runtime import _alive

        out = {}
        for name, info in st.services.items():
            alive = _alive(int(info["pid"]))
            out[name] = ServiceInfo(name, int(alive), 1, f"pid {info['pid']} {info['url']}")
        return out

    def request(
        self,
        service: str,
        method: str,
        path: str,
        *,
        principal: Principal | None = None,
        params: dict[str, Any] | None = None,
        body: Any = None,
    ) -> Response:
        st = self._state()
        if service not in st.services:
            raise CtlError(f"{service} is not running locally (running: {sorted(st.services)})")
        query = urlencode(params or {})
        headers = signed_headers(
            self._secret(), principal or operator_principal(PLATFORM_ORG), method, path, query
        )
        url = f"{st.services[service]['url']}{path}" + (f"?{query}" if query else "")
        try:
            r = httpx.request(method, url, headers=headers, json=body, timeout=self.timeout_s)
        except httpx.HTTPError as exc:
            raise CtlError(f"{service}: {exc}") from exc
        return Response(r.status_code, _json_or_text(r.text))

    def probe(self, function: str, *, service: str, **kwargs: Any) -> Any:
        st = self._state()
        func: Callable[..., Any] = getattr(probes, function)
        params = inspect.signature(func).parameters
        if "bootstrap" in params:
            kwargs.setdefault("bootstrap", st.kafka)
        if "mongodb_url" in params:
            kwargs.setdefault("mongodb_url", st.mongodb)
        return asyncio.run(func(**kwargs))


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


# ------------------------------------------------------------------- cluster --


@dataclass
class ClusterTarget:
    """A Helm release of charts/platform, reached through the kubeconfig's API server."""

    namespace: str = "qlp"
    release: str = "qlp"
    kubeconfig: str | None = None
    context: str | None = None
    timeout_s: float = 30.0
    where: str = "cluster"
    _api: Any = field(default=None, repr=False)

    # the kubernetes client is created lazily, and tests hand in a fake one
    def api(self) -> Any:
        if self._api is None:
            from kubernetes import client, config

            try:
                config.load_kube_config(  # type: ignore[no-untyped-call]
                    config_file=self.kubeconfig, context=self.context
                )
            except Exception as exc:
                raise CtlError(f"no usable kubeconfig: {exc}") from exc
            self._api = _KubeApis(client.CoreV1Api(), client.AppsV1Api())
        return self._api

    def _selector(self) -> str:
        return f"app.kubernetes.io/instance={self.release},app.kubernetes.io/part-of=qlp"

    def services(self) -> dict[str, ServiceInfo]:
        api = self.api()
        out = {}
        for d in api.apps.list_namespaced_deployment(
            self.namespace, label_selector=self._selector()
        ).items:
            name = d.metadata.labels.get("app.kubernetes.io/name", d.metadata.name)
            if d.metadata.labels.get("app.kubernetes.io/component") not in {"gateway", "service"}:
                continue
            out[name] = ServiceInfo(
                name,
                d.status.ready_replicas or 0,
                d.spec.replicas or 0,
                f"deploy/{d.metadata.name}",
            )
        for ds in api.apps.list_namespaced_daemon_set(
            self.namespace, label_selector=self._selector()
        ).items:
            name = ds.metadata.labels.get("app.kubernetes.io/name", ds.metadata.name)
            out[name] = ServiceInfo(
                name,
                ds.status.number_ready or 0,
                ds.status.desired_number_scheduled or 0,
                f"ds/{ds.metadata.name}",
            )
        return out

    def _secret(self) -> str:
        name = f"{self.release}-platform-secrets"
        try:
            secret = self.api().core.read_namespaced_secret(name, self.namespace)
        except Exception as exc:
            raise CtlError(f"cannot read Secret {self.namespace}/{name}: {exc}") from exc
        value = (secret.data or {}).get("QLP_INTERNAL_AUTH_SECRET")
        if not value:
            raise CtlError(f"Secret {name} has no QLP_INTERNAL_AUTH_SECRET")
        return base64.b64decode(value).decode()

    def request(
        self,
        service: str,
        method: str,
        path: str,
        *,
        principal: Principal | None = None,
        params: dict[str, Any] | None = None,
        body: Any = None,
    ) -> Response:
        """Through ``/api/v1/namespaces/<ns>/services/<release>-<service>:http/proxy``:
        the service sees ``path`` exactly, which is what the signature binds."""
        query = urlencode(params or {})
        headers = signed_headers(
            self._secret(), principal or operator_principal(PLATFORM_ORG), method, path, query
        )
        headers["Content-Type"] = "application/json"
        proxy = (
            f"/api/v1/namespaces/{self.namespace}/services/"
            f"{self.release}-{service}:http/proxy{path}"
        )
        core = self.api().core
        try:
            data, status, _ = core.api_client.call_api(
                proxy,
                method,
                query_params=list((params or {}).items()),
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _return_http_data_only=False,
                _request_timeout=self.timeout_s,
            )
        except Exception as exc:  # ApiException carries the service's answer
            status = getattr(exc, "status", None)
            if status is None:
                raise CtlError(f"{service}: {exc}") from exc
            return Response(int(status), _json_or_text(getattr(exc, "body", "") or ""))
        return Response(int(status), _json_or_text(data.data.decode()))

    def _pod(self, service: str) -> str:
        pods = (
            self.api()
            .core.list_namespaced_pod(
                self.namespace,
                label_selector=f"app.kubernetes.io/name={service},app.kubernetes.io/instance={self.release}",
                field_selector="status.phase=Running",
            )
            .items
        )
        ready = [
            p
            for p in pods
            if any(c.type == "Ready" and c.status == "True" for c in (p.status.conditions or []))
        ]
        if not ready:
            raise CtlError(f"no ready pod of {service} in {self.namespace}")
        return str(ready[0].metadata.name)

    def probe(self, function: str, *, service: str, **kwargs: Any) -> Any:
        """Run ``probes.<function>`` in a ready pod of ``service`` (its image has the
        kit and the drivers; its environment has the broker and database URLs)."""
        from kubernetes.stream import stream

        source = inspect.getsource(probes)
        pod = self._pod(service)
        command = ["python", "-c", source, function, json.dumps(kwargs)]
        out = stream(
            self.api().core.connect_get_namespaced_pod_exec,
            pod,
            self.namespace,
            container=service,
            command=command,
            stderr=True,
            stdin=False,
            stdout=True,
            tty=False,
        )
        for line in str(out).splitlines():
            if line.startswith(RESULT_MARK):
                return json.loads(line.removeprefix(RESULT_MARK))
        raise CtlError(f"{function} in pod {pod} failed:\n{str(out)[-2000:]}")


@dataclass
class _KubeApis:
    core: Any
    apps: Any
