"""Marketplace templates in generation, on the real broker and database: a template
version (its pack archive on ListingVersionAdded) and an EntitlementGranted arrive
over Kafka; the buyer sees the pack in GET /v1/patterns and generates with
``template_listing_id`` (sandboxed render, the gate passes); the job stages
TemplateOutcomeRecorded (counts only, to the creator); an org that holds nothing gets
404 and sees no pack; the revocation (a refund) takes the pack away again. A
generation version exported as a template is the pack it was rendered with."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from qlp.generation.v1 import events_pb2 as gev
from qlp.marketplace.v1 import events_pb2 as mev
from qlp.marketplace.v1 import types_pb2 as mt
from qlp_contracts import topics
from qlp_generation import service as S
from qlp_generation.render import builtin_templates
from qlp_generation.repository import Store
from qlp_kit.events import build_headers
from qlp_kit.producer import Producer, Record
from qlp_testing.infra import TestInfra
from qlp_testing.templates import tiny_pack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def _ts() -> Timestamp:
    t = Timestamp()
    t.FromDatetime(datetime.now(UTC))
    return t


async def _send(msg: Message, org_id: str, key: str) -> None:
    headers = build_headers(msg, org_id=org_id, source="qlp/marketplace", subject=key)
    rec = Record(topics.MARKETPLACE.name, key, msg.SerializeToString(), headers)
    await PRODUCER.send(rec)


PRODUCER: Any = None


async def _outcomes(bootstrap: str, listing_id: str) -> list[Any]:
    """TemplateOutcomeRecorded of one listing on the generation topic, from the start."""
    c = AIOKafkaConsumer(
        topics.GENERATION.name,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await c.start()
    found = []
    try:
        while batch := await c.getmany(timeout_ms=1500, max_records=2000):
            for r in (r for rs in batch.values() for r in rs):
                h = {k: v.decode() for k, v in r.headers}
                if h.get("ce_type") == "qlp.generation.v1.TemplateOutcomeRecorded":
                    m = gev.TemplateOutcomeRecorded.FromString(r.value)
                    if m.listing_id == listing_id:
                        found.append(m)
    finally:
        await c.stop()
    return found


async def test_bought_template_becomes_a_pack_for_the_buyer_only(
    app_url: str, app_db: Any, qlp_infra: TestInfra, h: Any
) -> None:
    global PRODUCER
    PRODUCER = Producer(qlp_infra.kafka, client_id="generation-template-tests")
    await PRODUCER.start()
    u = uuid.uuid4().hex[:8]
    creator, buyer, stranger = f"org_c{u}", f"org_b{u}", f"org_s{u}"
    listing = f"lst_{u}"
    try:
        await _send(
            mev.ListingVersionAdded(
                org_id=creator,
                listing_id=listing,
                version="1.0.0",
                kind=mt.LISTING_KIND_TEMPLATE,
                template_archive=tiny_pack(),
                added_at=_ts(),
            ),
            creator,
            listing,
        )
        await _send(
            mev.EntitlementGranted(
                org_id=buyer,
                entitlement_id=f"ent_{u}",
                listing_id=listing,
                kind=mt.LISTING_KIND_TEMPLATE,
                listing_version="1.0.0",
                granted_at=_ts(),
            ),
            buyer,
            f"ent_{u}",
        )

        async def listed() -> Any:
            r = await h.api(app_url, "GET", "/v1/patterns", buyer)
            items = [i for i in r.json()["items"] if i["source"] == "template"]
            return items or None

        (pack,) = await h.eventually(listed, 60)
        assert pack["listing_id"] == listing and pack["pack"] == "tiny-service@1.0.0"
        r = await h.api(app_url, "GET", "/v1/patterns", stranger)
        assert all(i["source"] == "library" for i in r.json()["items"])

        body = {"prompt": "a CRM for a small agency", "tier": "T0"}
        r = await h.api(
            app_url,
            "POST",
            "/v1/generations",
            stranger,
            json={**body, "template_listing_id": listing},
        )
        assert r.status_code == 404, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        r = await h.api(
            app_url, "POST", "/v1/generations", buyer, json={**body, "template_listing_id": listing}
        )
        assert r.status_code == 202, r.text
        assert "marketplace template" in r.json()["blueprint"]["explanation"]
        done = await h.finished(app_url, buyer, r.json()["id"])
        assert done["status"] == "completed", done
        assert done["gate"]["passed"] and done["template"] == {
            "listing_id": listing,
            "version": "1.0.0",
        }
        (outcome,) = await h.eventually(lambda: _outcomes(qlp_infra.kafka, listing), 30)
        assert outcome.org_id == creator and outcome.listing_id == listing
        assert (outcome.projects_built, outcome.projects_passed, outcome.gate_passed) == (
            1,
            1,
            True,
        )
        r = await h.api(
            app_url,
            "GET",
            f"/v1/projects/{done['project_id']}/versions/{done['version_id']}/archive",
            buyer,
        )
        assert r.status_code == 200

        # the buyer's review reaches the pack's evidence over the broker
        await _send(
            mev.ReviewPosted(
                org_id=buyer, review_id=f"rev_{u}", listing_id=listing, rating=4, posted_at=_ts()
            ),
            buyer,
            f"rev_{u}",
        )

        async def rated() -> Any:
            r = await h.api(app_url, "GET", "/v1/patterns", buyer)
            items = [i for i in r.json()["items"] if i["source"] == "template"]
            return items[0]["marketplace_rating"] if items else None

        assert await h.eventually(rated, 60) == {"average": 4.0, "reviews": 1}

        # the refund revokes it: the pack is gone for the buyer
        await _send(
            mev.EntitlementRevoked(
                org_id=buyer, entitlement_id=f"ent_{u}", listing_id=listing, revoked_at=_ts()
            ),
            buyer,
            f"ent_{u}",
        )

        async def revoked() -> Any:
            r = await h.api(
                app_url,
                "POST",
                "/v1/generations",
                buyer,
                json={**body, "template_listing_id": listing},
            )
            return r.status_code == 404

        await h.eventually(revoked, 60)
    finally:
        await PRODUCER.stop()


async def test_a_generation_version_exports_the_pack_it_was_rendered_with(
    qlp_infra: TestInfra, mongo_db: Any, h: Any
) -> None:
    gen = S.Generation(Store(mongo_db), h.gen_settings(qlp_infra, mongo_db.name))
    org, other = "org_maker", "org_other"
    bp = {"name": "crm", "title": "CRM", "domain": "crm"}
    await mongo_db["versions"].insert_one(
        {
            "_id": "ver_x",
            "org_id": org,
            "project_id": "prj_x",
            "pack": "fastapi-mongo@1.1.0",
            "blueprint": bp,
            "gate": {"passed": True},
            "pattern_id": "crm",
            "files": {},
        }
    )
    assert await gen.keep_template(other, "lst_o", "1.0.0", b"", "ver_x") is None  # not theirs
    doc = await gen.keep_template(org, "lst_m", "1.0.0", b"", "ver_x")
    assert doc is not None and doc["source"]["kind"] == "generation_version"
    assert doc["manifest"]["source"]["gate_passed"] is True
    assert await gen._pack_templates(doc["_id"]) == builtin_templates()
    # a bad archive is dropped, and a redelivered version is kept once
    assert await gen.keep_template(org, "lst_bad", "1.0.0", b"PK\x03\x04junk", "") is None
    assert await gen.keep_template(org, "lst_m", "1.0.0", b"", "ver_x") is None
    with pytest.raises(S.NotFound):
        await gen.template_for(other, "lst_m")
    assert (await gen.template_for(org, "lst_m"))["_id"] == "lst_m@1.0.0"


async def test_marketplace_ratings_of_exported_templates_are_their_patterns_evidence(
    qlp_infra: TestInfra, mongo_db: Any, h: Any
) -> None:
    gen = S.Generation(Store(mongo_db), h.gen_settings(qlp_infra, mongo_db.name))
    await mongo_db["versions"].insert_one(
        {
            "_id": "ver_r",
            "org_id": "org_maker",
            "project_id": "prj_r",
            "pack": "fastapi-mongo@1.1.0",
            "blueprint": {"name": "crm", "title": "CRM", "domain": "crm"},
            "gate": {"passed": True},
            "pattern_id": "crm",
            "files": {},
        }
    )
    assert await gen.keep_template("org_maker", "lst_r", "1.0.0", b"", "ver_r") is not None
    t0 = datetime(2026, 12, 1, tzinfo=UTC)
    later = datetime(2026, 12, 2, tzinfo=UTC)
    await gen.on_review("rev_1", "lst_r", 2, t0)
    await gen.on_review("rev_1", "lst_r", 5, later)  # edited
    await gen.on_review("rev_1", "lst_r", 1, t0)  # the old post, redelivered
    await gen.on_review("rev_2", "lst_r", 4, t0)
    await gen.on_review("rev_3", "lst_not_a_template", 1, t0)  # not kept
    assert await mongo_db["template_ratings"].count_documents({}) == 2
    crm = next(p for p in await gen.patterns("") if p["id"] == "crm")
    assert crm["marketplace_rating"] == {"average": 4.5, "reviews": 2}
    other = next(p for p in await gen.patterns("") if p["id"] != "crm")
    assert other["marketplace_rating"] is None
