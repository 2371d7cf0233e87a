"""Use cases against the real database without HTTP: compensation of a half hot-standby
placement, drain, no-capacity timeout, max-duration timeout, effects left pending by
a crash (reconciler), orphan claims (sweeper), the Kubernetes backend (fake API)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from kubernetes.client import V1JobStatus
from scheduler_testlib import FakeBatchV1Api, provider_body

from qlp_kit.auth import Principal
from qlp_kit.ids import new_id
from qlp_kit.mongo import utcnow
from qlp_scheduler import service as S
from qlp_scheduler.engine import Scheduler
from qlp_scheduler.k8s import KubernetesLauncher, job_name
from qlp_scheduler.repository import INDEXES, Repository
from qlp_scheduler.settings import SchedulerSettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _spec(**over: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "gpu_count": 1,
        "gpu_model": "H100",
        "min_gpu_memory_gb": 0.0,
        "max_price_minor": 300,
        "currency": "USD",
        "region": "eu-west",
        "region_strict": False,
        "command": ["python", "train.py"],
        "env": {},
        "checkpoint_interval_s": 5,
        "redundancy": "none",
        "max_duration_s": 600,
        # these jobs may wait for machines that appear later (not refused with 422)
        "wait_for_capacity": True,
    }
    spec.update(over)
    return spec


@pytest.fixture
async def sched(mongo_db: Any, qlp_infra: Any) -> Scheduler:
    for spec in INDEXES:
        await mongo_db[spec.collection].create_index(list(spec.keys), **spec.kwargs())
    settings = SchedulerSettings(
        kafka_bootstrap_servers=qlp_infra.kafka,
        mongodb_url=qlp_infra.mongodb_url,
        escrow_required=False,
        placement_timeout_s=3600,
        reconcile_interval_s=0,
    )
    return Scheduler(Repository(mongo_db), settings)


CONSUMER = Principal(org_id="org_consumer", subject="key_c", kind="api_key", scopes=["gpu:jobs"])


async def _provider(sched: Scheduler, fp: str, gpus: int = 1) -> dict[str, Any]:
    doc, created = await sched.register_provider(new_id("org"), provider_body(fp, gpus=gpus))
    assert created
    return doc


async def test_half_hot_standby_is_compensated_and_waits(sched: Scheduler) -> None:
    only = await _provider(sched, "solo", gpus=2)
    job = await sched.submit_job(CONSUMER, _spec(redundancy="hot_standby"))
    assert job["status"] == S.ESCROW_HELD and job["primary"] is None
    prov = await sched.repo.get_provider(only["_id"])
    assert prov is not None and prov["available_gpus"] == 2 and not prov["claims"]
    # a second machine appears: the retry places primary and standby on different machines
    other = await _provider(sched, "second")
    placed = await sched.place_job(job["_id"])
    assert placed["status"] == S.PLACED
    machines = {placed["primary"]["machine_id"], placed["standby"]["machine_id"]}
    assert machines == {only["machine_id"], other["machine_id"]}


async def test_drain_withdraws_the_offer(sched: Scheduler) -> None:
    p = await _provider(sched, "drainme")
    drained = await sched.drain(p["org_id"], p["_id"])
    assert drained["status"] == S.DRAINING
    job = await sched.submit_job(CONSUMER, _spec())
    assert job["status"] == S.ESCROW_HELD
    assert (await sched.drain(p["org_id"], p["_id"]))["status"] == S.DRAINING  # idempotent


async def test_no_capacity_fails_after_the_timeout(sched: Scheduler) -> None:
    sched.settings = sched.settings.model_copy(update={"placement_timeout_s": 0})
    job = await sched.submit_job(CONSUMER, _spec(gpu_model="B200"))
    assert job["status"] == S.FAILED and job["failure"]["reason"] == "no_capacity"


async def test_overdue_job_fails_with_timeout_and_frees_gpus(sched: Scheduler) -> None:
    p = await _provider(sched, "slow")
    job = await sched.submit_job(CONSUMER, _spec(max_duration_s=1))
    assert job["status"] == S.PLACED
    await sched.report_status(p["org_id"], p["_id"], job["_id"], {"epoch": 1, "status": "running"})
    await asyncio.sleep(1.3)
    assert await sched.expire_overdue() == 1
    done = await sched.repo.get_job(job["_id"])
    assert done is not None and done["status"] == S.FAILED
    assert done["failure"]["reason"] == "timeout" and done["usage"][p["_id"]]["gpu_seconds"] > 1
    prov = await sched.repo.get_provider(p["_id"])
    assert prov is not None and prov["available_gpus"] == 1
    actions = [a["action"] for a in await sched.repo.pending_assignments(p["_id"])]
    assert "cancel" in actions


async def test_reconciler_applies_effects_a_crash_left_pending(
    sched: Scheduler, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = await _provider(sched, "crashy")

    async def crash(job: dict[str, Any]) -> dict[str, Any]:
        return job  # the process died right after the job's write

    monkeypatch.setattr(sched, "apply_effects", crash)
    job = await sched.submit_job(CONSUMER, _spec())
    assert job["status"] == S.PLACED and job["fx_pending"] == 1
    assert await sched.repo.pending_assignments(p["_id"]) == []
    monkeypatch.undo()
    assert await sched.reconcile() == 1
    (start,) = await sched.repo.pending_assignments(p["_id"])
    assert start["action"] == "start" and start["job_id"] == job["_id"]
    again = await sched.repo.get_job(job["_id"])
    assert again is not None and not again["fx_pending"]
    assert await sched.reconcile() == 0


async def test_orphan_claims_are_swept(sched: Scheduler) -> None:
    p = await _provider(sched, "orphan", gpus=2)
    job = await sched.submit_job(CONSUMER, _spec())
    assert job["status"] == S.PLACED
    uuid = next(
        u for u, o in (await sched.repo.get_provider(p["_id"]) or {})["gpu_owner"].items() if not o
    )
    assert await sched.repo.claim(p["_id"], "job_ghost", "primary", [uuid], utcnow())
    assert await sched.sweep_orphan_claims(grace_s=0) == 1
    prov = await sched.repo.get_provider(p["_id"])
    assert prov is not None and prov["available_gpus"] == 1  # the real job keeps its GPU
    assert set(prov["claims"]) == {job["_id"]}
    assert await sched.sweep_orphan_claims(grace_s=0) == 0


async def test_kubernetes_provider_runs_jobs_as_batch_jobs(sched: Scheduler) -> None:
    """A node-pool provider: assignments become batch/v1 Jobs on a FAKE BatchV1Api,
    their states come back as status reports under the epoch."""
    fake = FakeBatchV1Api()
    sched.k8s = KubernetesLauncher(fake, "qlp-jobs", "python:3.11-slim")
    body = provider_body("pool-1", gpus=4)
    body["backend"] = "kubernetes"
    body["kubernetes"] = {"namespace": "gpu-pool", "image": "img:1", "node_selector": {}}
    pool, _ = await sched.register_provider(new_id("org"), body)
    job = await sched.submit_job(CONSUMER, _spec(gpu_count=2))
    assert job["status"] == S.PLACED and job["primary"]["provider_id"] == pool["_id"]
    name = job_name(job["_id"], 1)
    created = fake.jobs[("gpu-pool", name)]
    limits = created.spec.template.spec.containers[0].resources.limits
    assert limits == {"nvidia.com/gpu": "2"}
    assert await sched.repo.pending_assignments(pool["_id"]) == []  # dispatched, acked

    created.status = V1JobStatus(active=1)
    assert await sched.sync_k8s_status() == 1
    assert (await sched.repo.get_job(job["_id"]) or {})["status"] == S.RUNNING
    created.status = V1JobStatus(succeeded=1)
    assert await sched.sync_k8s_status() == 1
    done = await sched.repo.get_job(job["_id"])
    assert done is not None and done["status"] == S.COMPLETED
    prov = await sched.repo.get_provider(pool["_id"])
    assert prov is not None and prov["available_gpus"] == 4

    other = await sched.submit_job(CONSUMER, _spec())
    assert ("gpu-pool", job_name(other["_id"], 1)) in fake.jobs
    await sched.cancel_job(CONSUMER, other["_id"], "no longer needed")
    assert ("gpu-pool", job_name(other["_id"], 1)) not in fake.jobs
    assert ("delete", "gpu-pool", job_name(other["_id"], 1)) in fake.calls


async def test_hold_arriving_after_cancel_is_released_once(sched: Scheduler) -> None:
    sched.settings = sched.settings.model_copy(update={"escrow_required": True})
    job = await sched.submit_job(CONSUMER, _spec())
    assert job["status"] == S.SUBMITTED
    canceled = await sched.cancel_job(CONSUMER, job["_id"], "too slow")
    assert canceled["status"] == S.CANCELED
    pending = len((await sched.repo.get_job(job["_id"]) or {}).get("_outbox") or {})
    assert await sched.on_escrow_held(CONSUMER.org_id, job["_id"], job["escrow_id"]) is None
    after = await sched.repo.get_job(job["_id"])
    assert after is not None and after["status"] == S.CANCELED and after["late_hold_notified"]
    assert len(after.get("_outbox") or {}) == pending + 1  # one more JobCanceled for billing
    await sched.on_escrow_held(CONSUMER.org_id, job["_id"], job["escrow_id"])  # redelivery
    again = await sched.repo.get_job(job["_id"])
    assert again is not None and len(again.get("_outbox") or {}) == pending + 1


async def test_checkpoints_keep_the_newest_three(sched: Scheduler, mongo_db: Any) -> None:
    p = await _provider(sched, "ckpt")
    job = await sched.submit_job(CONSUMER, _spec())
    await sched.report_status(p["org_id"], p["_id"], job["_id"], {"epoch": 1, "status": "running"})
    for step in range(1, 6):
        await sched.put_checkpoint(p["org_id"], p["_id"], job["_id"], 1, step * 10, b"x" * step)
    files = [f async for f in mongo_db["checkpoints.files"].find({"metadata.job_id": job["_id"]})]
    assert sorted(f["metadata"]["step"] for f in files) == [30, 40, 50]
    latest = await sched.latest_checkpoint(p["org_id"], p["_id"], job["_id"], 1)
    assert latest.step == 50 and latest.data == b"x" * 5
