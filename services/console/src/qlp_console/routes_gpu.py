"""The GPU console: offers, launching a job (quote first), my instances with live
graphs and logs over server-sent events, cancel, failovers."""

from __future__ import annotations

import asyncio
import json
import shlex
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from qlp_console import format as fmt
from qlp_console.client import ApiError
from qlp_console.live import ENDED, metrics_sample, relay_lines, sse
from qlp_console.web import (
    flash,
    page,
    redirect,
    render,
    secured,
    settings_of,
    signed_in,
    still_signed_in,
    token_expiring,
    verified_form,
)
from qlp_kit.permissions import public

router = APIRouter(include_in_schema=False, dependencies=[public()])

OFFER_FILTERS = ("model", "min_memory_gb", "count", "max_price", "region", "sort")


@router.get("/app/gpu/offers")
@page
async def offers(request: Request) -> Response:
    s = await signed_in(request)
    q = {k: request.query_params.get(k) or None for k in OFFER_FILTERS}
    params = dict(q)
    if q["max_price"]:
        try:
            params["max_price"] = str(fmt.parse_money(q["max_price"]))
        except ValueError:
            params["max_price"] = None
    try:
        data = await s.api.get("/v1/gpu/offers", limit=100, **params)
        problem = None
    except ApiError as err:
        data, problem = {"items": []}, err.words
    items = data["items"]
    prices = [o["price_per_gpu_hour"]["amount"] for o in items]
    cheapest = min(prices) if prices else None
    for o in items:
        amt = o["price_per_gpu_hour"]["amount"]
        o["vs_cheapest"] = round(100 * (amt - cheapest) / cheapest) if cheapest else 0
    chart = {
        "labels": [f"{o['gpu_model']} · {o['region']}" for o in items],
        "price": [p / 100 for p in prices],
    }
    return render(
        request,
        "offers.html",
        s,
        title="GPU offers",
        offers=items,
        q=q,
        problem=problem,
        chart=fmt.json_for_html(chart),
    )


def job_spec(form: Any) -> dict[str, Any]:
    """The job a launch form describes; ValueError names the first bad field."""
    errors = []
    try:
        count = int(str(form.get("gpu_count") or "1"))
        if not 1 <= count <= 64:
            raise ValueError
    except ValueError:
        errors.append("GPU count: a whole number from 1 to 64")
        count = 1
    try:
        price = fmt.parse_money(str(form.get("max_price") or ""))
    except ValueError as exc:
        errors.append(f"Highest price per GPU-hour: {exc}")
        price = 0
    try:
        minutes = int(str(form.get("max_minutes") or "10"))
        if not 1 <= minutes <= 7 * 24 * 60:
            raise ValueError
    except ValueError:
        errors.append("Longest run: minutes from 1 to 10080")
        minutes = 10
    command_text = str(form.get("command") or "").strip()
    try:
        command = shlex.split(command_text)
    except ValueError:
        command = []
    if not command:
        errors.append("Command: what to run, e.g. python train.py --epochs 3")
    if errors:
        raise ValueError("; ".join(errors))
    spec: dict[str, Any] = {
        "gpu_count": count,
        "max_price_per_gpu_hour": {"amount": price, "currency": "USD"},
        "command": command,
        "max_duration_s": minutes * 60,
        "redundancy": str(form.get("redundancy") or "none"),
        "checkpoint_interval_s": int(str(form.get("checkpoint_interval_s") or "60") or 60),
    }
    for key in ("gpu_model", "region", "image"):
        value = str(form.get(key) or "").strip()
        if value:
            spec[key] = value
    mem = str(form.get("min_gpu_memory_gb") or "").strip()
    if mem:
        try:
            spec["min_gpu_memory_gb"] = float(mem)
        except ValueError as exc:
            raise ValueError("Minimum GPU memory: a number of GB, e.g. 40") from exc
    return spec


_DEFAULTS = {
    "gpu_count": "1",
    "max_price": "2.50",
    "max_minutes": "30",
    "redundancy": "none",
    "checkpoint_interval_s": "60",
    "command": "python -m qlp_agent.workloads.train --steps 20",
}


