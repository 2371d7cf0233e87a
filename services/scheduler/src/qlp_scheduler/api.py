"""HTTP API: the provider agent API (``/v1/providers``, permission ``provider:agent``;
reading providers and earnings ``provider:read``) and the consumer API (``/v1/gpu``:
submitting and canceling jobs ``gpu:jobs``, reading them ``gpu:read``). The public
offer catalogue (``GET /v1/gpu/offers``) is the marketplace's read model of this
service's offer events.
Users get permissions from their role, API keys from their scopes (qlp_kit.permissions).
Thin: parse, call the engine, map."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from qlp_kit import permissions as perm
from qlp_kit.app import Ctx
from qlp_kit.auth import Principal
from qlp_kit.mongo import as_utc, utcnow
from qlp_kit.openapi_docs import problems
from qlp_kit.permissions import require
from qlp_kit.problems import Problem
from qlp_scheduler import schemas as M
from qlp_scheduler import service as S
from qlp_scheduler.engine import Scheduler
from qlp_scheduler.failover import alive_publisher

T = TypeVar("T")
# How often a followed log stream looks for new lines.
LOG_POLL_S = 1.0

AGENT = require(perm.PROVIDER_AGENT)
CONSUMER = require(perm.GPU_JOBS)
AgentPrincipal = Annotated[Principal, AGENT]
ConsumerPrincipal = Annotated[Principal, CONSUMER]
GpuReader = Annotated[Principal, require(perm.GPU_READ)]
ProviderReader = Annotated[Principal, require(perm.PROVIDER_READ)]

providers = APIRouter(prefix="/v1/providers", tags=["providers"])
gpu = APIRouter(prefix="/v1/gpu", tags=["gpu"])


def engine(ctx: Any) -> Scheduler:
    sched: Scheduler = ctx.extras["scheduler"]
    return sched


async def call(aw: Awaitable[T]) -> T:
    """Map domain errors to problems."""
    try:
        return await aw
    except S.NotFound as exc:
        raise Problem(404, "Not found", f"{exc} not found") from None
    except S.StaleEpoch as exc:
        raise Problem(
            409,
            "Stale epoch",
            str(exc),
            type_="stale-epoch",
            current_epoch=exc.current,
            reported_epoch=exc.reported,
        ) from None
    except S.InvalidTransition as exc:
        raise Problem(409, "Conflict", str(exc), type_="invalid-transition") from None
    except S.Invalid as exc:
        raise Problem(422, "Request is not valid", str(exc)) from None
    except S.Unsatisfiable as exc:
        raise Problem(
            422,
            "Request is not valid",
            f"no registered offer can run this job: {exc}; change the requirement, or set "
            '"wait_for_capacity": true to submit it anyway and let it wait',
            type_="unsatisfiable",
            requirement=str(exc),
        ) from None
    except S.InsufficientBalance as exc:
        cur = exc.currency
        raise Problem(
            402,
            "Payment required",
            f"{exc}. A top-up made seconds ago may not be seen yet: retry shortly "
            "(POST /v1/gpu/jobs/quote shows the balance the scheduler sees)",
            type_="insufficient-balance",
            required={"amount": exc.required, "currency": cur},
            available={"amount": exc.available, "currency": cur},
            shortfall={"amount": exc.shortfall, "currency": cur},
        ) from None


# ---------------------------------------------------------------- mapping helpers


def provider_out(sched: Scheduler, d: dict[str, Any]) -> M.ProviderOut:
    gpus = d.get("gpus") or {}
    return M.ProviderOut(
        id=d["_id"],
        org_id=d["org_id"],
        machine_id=d["machine_id"],
        offer_id=d["offer_id"],
        name=d["name"],
        region=d["region"],
        status=d["status"],
        backend=d.get("backend", "agent"),
        price_per_gpu_hour=M.MoneyOut(amount=int(d["price_minor"]), currency=d["currency"]),
        gpu_model=d.get("gpu_model", ""),
        gpu_memory_gb=float(d.get("gpu_memory_gb", 0)),
        gpu_count=int(d.get("gpu_count", 0)),
        available_gpus=int(d.get("available_gpus", 0)),
        gpus=sorted(
            (M.GpuOut(uuid=u, **g) for u, g in gpus.items()), key=lambda g: (g.index, g.uuid)
        ),
        simulated=bool((d.get("machine") or {}).get("simulated")),
        containers=bool(d.get("containers")),
        reliability=round(sched.reliability_of(d), 4),
        stake=M.MoneyOut(amount=int(d.get("stake_minor", 0) or 0), currency=d["currency"]),
        last_heartbeat_at=S.from_ms(d.get("last_heartbeat_ms")),
        created_at=as_utc(d["created_at"]),
        liveness=d.get("liveness") or "alive",
    )


def _ck(ck: dict[str, Any] | None) -> M.CheckpointRef | None:
    if not ck:
        return None
    return M.CheckpointRef(
        checkpoint_id=ck["checkpoint_id"],
        step=int(ck["step"]),
        epoch=int(ck["epoch"]),
        size_bytes=int(ck["size_bytes"]),
        sha256=ck["sha256"],
        at=S.from_ms(ck["at_ms"]) or utcnow(),
    )


def _dt(v: Any) -> Any:
    return as_utc(v) if v else None


def job_out(sched: Scheduler, j: dict[str, Any]) -> M.JobOut:
    spec = j["spec"]
    cur = spec.get("currency", "USD")
    usage = j.get("usage") or {}
    minutes = sum(u.gpu_minutes for u in S.usage_lines(usage))
    return M.JobOut(
        id=j["_id"],
        org_id=j["org_id"],
        status=j["status"],
        gpu_count=int(spec["gpu_count"]),
        gpu_model=spec.get("gpu_model") or None,
        min_gpu_memory_gb=spec.get("min_gpu_memory_gb") or None,
        max_price_per_gpu_hour=M.MoneyOut(amount=int(spec["max_price_minor"]), currency=cur),
        region=spec.get("region") or None,
        command=list(spec["command"]),
        image=spec.get("image") or None,
        checkpoint_interval_s=int(spec["checkpoint_interval_s"]),
        redundancy=spec["redundancy"],
        max_duration_s=int(spec["max_duration_s"]),
        provider_id=(j.get("primary") or {}).get("provider_id"),
        standby_provider_id=(j.get("standby") or {}).get("provider_id"),
        epoch=int(j.get("epoch", 0)),
        escrow_id=j.get("escrow_id") or None,
        escrow_amount=M.MoneyOut(**j["escrow_amount"]),
        cost=M.MoneyOut(amount=sched.cost_so_far(j), currency=cur),
        gpu_minutes=minutes,
        step=j.get("step"),
        message=j.get("message") or "",
        placement_reason=j.get("placement_reason") or None,
        failure=j.get("failure"),
        exit_code=j.get("exit_code"),
        latest_checkpoint=_ck(j.get("latest_checkpoint")),
        created_at=as_utc(j["created_at"]),
        placed_at=S.from_ms(j.get("placed_ms")),
        started_at=S.from_ms(j.get("started_ms")),
        ended_at=S.from_ms(j.get("ended_ms")),
    )


def _assignment(a: dict[str, Any]) -> M.AssignmentOut:
    return M.AssignmentOut(
        assignment_id=a["assignment_id"],
        job_id=a["job_id"],
        epoch=int(a["epoch"]),
        role=a["role"],
        action=a["action"],
        command=list(a.get("command") or []),
        image=str(a.get("image") or ""),
        env=dict(a.get("env") or {}),
        gpu_uuids=list(a.get("gpu_uuids") or []),
        checkpoint_interval_s=int(a.get("checkpoint_interval_s", 0)),
        max_duration_s=int(a.get("max_duration_s", 0)),
        resume=bool(a.get("resume")),
        delivered_ms=a.get("delivered_ms"),
        checkpoint_id=a.get("checkpoint_id"),
        step=a.get("step"),
    )


# -------------------------------------------------------------------- agent API


@providers.post(
    "",
    status_code=201,
    response_model=M.ProviderOut,
    summary="Register a provider machine (the agent does this at start)",
    responses=problems(409),
)
async def register(body: M.ProviderIn, ctx: Ctx, principal: AgentPrincipal) -> JSONResponse:
    """Registers this machine and its GPUs as a provider of the API key's organization,
    with its price per GPU-hour and region, and publishes its offer. Registering the
    same machine again answers 200 with the existing provider."""
    sched = engine(ctx)
    data = body.model_dump()
    data["stake_minor"] = body.stake.amount if body.stake else 0
    doc, created = await call(sched.register_provider(principal.org_id, data))
    out = provider_out(sched, doc)
    return JSONResponse(out.model_dump(mode="json"), status_code=201 if created else 200)


@providers.get("", response_model=M.ProviderList, summary="List the organization's providers")
async def list_providers(
    ctx: Ctx,
    principal: ProviderReader,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
    sort: Annotated[
        Literal["-created_at", "created_at"],
        Query(description="-created_at: newest first (the default); created_at: oldest first"),
    ] = "-created_at",
) -> M.ProviderList:
    """The org's provider machines, newest first unless ``sort=created_at``."""
    sched = engine(ctx)
    try:
        page = await sched.repo.list_providers(
            principal.org_id, limit, cursor, newest_first=sort == "-created_at"
        )
    except ValueError:
        raise Problem(422, "Request is not valid", "query parameter cursor is malformed") from None
    return M.ProviderList(
        items=[provider_out(sched, d) for d in page.items], next_cursor=page.next_cursor
    )


