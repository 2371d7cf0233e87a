"""A job that waits says why on the job (``placement_reason``): no registered machine
could ever hold it, or the matching machines are busy. Through the consumer API
against the real database."""

from __future__ import annotations

import asyncio
import time

import pytest
from scheduler_testlib import App, agent_principal, client, consumer_principal, job_body
from scheduler_testlib import provider_body as body_of

from qlp_kit.ids import new_id

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def test_a_waiting_job_says_why_it_waits(sched_app: App) -> None:
    prov = client(sched_app.url, agent_principal(new_id("org")))
    for fp, gpus in (("fp-r8", 8), ("fp-r2", 2)):
        r = await prov.post("/v1/providers", json=body_of(fp, gpus=gpus))
        assert r.status_code == 201, r.text
        assert (await prov.post(f"/v1/providers/{r.json()['id']}/heartbeat", json={})).is_success
    await asyncio.sleep(sched_app.settings.offer_refresh_s * 3)
    cons = client(sched_app.url, consumer_principal(new_id("org")))

    huge = (
        await cons.post("/v1/gpu/jobs", json=job_body(gpu_count=64, wait_for_capacity=True))
    ).json()
    assert huge["status"] == "escrow_held", huge
    assert huge["placement_reason"] == "no registered machine has 64 GPUs (largest: 8)"
    got = (await cons.get(f"/v1/gpu/jobs/{huge['id']}")).json()
    assert got["placement_reason"] == huge["placement_reason"]

    model = (
        await cons.post("/v1/gpu/jobs", json=job_body(gpu_model="A100", wait_for_capacity=True))
    ).json()
    assert model["placement_reason"].startswith("no registered machine with 1+ GPUs has GPU model")

    # the 8-GPU machine is taken: a second 8-GPU job waits for a busy machine
    first = (await cons.post("/v1/gpu/jobs", json=job_body(gpu_count=8))).json()
    assert first["status"] == "placed" and first["placement_reason"] is None, first
    second = (await cons.post("/v1/gpu/jobs", json=job_body(gpu_count=8))).json()
    assert second["status"] == "escrow_held"
    assert second["placement_reason"].startswith("all matching machines busy"), second
    # the reason is in the schema of the job
    schema = (await cons.get("/openapi.json")).json()["components"]["schemas"]["JobOut"]
    assert "placement_reason" in schema["properties"]

    # capacity comes back: the waiting job is placed and no longer says it waits
    await cons.post(f"/v1/gpu/jobs/{first['id']}/cancel")
    deadline = time.monotonic() + 30
    while (j := (await cons.get(f"/v1/gpu/jobs/{second['id']}")).json())["status"] != "placed":
        assert time.monotonic() < deadline, j
        await asyncio.sleep(0.2)
    assert j["placement_reason"] is None
    # the never-placeable job still says why
    got = (await cons.get(f"/v1/gpu/jobs/{huge['id']}")).json()
    assert got["status"] == "escrow_held"
    assert got["placement_reason"] == "no registered machine has 64 GPUs (largest: 8)"
    for x in (prov, cons):
        await x.aclose()
