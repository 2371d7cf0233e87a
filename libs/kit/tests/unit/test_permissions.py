"""The shared role → permission map and the require() dependency (pure logic, and a
FastAPI app served in-process by its ASGI transport)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter, FastAPI

from qlp_kit import permissions as perm
from qlp_kit.auth import Principal
from qlp_kit.permissions import app_routes, public, require
from qlp_kit.problems import install_problem_handlers
from qlp_testing.principals import PrincipalAuth, principal_headers

SECRET = "perm-secret"


def user(role: str, uid: str = "usr_1") -> Principal:
    return Principal(org_id="org_1", subject=uid, roles=[role], user_id=uid)


def key(*scopes: str, kid: str = "key_1") -> Principal:
    return Principal(org_id="org_1", subject=kid, kind="api_key", scopes=list(scopes))


def test_roles_spend_money_only_when_they_should() -> None:
    for role in (perm.VIEWER, perm.BILLING):
        assert not perm.has_permission(user(role), perm.GPU_JOBS)
        assert not perm.has_permission(user(role), perm.PROVIDER_AGENT)
        assert perm.has_permission(user(role), perm.GPU_READ)
    assert perm.has_permission(user(perm.BILLING), perm.BILLING_WRITE)
    assert not perm.has_permission(user(perm.DEVELOPER), perm.BILLING_WRITE)
    assert perm.has_permission(user(perm.DEVELOPER), perm.GPU_JOBS)
    assert not perm.has_permission(user(perm.DEVELOPER), perm.MEMBERS_MANAGE)
    for role in perm.ROLES:
        assert perm.has_permission(user(role), perm.AUTHENTICATED)
        assert not perm.has_permission(user(role), perm.PLATFORM_ADMIN)
        assert not perm.has_permission(user(role), perm.INTERNAL)
    assert perm.has_permission(user("platform_admin"), perm.PLATFORM_ADMIN)
    # Proto-style role names are understood too.
    assert perm.has_permission(user("ROLE_OWNER"), perm.MEMBERS_MANAGE)


def test_keys_get_what_their_scopes_imply_and_nothing_else() -> None:
    k = key("gpu:jobs")
    assert perm.has_permission(k, perm.GPU_JOBS) and perm.has_permission(k, perm.GPU_READ)
    assert not perm.has_permission(k, perm.PROVIDER_AGENT)
    # Roles on a key principal grant nothing, nor do unknown scopes.
    forged = Principal(
        org_id="o", subject="key_x", kind="api_key", roles=["owner"], scopes=["members:manage"]
    )
    assert not perm.has_permission(forged, perm.MEMBERS_MANAGE)


def test_effective_scopes_follow_the_creator_role() -> None:
    scopes = ["gpu:jobs", "generations:read", "billing:write"]
    assert perm.effective_scopes(scopes, "owner") == sorted(scopes)
    assert perm.effective_scopes(scopes, "developer") == ["generations:read", "gpu:jobs"]
    assert perm.effective_scopes(scopes, "viewer") == ["generations:read"]
    assert perm.effective_scopes(scopes, "gone") == []
    assert perm.effective_scopes(scopes, None) == sorted(scopes)


router = APIRouter()


@router.post("/jobs", dependencies=[require(perm.GPU_JOBS)])
async def submit() -> dict[str, str]:
    return {"ok": "yes"}


@router.delete("/members/{user_id}", dependencies=[require(perm.MEMBERS_MANAGE, or_self="user_id")])
async def remove(user_id: str) -> dict[str, str]:
    return {"removed": user_id}


@router.get("/plans", dependencies=[public()])
async def plans() -> list[str]:
    return []


@router.get("/forgot")
async def forgot() -> list[str]:
    return []


def _app() -> FastAPI:
    app = FastAPI()
    app.state.ctx = type("C", (), {"settings": type("S", (), {"internal_auth_secret": SECRET})})
    install_problem_handlers(app)
    app.include_router(router)
    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=_app())
    auth = PrincipalAuth(SECRET)
    async with httpx.AsyncClient(transport=transport, base_url="http://t", auth=auth) as c:
        yield c


async def test_require_answers_403_problem(client: httpx.AsyncClient) -> None:
    r = await client.post("/jobs", headers=principal_headers(user("viewer")))
    assert r.status_code == 403
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["permission"] == "gpu:jobs"
    assert (await client.post("/jobs", headers=principal_headers(user("developer")))).json() == {
        "ok": "yes"
    }
    assert (await client.post("/jobs")).status_code == 401


async def test_acting_on_oneself_needs_no_permission(client: httpx.AsyncClient) -> None:
    viewer = principal_headers(user("viewer", "usr_v"))
    assert (await client.delete("/members/usr_v", headers=viewer)).status_code == 200
    assert (await client.delete("/members/usr_other", headers=viewer)).status_code == 403
    owner = principal_headers(user("owner", "usr_o"))
    assert (await client.delete("/members/usr_other", headers=owner)).status_code == 200


def test_routes_list_their_permission() -> None:
    declared = {(r.path, tuple(sorted(r.methods))): r.permission for r in app_routes(_app())}
    assert declared[("/jobs", ("POST",))] == perm.GPU_JOBS
    assert declared[("/members/{user_id}", ("DELETE",))] == perm.MEMBERS_MANAGE
    assert declared[("/plans", ("GET",))] == perm.PUBLIC
    assert declared[("/forgot", ("GET",))] is None  # found: declares nothing
