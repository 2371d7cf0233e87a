"""The probe: a minimal service built with the kit, used by the delivery tests and the
outbox benchmark. It is a real service (HTTP, MongoDB, outbox relay, Kafka consumer),
just with no business of its own:

- ``POST /v1/probe/records`` stores N records, each written together with its
  ``UsageRecorded`` event in one document (the outbox);
- its consumer applies each event once into ``effects`` (``_id`` = event id, the
  idempotency key recorded with the effect) and counts raw ``deliveries``, which a
  redelivery does increase, to show that redelivery happened and changed nothing;
- an event marked ``poison`` fails until ``POST /v1/probe/heal``, to exercise retries,
  the dead-letter topic and replay;
- an event marked ``flaky`` fails with a database connection error (pymongo's
  ``AutoReconnect``, what a database blip raises) until ``POST /v1/probe/heal``: an
  infrastructure failure, which must be retried for as long as it lasts and never
  dead-lettered.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field
from pydantic_settings import SettingsConfigDict
from pymongo.errors import AutoReconnect

from qlp.usage.v1 import events_pb2 as usage
from qlp_kit.app import Ctx, ServiceContext, ServiceDefinition
from qlp_kit.consumer import ConsumerSpec, Inbox
from qlp_kit.events import Event
from qlp_kit.ids import new_id
from qlp_kit.outbox import stage, with_outbox
from qlp_kit.settings import ServiceSettings


class ProbeSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="QLP_PROBE_", extra="ignore", populate_by_name=True
    )
    service_name: str = "probe"
    topic: str = "qlp.probe.v1"
    group: str = "probe.tally"


class RecordsIn(BaseModel):
    org_id: str = Field(min_length=1, max_length=64)
    count: int = Field(ge=1, le=10_000)
    meter: str = "probe.units"
    poison: bool = False
    flaky: bool = False


router = APIRouter(prefix="/v1/probe")


def build_records(settings: ProbeSettings, body: RecordsIn) -> list[dict[str, Any]]:
    docs = []
    for _ in range(body.count):
        rid = new_id("rec")
        msg = usage.UsageRecorded(org_id=body.org_id, meter=body.meter, quantity=1)
        msg.attributes["record_id"] = rid
        if body.poison:
            msg.attributes["poison"] = "1"
        if body.flaky:
            msg.attributes["flaky"] = "1"
        ev = stage(msg, org_id=body.org_id, key=rid, source="qlp/probe", topic=settings.topic)
        docs.append(with_outbox({"_id": rid, "org_id": body.org_id, "meter": body.meter}, [ev]))
    return docs


@router.post("/records", status_code=201)
async def create_records(body: RecordsIn, ctx: Ctx) -> dict[str, Any]:
    settings = ctx.settings
    assert isinstance(settings, ProbeSettings)
    docs = build_records(settings, body)
    await ctx.db["records"].insert_many(docs, ordered=False)
    return {"created": len(docs), "ids": [d["_id"] for d in docs[:10]]}


@router.get("/tally")
async def tally(org_id: str, ctx: Ctx) -> dict[str, int]:
    effects = await ctx.db["effects"].count_documents({"org_id": org_id})
    counter = await ctx.db["deliveries"].find_one({"_id": org_id}) or {}
    pending = await ctx.db["records"].count_documents({"org_id": org_id, "_outbox_pending": 1})
    return {"effects": effects, "deliveries": int(counter.get("n", 0)), "pending": pending}


@router.post("/heal")
async def heal(ctx: Ctx) -> dict[str, bool]:
    await ctx.db["flags"].update_one({"_id": "healed"}, {"$set": {"on": 1}}, upsert=True)
    return {"healed": True}


def _effect(ev: Event) -> dict[str, Any]:
    return {
        "_id": ev.id,
        "org_id": ev.org_id,
        "meter": ev.message.meter,
        "quantity": int(ev.message.quantity),
    }


def consumers(ctx: ServiceContext) -> list[ConsumerSpec]:
    settings = ctx.settings
    assert isinstance(settings, ProbeSettings)
    db = ctx.db

    async def count_deliveries(events: list[Event]) -> None:
        per_org: dict[str, int] = {}
        for ev in events:
            per_org[ev.org_id] = per_org.get(ev.org_id, 0) + 1
        for org, n in per_org.items():
            await db["deliveries"].update_one({"_id": org}, {"$inc": {"n": n}}, upsert=True)

    async def healed() -> bool:
        return bool(await db["flags"].find_one({"_id": "healed", "on": 1}))

    async def fail_if_unhealed(events: list[Event]) -> None:
        attrs = [ev.message.attributes for ev in events]
        if not any(a.get("poison") == "1" or a.get("flaky") == "1" for a in attrs):
            return
        if await healed():
            return
        if any(a.get("poison") == "1" for a in attrs):
            raise RuntimeError("poisoned event (heal the probe to let it through)")
        raise AutoReconnect("flaky event: database unreachable (heal the probe to recover)")

    async def handle(ev: Event) -> None:
        await fail_if_unhealed([ev])
        await count_deliveries([ev])
        await Inbox.insert_once(db["effects"], _effect(ev))

    async def handle_batch(events: list[Event]) -> None:
        await fail_if_unhealed(events)
        await count_deliveries(events)
        await Inbox.insert_many_once(db["effects"], [_effect(ev) for ev in events])

    return [
        ConsumerSpec(
            settings.group,
            [settings.topic],
            handle,
            handle_batch,
            description="applies probe usage events once",
        )
    ]


service = ServiceDefinition(
    name="probe",
    settings_cls=ProbeSettings,
    routers=[router],
    outbox_collections=["records"],
    consumers=consumers,
    publishes=["qlp.probe.v1"],
    description="delivery-guarantee probe (tests and benchmarks only)",
)
