"""FAKE services for the gateway's integration tests (not the real identity or any
real domain service): kit services served in-process with ``running_app``.

- ``fake_identity``: serves a JWKS of a key generated here, mints tokens, and answers
  ``POST /internal/v1/api-keys/verify`` from an in-memory table (the identity
  contract), only to the gateway's signed service principal.
- ``fake_upstream``: echoes what it received (method, path, query, headers, the
  verified principal, a body digest), creates "projects" with a fresh id (so a
  replay is visible), streams downloads and accepts checkpoint uploads.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ed25519
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from jwt.algorithms import OKPAlgorithm
from pydantic_settings import SettingsConfigDict

from qlp_kit.app import Ctx, ServiceDefinition
from qlp_kit.auth import CurrentPrincipal, target_of, verify_principal
from qlp_kit.problems import Problem
from qlp_kit.settings import ServiceSettings

ISSUER = "https://qlp.local/identity"
AUDIENCE = "qlp-api"


class FakeIdentityState:
    def __init__(self) -> None:
        self.key = ed25519.Ed25519PrivateKey.generate()
        self.kid = "fake-ed-1"
        self.rotated: list[tuple[str, ed25519.Ed25519PrivateKey]] = []
        self.api_keys: dict[str, dict[str, Any]] = {}
        self.verify_calls = 0
        self.jwks_calls = 0
        self.last_verify_principal: dict[str, Any] | None = None

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid, k in [(self.kid, self.key), *self.rotated]:
            jwk = json.loads(OKPAlgorithm.to_jwk(k.public_key()))
            jwk.update(kid=kid, use="sig", alg="EdDSA")
            keys.append(jwk)
        return {"keys": keys}

    def rotate_in(self) -> tuple[str, ed25519.Ed25519PrivateKey]:
        new = (f"fake-ed-{uuid.uuid4().hex[:6]}", ed25519.Ed25519PrivateKey.generate())
        self.rotated.append(new)
        return new

    def token(
        self,
        org: str,
        sub: str = "usr_fake",
        *,
        roles: list[str] | None = None,
        key: ed25519.Ed25519PrivateKey | None = None,
        kid: str | None = None,
        **over: Any,
    ) -> str:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": sub,
            "org": org,
            "roles": roles or ["owner"],
            "scopes": [],
            "iat": now,
            "nbf": now,
            "exp": now + 600,
            "jti": uuid.uuid4().hex,
        }
        claims.update(over)
        return jwt.encode(
            claims, key or self.key, algorithm="EdDSA", headers={"kid": kid or self.kid}
        )

    def add_api_key(self, org: str, scopes: list[str] | None = None) -> tuple[str, str]:
        key_id = f"key_{uuid.uuid4().hex[:10]}"
        secret = f"qlp_{uuid.uuid4().hex}"
        self.api_keys[secret] = {
            "org_id": org,
            "subject": key_id,
            "kind": "api_key",
            "roles": [],
            "scopes": scopes or ["*"],
            "user_id": "usr_fake",
        }
        return key_id, secret


FAKE_IDENTITY = FakeIdentityState()


class FakeIdentitySettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="QLP_FAKE_IDENTITY_", extra="ignore", populate_by_name=True
    )
    service_name: str = "fake_identity"


identity_router = APIRouter()


@identity_router.get("/.well-known/jwks.json")
async def fake_jwks() -> dict[str, Any]:
    FAKE_IDENTITY.jwks_calls += 1
    return FAKE_IDENTITY.jwks()


@identity_router.post("/internal/v1/api-keys/verify")
async def fake_verify(body: dict[str, str], principal: CurrentPrincipal) -> JSONResponse:
    FAKE_IDENTITY.verify_calls += 1
    FAKE_IDENTITY.last_verify_principal = principal.model_dump()
    if principal.kind != "service" or principal.subject != "svc_gateway":
        raise Problem(403, "Forbidden", "only the gateway may verify keys")
    found = FAKE_IDENTITY.api_keys.get(body.get("key", ""))
    if found is None:
        raise Problem(401, "Unauthenticated", "unknown API key")
    return JSONResponse(found)


@identity_router.post("/v1/auth/login")
async def fake_login(request: Request, ctx: Ctx) -> dict[str, Any]:
    headers = {k.lower(): v for k, v in request.headers.items()}
    forwarded = sorted(k for k in headers if k.startswith("x-qlp-"))
    return {"access_token": "x", "internal_headers_seen": forwarded}


@identity_router.get("/v1/me")
async def fake_me(principal: CurrentPrincipal, request: Request) -> dict[str, Any]:
    return {
        "principal": principal.model_dump(),
        "authorization": "authorization" in request.headers,
    }


fake_identity = ServiceDefinition(
    name="fake_identity", settings_cls=FakeIdentitySettings, routers=[identity_router]
)


class FakeUpstreamSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="QLP_FAKE_UPSTREAM_", extra="ignore", populate_by_name=True
    )
    service_name: str = "fake_upstream"


class FakeUpstreamState:
    def __init__(self) -> None:
        self.creates = 0


FAKE_UPSTREAM = FakeUpstreamState()
upstream_router = APIRouter()


def _principal(request: Request, ctx: Ctx) -> dict[str, Any] | None:
    headers = {k.lower(): v for k, v in request.headers.items()}
    try:
        return verify_principal(
            headers,
            ctx.settings.internal_auth_secret,
            method=request.method,
            target=target_of(request),
        ).model_dump()
    except Problem:
        return None


@upstream_router.post("/v1/projects", status_code=201)
async def fake_create_project(request: Request, ctx: Ctx, sleep: float = 0.0) -> JSONResponse:
    body = await request.body()
    if sleep:
        await asyncio.sleep(sleep)
    FAKE_UPSTREAM.creates += 1
    pid = f"prj_{uuid.uuid4().hex[:10]}"
    return JSONResponse(
        {"id": pid, "body_sha256": hashlib.sha256(body).hexdigest()},
        status_code=201,
        headers={"Location": f"/v1/projects/{pid}"},
    )


@upstream_router.get("/v1/projects/download")
async def fake_download(size: int) -> StreamingResponse:
    async def chunks() -> Any:
        left = size
        block = bytes(range(256)) * 256  # 64 KiB
        while left > 0:
            n = min(left, len(block))
            yield block[:n]
            left -= n

    return StreamingResponse(
        chunks(),
        media_type="application/octet-stream",
        headers={"Content-Disposition": 'attachment; filename="artifact.bin"'},
    )


@upstream_router.put("/v1/providers/{prv}/jobs/{job}/checkpoints")
async def fake_checkpoint(prv: str, job: str, request: Request) -> dict[str, Any]:
    h = hashlib.sha256()
    n = 0
    async for chunk in request.stream():
        h.update(chunk)
        n += len(chunk)
    return {
        "bytes": n,
        "sha256": h.hexdigest(),
        "content_type": request.headers.get("content-type"),
    }


@upstream_router.api_route(
    "/v1/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False
)
async def fake_echo(rest: str, request: Request, ctx: Ctx) -> JSONResponse:
    body = await request.body()
    headers = {k.lower(): v for k, v in request.headers.items()}
    status = int(request.query_params.get("status", "200"))
    return JSONResponse(
        {
            "method": request.method,
            "path": request.url.path,
            "query": request.url.query,
            "principal": _principal(request, ctx),
            "headers": headers,
            "body_sha256": hashlib.sha256(body).hexdigest(),
        },
        status_code=status,
        headers={"X-Upstream": "fake", "Set-Cookie": "a=1"},
    )


fake_upstream = ServiceDefinition(
    name="fake_upstream", settings_cls=FakeUpstreamSettings, routers=[upstream_router]
)
