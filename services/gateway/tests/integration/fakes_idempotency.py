"""A FAKE upstream for the gateway's Idempotency-Key tests (not a real service): it
counts, per test ``tag``, how often a request ARRIVED and how often it EXECUTED, so a
test sees whether a retry ran the request a second time. Endpoints that are slow,
whose answer breaks off after executing, that validate their body, or answer a
given status.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field
from pydantic_settings import SettingsConfigDict

from qlp_kit.app import ServiceDefinition
from qlp_kit.problems import Problem
from qlp_kit.settings import ServiceSettings


class KeyedUpstreamState:
    def __init__(self) -> None:
        self.arrived: Counter[str] = Counter()
        self.executed: Counter[str] = Counter()

    def created(self, tag: str, **extra: Any) -> JSONResponse:
        self.executed[tag] += 1
        pid = f"prj_{uuid.uuid4().hex[:10]}"
        return JSONResponse(
            {"id": pid, "tag": tag, "secret": f"qlp_{uuid.uuid4().hex}", **extra},
            status_code=201,
            headers={"Location": f"/v1/projects/{pid}", "X-Upstream": "keyed"},
        )


STATE = KeyedUpstreamState()


class KeyedSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="QLP_FAKE_KEYED_", extra="ignore", populate_by_name=True
    )
    service_name: str = "fake_keyed"


router = APIRouter(prefix="/v1/projects/keyed")


@router.post("/create")
async def create(tag: str) -> JSONResponse:
    STATE.arrived[tag] += 1
    return STATE.created(tag)


@router.post("/slow")
async def slow(tag: str, sleep: float) -> JSONResponse:
    STATE.arrived[tag] += 1
    await asyncio.sleep(sleep)
    return STATE.created(tag)


@router.post("/broken")
async def broken(tag: str) -> StreamingResponse:
    """Executes, then its answer breaks off half-way (the connection is dropped)."""
    STATE.arrived[tag] += 1
    STATE.executed[tag] += 1

    async def body() -> AsyncIterator[bytes]:
        yield b'{"id": "prj_'
        await asyncio.sleep(0.05)

    # Shorter than announced: the server drops the connection mid-answer.
    return StreamingResponse(
        body(), status_code=201, media_type="application/json", headers={"Content-Length": "500"}
    )


@router.post("/big")
async def big(tag: str) -> JSONResponse:
    STATE.arrived[tag] += 1
    return STATE.created(tag, padding="x" * 8192)


class NewProject(BaseModel):
    name: str = Field(min_length=1)
    size: int = Field(ge=1)


@router.post("/validated")
async def validated(tag: str, body: NewProject) -> JSONResponse:
    """FastAPI validates ``body`` before this runs: a 422 means nothing executed."""
    STATE.arrived[tag] += 1
    return STATE.created(tag, name=body.name)


@router.post("/status")
async def status(tag: str, code: int) -> JSONResponse:
    """Executes and answers ``code`` (a problem document for errors)."""
    STATE.arrived[tag] += 1
    STATE.executed[tag] += 1
    if code >= 400:
        raise Problem(code, "Refused", f"answered {code}")
    return JSONResponse({"tag": tag, "code": code, "n": STATE.executed[tag]}, status_code=code)


@router.post("/before-execution")
async def refused_before_execution(request: Request, tag: str) -> JSONResponse:
    """A 409 that the service marks as given before anything executed."""
    STATE.arrived[tag] += 1
    raise Problem(409, "Conflict", "refused up front", headers={"x-qlp-not-executed": "1"})


fake_keyed = ServiceDefinition(name="fake_keyed", settings_cls=KeyedSettings, routers=[router])
