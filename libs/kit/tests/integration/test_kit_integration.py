"""The kit against the real broker and database: app factory, tenant scoping, relay."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import APIRouter
from pydantic_settings import SettingsConfigDict

from qlp.usage.v1 import events_pb2 as usage
from qlp_kit.app import Ctx, ServiceDefinition
from qlp_kit.auth import CurrentPrincipal, Principal, sign_principal
from qlp_kit.mongo import Mongo, TenantCollection
from qlp_kit.outbox import PENDING, OutboxRelay, outbox_update, stage, with_outbox
from qlp_kit.producer import Producer
from qlp_kit.settings import ServiceSettings
from qlp_testing.infra import TestInfra
from qlp_testing.services import running_app

pytestmark = pytest.mark.integration


class DemoSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="QLP_DEMO_", extra="ignore", populate_by_name=True)
    service_name: str = "demo"


router = APIRouter(prefix="/v1/demo")


@router.get("/whoami")
async def whoami(principal: CurrentPrincipal, ctx: Ctx) -> dict[str, Any]:
    n = await ctx.mongo.tenant("things", principal.org_id).count()
    return {"org_id": principal.org_id, "things": n}


DEMO = ServiceDefinition(
    name="demo", settings_cls=DemoSettings, routers=[router], publishes=["qlp.usage.v1"]
)


async def test_app_factory_health_metrics_problems_and_auth(
    qlp_infra: TestInfra, unique: str
) -> None:
    settings = DemoSettings(
        kafka_bootstrap_servers=qlp_infra.kafka,
        mongodb_url=qlp_infra.mongodb_url,
        mongodb_database=f"demo_{unique}",
        internal_auth_secret="s",
    )
    async with running_app(DEMO, settings) as url, httpx.AsyncClient(base_url=url) as c:
        assert (await c.get("/healthz")).json() == {"status": "ok"}
        ready = (await c.get("/readyz")).json()
        assert ready["checks"] == {"started": True, "mongodb": True, "kafka": True}
        r = await c.get("/v1/demo/whoami")
        assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
        who = Principal(org_id="org_x", subject="usr_x")
        req = {"method": "GET", "target": "/v1/demo/whoami"}
        forged = sign_principal(who, "not-the-secret", **req)
        assert (await c.get("/v1/demo/whoami", headers=forged)).status_code == 401
        good = sign_principal(who, "s", **req)
        # Bound to the request: the same headers on another target or method are refused.
        replayed = await c.get("/v1/demo/whoami?x=1", headers=good)
        assert replayed.status_code == 401, replayed.text
        assert (await c.post("/v1/demo/whoami", headers=good)).status_code in (401, 405)
        r = await c.get("/v1/demo/whoami", headers={**good, "x-request-id": "rid-1"})
        assert r.json() == {"org_id": "org_x", "things": 0}
        assert r.headers["x-request-id"] == "rid-1"
        metrics = (await c.get("/metrics")).text
        assert (
            'qlp_http_requests_total{method="GET",route="/v1/demo/whoami",service="demo",status="200"}'
            in metrics
        )
        doc = (await c.get("/asyncapi.json")).json()
        assert doc["info"]["title"] == "qlp-demo" and "qlp.usage.v1" in str(doc["channels"])
        assert (await c.get("/nope")).status_code == 404


async def test_tenant_collection_never_crosses_tenants(mongo_db: Any) -> None:
    a = TenantCollection(mongo_db["things"], "org_a")
    b = TenantCollection(mongo_db["things"], "org_b")
    await a.insert_one({"_id": "t1", "name": "alpha"})
    assert await b.find_one({"_id": "t1"}) is None
    assert await b.update_one({"_id": "t1"}, {"$set": {"name": "stolen"}}) == 0
    assert await b.delete_one({"_id": "t1"}) == 0
    assert (await a.find_one({"_id": "t1"}) or {})["name"] == "alpha"
    with pytest.raises(PermissionError):
        await b.find_one({"_id": "t1", "org_id": "org_a"})
    with pytest.raises(ValueError):
        TenantCollection(mongo_db["things"], "")
    for i in range(5):
        await a.insert_one({"_id": f"p{i}"})
    page = await a.page({}, 4, None)
    assert len(page.items) == 4 and page.next_cursor
    rest = await a.page({}, 4, page.next_cursor)
    assert len(rest.items) == 2 and rest.next_cursor is None


async def test_relay_publishes_in_order_and_keeps_events_staged_meanwhile(
    qlp_infra: TestInfra, mongo_db: Any, unique: str
) -> None:
    topic = f"qlp.test.{unique}"

    def ev(n: int):  # type: ignore[no-untyped-def]
        return stage(
            usage.UsageRecorded(org_id="org_a", meter="m", quantity=n),
            org_id="org_a",
            key="agg",
            source="qlp/test",
            topic=topic,
        )

    await mongo_db["aggs"].insert_one(with_outbox({"_id": "agg", "v": 0}, [ev(1), ev(2)]))
    await mongo_db["aggs"].update_one({"_id": "agg"}, outbox_update([ev(3)], {"$set": {"v": 1}}))
    producer = Producer(qlp_infra.kafka)
    await producer.start()
    try:
        relay = OutboxRelay(mongo_db, ["aggs"], producer)
        assert await relay.drain_once() == 3
        assert await relay.drain_once() == 0
        doc = await mongo_db["aggs"].find_one({"_id": "agg"})
        assert doc is not None and not doc[PENDING] and not doc["_outbox"] and doc["v"] == 1
    finally:
        await producer.stop()
    from aiokafka import AIOKafkaConsumer

    c = AIOKafkaConsumer(
        topic, bootstrap_servers=qlp_infra.kafka, auto_offset_reset="earliest", group_id=None
    )
    await c.start()
    try:
        batch = await c.getmany(timeout_ms=3000)
        got = [
            usage.UsageRecorded.FromString(r.value).quantity for rs in batch.values() for r in rs
        ]
    finally:
        await c.stop()
    assert got == [1, 2, 3]  # one key → one partition → staging order


async def test_mongo_helper_indexes_and_ping(qlp_infra: TestInfra, unique: str) -> None:
    from pymongo.errors import DuplicateKeyError

    from qlp_kit.mongo import IndexSpec

    m = Mongo(qlp_infra.mongodb_url, f"idx_{unique}")
    try:
        assert await m.ping()
        await m.ensure_indexes([IndexSpec("users", [("email", 1)], unique=True)])
        await m.db["users"].insert_one({"_id": "u1", "email": "a@x"})
        with pytest.raises(DuplicateKeyError):
            await m.db["users"].insert_one({"_id": "u2", "email": "a@x"})
    finally:
        await m.client.drop_database(f"idx_{unique}")
        await m.close()


async def test_tenant_guard_counts_unscoped_queries(qlp_infra: TestInfra, unique: str) -> None:
    from qlp_kit.mongo import CROSS_TENANT

    name = f"guard_{unique}"
    m = Mongo(qlp_infra.mongodb_url, name, tenant_guard=["things"])
    try:
        assert m.guard is not None
        t = m.tenant("things", "org_a")
        await t.insert_one({"_id": "a"})
        await t.find_one({"_id": "a"})
        await t.update_one({"_id": "a"}, {"$set": {"x": 1}})
        await m.db["other"].find_one({"_id": "a"})  # not a tenant collection
        await m.db["things"].find_one({}, comment=f"{CROSS_TENANT}: a sweeper")
        assert m.guard.violations == []
        await m.db["things"].find_one({"_id": "a"})  # forgot the tenant
        await m.db["things"].update_many({}, {"$set": {"y": 1}})
        await m.db["things"].insert_one({"_id": "b"})
        assert m.guard.violations == ["find things", "update things", "insert things"]
    finally:
        await m.client.drop_database(name)
        await m.close()


async def test_relay_queries_pass_the_tenant_guard(qlp_infra: TestInfra, unique: str) -> None:
    """The relay spans tenants by design and says so; nothing it does is a violation."""
    name = f"relayguard_{unique}"
    m = Mongo(qlp_infra.mongodb_url, name, tenant_guard=["aggs"])
    producer = Producer(qlp_infra.kafka)
    await producer.start()
    try:
        ev = stage(
            usage.UsageRecorded(org_id="org_a", meter="m", quantity=1),
            org_id="org_a",
            key="agg",
            source="qlp/test",
            topic=f"qlp.test.{unique}",
        )
        await m.tenant("aggs", "org_a").insert_one(with_outbox({"_id": "agg"}, [ev]))
        relay = OutboxRelay(m.db, ["aggs"], producer)
        assert await relay.drain_once() == 1
        assert await relay.drain_once() == 0
        assert m.guard is not None and m.guard.violations == []
    finally:
        await producer.stop()
        await m.client.drop_database(name)
        await m.close()


async def test_relay_clears_a_busy_document_with_many_pending_events(
    qlp_infra: TestInfra, mongo_db: Any, unique: str
) -> None:
    """A document that keeps changing while the relay works is cleared entry by entry,
    in chunks small enough for the database to apply (nothing is republished forever)."""
    topic = f"qlp.test.{unique}"
    coll = mongo_db["busy"]
    await coll.insert_one(with_outbox({"_id": "agg"}, []))
    for i in range(300):
        ev = stage(
            usage.UsageRecorded(org_id="org_a", meter="m", quantity=i),
            org_id="org_a",
            key="agg",
            source="qlp/test",
            topic=topic,
        )
        await coll.update_one({"_id": "agg"}, outbox_update([ev]))
    producer = Producer(qlp_infra.kafka)
    await producer.start()
    try:
        relay = OutboxRelay(mongo_db, ["busy"], producer)
        original = relay.producer.send_many

        async def send_then_stage_one_more(records: Any) -> None:
            await original(records)
            if relay.published == 0:  # a writer stages another event mid-batch, once
                ev = stage(
                    usage.UsageRecorded(org_id="org_a", meter="m", quantity=999),
                    org_id="org_a",
                    key="agg",
                    source="qlp/test",
                    topic=topic,
                )
                await coll.update_one({"_id": "agg"}, outbox_update([ev]))

        relay.producer.send_many = send_then_stage_one_more  # type: ignore[method-assign]
        assert await relay.drain_once() == 300
        assert await relay.drain_once() == 1  # only the event staged meanwhile
        assert await relay.drain_once() == 0
    finally:
        await producer.stop()
