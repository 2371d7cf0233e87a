"""The search index is a read model: a published listing becomes searchable from the
listing events (this replica's own consumer group), and a new replica (a restart: its
index starts empty) rebuilds it from MongoDB before it answers; a delisted listing
leaves the index through the same events."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from qlp_infra.topics import provision
from qlp_kit.auth import Principal
from qlp_marketplace.main import service
from qlp_marketplace.settings import MarketplaceSettings
from qlp_testing.flows import eventually
from qlp_testing.infra import TestInfra
from qlp_testing.principals import PrincipalAuth
from qlp_testing.services import running_app

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

SECRET = "test-internal-secret"


def _client(url: str, org: str) -> httpx.AsyncClient:
    who = Principal(org_id=org, subject=f"usr_{org}", roles=["owner"], user_id=f"usr_{org}")
    return httpx.AsyncClient(base_url=url, auth=PrincipalAuth(SECRET, who), timeout=20)


async def test_index_follows_events_and_is_rebuilt_on_start(
    qlp_infra: TestInfra, mongo_db: Any, unique: str
) -> None:
    await provision(qlp_infra.kafka)
    settings = MarketplaceSettings(
        kafka_bootstrap_servers=qlp_infra.kafka,
        mongodb_url=qlp_infra.mongodb_url,
        mongodb_database=mongo_db.name,
        internal_auth_secret=SECRET,
        consumer_group_prefix=f"marketplace-rm-{unique}",
        relay_poll_interval_s=0.02,
        tenant_guard=True,
    )
    word = f"zq{uuid.uuid4().hex[:8]}"
    seller, viewer = f"org_s{unique}", f"org_v{unique}"

    async def found(c: httpx.AsyncClient) -> list[str]:
        r = await c.get("/v1/marketplace/search", params={"q": word})
        assert r.status_code == 200, r.text
        return [i["id"] for i in r.json()["items"]]

    async with running_app(service, settings.model_copy(update={"replica": "one"})) as url:
        async with _client(url, seller) as s, _client(url, viewer) as v:
            r = await s.post(
                "/v1/marketplace/listings",
                json={
                    "kind": "skill",
                    "title": f"Read model probe {word}",
                    "summary": "a listing the index must follow",
                    "description": "Published, found, the replica restarted, found again.",
                    "category": "ml",
                    "license": "MIT",
                },
            )
            lid = r.json()["id"]
            r = await s.post(
                f"/v1/marketplace/listings/{lid}/versions",
                params={"version": "0.1.0"},
                content=b"{}",
                headers={"content-type": "application/json"},
            )
            assert r.status_code == 201, r.text  # JSON that is no generation reference: an artifact
            assert (await s.post(f"/v1/marketplace/listings/{lid}/publish")).status_code == 200
            await eventually(lambda: found(v), lambda ids: ids == [lid], what="searchable")
            assert (await v.get(f"/v1/marketplace/listings/{lid}/download")).content == b"{}"

    # a new replica: its index is empty until the rebuild, which happens before /readyz
    async with running_app(service, settings.model_copy(update={"replica": "two"})) as url:
        async with _client(url, seller) as s, _client(url, viewer) as v:
            assert await found(v) == [lid]
            r = await s.patch(f"/v1/marketplace/listings/{lid}", json={"status": "delisted"})
            assert r.status_code == 200, r.text
            await eventually(lambda: found(v), lambda ids: ids == [], what="dropped")
            # still readable by its creator; others now get 404 (delisted is not public)
            assert (await v.get(f"/v1/marketplace/listings/{lid}")).status_code == 404
            assert (await s.get(f"/v1/marketplace/listings/{lid}")).json()["status"] == "delisted"
