"""Cancels reach the agent: a status report never swallows a pending cancel, and a
start is never delivered after its job's cancel. Through the agent API against the
real database, as an agent would call it."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from scheduler_testlib import App, agent_principal, client, consumer_principal, job_body
from scheduler_testlib import provider_body as body_of

from qlp_kit.ids import new_id

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def _agent(app: App, fp: str, gpus: int = 1) -> tuple[httpx.AsyncClient, str]:
    c = client(app.url, agent_principal(new_id("org")))
    r = await c.post("/v1/providers", json=body_of(fp, gpus=gpus))
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    assert (await c.post(f"/v1/providers/{pid}/heartbeat", json={})).status_code == 200
    await asyncio.sleep(app.settings.offer_refresh_s * 2)  # in the offer index
    return c, pid


async def _poll(c: httpx.AsyncClient, pid: str) -> list[dict[str, Any]]:
    r = await c.get(f"/v1/providers/{pid}/assignments")
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def test_keepalive_after_cancel_does_not_swallow_the_cancel(sched_app: App) -> None:
    agent, pid = await _agent(sched_app, "fp-keepalive")
    cons = client(sched_app.url, consumer_principal(new_id("org")))
    job = (await cons.post("/v1/gpu/jobs", json=job_body())).json()
    assert job["status"] == "placed" and job["provider_id"] == pid, job
    jid = job["id"]
    base = f"/v1/providers/{pid}/jobs/{jid}"

    # the start is delivered and the workload runs
    (start,) = await _poll(agent, pid)
    assert start["action"] == "start"
    assert (await agent.post(f"{base}/status", json={"epoch": 1, "status": "starting"})).is_success
    r = await agent.post(f"{base}/status", json={"epoch": 1, "status": "running", "step": 1})
    assert r.json()["job_status"] == "running"
    running = {"gpus": [], "running": [{"job_id": jid, "epoch": 1, "status": "running"}]}
    assert (await agent.post(f"/v1/providers/{pid}/heartbeat", json=running)).is_success

    # the consumer cancels; before the agent polls again, its keepalive arrives
    r = await cons.post(f"/v1/gpu/jobs/{jid}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "canceled"
    r = await agent.post(f"{base}/status", json={"epoch": 1, "status": "running", "step": 2})
    assert r.status_code == 200 and r.json()["job_status"] == "canceled", r.text
    # a heartbeat that still lists the job does not acknowledge the cancel either
    assert (await agent.post(f"/v1/providers/{pid}/heartbeat", json=running)).is_success

    items = await _poll(agent, pid)
    assert [(x["job_id"], x["action"]) for x in items] == [(jid, "cancel")]
    # delivered is not done: still running here, so it is delivered again
    again = await _poll(agent, pid)
    assert [x["action"] for x in again] == ["cancel"]
    r = await agent.post(f"{base}/status", json={"epoch": 1, "status": "running", "step": 3})
    assert r.status_code == 200
    assert [x["action"] for x in await _poll(agent, pid)] == ["cancel"]

    # the agent stopped the workload and says so: that is what acknowledges the cancel
    r = await agent.post(f"{base}/status", json={"epoch": 1, "status": "canceled"})
    assert r.status_code == 200 and r.json()["job_status"] == "canceled", r.text
    assert await _poll(agent, pid) == []
    view = (await cons.get(f"/v1/gpu/jobs/{jid}")).json()
    assert view["status"] == "canceled"
    for x in (agent, cons):
        await x.aclose()


async def test_canceled_is_not_a_status_a_live_job_can_be_reported_into(sched_app: App) -> None:
    agent, pid = await _agent(sched_app, "fp-live")
    cons = client(sched_app.url, consumer_principal(new_id("org")))
    job = (await cons.post("/v1/gpu/jobs", json=job_body())).json()
    base = f"/v1/providers/{pid}/jobs/{job['id']}"
    r = await agent.post(f"{base}/status", json={"epoch": 1, "status": "canceled"})
    assert r.status_code == 409 and r.json()["type"].endswith("/invalid-transition"), r.text
    assert (await cons.get(f"/v1/gpu/jobs/{job['id']}")).json()["status"] == "placed"
    for x in (agent, cons):
        await x.aclose()


async def test_a_heartbeat_without_the_job_acknowledges_a_delivered_cancel(
    sched_app: App,
) -> None:
    """An agent that no longer runs the job (it stopped it, or never started it) is
    done with the cancel once it was delivered."""
    agent, pid = await _agent(sched_app, "fp-hb-ack")
    cons = client(sched_app.url, consumer_principal(new_id("org")))
    job = (await cons.post("/v1/gpu/jobs", json=job_body())).json()
    jid = job["id"]
    (start,) = await _poll(agent, pid)
    assert start["action"] == "start"
    r = await agent.post(
        f"/v1/providers/{pid}/jobs/{jid}/status", json={"epoch": 1, "status": "running"}
    )
    assert r.is_success
    await cons.post(f"/v1/gpu/jobs/{jid}/cancel")
    assert [x["action"] for x in await _poll(agent, pid)] == ["cancel"]
    assert (
        await agent.post(f"/v1/providers/{pid}/heartbeat", json={"gpus": [], "running": []})
    ).is_success
    assert await _poll(agent, pid) == []
    for x in (agent, cons):
        await x.aclose()


async def test_a_job_canceled_before_its_start_was_polled_never_delivers_the_start(
    sched_app: App,
) -> None:
    """The placement's effects (the start assignment) were still pending when the job
    was canceled (a crash between the placement write and writing its assignment, or
    a slow replica): the start must not reach the agent, before or after the cancel."""
    agent, pid = await _agent(sched_app, "fp-early")
    cons = client(sched_app.url, consumer_principal(new_id("org")))
    job = (await cons.post("/v1/gpu/jobs", json=job_body())).json()
    jid = job["id"]
    assert job["status"] == "placed", job
    # put the job back to "placement written, start not yet applied"
    db = sched_app.db
    start = await db["assignments"].find_one({"job_id": jid, "action": "start"})
    assert start is not None
    await db["assignments"].delete_one({"_id": start["_id"]})
    start.pop("expire_at", None)
    await db["jobs"].update_one(
        {"_id": jid}, {"$set": {"fx_pending": 1, f"fx_assign.{start['_id']}": start}}
    )

    r = await cons.post(f"/v1/gpu/jobs/{jid}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "canceled"
    items = await _poll(agent, pid)
    assert (jid, "start") not in [(x["job_id"], x["action"]) for x in items], items
    # a start written late by another replica (its effects of the placement) is not
    # delivered either
    late = {**start, "_id": f"{start['_id']}-late", "assignment_id": f"{start['_id']}-late"}
    await db["assignments"].insert_one(late)
    items += await _poll(agent, pid)
    assert all(x["action"] == "cancel" for x in items), items
    # the agent, which never ran it, is done with the cancel after its next heartbeat
    assert (
        await agent.post(f"/v1/providers/{pid}/heartbeat", json={"gpus": [], "running": []})
    ).is_success
    assert await _poll(agent, pid) == []
    for x in (agent, cons):
        await x.aclose()


async def test_a_heartbeat_built_before_the_cancel_was_handled_does_not_ack_it(
    sched_app: App,
) -> None:
    """A heartbeat still in flight from before the agent handled the cancel (it did not
    list the job yet: the start was being handled) proves nothing: the agent says
    which deliveries it had handled when it built the heartbeat."""
    agent, pid = await _agent(sched_app, "fp-inflight")
    cons = client(sched_app.url, consumer_principal(new_id("org")))
    jid = (await cons.post("/v1/gpu/jobs", json=job_body())).json()["id"]
    (start,) = await _poll(agent, pid)
    base = f"/v1/providers/{pid}/jobs/{jid}"
    assert (await agent.post(f"{base}/status", json={"epoch": 1, "status": "running"})).is_success
    await cons.post(f"/v1/gpu/jobs/{jid}/cancel")
    (cancel,) = await _poll(agent, pid)
    assert cancel["action"] == "cancel" and start["delivered_ms"] > 0

    stale = {"gpus": [], "running": [], "handled_through_ms": cancel["delivered_ms"] - 1}
    assert (await agent.post(f"/v1/providers/{pid}/heartbeat", json=stale)).is_success
    (again,) = await _poll(agent, pid)  # still owed
    assert again["action"] == "cancel"
    done = {"gpus": [], "running": [], "handled_through_ms": again["delivered_ms"]}
    assert (await agent.post(f"/v1/providers/{pid}/heartbeat", json=done)).is_success
    assert await _poll(agent, pid) == []
    for x in (agent, cons):
        await x.aclose()
