"""Kubernetes backend: a provider registered with ``backend: kubernetes`` is a GPU node
pool; its assignments become batch/v1 Jobs with ``nvidia.com/gpu`` limits instead of
work for an agent.

Only the boundary is exercised in tests (the V1Job object is built and asserted on;
a fake BatchV1Api records calls). It was never run against a live cluster.

- ``build_gpu_job``: pure; the Job for one (job, epoch) lease.
- ``KubernetesLauncher``: create (409 already exists = done) and delete (404 = done)
  through a ``BatchV1Api``-like client; its calls are blocking, so they run in a thread.
- ``status_of``: a Job's state as an agent status report (``running``,
  ``completed``, ``failed``) or None while it is pending.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any, Protocol

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

GPU_RESOURCE = "nvidia.com/gpu"
MANAGED_BY = "qlp-scheduler"
_DNS = re.compile(r"[^a-z0-9-]+")


class BatchApi(Protocol):
    """The part of ``kubernetes.client.BatchV1Api`` the launcher uses."""

    def create_namespaced_job(self, namespace: str, body: Any, **kw: Any) -> Any: ...

    def delete_namespaced_job(self, name: str, namespace: str, **kw: Any) -> Any: ...

    def read_namespaced_job_status(self, name: str, namespace: str, **kw: Any) -> Any: ...


def job_name(job_id: str, epoch: int) -> str:
    """A DNS-1123 name (lower case, digits, '-', at most 63 chars) per lease."""
    base = _DNS.sub("-", f"qlp-{job_id}".lower()).strip("-")
    return f"{base[:54]}-e{epoch}"


def build_gpu_job(
    assignment: dict[str, Any],
    *,
    namespace: str,
    image: str,
    node_selector: dict[str, str] | None = None,
    ttl_after_finished_s: int = 3600,
) -> k8s.V1Job:
    """The batch/v1 Job that runs one assignment (action ``start``) on the node pool."""
    job_id = str(assignment["job_id"])
    epoch = int(assignment["epoch"])
    gpus = max(1, len(assignment.get("gpu_uuids") or []))
    labels = {
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/component": "gpu-job",
        "qlp.dev/job-id": job_id.replace("_", "-"),
        "qlp.dev/epoch": str(epoch),
        "qlp.dev/provider-id": str(assignment["provider_id"]).replace("_", "-"),
    }
    env = [
        k8s.V1EnvVar(name=k, value=str(v)) for k, v in sorted((assignment.get("env") or {}).items())
    ]
    env += [
        k8s.V1EnvVar(name="QLP_JOB_ID", value=job_id),
        k8s.V1EnvVar(name="QLP_EPOCH", value=str(epoch)),
        k8s.V1EnvVar(name="QLP_CHECKPOINT_DIR", value="/work/checkpoints"),
        k8s.V1EnvVar(name="QLP_RESUME", value="1" if assignment.get("resume") else "0"),
    ]
    limit = {GPU_RESOURCE: str(gpus)}
    container = k8s.V1Container(
        name="workload",
        image=image,
        command=list(assignment["command"]),
        env=env,
        resources=k8s.V1ResourceRequirements(limits=dict(limit), requests=dict(limit)),
        security_context=k8s.V1SecurityContext(
            allow_privilege_escalation=False,
            run_as_non_root=True,
            capabilities=k8s.V1Capabilities(drop=["ALL"]),
        ),
        volume_mounts=[k8s.V1VolumeMount(name="work", mount_path="/work")],
    )
    pod = k8s.V1PodSpec(
        restart_policy="Never",
        containers=[container],
        node_selector=dict(node_selector or {}) or None,
        tolerations=[k8s.V1Toleration(key=GPU_RESOURCE, operator="Exists", effect="NoSchedule")],
        volumes=[k8s.V1Volume(name="work", empty_dir=k8s.V1EmptyDirVolumeSource())],
        automount_service_account_token=False,
    )
    max_duration = int(assignment.get("max_duration_s") or 0)
    return k8s.V1Job(
        api_version="batch/v1",
        kind="Job",
        metadata=k8s.V1ObjectMeta(name=job_name(job_id, epoch), namespace=namespace, labels=labels),
        spec=k8s.V1JobSpec(
            backoff_limit=0,
            active_deadline_seconds=max_duration or None,
            ttl_seconds_after_finished=ttl_after_finished_s,
            template=k8s.V1PodTemplateSpec(metadata=k8s.V1ObjectMeta(labels=labels), spec=pod),
        ),
    )


def status_of(job: Any) -> tuple[str, str] | None:
    """(agent status, message) of a V1Job, or None while nothing runs yet."""
    st = getattr(job, "status", None)
    if st is None:
        return None
    if (st.succeeded or 0) >= 1:
        return "completed", "kubernetes job succeeded"
    if (st.failed or 0) >= 1:
        reasons = [c.reason or c.message or "" for c in (st.conditions or []) if c.type == "Failed"]
        return "failed", "kubernetes job failed" + (
            f": {reasons[0]}" if reasons and reasons[0] else ""
        )
    if (st.active or 0) >= 1:
        return "running", ""
    return None


class KubernetesLauncher:
    def __init__(self, api: BatchApi, namespace: str, default_image: str) -> None:
        self.api = api
        self.namespace = namespace
        self.default_image = default_image

    def _ns(self, provider: dict[str, Any]) -> str:
        return str((provider.get("kubernetes") or {}).get("namespace") or self.namespace)

    async def start(self, assignment: dict[str, Any], provider: dict[str, Any]) -> str:
        cfg = provider.get("kubernetes") or {}
        body = build_gpu_job(
            assignment,
            namespace=self._ns(provider),
            image=str(assignment.get("image") or cfg.get("image") or self.default_image),
            node_selector=dict(cfg.get("node_selector") or {}),
        )
        try:
            await asyncio.to_thread(self.api.create_namespaced_job, self._ns(provider), body)
        except ApiException as exc:
            if exc.status != 409:  # already created for this lease: done
                raise
        return job_name(str(assignment["job_id"]), int(assignment["epoch"]))

    async def cancel(self, job_id: str, epoch: int, provider: dict[str, Any]) -> None:
        try:
            await asyncio.to_thread(
                self.api.delete_namespaced_job,
                job_name(job_id, epoch),
                self._ns(provider),
                propagation_policy="Background",
            )
        except ApiException as exc:
            if exc.status != 404:
                raise

    async def status(
        self, job_id: str, epoch: int, provider: dict[str, Any]
    ) -> tuple[str, str] | None:
        try:
            job = await asyncio.to_thread(
                self.api.read_namespaced_job_status, job_name(job_id, epoch), self._ns(provider)
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return status_of(job)


def in_cluster_api() -> BatchApi:  # pragma: no cover - needs a cluster
    from kubernetes import config

    config.load_incluster_config()  # type: ignore[no-untyped-call]
    api: Any = k8s.BatchV1Api()
    batch: BatchApi = api
    return batch
