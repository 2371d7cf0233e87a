"""Job lists and logs through the consumer API, against the real database: lists are
newest first with a documented ``sort``; an unknown status filter is 422; cancelling a
finished job is 409; the logs ``limit`` counts lines; logs can be followed live (SSE)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from scheduler_testlib import App, agent_principal, client, consumer_principal, job_body
from scheduler_testlib import provider_body as body_of

from qlp_kit.ids import new_id

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def _running_job(sched_app: App) -> tuple[Any, Any, str, str]:
    prov = client(sched_app.url, agent_principal(new_id("org")))
    pid = (await prov.post("/v1/providers", json=body_of("logs-1"))).json()["id"]
    assert (await prov.post(f"/v1/providers/{pid}/heartbeat", json={})).is_success
    await asyncio.sleep(sched_app.settings.offer_refresh_s * 3)
    cons = client(sched_app.url, consumer_principal(new_id("org")))
    job = (await cons.post("/v1/gpu/jobs", json=job_body())).json()
    assert job["status"] == "placed", job
    return prov, cons, pid, job["id"]


async def test_lists_sort_filters_and_cancel_conflict(sched_app: App) -> None:
    cons = client(sched_app.url, consumer_principal(new_id("org")))
    ids = []
    for _ in range(3):
        r = await cons.post("/v1/gpu/jobs", json=job_body(wait_for_capacity=True))
        assert r.status_code == 202, r.text
        ids.append(r.json()["id"])
    newest = (await cons.get("/v1/gpu/jobs", params={"limit": 2})).json()
    assert [j["id"] for j in newest["items"]] == ids[::-1][:2]
    rest = await cons.get("/v1/gpu/jobs", params={"limit": 2, "cursor": newest["next_cursor"]})
    assert [j["id"] for j in rest.json()["items"]] == [ids[0]]
    oldest = (await cons.get("/v1/gpu/jobs", params={"sort": "created_at"})).json()
    assert [j["id"] for j in oldest["items"]] == ids

    bad = await cons.get("/v1/gpu/jobs", params={"status": "finished"})
    assert bad.status_code == 422, bad.text
    assert "status" in bad.json()["detail"]
    assert (await cons.get("/v1/gpu/jobs", params={"sort": "price"})).status_code == 422
    ok = await cons.get("/v1/gpu/jobs", params={"status": "escrow_held"})
    assert ok.status_code == 200 and len(ok.json()["items"]) == 3
    params = (await cons.get("/openapi.json")).json()["paths"]["/v1/gpu/jobs"]["get"]["parameters"]
    assert {"sort", "status"} <= {p["name"] for p in params}

    # cancel twice: the second is a retry (200); a completed job is a 409
    assert (await cons.post(f"/v1/gpu/jobs/{ids[0]}/cancel")).status_code == 200
    assert (await cons.post(f"/v1/gpu/jobs/{ids[0]}/cancel")).status_code == 200
    await cons.aclose()


async def test_cancel_completed_job_is_409(sched_app: App) -> None:
    prov, cons, pid, jid = await _running_job(sched_app)
    base = f"/v1/providers/{pid}/jobs/{jid}"
    r = await prov.post(f"{base}/status", json={"epoch": 1, "status": "completed", "exit_code": 0})
    assert r.status_code == 200, r.text
    c = await cons.post(f"/v1/gpu/jobs/{jid}/cancel")
    assert c.status_code == 409, c.text
    assert "already completed" in c.json()["detail"]
    for x in (prov, cons):
        await x.aclose()


async def test_logs_limit_counts_lines_and_follow_streams_them(sched_app: App) -> None:
    prov, cons, pid, jid = await _running_job(sched_app)
    base = f"/v1/providers/{pid}/jobs/{jid}"
    for batch in (["a1", "a2", "a3"], ["b1", "b2"], ["c1"]):
        assert (await prov.post(f"{base}/logs", json={"epoch": 1, "lines": batch})).is_success

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await cons.get(f"/v1/gpu/jobs/{jid}/logs", params=params)).json()
        assert len(page["items"]) <= 2
        seen += [x["line"] for x in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == ["a1", "a2", "a3", "b1", "b2", "c1"] and pages == 3

    acted: list[bool] = []

    async def follow(headers: dict[str, str]) -> list[tuple[str, str, str]]:
        events: list[tuple[str, str, str]] = []
        async with cons.stream("GET", f"/v1/gpu/jobs/{jid}/logs/stream", headers=headers) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            ev: dict[str, str] = {}
            async for line in r.aiter_lines():
                if not line:
                    if ev:
                        events.append((ev.get("event", ""), ev.get("id", ""), ev.get("data", "")))
                        last = (
                            json.loads(ev["data"]).get("line") if ev.get("event") == "log" else None
                        )
                        if last == "c1" and not acted:
                            acted.append(True)
                            # more arrives while the stream is open, then the job ends
                            await prov.post(f"{base}/logs", json={"epoch": 1, "lines": ["d1"]})
                            await prov.post(
                                f"{base}/status",
                                json={"epoch": 1, "status": "completed", "exit_code": 0},
                            )
                    ev = {}
                    continue
                key, _, value = line.partition(": ")
                ev[key] = value
        return events

    events = await asyncio.wait_for(follow({}), 60)
    lines = [json.loads(d)["line"] for e, _, d in events if e == "log"]
    assert lines == ["a1", "a2", "a3", "b1", "b2", "c1", "d1"]
    assert events[-1][0] == "end" and json.loads(events[-1][2])["status"] == "completed"
    # resuming from an event id sends only what came after it
    after_b2 = next(i for e, i, d in events if e == "log" and json.loads(d)["line"] == "b2")
    again = await asyncio.wait_for(follow({"Last-Event-ID": after_b2}), 60)
    assert [json.loads(d)["line"] for e, _, d in again if e == "log"] == ["c1", "d1"]
    for x in (prov, cons):
        await x.aclose()


async def test_providers_list_newest_first(sched_app: App) -> None:
    prov = client(sched_app.url, agent_principal(new_id("org")))
    ids = []
    for fp in ("order-1", "order-2"):
        r = await prov.post("/v1/providers", json=body_of(fp))
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    listed = (await prov.get("/v1/providers")).json()["items"]
    assert [p["id"] for p in listed] == ids[::-1]
    oldest = (await prov.get("/v1/providers", params={"sort": "created_at"})).json()["items"]
    assert [p["id"] for p in oldest] == ids
    assert (await prov.get("/v1/providers", params={"sort": "name"})).status_code == 422
    await prov.aclose()
