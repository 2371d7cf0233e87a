"""The marketplace through the gateway (services as processes): a creator publishes a
template; another org cannot pay for it (failed, no entitlement), adds credits and
buys it with an Idempotency-Key (a retry charges once), the split is booked 70/30,
the entitlement downloads the artifact, the buyer reviews it, the refund reverses all
of it; the ledger balances after each step; a third org sees no draft, no private
listing, no download and no purchase history of the others, and cannot review.
Search finds the published listing with facets."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from qlp_kit.auth import Principal
from qlp_testing.flows import bearer, eventually, signup
from qlp_testing.principals import PrincipalAuth
from qlp_testing.templates import tiny_pack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

#: a template's artifact is a pattern pack (generation renders it for the buyers)
ARTIFACT = tiny_pack("kafka-outbox")
M = "/v1/marketplace"


async def _ledger_ok(platform: Any) -> dict[str, Any]:
    """Billing's operator ledger check, called on the service with a signed
    platform-admin principal (operators only; the gateway never issues one)."""
    url = platform.state.services["billing"]["url"]
    admin = Principal(org_id="org_platform", subject="usr_ops", roles=["platform_admin"])
    async with httpx.AsyncClient(
        base_url=str(url), auth=PrincipalAuth("e2e-internal-secret", admin), timeout=30
    ) as c:
        r = await c.get("/v1/billing/admin/ledger/check")
    assert r.status_code == 200, r.text
    report: dict[str, Any] = r.json()
    assert report["ok"], report
    return report


async def _balance(c: httpx.AsyncClient, auth: dict[str, str]) -> dict[str, Any]:
    r = await c.get("/v1/billing/balance", headers=auth)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


async def _purchase(c: httpx.AsyncClient, auth: dict[str, str], pid: str) -> dict[str, Any]:
    r = await c.get(f"{M}/purchases/{pid}", headers=auth)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


async def _settled(c: httpx.AsyncClient, auth: dict[str, str], pid: str, status: str) -> Any:
    return await eventually(
        lambda: _purchase(c, auth, pid),
        lambda p: p["status"] == status,
        timeout=60,
        what=f"purchase {pid} {status}",
    )


async def _publish_template(c: httpx.AsyncClient, auth: dict[str, str], **extra: Any) -> str:
    body = {
        "kind": "template",
        "title": "Kafka outbox service template",
        "summary": "A service template with a transactional outbox and idempotent consumers.",
        "description": "## Outbox\n\nEvents ride in the changed document; a relay publishes.",
        "category": "api",
        "tags": ["python", "kafka", "outbox"],
        "license": "MIT",
        "price": {"amount": 1500, "currency": "USD"},
        **extra,
    }
    r = await c.post(f"{M}/listings", json=body, headers=auth)
    assert r.status_code == 201, r.text
    lst = r.json()
    assert lst["status"] == "draft"
    # publishing without a version is refused by the automatic review, with reasons
    r = await c.post(f"{M}/listings/{lst['id']}/publish", headers=auth)
    assert r.status_code == 422, r.text
    assert any("version" in x for x in r.json()["reasons"])
    r = await c.post(
        f"{M}/listings/{lst['id']}/versions",
        params={"version": "1.0.0", "changelog": "first release"},
        content=ARTIFACT,
        headers={**auth, "content-type": "application/zip"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["size_bytes"] == len(ARTIFACT)
    r = await c.post(f"{M}/listings/{lst['id']}/publish", headers=auth)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "published"
    return str(lst["id"])


async def test_publish_buy_review_download_refund(qlp_platform: Any) -> None:
    async with httpx.AsyncClient(base_url=qlp_platform.state.gateway_url, timeout=30) as c:
        seller = bearer(await signup(c, "mkt-seller"))
        buyer = bearer(await signup(c, "mkt-buyer"))
        other = bearer(await signup(c, "mkt-other"))
        listing = await _publish_template(c, seller)

        # a draft and a private listing of the seller's: 404 to others
        r = await c.post(
            f"{M}/listings",
            json={"kind": "skill", "title": "Draft skill", "category": "ml", "license": "MIT"},
            headers=seller,
        )
        draft = r.json()["id"]
        # a move the states do not allow is a 409 naming the listing's state (the
        # problem's own status member stays the HTTP status)
        r = await c.patch(f"{M}/listings/{draft}", json={"status": "deprecated"}, headers=seller)
        assert r.status_code == 409, r.text
        assert r.json()["status"] == 409 and r.json()["listing_status"] == "draft"
        assert (await c.get(f"{M}/listings/{draft}", headers=other)).status_code == 404
        assert (await c.get(f"{M}/listings/{listing}", headers=other)).status_code == 200

        # search: the published listing is found (the index follows the events)
        async def find() -> dict[str, Any]:
            r = await c.get(f"{M}/search", params={"q": "outbox kafka"}, headers=buyer)
            assert r.status_code == 200, r.text
            out: dict[str, Any] = r.json()
            return out

        found = await eventually(
            find, lambda s: any(i["id"] == listing for i in s["items"]), what="searchable"
        )
        kinds = {f["value"]: f["count"] for f in found["facets"]["kind"]}
        assert sum(kinds.values()) == found["total"] and kinds.get("template", 0) >= 1
        # typo tolerance on a short query
        typo = await c.get(f"{M}/search", params={"q": "outbx"}, headers=buyer)
        assert listing in [i["id"] for i in typo.json()["items"]]

        # no credits: a 402 problem; the purchase failed with the reason, grants nothing
        r = await c.post(f"{M}/purchases", json={"listing_id": listing}, headers=buyer)
        assert r.status_code == 402, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["type"].endswith("insufficient-funds")
        failed = await _settled(c, buyer, r.json()["purchase_id"], "failed")
        assert failed["failure_reason"].startswith("insufficient_funds") and not failed["entitled"]
        assert (await c.get(f"{M}/listings/{listing}/download", headers=buyer)).status_code == 403

        # credits, then a purchase with an Idempotency-Key, retried: charged once
        r = await c.post("/v1/billing/credits", json={"amount": {"amount": 10_000}}, headers=buyer)
        assert r.status_code == 201, r.text
        key = {"Idempotency-Key": f"buy-{uuid.uuid4().hex}"}
        r1 = await c.post(f"{M}/purchases", json={"listing_id": listing}, headers={**buyer, **key})
        r2 = await c.post(f"{M}/purchases", json={"listing_id": listing}, headers={**buyer, **key})
        assert r1.status_code == 202, r1.text
        assert r2.json()["id"] == r1.json()["id"]
        pid = r1.json()["id"]
        paid = await _settled(c, buyer, pid, "paid")
        assert paid["entitled"] and paid["creator_share_bps"] == 7000
        # a second purchase of a held listing is a conflict
        r = await c.post(f"{M}/purchases", json={"listing_id": listing}, headers=buyer)
        assert r.status_code == 409, r.text
        assert (await _balance(c, buyer))["balance"]["amount"] == 10_000 - 1500
        assert (await _balance(c, seller))["creator_payable"]["amount"] == 1050
        await _ledger_ok(qlp_platform)

        earnings = await eventually(
            lambda: c.get(f"{M}/creator/earnings", headers=seller),
            lambda r: r.status_code == 200 and r.json()["earnings"]["amount"] == 1050,
            what="earnings",
        )
        row = earnings.json()["items"][0]
        await eventually(
            lambda: c.get(f"{M}/listings/{listing}", headers=other),
            lambda r: r.json()["sales"] == 1,
            what="sales counted on the listing",
        )
        assert (row["gross"]["amount"], row["platform_fees"]["amount"]) == (1500, 450)

        # the entitlement downloads; others get 403 (download) and 404 (purchases)
        r = await c.get(f"{M}/listings/{listing}/download", headers=buyer)
        assert r.status_code == 200 and r.content == ARTIFACT
        assert (await c.get(f"{M}/listings/{listing}/download", headers=other)).status_code == 403
        assert (await c.get(f"{M}/purchases/{pid}", headers=other)).status_code == 404
        theirs = (await c.get(f"{M}/purchases", headers=other)).json()["items"]
        assert theirs == []
        # an upload over the gateway's default 1 MiB body limit reaches the marketplace
        # (uploads get more), which answers that a template archive is at most 256 KiB
        big = b"PK\x03\x04" + uuid.uuid4().bytes * (2 * 1024 * 1024 // 16)
        r = await c.post(
            f"{M}/listings/{listing}/versions",
            params={"version": "1.1.0", "changelog": "bigger"},
            content=big,
            headers={**seller, "content-type": "application/zip"},
        )
        assert r.status_code == 413 and "template archive" in r.json()["detail"], r.text
        second = tiny_pack("kafka-outbox", "1.1.0")
        r = await c.post(
            f"{M}/listings/{listing}/versions",
            params={"version": "1.1.0", "changelog": "second"},
            content=second,
            headers={**seller, "content-type": "application/gzip"},
        )
        assert r.status_code == 201, r.text
        assert (await c.get(f"{M}/listings/{listing}/download", headers=buyer)).content == second
        r = await c.get(
            f"{M}/listings/{listing}/download", params={"version": "1.0.0"}, headers=buyer
        )
        assert r.content == ARTIFACT

        # reviews: buyers only, one per org (a second post edits), the creator replies
        r = await c.post(f"{M}/listings/{listing}/reviews", json={"rating": 5}, headers=other)
        assert r.status_code == 403, r.text
        r = await c.post(
            f"{M}/listings/{listing}/reviews",
            json={"rating": 5, "title": "Great", "body": "Worked first time."},
            headers=buyer,
        )
        assert r.status_code == 201, r.text
        review = r.json()["id"]
        r = await c.post(f"{M}/listings/{listing}/reviews", json={"rating": 4}, headers=buyer)
        assert r.status_code == 200 and r.json()["id"] == review
        r = await c.post(
            f"{M}/listings/{listing}/reviews/{review}/reply",
            json={"body": "Thanks!"},
            headers=seller,
        )
        assert r.status_code == 200, r.text
        reviews = (await c.get(f"{M}/listings/{listing}/reviews", headers=other)).json()
        assert reviews["rating"]["count"] == 1 and reviews["rating"]["average"] == 4.0
        assert reviews["rating"]["bayesian"] == round((5 * 3.5 + 4) / 6, 2)
        assert reviews["items"][0]["reply"]["body"] == "Thanks!"

        # delisted: no longer public, but the holder keeps reading and downloading it
        r = await c.patch(f"{M}/listings/{listing}", json={"status": "delisted"}, headers=seller)
        assert r.status_code == 200 and r.json()["status"] == "delisted", r.text
        assert (await c.get(f"{M}/listings/{listing}", headers=other)).status_code == 404
        assert (await c.get(f"{M}/listings/{listing}", headers=buyer)).status_code == 200
        r = await c.get(f"{M}/listings/{listing}/download", headers=buyer)
        assert r.status_code == 200 and r.content == second

        # the refund reverses the split and ends the entitlement
        r = await c.post(f"{M}/purchases/{pid}/refund", json={"reason": "test"}, headers=buyer)
        assert r.status_code == 202, r.text
        assert r.json()["status"] in ("refund_pending", "refunded") and not r.json()["entitled"]
        await _settled(c, buyer, pid, "refunded")
        # asking again answers the same refund (nothing moves twice)
        r = await c.post(f"{M}/purchases/{pid}/refund", json={"reason": "again"}, headers=buyer)
        assert r.status_code == 202 and r.json()["status"] == "refunded", r.text
        assert (await _balance(c, buyer))["balance"]["amount"] == 10_000
        assert (await _balance(c, seller))["creator_payable"]["amount"] == 0
        # no longer held, and delisted: not even visible to the former buyer
        assert (await c.get(f"{M}/listings/{listing}/download", headers=buyer)).status_code == 404
        await _ledger_ok(qlp_platform)
        e = await eventually(
            lambda: c.get(f"{M}/creator/earnings", headers=seller),
            lambda r: r.json()["refunds"] == 1,
            what="refund in earnings",
        )
        assert e.json()["earnings"]["amount"] == 0
        own = (await c.get(f"{M}/listings/{listing}", headers=seller)).json()
        assert own["sales"] == 0 and own["rating"]["count"] == 1


async def test_private_listing_and_cross_tenant(qlp_platform: Any) -> None:
    async with httpx.AsyncClient(base_url=qlp_platform.state.gateway_url, timeout=30) as c:
        seller = bearer(await signup(c, "mkt-private-seller"))
        enterprise_tokens = await signup(c, "mkt-enterprise")
        enterprise = bearer(enterprise_tokens)
        other = bearer(await signup(c, "mkt-outsider"))
        listing = await _publish_template(
            c, seller, private_to_org_id=enterprise_tokens["org"]["id"], title="Private pack"
        )
        assert (await c.get(f"{M}/listings/{listing}", headers=enterprise)).status_code == 200
        assert (await c.get(f"{M}/listings/{listing}", headers=other)).status_code == 404
        r = await c.post(f"{M}/purchases", json={"listing_id": listing}, headers=other)
        assert r.status_code == 404, r.text
        assert (await c.get(f"{M}/listings/{listing}/download", headers=other)).status_code == 404

        async def search(auth: dict[str, str]) -> list[str]:
            r = await c.get(f"{M}/search", params={"q": "private pack"}, headers=auth)
            return [i["id"] for i in r.json()["items"]]

        await eventually(lambda: search(enterprise), lambda ids: listing in ids, what="private")
        assert listing not in await search(other)
        # the creator's own list shows it; no one else's does
        mine = (await c.get(f"{M}/listings", headers=seller)).json()["items"]
        assert listing in [i["id"] for i in mine]
        assert (await c.get(f"{M}/listings", headers=other)).json()["items"] == []
        # bad input is a problem, never a 500
        r = await c.get(f"{M}/search", params={"cursor": "not-a-cursor!"}, headers=other)
        assert r.status_code == 422 and r.headers["content-type"].startswith(
            "application/problem+json"
        )
        r = await c.post(
            f"{M}/listings/{listing}/versions",
            params={"version": "2.0.0"},
            content=b"x",
            headers={**seller, "content-type": "image/png"},
        )
        assert r.status_code == 415, r.text
