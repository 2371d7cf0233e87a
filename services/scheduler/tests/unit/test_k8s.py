"""The Kubernetes backend at its boundary: the batch/v1 Job built for an assignment,
and the launcher's calls against a FAKE BatchV1Api (no cluster is involved)."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException
from scheduler_testlib import FakeBatchV1Api

from qlp_scheduler.k8s import (
    GPU_RESOURCE,
    KubernetesLauncher,
    build_gpu_job,
    job_name,
    status_of,
)

ASSIGNMENT = {
    "job_id": "job_01m84t57dxdpeftyyadaqd417h",
    "epoch": 2,
    "provider_id": "prv_01m84t56v2x4y7dtfzq06wpf31",
    "command": ["python", "-m", "train", "--steps", "100"],
    "env": {"SEED": "7"},
    "gpu_uuids": ["GPU-a", "GPU-b"],
    "max_duration_s": 900,
    "resume": True,
}
PROVIDER = {
    "_id": "prv_01m84t56v2x4y7dtfzq06wpf31",
    "kubernetes": {
        "namespace": "gpu-pool",
        "image": "ghcr.io/acme/train:1",
        "node_selector": {"nvidia.com/gpu.product": "H100"},
    },
}


def test_gpu_job_object() -> None:
    job = build_gpu_job(
        ASSIGNMENT, namespace="gpu-pool", image="img:1", node_selector={"pool": "h100"}
    )
    d = ApiClient().sanitize_for_serialization(job)
    assert d["apiVersion"] == "batch/v1" and d["kind"] == "Job"
    meta = d["metadata"]
    assert meta["namespace"] == "gpu-pool"
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", meta["name"]) and len(meta["name"]) <= 63
    assert meta["name"] == job_name(ASSIGNMENT["job_id"], 2)
    assert meta["labels"]["qlp.dev/epoch"] == "2"
    spec = d["spec"]
    assert spec["backoffLimit"] == 0 and spec["activeDeadlineSeconds"] == 900
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["nodeSelector"] == {"pool": "h100"}
    assert pod["automountServiceAccountToken"] is False
    (c,) = pod["containers"]
    assert c["command"] == ASSIGNMENT["command"] and c["image"] == "img:1"
    assert c["resources"]["limits"] == {GPU_RESOURCE: "2"}
    assert c["resources"]["requests"] == {GPU_RESOURCE: "2"}
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["SEED"] == "7" and env["QLP_EPOCH"] == "2" and env["QLP_RESUME"] == "1"
    assert env["QLP_JOB_ID"] == ASSIGNMENT["job_id"]
    assert c["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False


def test_job_names_differ_per_epoch_and_stay_short() -> None:
    assert job_name("job_x", 1) != job_name("job_x", 2)
    assert len(job_name("job_" + "a" * 200, 12345)) <= 63


async def test_launcher_create_is_idempotent_and_cancel_tolerates_missing() -> None:
    fake = FakeBatchV1Api()
    launcher = KubernetesLauncher(fake, "default", "python:3.11-slim")
    name = await launcher.start(ASSIGNMENT, PROVIDER)
    assert await launcher.start(ASSIGNMENT, PROVIDER) == name  # 409: already there
    body = fake.jobs[("gpu-pool", name)]
    assert body.spec.template.spec.containers[0].image == "ghcr.io/acme/train:1"
    assert body.spec.template.spec.node_selector == {"nvidia.com/gpu.product": "H100"}
    await launcher.cancel(ASSIGNMENT["job_id"], 2, PROVIDER)
    await launcher.cancel(ASSIGNMENT["job_id"], 2, PROVIDER)  # 404: already gone
    assert [c[0] for c in fake.calls] == ["create", "create", "delete", "delete"]


async def test_a_jobs_own_image_wins_over_the_pool_default() -> None:
    fake = FakeBatchV1Api()
    launcher = KubernetesLauncher(fake, "default", "python:3.11-slim")
    name = await launcher.start({**ASSIGNMENT, "image": "ghcr.io/acme/other:2"}, PROVIDER)
    body = fake.jobs[("gpu-pool", name)]
    assert body.spec.template.spec.containers[0].image == "ghcr.io/acme/other:2"


async def test_launcher_raises_other_api_errors() -> None:
    class Broken(FakeBatchV1Api):
        def create_namespaced_job(self, namespace: str, body: Any, **kw: Any) -> Any:
            raise ApiException(status=403, reason="Forbidden")

    with pytest.raises(ApiException):
        await KubernetesLauncher(Broken(), "default", "img").start(ASSIGNMENT, PROVIDER)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (None, None),
        (SimpleNamespace(succeeded=None, failed=None, active=None, conditions=None), None),
        (SimpleNamespace(succeeded=None, failed=None, active=1, conditions=None), "running"),
        (SimpleNamespace(succeeded=1, failed=None, active=None, conditions=None), "completed"),
        (
            SimpleNamespace(
                succeeded=None,
                failed=1,
                active=None,
                conditions=[SimpleNamespace(type="Failed", reason="DeadlineExceeded", message="")],
            ),
            "failed",
        ),
    ],
)
def test_status_mapping(status: Any, expected: str | None) -> None:
    got = status_of(SimpleNamespace(status=status))
    assert (got[0] if got else None) == expected
    if expected == "failed":
        assert got is not None and "DeadlineExceeded" in got[1]