@providers.get("/{provider_id}", response_model=M.ProviderOut, summary="Read one provider")
async def get_provider(provider_id: str, ctx: Ctx, principal: ProviderReader) -> M.ProviderOut:
    """One provider of the organization: its machine, GPUs, price, region, state and last
    heartbeat."""
    sched = engine(ctx)
    return provider_out(sched, await call(sched.provider(principal.org_id, provider_id)))


@providers.post(
    "/{provider_id}/heartbeat",
    response_model=M.HeartbeatOut,
    summary="Report the agent is alive (the agent does this)",
)
async def heartbeat(
    provider_id: str, body: M.HeartbeatIn, ctx: Ctx, principal: AgentPrincipal
) -> M.HeartbeatOut:
    """Sent by the agent every few seconds with its GPUs' health and the jobs it runs; a
    provider that stops sending heartbeats goes offline and its jobs fail over."""
    sched = engine(ctx)
    hb = body.model_dump()
    doc = await call(sched.heartbeat(principal.org_id, provider_id, hb))
    if sched.settings.liveness_events:
        # every heartbeat, written or coalesced: the failover service's liveness input
        alive_publisher(ctx).publish(doc, hb.get("running") or [])
    return M.HeartbeatOut(status="ok", server_time=utcnow())


@providers.post(
    "/{provider_id}/drain",
    response_model=M.ProviderOut,
    summary="Stop taking new jobs (the agent does this on shutdown)",
)
async def drain(provider_id: str, ctx: Ctx, principal: AgentPrincipal) -> M.ProviderOut:
    """Marks the provider draining: no new job is placed on it, running jobs finish. The
    agent calls it on SIGTERM before going offline."""
    sched = engine(ctx)
    return provider_out(sched, await call(sched.drain(principal.org_id, provider_id)))


