"""The GPU offer catalogue follows the scheduler: both services in-process on the real
broker and database. A registered provider's offer shows up in the marketplace's
``GET /v1/gpu/offers`` with the scheduler's fields; a job placed on it lowers its free
GPUs and cancelling it gives them back (OfferAvailabilityChanged); another org sees the
same offer; a new replica rebuilds the catalogue from ``gpu_offers`` before it answers;
bad input is a problem."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from qlp_infra.topics import provision
from qlp_kit.auth import Principal
from qlp_kit.ids import new_id
from qlp_marketplace.main import service as marketplace
from qlp_marketplace.settings import MarketplaceSettings
from qlp_testing.flows import eventually
from qlp_testing.infra import TestInfra
from qlp_testing.principals import PrincipalAuth
from qlp_testing.services import running_app

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

SECRET = "test-internal-secret"


def _client(url: str, who: Principal) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, auth=PrincipalAuth(SECRET, who), timeout=20)


def _machine(fp: str, gpus: int) -> dict[str, Any]:
    return {
        "fingerprint": fp,
        "hostname": f"host-{fp}",
        "cpu_count": 16,
        "ram_gb": 128,
        "disk_gb": 500,
        "driver_version": "550.54",
        "cuda_version": "12.4",
        "simulated": True,
        "gpus": [
            {"uuid": f"GPU-{fp}-{i}", "index": i, "model": "NVIDIA H100 80GB HBM3", "memory_gb": 80}
            for i in range(gpus)
        ],
    }


async def test_scheduler_offer_events_feed_the_catalogue(
    qlp_infra: TestInfra, mongo_db: Any, unique: str
) -> None:
    from qlp_scheduler.main import service as scheduler
    from qlp_scheduler.settings import SchedulerSettings

    await provision(qlp_infra.kafka)
    sched_settings = SchedulerSettings(
        kafka_bootstrap_servers=qlp_infra.kafka,
        mongodb_url=qlp_infra.mongodb_url,
        mongodb_database=f"{mongo_db.name}_sched",
        internal_auth_secret=SECRET,
        escrow_required=False,
        escrow_consumer_group=f"scheduler.escrow.{unique}",
        offer_refresh_s=0.2,
        relay_poll_interval_s=0.02,
        tenant_guard=True,
    )
    market_settings = MarketplaceSettings(
        kafka_bootstrap_servers=qlp_infra.kafka,
        mongodb_url=qlp_infra.mongodb_url,
        mongodb_database=mongo_db.name,
        internal_auth_secret=SECRET,
        consumer_group_prefix=f"marketplace-offers-{unique}",
        relay_poll_interval_s=0.02,
        tenant_guard=True,
    )
    provider_org, buyer_org, other_org = new_id("org"), new_id("org"), new_id("org")
    agent = Principal(org_id=provider_org, subject=new_id("key"), kind="api_key",
                      scopes=["provider:agent"])  # fmt: skip
    buyer = Principal(org_id=buyer_org, subject=new_id("key"), kind="api_key",
                     scopes=["gpu:jobs", "gpu:read"])  # fmt: skip
    other = Principal(org_id=other_org, subject=f"usr_{other_org}", roles=["viewer"],
                      user_id=f"usr_{other_org}")  # fmt: skip
    fp = f"fp-{unique}"

    async with (
        running_app(scheduler, sched_settings) as s_url,
        running_app(marketplace, market_settings.model_copy(update={"replica": "one"})) as m_url,
        _client(s_url, agent) as a,
        _client(s_url, buyer) as b_sched,
        _client(m_url, buyer) as b,
        _client(m_url, other) as o,
    ):
        r = await a.post(
            "/v1/providers",
            json={
                "name": f"rig {fp}",
                "region": f"zz-{unique}",
                "price_per_gpu_hour": {"amount": 210, "currency": "USD"},
                "machine": _machine(fp, 2),
            },
        )
        assert r.status_code == 201, r.text
        pid = r.json()["id"]
        hb = await a.post(f"/v1/providers/{pid}/heartbeat", json={"gpus": [], "running": []})
        assert hb.status_code == 200, hb.text

        async def mine(c: httpx.AsyncClient) -> list[dict[str, Any]]:
            r = await c.get("/v1/gpu/offers", params={"region": f"zz-{unique}"})
            assert r.status_code == 200, r.text
            return [i for i in r.json()["items"] if i["provider_id"] == pid]

        # the first heartbeat write carries the reliability (coalesced afterwards)
        listed = await eventually(
            lambda: mine(b),
            lambda xs: len(xs) == 1 and xs[0]["reliability"] > 0,
            what="offer listed with its reliability",
        )
        offer = listed[0]
        assert offer["gpu_model"] == "NVIDIA H100 80GB HBM3" and offer["gpu_count"] == 2
        assert offer["available_gpus"] == 2 and offer["simulated"] is True
        assert offer["price_per_gpu_hour"] == {"amount": 210, "currency": "USD"}
        assert offer["fp16_tflops"] == 989.0
        # every org sees the same public offer
        assert await mine(o) == listed
        # filters that exclude it
        for params in ({"simulated": "false"}, {"count": 3}, {"max_price": 200}):
            r = await b.get("/v1/gpu/offers", params={"region": f"zz-{unique}", **params})
            assert [i for i in r.json()["items"] if i["provider_id"] == pid] == []

        # a job on it takes a GPU; cancelling it gives the GPU back
        job = (
            await b_sched.post(
                "/v1/gpu/jobs",
                json={
                    "gpu_count": 1,
                    "gpu_model": "H100",
                    "max_price_per_gpu_hour": {"amount": 300, "currency": "USD"},
                    "region": f"zz-{unique}",
                    "command": ["python", "-m", "sample"],
                    "checkpoint_interval_s": 5,
                    "redundancy": "none",
                    "max_duration_s": 600,
                },
            )
        ).json()
        assert job["status"] == "placed" and job["provider_id"] == pid, job
        await eventually(
            lambda: mine(o),
            lambda xs: len(xs) == 1 and xs[0]["available_gpus"] == 1,
            what="one GPU taken",
        )
        r = await b_sched.post(f"/v1/gpu/jobs/{job['id']}/cancel", json={"reason": "test"})
        assert r.status_code == 200, r.text
        await eventually(
            lambda: mine(o),
            lambda xs: len(xs) == 1 and xs[0]["available_gpus"] == 2,
            what="GPU given back",
        )
        stored = await mongo_db["gpu_offers"].find_one({"_id": offer["id"]})
        assert stored is not None and stored["revision"] >= 2

        # bad input: problems, not errors
        for params in (
            {"sort": "cheapest"},
            {"min_reliability": "2"},
            {"count": "0"},
            {"cursor": "!!"},
            {"simulated": "maybe"},
        ):
            r = await b.get("/v1/gpu/offers", params=params)
            assert 400 <= r.status_code < 500, (params, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
        viewer = Principal(org_id=other_org, subject=new_id("key"), kind="api_key",
                           scopes=["billing:read"])  # fmt: skip
        async with _client(m_url, viewer) as v:
            assert (await v.get("/v1/gpu/offers")).status_code == 403

    # a new replica answers from the rebuilt catalogue before any event reaches it
    async with (
        running_app(marketplace, market_settings.model_copy(update={"replica": "two"})) as m_url,
        _client(m_url, other) as o,
    ):
        r = await o.get("/v1/gpu/offers", params={"region": f"zz-{unique}"})
        got = [i for i in r.json()["items"] if i["provider_id"] == pid]
        assert len(got) == 1 and got[0]["available_gpus"] == 2
