"""The failover service's HTTP API: the operators' view of failovers across the
platform (``platform:admin``, the ``platform_admin`` role). A job's own failovers are
served by the scheduler (``GET /v1/gpu/jobs/{id}/failovers``), which owns jobs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from qlp_failover.handlers import get_failover
from qlp_kit import permissions as perm
from qlp_kit.app import Ctx
from qlp_kit.auth import Principal
from qlp_kit.permissions import require

router = APIRouter(prefix="/v1/admin/failovers", tags=["failover admin"])
Admin = Annotated[Principal, require(perm.PLATFORM_ADMIN)]


class HourOut(BaseModel):
    #: Start of the hour (UTC, epoch milliseconds).
    hour_ms: int
    failovers: int
    #: Primary failovers (the job moved) and standby losses (a new standby placed).
    primary: int
    standby: int
    #: Of those, closed as completed; p50 of their recovery in milliseconds.
    completed: int
    recovery_ms_p50: int | None


class FailoverStatsOut(BaseModel):
    hours: list[HourOut]
    total: int
    #: Providers declared lost right now (not heard from since).
    providers_lost: int


@router.get("", response_model=FailoverStatsOut, summary="Failovers per hour (operators)")
async def failovers_per_hour(
    ctx: Ctx, principal: Admin, hours: Annotated[int, Query(ge=1, le=168)] = 24
) -> FailoverStatsOut:
    """Failover decisions per hour over the last ``hours`` (oldest first, every hour
    listed, empty ones too), and the providers lost now. Platform administrators only."""
    stats = await get_failover(ctx).stats_per_hour(hours)
    return FailoverStatsOut.model_validate(stats)