@providers.post("/{provider_id}/offline", response_model=M.ProviderOut)
async def offline(provider_id: str, ctx: Ctx, principal: AgentPrincipal) -> M.ProviderOut:
    """The agent is stopping: the offer is withdrawn at once and the provider shows
    ``offline`` until its agent registers again (a draining provider stays draining)."""
    sched = engine(ctx)
    return provider_out(sched, await call(sched.go_offline(principal.org_id, provider_id)))


@providers.get(
    "/{provider_id}/earnings",
    response_model=M.EarningsOut,
    summary="Read a provider's earnings",
)
async def earnings(provider_id: str, ctx: Ctx, principal: ProviderReader) -> M.EarningsOut:
    """What the provider earned from finished jobs: job count, GPU-minutes, gross, the
    platform fee and the net paid out to the organization, in integer cents."""
    e = await call(engine(ctx).earnings(principal.org_id, provider_id))
    cur = e["currency"]
    return M.EarningsOut(
        provider_id=provider_id,
        jobs=e["jobs"],
        gpu_minutes=e["gpu_minutes"],
        gross=M.MoneyOut(amount=e["gross"], currency=cur),
        platform_fee=M.MoneyOut(amount=e["platform_fee"], currency=cur),
        platform_fee_bps=e["platform_fee_bps"],
        net=M.MoneyOut(amount=e["net"], currency=cur),
    )


@providers.get(
    "/{provider_id}/assignments",
    response_model=M.AssignmentList,
    summary="Long-poll the jobs assigned to this provider (the agent does this)",
)
async def assignments(
    provider_id: str,
    ctx: Ctx,
    principal: AgentPrincipal,
    wait_s: Annotated[float, Query(ge=0, le=25)] = 0,
) -> M.AssignmentList:
    """The jobs the agent should start or cancel. With `wait_s` the request waits up to
    that many seconds for a new assignment before answering an empty list."""
    items = await call(engine(ctx).poll_assignments(principal.org_id, provider_id, wait_s))
    return M.AssignmentList(items=[_assignment(a) for a in items])


