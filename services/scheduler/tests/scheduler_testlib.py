"""Helpers of the scheduler's tests: signed principals as the gateway would forward
them, and request bodies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from kubernetes.client.exceptions import ApiException
from pymongo import AsyncMongoClient

from qlp_kit.auth import Principal
from qlp_kit.ids import new_id
from qlp_testing.principals import sign_request

SECRET = "scheduler-test-secret"


def agent_principal(org_id: str) -> Principal:
    return Principal(
        org_id=org_id, subject=new_id("key"), kind="api_key", scopes=["provider:agent"]
    )


def consumer_principal(org_id: str) -> Principal:
    return Principal(org_id=org_id, subject=new_id("key"), kind="api_key", scopes=["gpu:jobs"])


class Signed(httpx.Auth):
    """Signs every request with a fresh gateway principal."""

    def __init__(self, principal: Principal) -> None:
        self.principal = principal

    def auth_flow(self, request: httpx.Request) -> Any:
        sign_request(request, SECRET, self.principal)
        yield request


def client(url: str, principal: Principal) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, auth=Signed(principal), timeout=30.0)


def machine(
    fingerprint: str, gpus: int = 2, model: str = "NVIDIA H100 80GB HBM3"
) -> dict[str, Any]:
    return {
        "fingerprint": fingerprint,
        "hostname": f"host-{fingerprint}",
        "cpu_count": 32,
        "ram_gb": 256,
        "disk_gb": 2000,
        "driver_version": "550.54",
        "cuda_version": "12.4",
        "simulated": True,
        "gpus": [
            {"uuid": f"GPU-{fingerprint}-{i}", "index": i, "model": model, "memory_gb": 80}
            for i in range(gpus)
        ],
    }


def provider_body(
    fingerprint: str, price: int = 200, region: str = "eu-west", gpus: int = 2
) -> dict[str, Any]:
    return {
        "name": f"rig {fingerprint}",
        "region": region,
        "price_per_gpu_hour": {"amount": price, "currency": "USD"},
        "machine": machine(fingerprint, gpus),
    }


def job_body(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "gpu_count": 1,
        "gpu_model": "H100",
        "max_price_per_gpu_hour": {"amount": 300, "currency": "USD"},
        "region": "eu-west",
        "command": ["python", "-m", "sample", "--steps", "10"],
        "checkpoint_interval_s": 5,
        "redundancy": "none",
        "max_duration_s": 600,
    }
    body.update(over)
    return body


@dataclass
class App:
    url: str
    db_name: str
    settings: Any
    mongo: AsyncMongoClient[dict[str, Any]]

    @property
    def db(self) -> Any:
        return self.mongo[self.db_name]


class FakeBatchV1Api:
    """A fake of kubernetes.client.BatchV1Api: records calls, keeps jobs in a dict."""

    def __init__(self) -> None:
        self.jobs: dict[tuple[str, str], Any] = {}
        self.calls: list[tuple[str, str, str]] = []

    def create_namespaced_job(self, namespace: str, body: Any, **kw: Any) -> Any:
        name = body.metadata.name
        self.calls.append(("create", namespace, name))
        if (namespace, name) in self.jobs:
            raise ApiException(status=409, reason="AlreadyExists")
        self.jobs[(namespace, name)] = body
        return body

    def delete_namespaced_job(self, name: str, namespace: str, **kw: Any) -> Any:
        self.calls.append(("delete", namespace, name))
        if self.jobs.pop((namespace, name), None) is None:
            raise ApiException(status=404, reason="NotFound")
        return None

    def read_namespaced_job_status(self, name: str, namespace: str, **kw: Any) -> Any:
        if (namespace, name) not in self.jobs:
            raise ApiException(status=404, reason="NotFound")
        return self.jobs[(namespace, name)]


async def event_types_for(
    bootstrap: str, topic: str, subject: str, expect: set[str], timeout: float = 30.0
) -> list[str]:
    """The CloudEvent types published on ``topic`` for ``subject`` (the aggregate id),
    in order, read from the start until every type in ``expect`` was seen."""
    import time

    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not expect <= set(seen):
            batch = await consumer.getmany(timeout_ms=300, max_records=2000)
            for recs in batch.values():
                for r in recs:
                    headers = {k: v.decode() for k, v in r.headers}
                    if headers.get("ce_subject") == subject:
                        seen.append(headers.get("ce_type", ""))
    finally:
        await consumer.stop()
    return seen
