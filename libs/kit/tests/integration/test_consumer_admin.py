"""GET /v1/admin/consumers/<service> against the real broker: a service's groups
with their lag per topic and dead letters, as a kit app runs them; platform
administrators only."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pydantic_settings import SettingsConfigDict

from qlp.usage.v1 import events_pb2 as usage
from qlp_kit.app import ServiceContext, ServiceDefinition
from qlp_kit.auth import Principal, sign_principal
from qlp_kit.consumer import ConsumerSpec, PermanentError
from qlp_kit.events import Event, build_headers
from qlp_kit.producer import Producer, Record
from qlp_kit.settings import ServiceSettings
from qlp_testing.flows import eventually
from qlp_testing.infra import TestInfra
from qlp_testing.services import running_app

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

SECRET = "s"
ADMIN = Principal(org_id="platform", subject="usr_op", roles=["platform_admin"])
OWNER = Principal(org_id="org_a", subject="usr_a", roles=["owner"])


class OpsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="QLP_OPS_", extra="ignore", populate_by_name=True)
    service_name: str = "ops"


async def _create_topics(bootstrap: str, *names: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="qlp-test")
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, 2, 1) for n in names])
    finally:
        await admin.close()


async def _produce(bootstrap: str, topic: str, quantities: list[int]) -> None:
    records = []
    for q in quantities:
        msg = usage.UsageRecorded(org_id="org_a", meter="m", quantity=q)
        h = build_headers(msg, org_id="org_a", source="qlp/test", subject=f"k{q}")
        records.append(Record(topic, f"k{q}", msg.SerializeToString(), h))
    producer = Producer(bootstrap)
    await producer.start()
    try:
        await producer.send_many(records)
    finally:
        await producer.stop()


def _get(c: httpx.AsyncClient, who: Principal) -> Any:
    path = "/v1/admin/consumers/ops"
    return c.get(path, headers=sign_principal(who, SECRET, method="GET", target=path))


async def test_lag_and_dead_letters_per_group_for_platform_admins(
    qlp_infra: TestInfra, unique: str
) -> None:
    fast, held = f"qlp.test.fast.{unique}", f"qlp.test.held.{unique}"
    await _create_topics(qlp_infra.kafka, fast, held)
    gate = asyncio.Event()

    async def odd_fails(ev: Event) -> None:
        if ev.message.quantity % 2:
            raise PermanentError("odd quantities are refused")

    async def waits(ev: Event) -> None:
        await gate.wait()

    def consumers(ctx: ServiceContext) -> list[ConsumerSpec]:
        kind = [usage.UsageRecorded.DESCRIPTOR.full_name]
        return [
            ConsumerSpec(f"ops.fast.{unique}", [fast], odd_fails, event_types=kind,
                         description="refuses odd quantities"),
            ConsumerSpec(f"ops.held.{unique}", [held], waits, event_types=kind),
        ]  # fmt: skip

    definition = ServiceDefinition(name="ops", settings_cls=OpsSettings, consumers=consumers)
    settings = OpsSettings(
        kafka_bootstrap_servers=qlp_infra.kafka,
        mongodb_url=qlp_infra.mongodb_url,
        mongodb_database=f"ops_{unique}",
        internal_auth_secret=SECRET,
        consumer_stats_ttl_s=0.0,
        consumer_max_attempts=1,
    )
    await _produce(qlp_infra.kafka, fast, [1, 2, 3, 4, 5, 6])  # 3 odd: dead letters
    await _produce(qlp_infra.kafka, held, [10, 11, 12])
    async with running_app(definition, settings) as url, httpx.AsyncClient(base_url=url) as c:
        refused = await _get(c, OWNER)
        assert refused.status_code == 403, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert (await c.get("/v1/admin/consumers/ops")).status_code == 401

        def groups(body: dict[str, Any]) -> dict[str, Any]:
            return {g["group"]: g for g in body["groups"]}

        async def read() -> dict[str, Any]:
            r = await _get(c, ADMIN)
            assert r.status_code == 200, r.text
            return groups(r.json())

        seen = await eventually(
            read,
            lambda g: (
                g[f"ops.fast.{unique}"]["lag"] == 0 and g[f"ops.fast.{unique}"]["dead_letters"] == 3
            ),
            timeout=60,
            what="the fast group caught up with its dead letters counted",
        )
        f = seen[f"ops.fast.{unique}"]
        assert f["topics"] == [{"topic": fast, "lag": 0}]
        assert f["not_replayed"] == 3 and f["description"] == "refuses odd quantities"
        h = seen[f"ops.held.{unique}"]  # its handler waits: nothing committed yet
        assert h["topics"] == [{"topic": held, "lag": 3}] and h["lag"] == 3
        assert h["dead_letters"] == 0 and h["not_replayed"] == 0

        gate.set()
        await eventually(
            read, lambda g: g[f"ops.held.{unique}"]["lag"] == 0, timeout=60, what="held drained"
        )
        doc = (await c.get("/openapi.json")).json()
        op = doc["paths"]["/v1/admin/consumers/ops"]["get"]
        assert op["operationId"] == "ops_consumers" and "Platform admin" in op["tags"]