@providers.post(
    "/{provider_id}/jobs/{job_id}/status",
    response_model=M.StatusOut,
    summary="Report a job's progress or end (the agent does this)",
    responses=problems(409),
)
async def report_status(
    provider_id: str, job_id: str, body: M.StatusIn, ctx: Ctx, principal: AgentPrincipal
) -> M.StatusOut:
    """The agent reports that a job started, its progress, or how it ended (exit code,
    failure). A report for a job the provider no longer holds is 409."""
    out = await call(
        engine(ctx).report_status(
            principal.org_id, provider_id, job_id, body.model_dump(exclude_none=True)
        )
    )
    return M.StatusOut(**out)


@providers.post(
    "/{provider_id}/jobs/{job_id}/logs",
    status_code=202,
    summary="Ship a job's log lines (the agent does this)",
    responses=problems(409),
)
async def post_logs(
    provider_id: str, job_id: str, body: M.LogsIn, ctx: Ctx, principal: AgentPrincipal
) -> dict[str, int]:
    """Appends log lines the job printed; consumers read them at GET
    /v1/gpu/jobs/{job_id}/logs."""
    n = await call(
        engine(ctx).append_logs(principal.org_id, provider_id, job_id, body.epoch, body.lines)
    )
    return {"accepted": n}


@providers.post(
    "/{provider_id}/jobs/{job_id}/checkpoints",
    status_code=201,
    response_model=M.CheckpointOut,
    summary="Upload a job checkpoint (the agent does this)",
    responses=problems(409, 413),
)
async def put_checkpoint(
    provider_id: str,
    job_id: str,
    request: Request,
    ctx: Ctx,
    principal: AgentPrincipal,
    epoch: Annotated[int, Query(ge=0)],
    step: Annotated[int, Query(ge=0)],
) -> M.CheckpointOut:
    """Stores the job's checkpoint (the raw bytes as the body) for its epoch and step, so a
    failover resumes from it. Larger than the configured limit is 413."""
    sched = engine(ctx)
    limit = sched.settings.checkpoint_max_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise Problem(413, "Checkpoint too large", f"at most {limit} bytes")
    data = bytearray()
    async for chunk in request.stream():
        data.extend(chunk)
        if len(data) > limit:
            raise Problem(413, "Checkpoint too large", f"at most {limit} bytes")
    ck = await call(
        sched.put_checkpoint(principal.org_id, provider_id, job_id, epoch, step, bytes(data))
    )
    return M.CheckpointOut(checkpoint_id=ck["checkpoint_id"], step=int(ck["step"]))


@providers.get(
    "/{provider_id}/jobs/{job_id}/checkpoints/latest",
    summary="Download a job's latest checkpoint (the agent does this)",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}, "description": "the checkpoint"}},
)
async def latest_checkpoint(
    provider_id: str,
    job_id: str,
    ctx: Ctx,
    principal: AgentPrincipal,
    epoch: Annotated[int, Query(ge=0)],
) -> Response:
    """The bytes of the newest checkpoint of the job for the given epoch, to resume on
    another machine after a failover."""
    ck = await call(engine(ctx).latest_checkpoint(principal.org_id, provider_id, job_id, epoch))
    return Response(
        ck.data,
        media_type="application/octet-stream",
        headers={"X-Checkpoint-Id": ck.checkpoint_id, "X-Checkpoint-Step": str(ck.step)},
    )


# ----------------------------------------------------------------- consumer API


@gpu.post("/jobs", status_code=202, response_model=M.JobOut)
async def submit(body: M.JobIn, ctx: Ctx, principal: ConsumerPrincipal) -> M.JobOut:
    """Submit a GPU job. Refused with 402 (and the shortfall) when the prepaid
    balance the scheduler sees cannot cover the escrow estimate, and with 422 naming
    the requirement when no registered offer could ever hold it, unless
    ``wait_for_capacity`` is set (the job then waits and ``placement_reason`` says
    why)."""
    sched = engine(ctx)
    job = await call(sched.submit_job(principal, body.to_spec()))
    return job_out(sched, job)