@router.get("/app/gpu/launch")
@page
async def launch_form(request: Request) -> Response:
    s = await signed_in(request)
    form = {
        **_DEFAULTS,
        **{k: v for k, v in request.query_params.items() if k in ("gpu_model", "region")},
    }
    return render(
        request,
        "launch.html",
        s,
        title="Launch a GPU job",
        form=form,
        quote=None,
        problem=None,
        idem=uuid.uuid4().hex,
    )


@router.post("/app/gpu/launch")
@page
async def launch(request: Request) -> Response:
    s = await signed_in(request)
    form = await verified_form(request, s)
    shown = {k: str(v) for k, v in form.items() if k not in ("csrf_token",)}
    action = str(form.get("action") or "quote")
    idem = str(form.get("idem") or uuid.uuid4().hex)
    try:
        spec = job_spec(form)
    except ValueError as exc:
        return render(
            request,
            "launch.html",
            s,
            title="Launch a GPU job",
            form=shown,
            quote=None,
            idem=idem,
            status=422,
            problem=fmt.problem_words(422, {"title": "Check the form", "detail": str(exc)}),
        )
    try:
        quote = await s.api.post("/v1/gpu/jobs/quote", spec)
        if action != "submit":
            return render(
                request,
                "launch.html",
                s,
                title="Launch a GPU job",
                form=shown,
                quote=quote,
                problem=None,
                idem=idem,
            )
        job = await s.api.post("/v1/gpu/jobs", spec, idempotent=idem)
    except ApiError as err:
        quote = None
        if err.status != 422:
            quote, _ = await _quote(s, spec)
        return render(
            request,
            "launch.html",
            s,
            title="Launch a GPU job",
            form=shown,
            quote=quote,
            problem=err.words,
            idem=idem,
            status=err.status,
        )
    await flash(
        s, request, f"Job {job['id']} submitted; {fmt.money(job['escrow_amount'])} held in escrow."
    )
    return redirect(f"/app/gpu/instances/{job['id']}")


async def _quote(s: Any, spec: dict[str, Any]) -> tuple[Any, Any]:
    try:
        return await s.api.post("/v1/gpu/jobs/quote", spec), None
    except ApiError as err:
        return None, err


@router.get("/app/gpu/instances")
@page
async def instances(request: Request) -> Response:
    s = await signed_in(request)
    status = request.query_params.get("status") or None
    data = await s.api.get(
        "/v1/gpu/jobs", limit=50, status=status, cursor=request.query_params.get("cursor")
    )
    return render(
        request,
        "instances.html",
        s,
        title="My instances",
        jobs=data["items"],
        next_cursor=data.get("next_cursor"),
        status_filter=status,
    )


@router.get("/app/gpu/instances/{job_id}")
@page
async def instance(request: Request, job_id: str) -> Response:
    s = await signed_in(request)
    job = await s.api.get(f"/v1/gpu/jobs/{job_id}")  # 404 for another org's job
    (metrics, _), (logs, _), (failovers, fo_err) = await asyncio.gather(
        s.api.maybe(f"/v1/gpu/jobs/{job_id}/metrics"),
        s.api.maybe(f"/v1/gpu/jobs/{job_id}/logs", limit=200),
        s.api.maybe(f"/v1/gpu/jobs/{job_id}/failovers"),
    )
    return render(
        request,
        "instance.html",
        s,
        title=f"Job {job_id}",
        job=job,
        metrics=metrics,
        logs=(logs or {}).get("items", []),
        ended=job["status"] in ENDED,
        failovers=(failovers or {}).get("items")
        if failovers is not None and fo_err is None
        else None,
    )


@router.post("/app/gpu/instances/{job_id}/cancel")
@page
async def cancel(request: Request, job_id: str) -> Response:
    s = await signed_in(request)
    await verified_form(request, s)
    await s.api.post(f"/v1/gpu/jobs/{job_id}/cancel", {})
    await flash(
        s, request, "Cancel requested; the job stops shortly and unused escrow is refunded."
    )
    return redirect(f"/app/gpu/instances/{job_id}")


