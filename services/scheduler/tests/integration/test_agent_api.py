"""The agent API and the consumer API against the real database, service in-process:
register (idempotent), heartbeat, placement with hot standby, assignment long-poll,
status reports, logs, checkpoints, fencing after promote_standby, completion."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from scheduler_testlib import (
    App,
    agent_principal,
    client,
    consumer_principal,
    event_types_for,
    job_body,
    provider_body,
)

from qlp_contracts import topics
from qlp_infra.topics import provision
from qlp_kit.auth import Principal
from qlp_kit.ids import new_id
from qlp_scheduler.engine import Scheduler
from qlp_scheduler.repository import Repository
from qlp_testing.flows import tenant_guard_violations

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def _register(
    url: str, fp: str, price: int = 200, gpus: int = 2
) -> tuple[httpx.AsyncClient, str]:
    c = client(url, agent_principal(new_id("org")))
    r = await c.post("/v1/providers", json=provider_body(fp, price=price, gpus=gpus))
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    r = await c.post(f"/v1/providers/{pid}/heartbeat", json={"gpus": [], "running": []})
    assert r.status_code == 200, r.text
    return c, pid


async def _wait_index(app: App) -> None:
    await asyncio.sleep(app.settings.offer_refresh_s * 2)


async def test_register_is_idempotent_and_tenant_scoped(sched_app: App) -> None:
    org = new_id("org")
    c = client(sched_app.url, agent_principal(org))
    body = provider_body("fp-a")
    r1 = await c.post("/v1/providers", json=body)
    assert r1.status_code == 201, r1.text
    p = r1.json()
    assert p["id"].startswith("prv_") and p["machine_id"] and p["status"] == "active"
    assert p["gpu_count"] == 2 and p["available_gpus"] == 2
    r2 = await c.post("/v1/providers", json=body)
    assert r2.status_code == 200 and r2.json()["id"] == p["id"]
    listed = (await c.get("/v1/providers")).json()
    assert [x["id"] for x in listed["items"]] == [p["id"]]

    other = client(sched_app.url, agent_principal(new_id("org")))
    assert (await other.get(f"/v1/providers/{p['id']}")).status_code == 404
    hb = await other.post(f"/v1/providers/{p['id']}/heartbeat", json={})
    assert hb.status_code == 404
    # a consumer key lacks the provider:agent scope
    cons = client(sched_app.url, consumer_principal(org))
    assert (await cons.get("/v1/providers")).status_code == 403
    # no principal at all
    async with httpx.AsyncClient(base_url=sched_app.url) as anon:
        assert (await anon.get("/v1/providers")).status_code == 401
    bad = provider_body("fp-b")
    bad["machine"]["gpus"][0]["uuid"] = "GPU.with.dots"
    assert (await c.post("/v1/providers", json=bad)).status_code == 422
    for x in (c, other, cons):
        await x.aclose()


async def _submitted_event(bootstrap: str, job_id: str) -> Any:
    """The JobSubmitted event of ``job_id``, decoded, read from the start of the topic."""
    from aiokafka import AIOKafkaConsumer

    from qlp_kit.events import decode_record

    c = AIOKafkaConsumer(
        topics.SCHEDULING.name, bootstrap_servers=bootstrap, auto_offset_reset="earliest"
    )
    await c.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for recs in (await c.getmany(timeout_ms=300, max_records=2000)).values():
                for r in recs:
                    ev = decode_record(r.topic, r.partition, r.offset, r.key, r.value, r.headers)
                    if ev.subject == job_id and ev.type.endswith(".JobSubmitted"):
                        return ev.message
    finally:
        await c.stop()
    raise AssertionError(f"no JobSubmitted for {job_id}")


async def test_image_jobs_go_only_to_providers_with_a_container_engine(
    sched_app: App, qlp_infra: Any
) -> None:
    await provision(qlp_infra.kafka)
    plain, p_plain = await _register(sched_app.url, "fp-plain", price=100)
    c = client(sched_app.url, agent_principal(new_id("org")))
    body = provider_body("fp-box", price=250)
    body["machine"]["container_engine"] = "podman"
    r = await c.post("/v1/providers", json=body)
    assert r.status_code == 201 and r.json()["containers"] is True, r.text
    p_box = r.json()["id"]
    assert (await c.post(f"/v1/providers/{p_box}/heartbeat", json={})).status_code == 200
    bad = provider_body("fp-bad")
    bad["machine"]["container_engine"] = "lxc"
    assert (await c.post("/v1/providers", json=bad)).status_code == 422
    await _wait_index(sched_app)
    cons = client(sched_app.url, consumer_principal(new_id("org")))
    docs = await sched_app.db["providers"].find({"_id": {"$in": [p_plain, p_box]}}).to_list(None)
    assert {d["_id"]: bool(d.get("containers")) for d in docs} == {p_plain: False, p_box: True}

    r = await cons.post("/v1/gpu/jobs", json=job_body(image="ghcr.io/acme/train:1.2"))
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["provider_id"] == p_box and job["image"] == "ghcr.io/acme/train:1.2"
    (start,) = (await c.get(f"/v1/providers/{p_box}/assignments")).json()["items"]
    assert start["image"] == "ghcr.io/acme/train:1.2" and start["command"][0] == "python"
    assert (await _submitted_event(qlp_infra.kafka, job["id"])).image == job["image"]
    # without an image the cheaper plain provider wins, and gets no image
    r = await cons.post("/v1/gpu/jobs", json=job_body())
    assert r.json()["provider_id"] == p_plain and r.json()["image"] is None
    (start,) = (await plain.get(f"/v1/providers/{p_plain}/assignments")).json()["items"]
    assert start["image"] == ""
    for x in (plain, c, cons):
        await x.aclose()


async def test_hot_standby_lifecycle_with_fencing_and_checkpoints(
    sched_app: App, qlp_infra: Any
) -> None:
    await provision(qlp_infra.kafka)
    a, pa = await _register(sched_app.url, "fp-1", price=150)
    b, pb = await _register(sched_app.url, "fp-2", price=180)
    agents = {pa: a, pb: b}
    await _wait_index(sched_app)
    consumer_org = new_id("org")
    cons = client(sched_app.url, consumer_principal(consumer_org))

    r = await cons.post("/v1/gpu/jobs", json=job_body(redundancy="hot_standby"))
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["status"] == "placed", job
    assert job["epoch"] == 1
    primary, standby = job["provider_id"], job["standby_provider_id"]
    assert {primary, standby} == {pa, pb}
    assert primary == pa  # the cheaper one wins
    jid = job["id"]

    # long-poll returns at once when something is there
    t0 = time.monotonic()
    got = (
        await agents[primary].get(f"/v1/providers/{primary}/assignments", params={"wait_s": 10})
    ).json()
    assert time.monotonic() - t0 < 5
    (start,) = got["items"]
    assert start["action"] == "start" and start["role"] == "primary" and start["epoch"] == 1
    assert start["command"][0] == "python" and len(start["gpu_uuids"]) == 1
    assert start["resume"] is False
    sb_items = (await agents[standby].get(f"/v1/providers/{standby}/assignments")).json()["items"]
    assert [(x["action"], x["role"]) for x in sb_items] == [("prepare", "standby")]

    # redelivered until acknowledged by a status report
    again = (await agents[primary].get(f"/v1/providers/{primary}/assignments")).json()["items"]
    assert [x["assignment_id"] for x in again] == [start["assignment_id"]]
    base = f"/v1/providers/{primary}/jobs/{jid}"
    pa_c = agents[primary]
    assert (
        await pa_c.post(f"{base}/status", json={"epoch": 1, "status": "starting"})
    ).status_code == 200
    assert (await pa_c.get(f"/v1/providers/{primary}/assignments")).json()["items"] == []
    r = await pa_c.post(f"{base}/status", json={"epoch": 1, "status": "running", "step": 3})
    assert r.status_code == 200 and r.json()["job_status"] == "running"
    assert (
        await pa_c.post(f"{base}/logs", json={"epoch": 1, "lines": ["step 1", "step 2"]})
    ).status_code == 202

    blob = bytes(range(256)) * 100
    r = await pa_c.post(
        f"{base}/checkpoints",
        params={"epoch": 1, "step": 3},
        content=blob,
        headers={"content-type": "application/octet-stream"},
    )
    assert r.status_code == 201, r.text
    ck = r.json()
    assert ck["step"] == 3 and ck["checkpoint_id"].startswith("ckp_")
    r = await pa_c.get(f"{base}/checkpoints/latest", params={"epoch": 1})
    assert r.status_code == 200 and r.content == blob
    assert r.headers["x-checkpoint-id"] == ck["checkpoint_id"]
    assert r.headers["x-checkpoint-step"] == "3"

    view = (await cons.get(f"/v1/gpu/jobs/{jid}")).json()
    assert view["status"] == "running" and view["step"] == 3
    assert view["latest_checkpoint"]["checkpoint_id"] == ck["checkpoint_id"]
    logs = (await cons.get(f"/v1/gpu/jobs/{jid}/logs")).json()
    assert [x["line"] for x in logs["items"]] == ["step 1", "step 2"]
    metrics = (await cons.get(f"/v1/gpu/jobs/{jid}/metrics")).json()
    assert metrics["epoch"] == 1 and len(metrics["gpus"]) == 1

    # failover: promote the standby -> epoch 2; the old primary is fenced
    sched = Scheduler(Repository(sched_app.db), sched_app.settings)
    promoted = await sched.promote_standby(jid)
    assert promoted["epoch"] == 2 and promoted["primary"]["provider_id"] == standby
    stale = await pa_c.post(f"{base}/status", json={"epoch": 1, "status": "running", "step": 4})
    assert stale.status_code == 409
    assert stale.headers["content-type"].startswith("application/problem+json")
    assert stale.json()["type"].endswith("/stale-epoch")
    stale_ck = await pa_c.post(f"{base}/checkpoints", params={"epoch": 1, "step": 4}, content=b"x")
    assert stale_ck.status_code == 409
    assert (
        await pa_c.post(f"{base}/logs", json={"epoch": 1, "lines": ["late"]})
    ).status_code == 409
    old_items = (await pa_c.get(f"/v1/providers/{primary}/assignments")).json()["items"]
    # the old lease is canceled; the lost machine is never made the new standby
    assert [(x["action"], x["epoch"]) for x in old_items] == [("cancel", 1)]
    assert promoted["standby"] is None  # no third machine is registered
    hb = {"gpus": [], "running": []}
    assert (await pa_c.post(f"/v1/providers/{primary}/heartbeat", json=hb)).status_code == 200
    assert (await pa_c.get(f"/v1/providers/{primary}/assignments")).json()["items"] == []

    nb = agents[standby]
    nbase = f"/v1/providers/{standby}/jobs/{jid}"
    items = (await nb.get(f"/v1/providers/{standby}/assignments", params={"wait_s": 5})).json()[
        "items"
    ]
    starts = [x for x in items if x["action"] == "start"]
    assert len(starts) == 1 and starts[0]["epoch"] == 2 and starts[0]["resume"] is True
    r = await nb.get(f"{nbase}/checkpoints/latest", params={"epoch": 2})
    assert r.status_code == 200 and r.content == blob
    assert (
        await nb.post(f"{nbase}/status", json={"epoch": 2, "status": "running", "step": 5})
    ).status_code == 200
    r = await nb.post(
        f"{nbase}/status", json={"epoch": 2, "status": "completed", "exit_code": 0, "step": 10}
    )
    assert r.status_code == 200, r.text
    done = (await cons.get(f"/v1/gpu/jobs/{jid}")).json()
    assert done["status"] == "completed"
    assert done["gpu_minutes"] >= 2  # one started minute on each provider
    assert 0 < done["cost"]["amount"] <= done["escrow_amount"]["amount"]
    # GPUs are given back on both machines
    for pid, c in agents.items():
        p = (await c.get(f"/v1/providers/{pid}")).json()
        assert p["available_gpus"] == 2, p
    earn = (await nb.get(f"/v1/providers/{standby}/earnings")).json()
    assert (
        earn["jobs"] == 1
        and earn["gross"]["amount"] == earn["net"]["amount"] + earn["platform_fee"]["amount"]
    )
    # a late report of the finished job under its epoch is acknowledged, changes nothing
    r = await nb.post(f"{nbase}/status", json={"epoch": 2, "status": "running"})
    assert r.status_code == 200 and r.json()["job_status"] == "completed"
    prom = (await cons.get("/metrics")).text
    assert "qlp_scheduler_placements_total" in prom
    assert "qlp_scheduler_stale_epoch_total" in prom
    # every query on a tenant collection carried the tenant or a cross-tenant reason
    assert tenant_guard_violations(prom, sched_app.db_name) == []
    # every transition was an event on the scheduling topic, in order
    types = await event_types_for(
        qlp_infra.kafka,
        topics.SCHEDULING.name,
        jid,
        {f"qlp.scheduling.v1.{n}" for n in ("JobCompleted", "LeaseRevoked")},
    )
    short = [x.rsplit(".", 1)[-1] for x in types]
    assert short[:2] == ["JobSubmitted", "JobPlaced"]
    for name in ("JobStarted", "JobProgress", "CheckpointWritten", "LeaseRevoked"):
        assert name in short
    assert short.count("JobPlaced") == 2  # epoch 1, then epoch 2 after the promotion
    assert short[-1] == "JobCompleted"
    # other tenants see nothing
    other = client(sched_app.url, consumer_principal(new_id("org")))
    assert (await other.get(f"/v1/gpu/jobs/{jid}")).status_code == 404
    for x in (a, b, cons, other):
        await x.aclose()


async def test_long_poll_waits_then_wakes_on_new_assignment(sched_app: App) -> None:
    a, pa = await _register(sched_app.url, "fp-lp")
    await _wait_index(sched_app)
    t0 = time.monotonic()
    r = await a.get(f"/v1/providers/{pa}/assignments", params={"wait_s": 1})
    assert r.json()["items"] == [] and time.monotonic() - t0 >= 0.9
    cons = client(sched_app.url, consumer_principal(new_id("org")))

    async def submit_later() -> dict[str, Any]:
        await asyncio.sleep(0.5)
        resp = await cons.post("/v1/gpu/jobs", json=job_body())
        out: dict[str, Any] = resp.json()
        return out

    t0 = time.monotonic()
    poll, job = await asyncio.gather(
        a.get(f"/v1/providers/{pa}/assignments", params={"wait_s": 20}), submit_later()
    )
    elapsed = time.monotonic() - t0
    assert elapsed < 10
    assert [x["job_id"] for x in poll.json()["items"]] == [job["id"]]
    assert (
        await a.get(f"/v1/providers/{pa}/assignments", params={"wait_s": 30})
    ).status_code == 422
    await a.aclose()
    await cons.aclose()


async def test_cancel_releases_gpus_and_sends_cancel(sched_app: App) -> None:
    a, pa = await _register(sched_app.url, "fp-c", gpus=1)
    await _wait_index(sched_app)
    cons = client(sched_app.url, consumer_principal(new_id("org")))
    job = (await cons.post("/v1/gpu/jobs", json=job_body())).json()
    assert job["status"] == "placed"
    # the only GPU is taken: a second job waits for capacity
    second = (await cons.post("/v1/gpu/jobs", json=job_body())).json()
    assert second["status"] == "escrow_held" and second["provider_id"] is None
    r = await cons.post(f"/v1/gpu/jobs/{job['id']}/cancel", json={"reason": "changed my mind"})
    assert r.status_code == 200 and r.json()["status"] == "canceled"
    actions = [
        (x["job_id"], x["action"])
        for x in (await a.get(f"/v1/providers/{pa}/assignments")).json()["items"]
    ]
    assert (job["id"], "cancel") in actions
    assert (job["id"], "start") not in actions
    # the waiting job gets the GPU on the next placement round
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        s = (await cons.get(f"/v1/gpu/jobs/{second['id']}")).json()
        if s["status"] == "placed":
            break
        await asyncio.sleep(0.2)
    assert s["status"] == "placed" and s["provider_id"] == pa
    # cancel is idempotent on a terminal job
    assert (await cons.post(f"/v1/gpu/jobs/{job['id']}/cancel")).json()["status"] == "canceled"
    await a.aclose()
    await cons.aclose()


async def test_bad_requests_are_problems(sched_app: App) -> None:
    cons = client(sched_app.url, consumer_principal(new_id("org")))
    r = await cons.post("/v1/gpu/jobs", json=job_body(command=[]))
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
    r = await cons.post("/v1/gpu/jobs", json=job_body(redundancy="triple"))
    assert r.status_code == 422
    for image in ("--privileged", "alpine latest", "UPPER/case", "a" * 513, "img@sha256:xyz"):
        assert (await cons.post("/v1/gpu/jobs", json=job_body(image=image))).status_code == 422
    assert (await cons.get("/v1/gpu/jobs/job_nope")).status_code == 404
    agent_key = Principal(
        org_id=new_id("org"), subject="key_x", kind="api_key", scopes=["gpu:jobs"]
    )
    a = client(sched_app.url, agent_key)
    assert (await a.post("/v1/providers", json=provider_body("zz"))).status_code == 403
    await cons.aclose()
    await a.aclose()


async def test_long_poll_is_woken_by_another_replicas_write(
    scheduler_settings: Any, qlp_infra: Any
) -> None:
    """An assignment written by another process (here: straight into the database)
    wakes the waiting long-poll through the change stream, not the (slow) re-check."""
    from pymongo import AsyncMongoClient

    from qlp_scheduler.main import service
    from qlp_testing.services import running_app

    settings = scheduler_settings.model_copy(update={"assignment_poll_s": 30.0})
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(qlp_infra.mongodb_url)
    try:
        async with running_app(service, settings) as url:
            a, pa = await _register(url, "fp-watch")
            await asyncio.sleep(0.5)  # the change stream is open

            async def other_replica_writes() -> None:
                await asyncio.sleep(0.5)
                await mongo[settings.mongodb_database]["assignments"].insert_one(
                    {
                        "_id": "asg-external",
                        "assignment_id": "asg-external",
                        "provider_id": pa,
                        "job_id": "job_external",
                        "epoch": 1,
                        "role": "primary",
                        "action": "start",
                        "command": ["true"],
                        "env": {},
                        "gpu_uuids": [],
                        "checkpoint_interval_s": 0,
                        "max_duration_s": 60,
                        "resume": False,
                        "acked": 0,
                        "deliveries": 0,
                        "seq": 1,
                    }
                )

            t0 = time.monotonic()
            poll, _ = await asyncio.gather(
                a.get(f"/v1/providers/{pa}/assignments", params={"wait_s": 20}),
                other_replica_writes(),
            )
            assert [x["assignment_id"] for x in poll.json()["items"]] == ["asg-external"]
            assert time.monotonic() - t0 < 10
            await a.aclose()
        await mongo.drop_database(settings.mongodb_database)
    finally:
        await mongo.close()