@gpu.post("/jobs/quote", response_model=M.QuoteOut)
async def quote(body: M.JobIn, ctx: Ctx, principal: GpuReader) -> M.QuoteOut:
    """Check a job before submitting it: the escrow estimate it would hold, how many
    offers match now, whether any registered offer could hold it, and whether the
    prepaid balance the scheduler sees covers it. Nothing is held or created."""
    q = await call(engine(ctx).quote(principal.org_id, body.to_spec()))
    cur = q["currency"]
    avail = q["available"]
    covers = None if avail is None or not q["escrow_required"] else avail >= q["amount"]
    return M.QuoteOut(
        escrow_estimate=M.MoneyOut(amount=q["amount"], currency=cur),
        matching_offers=q["matching_offers"],
        satisfiable=q["unsatisfiable"] is None,
        unsatisfied_requirement=q["unsatisfiable"],
        placement_reason=q["placement_reason"],
        available_balance=None if avail is None else M.MoneyOut(amount=avail, currency=cur),
        balance_covers=covers,
        shortfall=(
            M.MoneyOut(amount=q["amount"] - avail, currency=cur)
            if covers is False and avail is not None
            else None
        ),
    )


JobStatus = Literal[
    "submitted", "escrow_held", "placed", "starting", "running", "completed", "failed", "canceled"
]


@gpu.get("/jobs", response_model=M.JobList)
async def list_jobs(
    ctx: Ctx,
    principal: GpuReader,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
    status: Annotated[
        JobStatus | None, Query(description="only jobs in this status (an unknown one is 422)")
    ] = None,
    sort: Annotated[
        Literal["-created_at", "created_at"],
        Query(description="-created_at: newest first (the default); created_at: oldest first"),
    ] = "-created_at",
) -> M.JobList:
    """The org's GPU jobs, newest first unless ``sort=created_at``."""
    sched = engine(ctx)
    try:
        page = await sched.repo.list_jobs(
            principal.org_id, limit, cursor, status, newest_first=sort == "-created_at"
        )
    except ValueError:
        raise Problem(422, "Request is not valid", "query parameter cursor is malformed") from None
    return M.JobList(items=[job_out(sched, j) for j in page.items], next_cursor=page.next_cursor)


@gpu.get(
    "/jobs/{job_id}",
    response_model=M.JobOut,
    summary="Read a GPU job: its status, placement and cost",
)
async def get_job(job_id: str, ctx: Ctx, principal: GpuReader) -> M.JobOut:
    """The job's status (submitted, escrow_held, placed, running, completed, failed,
    canceled), where it runs, why it waits (`placement_reason`), its GPU-minutes and
    cost in integer cents, and its latest checkpoint."""
    sched = engine(ctx)
    return job_out(sched, await call(sched.job(principal.org_id, job_id)))


@gpu.post(
    "/jobs/{job_id}/cancel",
    response_model=M.JobOut,
    summary="Cancel a GPU job",
    responses=problems(409),
)
async def cancel(
    job_id: str, ctx: Ctx, principal: ConsumerPrincipal, body: M.CancelIn | None = None
) -> M.JobOut:
    """Stops the job; the escrow is settled for the minutes used and the rest refunded.
    Cancelling a job that has already finished is 409."""
    sched = engine(ctx)
    reason = body.reason if body else "canceled by the consumer"
    return job_out(sched, await call(sched.cancel_job(principal, job_id, reason)))


def _line(d: dict[str, Any]) -> M.LogLine:
    return M.LogLine(
        at=as_utc(d["at"]), epoch=int(d["epoch"]), provider_id=d["provider_id"], line=d["line"]
    )


@gpu.get("/jobs/{job_id}/logs", response_model=M.LogList)
async def job_logs(
    job_id: str,
    ctx: Ctx,
    principal: GpuReader,
    limit: Annotated[int, Query(ge=1, le=5000, description="log lines per page")] = 100,
    cursor: str | None = None,
) -> M.LogList:
    """The job's log lines, oldest first, ``limit`` lines a page. To follow them live
    use ``GET /v1/gpu/jobs/{job_id}/logs/stream`` (server-sent events)."""
    sched = engine(ctx)
    await call(sched.job(principal.org_id, job_id))
    try:
        page = await sched.repo.read_logs(principal.org_id, job_id, limit, cursor)
    except ValueError:
        raise Problem(422, "Request is not valid", "query parameter cursor is malformed") from None
    return M.LogList(items=[_line(d) for d in page.items], next_cursor=page.next_cursor)


