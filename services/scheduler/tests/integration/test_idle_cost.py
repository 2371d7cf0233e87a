"""An idle scheduler costs next to nothing: with no work its background loops and a
waiting long-poll issue only a few database commands (counted by a command listener
on the real database), the change stream on assignments does not spin against a
server that answers ``getMore`` at once, and a heartbeat that changes nothing is not
written. Waking still works: an assignment written by another replica reaches a
waiting long-poll, capacity that appears places a waiting job at once."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from types import SimpleNamespace
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring
from scheduler_testlib import App, agent_principal, client, consumer_principal, job_body
from scheduler_testlib import provider_body as body_of

from qlp_kit.ids import new_id
from qlp_scheduler.engine import Scheduler
from qlp_scheduler.main import background
from qlp_scheduler.repository import INDEXES, Repository
from qlp_testing.tasks import stop_task

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


class Commands(monitoring.CommandListener):
    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()
        self.on = False

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.on:
            name = event.command_name
            coll = event.command.get("collection" if name == "getMore" else name)
            self.seen[f"{event.command_name} {coll if isinstance(coll, str) else ''}".strip()] += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_an_idle_scheduler_issues_few_database_commands(
    scheduler_settings: Any, qlp_infra: Any, unique: str
) -> None:
    listener = Commands()
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        qlp_infra.mongodb_url, tz_aware=True, event_listeners=[listener]
    )
    db = mongo[f"t_idle_{unique}"]
    tasks: list[asyncio.Task[Any]] = []
    try:
        for spec in INDEXES:
            await db[spec.collection].create_index(list(spec.keys), **spec.kwargs())
        sched = Scheduler(Repository(db), scheduler_settings)
        org = new_id("org")
        prov, _ = await sched.register_provider(org, body_of("fp-idle"))
        await sched.heartbeat(org, prov["_id"], {"gpus": [], "running": []})
        await sched.refresh_offers(full=True)
        ctx = SimpleNamespace(settings=scheduler_settings, extras={"scheduler": sched})
        tasks = [asyncio.create_task(loop()) for loop in background(ctx)]  # type: ignore[arg-type]
        deadline = time.monotonic() + 30
        while not sched.watching:
            assert time.monotonic() < deadline, "the change stream did not start"
            await asyncio.sleep(0.1)
        await asyncio.sleep(3.0)  # the loops have found nothing a few times: backed off

        listener.on = True
        window = 5.0
        polled = await asyncio.wait_for(
            sched.poll_assignments(org, prov["_id"], wait_s=window), window + 10
        )
        listener.on = False
        assert polled == []
        seen = dict(listener.seen)
        total = sum(seen.values())
        # before: the change stream alone spun through hundreds of getMores a second,
        # the offer index pulled twice a second, the long-poll re-checked every second
        assert seen.get("getMore assignments", 0) <= 4 * window, seen
        assert seen.get("find assignments", 0) <= 2, seen  # at the start and the end
        # offer-index pulls backing off to 5 s, the offer feed's sweep backing off to 10 s
        assert seen.get("find providers", 0) <= 5, seen
        assert total <= 8 * window, seen

        # still awake: another replica's assignment wakes a waiting long-poll
        async def other_replica_writes() -> None:
            await asyncio.sleep(0.5)
            await db["assignments"].insert_one(
                {
                    "_id": "asg-elsewhere",
                    "assignment_id": "asg-elsewhere",
                    "provider_id": prov["_id"],
                    "job_id": "job_elsewhere",
                    "epoch": 1,
                    "role": "primary",
                    "action": "start",
                    "acked": 0,
                    "deliveries": 0,
                    "seq": 1,
                }
            )

        t0 = time.monotonic()
        got, _ = await asyncio.gather(
            sched.poll_assignments(org, prov["_id"], wait_s=20), other_replica_writes()
        )
        assert [a["_id"] for a in got] == ["asg-elsewhere"]
        assert time.monotonic() - t0 < 8  # the change stream, not the 10 s re-check
    finally:
        for t in tasks:
            await stop_task(t)
        await mongo.drop_database(db.name)
        await mongo.close()


async def test_a_heartbeat_that_changes_nothing_is_not_written(sched_app: App) -> None:
    agent = client(sched_app.url, agent_principal(new_id("org")))
    r = await agent.post("/v1/providers", json=body_of("fp-coalesce"))
    pid = r.json()["id"]
    hb = {"gpus": [], "running": []}
    assert (await agent.post(f"/v1/providers/{pid}/heartbeat", json=hb)).is_success
    providers = sched_app.db["providers"]
    first = await providers.find_one({"_id": pid})
    assert first is not None
    for _ in range(3):
        assert (await agent.post(f"/v1/providers/{pid}/heartbeat", json=hb)).is_success
    same = await providers.find_one({"_id": pid})
    assert same is not None
    assert same["hb_seq"] == first["hb_seq"] and same["updated_ms"] == first["updated_ms"]
    assert len(same.get("_outbox") or []) <= len(first.get("_outbox") or [])
    # a changed set of leases is written at once
    busy = {"gpus": [], "running": [{"job_id": "job_x", "epoch": 1, "status": "running"}]}
    assert (await agent.post(f"/v1/providers/{pid}/heartbeat", json=busy)).is_success
    changed = await providers.find_one({"_id": pid})
    assert changed is not None and changed["hb_seq"] == first["hb_seq"] + 1
    assert changed["hb_leases"] == ["job_x@1:running"]
    await agent.aclose()


async def test_released_capacity_places_a_waiting_job_at_once(
    scheduler_settings: Any, qlp_infra: Any
) -> None:
    """With the slow fallback far away, a waiting job is placed because this process
    saw GPUs come back (the retry loop is woken), not because a timer ran out."""
    from qlp_scheduler.main import service
    from qlp_testing.services import running_app

    settings = scheduler_settings.model_copy(
        update={"placement_retry_idle_s": 300.0, "placement_retry_s": 0.5}
    )
    async with running_app(service, settings) as url:
        agent = client(url, agent_principal(new_id("org")))
        r = await agent.post("/v1/providers", json=body_of("fp-wake", gpus=1))
        pid = r.json()["id"]
        assert (await agent.post(f"/v1/providers/{pid}/heartbeat", json={})).is_success
        cons = client(url, consumer_principal(new_id("org")))
        first = (await cons.post("/v1/gpu/jobs", json=job_body())).json()
        assert first["status"] == "placed", first
        second = (await cons.post("/v1/gpu/jobs", json=job_body())).json()
        assert second["status"] == "escrow_held"
        await asyncio.sleep(2.0)  # the retry loop found nothing to place: backed off
        await cons.post(f"/v1/gpu/jobs/{first['id']}/cancel")
        deadline = time.monotonic() + 20
        while (j := (await cons.get(f"/v1/gpu/jobs/{second['id']}")).json())["status"] != "placed":
            assert time.monotonic() < deadline, j
            await asyncio.sleep(0.2)
        for x in (agent, cons):
            await x.aclose()
