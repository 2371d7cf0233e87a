"""Members, roles, invitations, last-owner protection and tenant isolation."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def _invite(idp: Any, owner: dict[str, Any], email: str, role: str) -> dict[str, Any]:
    org = owner["org"]["id"]
    r = await idp.http.post(
        f"/v1/orgs/{org}/invitations",
        json={"email": email, "role": role},
        headers=await idp.as_user(owner),
    )
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


async def test_invitation_roles_and_last_owner(idp: Any, unique: str) -> None:
    owner = await idp.signup(unique)
    org = owner["org"]["id"]
    inv = await _invite(idp, owner, f"Dev.{unique}@example.com", "developer")
    assert inv["id"].startswith("inv_") and inv["token"] and inv["status"] == "pending"

    # a new user accepts with a password of their own
    acc = await idp.http.post(
        "/v1/auth/invitations/accept",
        json={"token": inv["token"], "password": "Dev-password-2024", "display_name": "Dev"},
    )
    assert acc.status_code == 200, acc.text
    dev = acc.json()
    assert dev["org"]["id"] == org and dev["role"] == "developer"
    again = await idp.http.post(
        "/v1/auth/invitations/accept",
        json={"token": inv["token"], "password": "Dev-password-2024"},
    )
    assert again.status_code == 401

    members = await idp.http.get(f"/v1/orgs/{org}/members", headers=await idp.as_user(owner))
    assert {m["role"] for m in members.json()["items"]} == {"owner", "developer"}

    # a developer cannot manage members
    dev_h = await idp.as_user(dev)
    r = await idp.http.patch(
        f"/v1/orgs/{org}/members/{owner['user']['id']}", json={"role": "viewer"}, headers=dev_h
    )
    assert r.status_code == 403
    r = await idp.http.post(
        f"/v1/orgs/{org}/invitations",
        json={"email": "x@example.com", "role": "viewer"},
        headers=dev_h,
    )
    assert r.status_code == 403

    # the only owner cannot demote or remove themself
    own_h = await idp.as_user(owner)
    r = await idp.http.patch(
        f"/v1/orgs/{org}/members/{owner['user']['id']}", json={"role": "admin"}, headers=own_h
    )
    assert r.status_code == 409 and r.json()["type"].endswith("/last-owner")
    r = await idp.http.delete(f"/v1/orgs/{org}/members/{owner['user']['id']}", headers=own_h)
    assert r.status_code == 409

    # promote the developer to owner; now the first owner may step down
    r = await idp.http.patch(
        f"/v1/orgs/{org}/members/{dev['user']['id']}", json={"role": "owner"}, headers=own_h
    )
    assert r.status_code == 200 and r.json()["role"] == "owner"
    # the promoted user's old access token still says developer: refresh for the new role
    refreshed = await idp.http.post(
        "/v1/auth/refresh", json={"refresh_token": dev["refresh_token"]}
    )
    assert refreshed.status_code == 200, refreshed.text
    dev = refreshed.json()
    r = await idp.http.patch(
        f"/v1/orgs/{org}/members/{owner['user']['id']}", json={"role": "admin"}, headers=own_h
    )
    assert r.status_code == 200
    # the new owner removes the (now admin) first user; their sessions end
    r = await idp.http.delete(
        f"/v1/orgs/{org}/members/{owner['user']['id']}", headers=await idp.as_user(dev)
    )
    assert r.status_code == 204
    r = await idp.http.post("/v1/auth/refresh", json={"refresh_token": owner["refresh_token"]})
    assert r.status_code == 401
    # the remaining sole owner is protected again
    r = await idp.http.delete(
        f"/v1/orgs/{org}/members/{dev['user']['id']}", headers=await idp.as_user(dev)
    )
    assert r.status_code == 409

    audit = await idp.http.get(f"/v1/orgs/{org}/audit-log?limit=2", headers=await idp.as_user(dev))
    page1 = audit.json()
    assert len(page1["items"]) == 2 and page1["next_cursor"]
    seen = [e["type"] for e in page1["items"]]
    cursor = page1["next_cursor"]
    while cursor:
        nxt = await idp.http.get(
            f"/v1/orgs/{org}/audit-log",
            params={"limit": 2, "cursor": cursor},
            headers=await idp.as_user(dev),
        )
        seen += [e["type"] for e in nxt.json()["items"]]
        cursor = nxt.json()["next_cursor"]
    for t in (
        "org.created",
        "invitation.created",
        "invitation.accepted",
        "member.role_changed",
        "member.removed",
    ):
        assert t in seen


async def test_existing_user_joins_second_org_and_picks_org_at_login(idp: Any, unique: str) -> None:
    a = await idp.signup(unique, who="alice", org="Alpha")
    b = await idp.signup(unique, who="bob", org="Beta")
    inv = await _invite(idp, b, a["user"]["email"], "viewer")
    wrong = await idp.http.post(
        "/v1/auth/invitations/accept", json={"token": inv["token"], "password": "Not-her-pass-1"}
    )
    assert wrong.status_code == 401
    acc = await idp.http.post(
        "/v1/auth/invitations/accept",
        json={"token": inv["token"], "password": "Correct-Horse-42!"},
    )
    assert acc.status_code == 200, acc.text
    assert acc.json()["org"]["id"] == b["org"]["id"] and acc.json()["role"] == "viewer"

    default = await idp.login(a["user"]["email"])
    assert default.json()["org"]["id"] == a["org"]["id"]
    chosen = await idp.login(a["user"]["email"], org_id=b["org"]["id"])
    assert chosen.status_code == 200 and chosen.json()["org"]["id"] == b["org"]["id"]
    claims = await idp.verify(chosen.json()["access_token"])
    assert claims["org"] == b["org"]["id"] and claims["roles"] == ["viewer"]
    viewer_h = await idp.as_user(chosen.json())
    assert (await idp.http.get("/v1/api-keys", headers=viewer_h)).status_code == 403
    r = await idp.http.post(
        "/v1/api-keys", json={"name": "x", "scopes": ["generations:read"]}, headers=viewer_h
    )
    assert r.status_code == 403
    not_member = await idp.login(a["user"]["email"], org_id="org_00000000000000000000000000")
    assert not_member.status_code == 403


async def test_tenant_isolation(idp: Any, unique: str) -> None:
    a = await idp.signup(unique, who="a", org="A")
    b = await idp.signup(unique, who="b", org="B")
    a_org = a["org"]["id"]
    b_h = await idp.as_user(b)
    key = await idp.http.post(
        "/v1/api-keys",
        json={"name": "ci", "scopes": ["generations:read"]},
        headers=await idp.as_user(a),
    )
    assert key.status_code == 201
    for path in (f"/v1/orgs/{a_org}/members", f"/v1/orgs/{a_org}/audit-log"):
        r = await idp.http.get(path, headers=b_h)
        assert r.status_code == 404, path
    r = await idp.http.patch(
        f"/v1/orgs/{a_org}/members/{a['user']['id']}", json={"role": "viewer"}, headers=b_h
    )
    assert r.status_code == 404
    r = await idp.http.delete(f"/v1/orgs/{a_org}/members/{a['user']['id']}", headers=b_h)
    assert r.status_code == 404
    r = await idp.http.post(
        f"/v1/orgs/{a_org}/invitations",
        json={"email": "x@example.com", "role": "admin"},
        headers=b_h,
    )
    assert r.status_code == 404
    # B's key list holds nothing of A's, and B cannot revoke A's key
    listed = await idp.http.get("/v1/api-keys", headers=b_h)
    assert listed.json()["items"] == []
    r = await idp.http.delete(f"/v1/api-keys/{key.json()['id']}", headers=b_h)
    assert r.status_code == 404


async def test_two_owners_demoting_each_other_at_once_leave_one_owner(
    idp: Any, unique: str
) -> None:
    import asyncio

    a = await idp.signup(unique, who="a")
    org = a["org"]["id"]
    inv = await _invite(idp, a, f"b.{unique}@example.com", "owner")
    b = (
        await idp.http.post(
            "/v1/auth/invitations/accept",
            json={"token": inv["token"], "password": "Second-owner-pass-1"},
        )
    ).json()
    ha, hb = await idp.as_user(a), await idp.as_user(b)
    for _ in range(3):
        r1, r2 = await asyncio.gather(
            idp.http.patch(
                f"/v1/orgs/{org}/members/{b['user']['id']}", json={"role": "admin"}, headers=ha
            ),
            idp.http.patch(
                f"/v1/orgs/{org}/members/{a['user']['id']}", json={"role": "admin"}, headers=hb
            ),
        )
        members = (await idp.http.get(f"/v1/orgs/{org}/members", headers=ha)).json()["items"]
        owners = [m for m in members if m["role"] == "owner"]
        assert len(owners) >= 1, (r1.text, r2.text)
        assert sorted([r1.status_code, r2.status_code]) in ([200, 409], [200, 403], [403, 409])
        # restore two owners for the next round
        owner = owners[0]["user_id"]
        other = b if owner == a["user"]["id"] else a
        oh = ha if owner == a["user"]["id"] else hb
        r = await idp.http.patch(
            f"/v1/orgs/{org}/members/{other['user']['id']}", json={"role": "owner"}, headers=oh
        )
        assert r.status_code == 200