@gpu.get(
    "/jobs/{job_id}/logs/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "log lines"}},
)
async def follow_logs(
    job_id: str,
    ctx: Ctx,
    principal: GpuReader,
    cursor: str | None = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """Follow the job's log lines live as server-sent events: each line is an event
    ``log`` whose data is a LogLine and whose id resumes the stream (``Last-Event-ID``
    or ``cursor``); when the job has ended and every line was sent, an event ``end``
    carries the job's status and the stream closes."""
    sched = engine(ctx)
    await call(sched.job(principal.org_id, job_id))
    start = last_event_id or cursor
    if start:
        try:
            await sched.repo.read_logs(principal.org_id, job_id, 1, start)
        except ValueError:
            raise Problem(422, "Request is not valid", "the cursor is malformed") from None
    return StreamingResponse(
        _log_events(sched, principal.org_id, job_id, start),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _log_events(
    sched: Scheduler, org_id: str, job_id: str, cursor: str | None
) -> AsyncIterator[bytes]:
    idle = 0.0
    while True:
        page = await sched.repo.read_logs(org_id, job_id, 500, cursor)
        for d in page.items:
            cursor = d["cursor"]
            data = _line(d).model_dump_json()
            yield f"id: {cursor}\nevent: log\ndata: {data}\n\n".encode()
        if page.next_cursor:
            continue
        if page.items:
            idle = 0.0
        job = await sched.repo.get_job(job_id, org_id)
        if job is None or job["status"] in S.TERMINAL:
            # lines posted just before the end are in: one last read, then close
            last = await sched.repo.read_logs(org_id, job_id, 500, cursor)
            if last.items:
                continue
            status = job["status"] if job else "unknown"
            yield f"event: end\ndata: {json.dumps({'status': status})}\n\n".encode()
            return
        await asyncio.sleep(LOG_POLL_S)
        idle += LOG_POLL_S
        if idle >= 15:
            idle = 0.0
            yield b": keepalive\n\n"


@gpu.get(
    "/jobs/{job_id}/failovers",
    response_model=M.FailoverList,
    summary="List a GPU job's failovers",
)
async def job_failovers(job_id: str, ctx: Ctx, principal: GpuReader) -> M.FailoverList:
    """Every provider loss the job went through, oldest first: when the scheduler acted,
    which provider was lost (primary or standby), who runs the job now under which lease
    epoch, the checkpoint it resumed from and how many steps were run again. The job's
    `provider_id` and `epoch` change on each promotion."""
    sched = engine(ctx)
    j = await call(sched.job(principal.org_id, job_id))
    items = [
        M.FailoverOut(
            **{k: v for k, v in f.items() if k not in ("at_ms", "last_step")},
            at=datetime.fromtimestamp(int(f["at_ms"]) / 1000, UTC),
        )
        for f in sorted((j.get("failovers") or {}).values(), key=lambda f: int(f["at_ms"]))
    ]
    return M.FailoverList(job_id=j["_id"], items=items)


@gpu.get("/jobs/{job_id}/metrics", response_model=M.JobMetrics, summary="Read a GPU job's metrics")
async def job_metrics(job_id: str, ctx: Ctx, principal: GpuReader) -> M.JobMetrics:
    """GPU utilization, memory, temperature and power the agent reported while the job ran,
    per GPU."""
    sched = engine(ctx)
    j = await call(sched.job(principal.org_id, job_id))
    gpus: list[M.GpuMetrics] = []
    p = j.get("primary")
    if p:
        prov = await sched.repo.get_provider(p["provider_id"]) or {}
        status = prov.get("gpu_status") or {}
        for u in p["gpu_uuids"]:
            g = status.get(u) or {}
            gpus.append(
                M.GpuMetrics(
                    uuid=u,
                    utilization_pct=float(g.get("utilization_pct", 0)),
                    memory_used_mb=float(g.get("memory_used_mb", 0)),
                    temperature_c=float(g.get("temperature_c", 0)),
                    power_w=float(g.get("power_w", 0)),
                    at=S.from_ms(g.get("at_ms")),
                )
            )
    out = job_out(sched, j)
    return M.JobMetrics(
        job_id=j["_id"],
        status=j["status"],
        epoch=out.epoch,
        step=out.step,
        gpu_minutes=out.gpu_minutes,
        cost=out.cost,
        gpus=gpus,
        latest_checkpoint=out.latest_checkpoint,
    )
