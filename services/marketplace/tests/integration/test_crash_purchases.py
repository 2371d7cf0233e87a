"""Kill -9 the marketplace while purchases are in flight: no entitlement without
payment, no payment without entitlement, each buyer charged at most once.

Billing and the marketplace run as real processes against the session's broker and
database. The marketplace is killed twice at fail points: once by its outbox relay
right after it published (before the outbox was cleared: the PurchaseRequested events
go out again, billing charges once per purchase id), once by its payments consumer
right after it granted entitlements (before the offset commit: the payment events
come again, nothing is granted twice). Buyers retry with their Idempotency-Keys after
each restart."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from pathlib import Path

import httpx
import pytest

from qlp_infra.topics import provision
from qlp_kit.auth import Principal
from qlp_testing.flows import eventually
from qlp_testing.infra import TestInfra
from qlp_testing.principals import PrincipalAuth
from qlp_testing.services import ServiceProcess
from qlp_testing.templates import tiny_pack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SECRET = "test-internal-secret"
PRICE = 1500
FUNDED, UNFUNDED = 8, 4


def client(url: str, org: str, roles: tuple[str, ...] = ("owner",)) -> httpx.AsyncClient:
    who = Principal(org_id=org, subject=f"usr_{org}", roles=list(roles), user_id=f"usr_{org}")
    return httpx.AsyncClient(base_url=url, auth=PrincipalAuth(SECRET, who), timeout=20)


async def test_purchases_survive_kill9(qlp_infra: TestInfra, unique: str, tmp_path: Path) -> None:
    await provision(qlp_infra.kafka)
    base = {
        "KAFKA_BOOTSTRAP_SERVERS": qlp_infra.kafka,
        "MONGODB_URL": qlp_infra.mongodb_url,
        "QLP_INTERNAL_AUTH_SECRET": SECRET,
    }
    billing = ServiceProcess(
        "billing",
        {
            **base,
            "QLP_BILLING_MONGODB_DATABASE": f"t_mkcrash_billing_{unique}",
            "QLP_BILLING_CONSUMER_GROUP_PREFIX": f"billing-mkcrash-{unique}",
        },
        tmp_path,
    )
    prefix = f"marketplace-crash-{unique}"
    market = ServiceProcess(
        "marketplace",
        {
            **base,
            "QLP_MARKETPLACE_MONGODB_DATABASE": f"t_mkcrash_{unique}",
            "QLP_MARKETPLACE_CONSUMER_GROUP_PREFIX": prefix,
            "QLP_MARKETPLACE_SEARCH_ENABLED": "false",
        },
        tmp_path,
    )
    seller = f"org_seller{unique}"
    buyers = [f"org_buyer{i}_{unique}" for i in range(FUNDED + UNFUNDED)]
    keys = {b: f"key-{uuid.uuid4().hex}" for b in buyers}
    await asyncio.gather(billing.start(timeout=120), market.start(timeout=120))
    try:
        for b in buyers[:FUNDED]:
            async with client(billing.url, b) as c:
                r = await c.post("/v1/billing/credits", json={"amount": {"amount": 10_000}})
                assert r.status_code == 201, r.text
        async with client(market.url, seller) as c:
            r = await c.post(
                "/v1/marketplace/listings",
                json={
                    "kind": "template",
                    "title": "Crash-tested template",
                    "summary": "a template bought while its service dies",
                    "description": "Bought by twelve orgs while the marketplace is killed.",
                    "category": "api",
                    "license": "MIT",
                    "price": {"amount": PRICE},
                },
            )
            listing = r.json()["id"]
            r = await c.post(
                f"/v1/marketplace/listings/{listing}/versions",
                params={"version": "1.0.0"},
                content=tiny_pack(),
                headers={"content-type": "application/gzip"},
            )
            assert r.status_code == 201, r.text
            assert (await c.post(f"/v1/marketplace/listings/{listing}/publish")).status_code == 200

        async def buy_all() -> dict[str, str]:
            async def buy(b: str) -> tuple[str, str | None]:
                async with client(market.url, b) as c:
                    with contextlib.suppress(httpx.HTTPError):
                        r = await c.post(
                            "/v1/marketplace/purchases",
                            json={"listing_id": listing},
                            headers={"Idempotency-Key": keys[b]},
                        )
                        if r.status_code in (200, 202):
                            return b, str(r.json()["id"])
                        if r.status_code == 402:  # unfunded: the purchase ended failed
                            return b, str(r.json()["purchase_id"])
                return b, None

            got = await asyncio.gather(*(buy(b) for b in buyers))
            return {b: p for b, p in got if p}

        # 1: the relay dies right after publishing (the outbox not yet cleared)
        market.stop()
        await market.start({"QLP_FAULTS": "relay.after_publish:2"}, timeout=120)
        first = await buy_all()
        assert await market.wait_exit(60) == -9
        # 2: the payments consumer dies after granting, before its offset commit
        await market.start(
            {"QLP_FAULTS": f"consumer.after_effect@{prefix}.payments:1"}, timeout=120
        )
        second = await buy_all()
        assert await market.wait_exit(60) == -9
        # 3: clean restart; every buyer retries with its key and gets the same purchase
        await market.start(timeout=120)
        third = await buy_all()
        assert set(third) == set(buyers)
        for earlier in (first, second):
            assert all(third[b] == p for b, p in earlier.items())

        async def states() -> dict[str, str]:
            out = {}
            for b in buyers:
                async with client(market.url, b) as c:
                    out[b] = (await c.get(f"/v1/marketplace/purchases/{third[b]}")).json()["status"]
            return out

        final = await eventually(
            states, lambda s: "pending" not in s.values(), timeout=90, what="purchases settled"
        )
        for b in buyers:
            async with client(billing.url, b) as c:
                bal = (await c.get("/v1/billing/balance")).json()["balance"]["amount"]
            async with client(market.url, b) as c:
                mine = (await c.get("/v1/marketplace/purchases")).json()["items"]
                dl = await c.get(f"/v1/marketplace/listings/{listing}/download")
            assert len(mine) == 1, mine  # one purchase per buyer, whatever the retries
            if b in buyers[:FUNDED]:
                # paid once, and entitled
                assert (final[b], bal, dl.status_code) == ("paid", 10_000 - PRICE, 200), b
            else:
                # nothing charged, nothing granted
                assert (final[b], bal, dl.status_code) == ("failed", 0, 403), b
        async with client(billing.url, seller) as c:
            payable = (await c.get("/v1/billing/balance")).json()["creator_payable"]["amount"]
        assert payable == FUNDED * (PRICE - PRICE * 3000 // 10_000)
        async with client(market.url, seller) as c:
            earned = await eventually(
                lambda: c.get("/v1/marketplace/creator/earnings"),
                lambda r: r.json()["sales"] == FUNDED,
                what="earnings",
            )
        assert earned.json()["earnings"]["amount"] == payable
        admin = Principal(org_id="org_platform", subject="usr_ops", roles=["platform_admin"])
        async with httpx.AsyncClient(
            base_url=billing.url, auth=PrincipalAuth(SECRET, admin), timeout=30
        ) as c:
            report = (await c.get("/v1/billing/admin/ledger/check")).json()
        assert report["ok"], report
    finally:
        market.stop()
        billing.stop()
