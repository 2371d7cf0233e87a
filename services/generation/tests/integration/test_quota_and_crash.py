"""Quota through billing's real reservation saga (billing runs in-process beside the
service), and a worker killed with SIGKILL mid-generation."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest

from qlp.identity.v1 import events_pb2 as ident
from qlp_billing.main import service as billing_service
from qlp_billing.settings import BillingSettings
from qlp_contracts import topics
from qlp_generation.main import service
from qlp_kit.events import build_headers
from qlp_kit.producer import Producer, Record
from qlp_testing.infra import TestInfra
from qlp_testing.services import ServiceProcess, running_app

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
SECRET = "test-internal-secret"


async def _open_free_subscription(kafka: str, org: str) -> None:
    msg = ident.OrgCreated(org_id=org, name="Acme", slug=f"acme-{org}", owner_user_id="usr_1")
    headers = build_headers(msg, org_id=org, source="qlp/tests", subject=org)
    p = Producer(kafka, client_id="generation-tests")
    await p.start()
    try:
        await p.send_many([Record(topics.IDENTITY.name, org, msg.SerializeToString(), headers)])
    finally:
        await p.stop()


async def test_free_orgs_11th_generation_is_refused_and_a_failed_gate_releases(
    qlp_infra: TestInfra, topics_ready: str, mongo_db: Any, unique: str, h: Any
) -> None:
    org = f"org_q{unique}"
    billing = BillingSettings(
        kafka_bootstrap_servers=qlp_infra.kafka,
        mongodb_url=qlp_infra.mongodb_url,
        mongodb_database=f"{mongo_db.name}_billing",
        internal_auth_secret=SECRET,
        relay_poll_interval_s=0.02,
        consumer_backoff_initial_s=0.01,
        sweep_interval_s=0.5,
        consumer_group_prefix=f"billing-gen-{uuid.uuid4().hex[:6]}",
    )
    prefix = f"generation-q-{uuid.uuid4().hex[:6]}"
    # an API-only replica: reservations are held while nothing builds
    api_only = h.gen_settings(
        qlp_infra,
        mongo_db.name,
        quota_enabled=True,
        worker_enabled=False,
        consumer_group_prefix=prefix,
        quota_wait_s=30,
    )
    async with running_app(billing_service, billing, timeout=120) as bill_url:
        await _open_free_subscription(qlp_infra.kafka, org)

        async def opened() -> bool:
            r = await h.api(bill_url, "GET", "/v1/billing/quotas", org)
            return r.status_code == 200

        await h.eventually(opened, 60)
        async with running_app(service, api_only, timeout=120) as url:
            body = {"prompt": "a CRM for a sales team", "tier": "T0"}
            # the first answer may take a while (consumer groups joining); then billing
            # answers within the wait, and the job shows it
            r = await h.api(url, "POST", "/v1/generations", org, json=body)
            assert r.status_code == 202, r.text
            first = r.json()["id"]

            async def reserved() -> bool:
                r = await h.api(url, "GET", f"/v1/generations/{first}", org)
                return bool(r.json()["stage"] == "queued")

            await h.eventually(reserved, 120)
            for i in range(9):
                r = await h.api(url, "POST", "/v1/generations", org, json=body)
                assert r.status_code == 202, (i, r.text)
                assert (r.json()["status"], r.json()["stage"]) == ("queued", "queued")
            r = await h.api(url, "POST", "/v1/generations", org, json=body)
            assert r.status_code == 429, r.text
            assert r.headers["content-type"].startswith("application/problem+json")
            assert r.json()["type"].endswith("quota-exceeded")
            q = await h.api(bill_url, "GET", "/v1/billing/quotas", org)
            gens = next(x for x in q.json()["items"] if x["meter"] == "generations")
            assert (gens["reserved"], gens["remaining"]) == (10, 0)

        # a second org; its one generation fails the gate (a wall clock too short to pass)
        org2 = f"org_r{unique}"
        failing = h.gen_settings(
            qlp_infra,
            f"{mongo_db.name}_2",
            quota_enabled=True,
            gate_wall_s=0.3,
            consumer_group_prefix=f"generation-f-{uuid.uuid4().hex[:6]}",
        )
        await _open_free_subscription(qlp_infra.kafka, org2)

        async def opened2() -> bool:
            r = await h.api(bill_url, "GET", "/v1/billing/quotas", org2)
            return r.status_code == 200

        await h.eventually(opened2, 60)
        async with running_app(service, failing, timeout=120) as url:
            r = await h.api(
                url, "POST", "/v1/generations", org2, json={"prompt": "crm", "tier": "T0"}
            )
            assert r.status_code == 202, r.text
            done = await h.finished(url, org2, r.json()["id"])
            assert done["status"] == "failed" and done["version_id"] is None
            assert done["gate"]["passed"] is False
            assert done["failure"]["reason"] == "quality_gate_failed"
            assert (await h.api(url, "GET", "/v1/projects", org2)).json()["items"] == []

            async def released() -> bool:
                q = await h.api(bill_url, "GET", "/v1/billing/quotas", org2)
                g = next(x for x in q.json()["items"] if x["meter"] == "generations")
                return bool(g["reserved"] == 0 and g["used"] == 0 and g["remaining"] == 10)

            await h.eventually(released, 60)


async def test_a_worker_killed_mid_generation_completes_the_job_once(
    qlp_infra: TestInfra, topics_ready: str, mongo_db: Any, unique: str, h: Any, tmp_path: Path
) -> None:
    org = f"org_k{unique}"
    prefix = f"generation-k-{unique}"
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": qlp_infra.kafka,
        "MONGODB_URL": qlp_infra.mongodb_url,
        "QLP_INTERNAL_AUTH_SECRET": SECRET,
        "QLP_GENERATION_MONGODB_DATABASE": mongo_db.name,
        "QLP_GENERATION_CONSUMER_GROUP_PREFIX": prefix,
        "QLP_GENERATION_QUOTA_ENABLED": "false",
        "QLP_GENERATION_LEASE_S": "5",
    }
    a = ServiceProcess("generation", env, tmp_path, name="worker-a")
    await a.start(timeout=120)
    try:
        r = await h.api(
            a.url, "POST", "/v1/generations", org, json={"prompt": "helpdesk tickets", "tier": "T0"}
        )
        assert r.status_code == 202, r.text
        gen_id = r.json()["id"]

        async def gating() -> bool:
            doc = await mongo_db["generations"].find_one({"_id": gen_id})
            return bool(doc and doc["stage"] == "gate")

        await h.eventually(gating, 180, 0.05)
    finally:
        a.kill9()
    doc = await mongo_db["generations"].find_one({"_id": gen_id})
    assert doc["status"] == "running" and doc["attempts"] == 1
    b = h.gen_settings(qlp_infra, mongo_db.name, consumer_group_prefix=prefix, lease_s=5)
    async with running_app(service, b, timeout=120) as url:
        done = await h.finished(url, org, gen_id, timeout=300)
        assert done["status"] == "completed", (
            done["failure"],
            (done["gate"] or {}).get("output_tail"),
        )
        await asyncio.sleep(2)  # any further redelivery would act now
        doc = await mongo_db["generations"].find_one({"_id": gen_id})
        assert doc["attempts"] == 2 and doc["status"] == "completed"
        assert await mongo_db["versions"].count_documents({"generation_id": gen_id}) == 1
