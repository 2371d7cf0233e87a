"""A job placed on a provider whose agent stopped polling right after it was chosen
(its heartbeats not stale yet) is placed again once nobody picked its start up: it
never waits forever, and the old start is never delivered."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from scheduler_testlib import App, agent_principal, client, consumer_principal, job_body
from scheduler_testlib import provider_body as body_of

from qlp_kit.ids import new_id

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.fixture
def scheduler_settings(scheduler_settings: Any) -> Any:
    return scheduler_settings.model_copy(update={"start_pickup_timeout_s": 1.0})


async def _agent(app: App, fp: str, price: int) -> tuple[httpx.AsyncClient, str]:
    c = client(app.url, agent_principal(new_id("org")))
    r = await c.post("/v1/providers", json=body_of(fp, price=price, gpus=1))
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    assert (await c.post(f"/v1/providers/{pid}/heartbeat", json={})).status_code == 200
    await asyncio.sleep(app.settings.offer_refresh_s * 2)  # in the offer index
    return c, pid


async def test_a_start_nobody_picks_up_is_placed_again_elsewhere(sched_app: App) -> None:
    gone, gone_id = await _agent(sched_app, "fp-gone", price=100)
    cons = client(sched_app.url, consumer_principal(new_id("org")))
    job = (await cons.post("/v1/gpu/jobs", json=job_body(gpu_model=""))).json()
    assert job["status"] == "placed" and job["provider_id"] == gone_id, job
    jid = job["id"]
    # the chosen agent never polls again; a pricier live one registers meanwhile
    live, live_id = await _agent(sched_app, "fp-live", price=250)

    deadline = time.monotonic() + 120
    view: dict[str, Any] = job
    while time.monotonic() < deadline:
        await live.post(f"/v1/providers/{live_id}/heartbeat", json={})
        view = (await cons.get(f"/v1/gpu/jobs/{jid}")).json()
        if view["provider_id"] == live_id:
            break
        await asyncio.sleep(0.5)
    assert view["provider_id"] == live_id and view["status"] == "placed", view
    assert view["epoch"] >= 2, view

    items = (await live.get(f"/v1/providers/{live_id}/assignments")).json()["items"]
    assert [(x["job_id"], x["action"], x["epoch"]) for x in items] == [
        (jid, "start", view["epoch"])
    ]
    # the first agent comes back: its old start is never delivered, its epoch is stale
    old = (await gone.get(f"/v1/providers/{gone_id}/assignments")).json()["items"]
    assert [x for x in old if x["action"] == "start"] == [], old
    r = await gone.post(
        f"/v1/providers/{gone_id}/jobs/{jid}/status", json={"epoch": 1, "status": "running"}
    )
    assert r.status_code in (403, 404, 409), r.text
    for x in (gone, live, cons):
        await x.aclose()
