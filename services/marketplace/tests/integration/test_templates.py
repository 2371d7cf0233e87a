"""Templates on the real broker and database: a template version must be a valid
pattern pack (a bad one is 422, never stored); a good one goes out on
ListingVersionAdded with its kind and archive, for generation to keep; generation's
TemplateOutcomeRecorded counts become the listing's gate pass rate (GET listing and
search), and a redelivered or older total changes nothing."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from google.protobuf.timestamp_pb2 import Timestamp

from qlp.generation.v1 import events_pb2 as gev
from qlp.marketplace.v1 import events_pb2 as mev
from qlp.marketplace.v1 import types_pb2 as mt
from qlp_contracts import topics
from qlp_infra.topics import provision
from qlp_kit.auth import Principal
from qlp_kit.events import build_headers
from qlp_kit.producer import Producer, Record
from qlp_marketplace.main import service
from qlp_marketplace.settings import MarketplaceSettings
from qlp_testing.flows import eventually
from qlp_testing.infra import TestInfra
from qlp_testing.principals import PrincipalAuth
from qlp_testing.services import running_app
from qlp_testing.templates import tiny_pack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

SECRET = "test-internal-secret"
M = "/v1/marketplace"


def _client(url: str, org: str) -> httpx.AsyncClient:
    who = Principal(org_id=org, subject=f"usr_{org}", roles=["owner"], user_id=f"usr_{org}")
    return httpx.AsyncClient(base_url=url, auth=PrincipalAuth(SECRET, who), timeout=20)


async def _version_added(bootstrap: str, listing_id: str) -> list[Any]:
    c = AIOKafkaConsumer(
        topics.MARKETPLACE.name,
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
                if h.get("ce_type") == "qlp.marketplace.v1.ListingVersionAdded":
                    m = mev.ListingVersionAdded.FromString(r.value)
                    if m.listing_id == listing_id:
                        found.append(m)
    finally:
        await c.stop()
    return found


async def test_template_pack_checked_sent_and_outcomes_shown(
    qlp_infra: TestInfra, mongo_db: Any, unique: str
) -> None:
    await provision(qlp_infra.kafka)
    settings = MarketplaceSettings(
        kafka_bootstrap_servers=qlp_infra.kafka,
        mongodb_url=qlp_infra.mongodb_url,
        mongodb_database=mongo_db.name,
        internal_auth_secret=SECRET,
        consumer_group_prefix=f"marketplace-tpl-{unique}",
        relay_poll_interval_s=0.02,
        tenant_guard=True,
        replica="one",
    )
    seller, viewer = f"org_s{unique}", f"org_v{unique}"
    producer = Producer(qlp_infra.kafka, client_id="marketplace-template-tests")
    await producer.start()
    try:
        async with running_app(service, settings) as url:
            async with _client(url, seller) as s, _client(url, viewer) as v:
                r = await s.post(
                    f"{M}/listings",
                    json={
                        "kind": "template",
                        "title": f"Tiny service template {unique}",
                        "summary": "a one-module service with its test",
                        "description": "Generate a small service whose gate passes quickly.",
                        "category": "api",
                        "license": "MIT",
                    },
                )
                lid = r.json()["id"]
                bad = io.BytesIO()
                with zipfile.ZipFile(bad, "w") as z:
                    z.writestr("README.md", "# not a pack")
                for body, ctype, status in (
                    (bad.getvalue(), "application/zip", 422),
                    (b"PK\x03\x04 junk", "application/zip", 422),
                    (b"# a readme", "text/markdown", 422),
                    (tiny_pack(), "application/gzip", 201),
                ):
                    r = await s.post(
                        f"{M}/listings/{lid}/versions",
                        params={"version": "1.0.0"},
                        content=body,
                        headers={"content-type": ctype},
                    )
                    assert r.status_code == status, r.text
                    if status == 422:
                        assert "pattern pack" in r.json()["detail"]
                assert (await s.post(f"{M}/listings/{lid}/publish")).status_code == 200
                (added,) = await eventually(
                    lambda: _version_added(qlp_infra.kafka, lid), bool, what="version event"
                )
                assert added.kind == mt.LISTING_KIND_TEMPLATE
                assert added.template_archive == tiny_pack()

                listing = (await v.get(f"{M}/listings/{lid}")).json()
                assert listing["template_outcomes"] == {
                    "projects_built": 0,
                    "projects_passed": 0,
                    "gate_pass_rate_bps": None,
                }
                # generation's totals: 2/3, redelivered, then an older 1/1 arriving late
                for built, passed in ((2, 1), (3, 2), (3, 2), (1, 1)):
                    msg = gev.TemplateOutcomeRecorded(
                        org_id=seller,
                        listing_id=lid,
                        template_version="1.0.0",
                        gate_passed=True,
                        projects_built=built,
                        projects_passed=passed,
                        recorded_at=Timestamp(seconds=1_700_000_000 + built),
                    )
                    headers = build_headers(
                        msg, org_id=seller, source="qlp/generation", subject=lid
                    )
                    await producer.send(
                        Record(topics.GENERATION.name, lid, msg.SerializeToString(), headers)
                    )

                async def shown() -> dict[str, Any]:
                    out: dict[str, Any] = (await v.get(f"{M}/listings/{lid}")).json()
                    return out["template_outcomes"]

                await eventually(shown, lambda o: o["projects_built"] == 3, what="outcomes")
                # the older total that came last did not win
                await eventually(
                    shown,
                    lambda o: (
                        o == {"projects_built": 3, "projects_passed": 2, "gate_pass_rate_bps": 6666}
                    ),
                    what="3/2",
                )

                async def hit() -> list[dict[str, Any]]:
                    r = await v.get(f"{M}/search", params={"q": f"tiny {unique}"})
                    return [i for i in r.json()["items"] if i["id"] == lid]

                (item,) = await eventually(hit, bool, what="searchable")
                assert item["template_outcomes"]["projects_passed"] == 2
    finally:
        await producer.stop()