def _stream(gen: AsyncIterator[bytes]) -> Response:
    resp = StreamingResponse(gen, media_type="text/event-stream")
    resp.headers["X-Accel-Buffering"] = "no"
    return secured(resp)


@router.get("/app/gpu/instances/{job_id}/live")
@page
async def live_metrics(request: Request, job_id: str) -> Response:
    """GPU samples as they arrive (``sample``), the job's state (``job``), ``end`` once
    it has ended. The console polls the API (its token stays here); the browser only
    listens."""
    s = await signed_in(request)
    await s.api.get(f"/v1/gpu/jobs/{job_id}")  # 404 for another org's job, before streaming
    poll = settings_of(request).live_poll_s

    async def events() -> AsyncIterator[bytes]:
        seen: str | None = None
        last_state: Any = None
        last_ping = last_check = time.monotonic()
        yield b"retry: 2000\n\n"
        while True:
            if await request.is_disconnected():
                return
            if time.monotonic() - last_check > 30 or token_expiring(s.doc):
                last_check = time.monotonic()
                if not await still_signed_in(request, s):
                    yield sse("end", {"status": "signed out"})
                    return
            try:
                job = await s.api.get(f"/v1/gpu/jobs/{job_id}")
                metrics = await s.api.get(f"/v1/gpu/jobs/{job_id}/metrics")
            except ApiError as err:
                yield sse("problem", err.words)
                await asyncio.sleep(poll * 3)
                continue
            state = (
                job["status"],
                job.get("cost"),
                job.get("gpu_minutes"),
                job.get("step"),
                job.get("provider_id"),
            )
            if state != last_state:
                last_state = state
                yield sse(
                    "job",
                    {
                        "status": job["status"],
                        "cost": fmt.money(job.get("cost")),
                        "gpu_minutes": job.get("gpu_minutes"),
                        "step": job.get("step"),
                        "provider_id": job.get("provider_id"),
                        "started_at": fmt.when(job.get("started_at"))
                        if job.get("started_at")
                        else None,
                        "message": job.get("message"),
                    },
                )
            sample, seen = metrics_sample(metrics, seen)
            if sample is not None:
                yield sse("sample", sample)
            if job["status"] in ENDED:
                yield sse("end", {"status": job["status"]})
                return
            if time.monotonic() - last_ping > 15:
                last_ping = time.monotonic()
                yield b": ping\n\n"
            await asyncio.sleep(poll)

    return _stream(events())


def relay(api: Any, path: str, shape: Any = None) -> Response:
    """An event stream of the API relayed to the browser event by event (the token
    stays here); ``shape`` trims each event's data; ``problem`` when it breaks."""

    async def events() -> AsyncIterator[bytes]:
        yield b"retry: 3000\n\n"
        try:
            async with api.stream(path) as resp:
                if resp.status_code >= 400:
                    yield sse(
                        "problem", {"status": resp.status_code, "title": "Stream unavailable"}
                    )
                    return
                buffer = ""
                async for chunk in resp.aiter_text():
                    buffer += chunk.replace("\r\n", "\n")
                    parsed, buffer = relay_lines(buffer)
                    for name, data, eid in parsed:
                        try:
                            payload = json.loads(data) if data else {}
                        except ValueError:
                            payload = {"line": data}
                        yield sse(name, shape(payload) if shape else payload, eid)
                        if name == "end":
                            return
        except Exception as exc:  # the API went away: the browser reconnects
            yield sse("problem", {"title": "Stream interrupted", "detail": type(exc).__name__})

    return _stream(events())


@router.get("/app/gpu/instances/{job_id}/logs")
@page
async def live_logs(request: Request, job_id: str) -> Response:
    """The job's log stream from the API, relayed as is (``log`` and ``end`` events)."""
    s = await signed_in(request)
    await s.api.get(f"/v1/gpu/jobs/{job_id}")  # 404 for another org's job, before streaming
    last = request.headers.get("last-event-id")
    path = f"/v1/gpu/jobs/{job_id}/logs/stream" + (f"?cursor={last}" if last else "")
    return relay(s.api, path)
