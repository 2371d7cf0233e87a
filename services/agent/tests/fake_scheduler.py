"""FAKE scheduler for the agent's integration tests: the provider-agent HTTP contract
implemented in memory (FastAPI, served in-process with uvicorn).

The unit under test is the agent; the real scheduler is covered by the platform's
end-to-end tests. This fake records every call so tests can assert on the
agent's behaviour, and lets a test push assignments and bump a job's epoch (what
a failover does) to exercise fencing.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from qlp_infra.embedded import free_port

STALE_TYPE = "https://errors.quantumlayer.dev/problems/stale-epoch"


@dataclass
class Call:
    at: float
    provider_id: str
    job_id: str
    epoch: int
    kind: str  # status | logs | checkpoint | latest
    body: Any
    accepted: bool


@dataclass
class FakeScheduler:
    providers: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_fingerprint: dict[tuple[str, str], str] = field(default_factory=dict)
    registrations: list[dict[str, Any]] = field(default_factory=list)
    heartbeats: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    queues: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    epochs: dict[str, int] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    checkpoints: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    polls: dict[str, int] = field(default_factory=dict)
    fail_next: int = 0  # answer this many requests with 503 first
    # the job's status at the (fake) scheduler, answered to status reports
    job_status: dict[str, str] = field(default_factory=dict)
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _wake: asyncio.Event | None = None

    # ---------------------------------------------------------------- test helpers

    def assign(self, provider_id: str, **item: Any) -> dict[str, Any]:
        n = next(self._ids)
        doc = {
            "assignment_id": f"asg_{n}",
            "role": "primary",
            "action": "start",
            "command": [],
            "env": {},
            "gpu_uuids": [],
            "checkpoint_interval_s": 0.3,
            "max_duration_s": None,
            "resume": False,
            **item,
            "acked": False,
            "deliveries": 0,
            "delivered_ms": 0,
        }
        if doc["action"] == "start":
            self.epochs[doc["job_id"]] = max(self.epochs.get(doc["job_id"], 0), doc["epoch"])
        self.queues.setdefault(provider_id, []).append(doc)
        self._notify()
        return doc

    def cancel(self, provider_id: str, job_id: str, epoch: int, deliver: bool = True) -> None:
        """The consumer canceled: status reports learn it; with ``deliver`` the agent
        also gets the cancel assignment."""
        self.job_status[job_id] = "canceled"
        if deliver:
            self.assign(provider_id, job_id=job_id, epoch=epoch, action="cancel")

    def bump_epoch(self, job_id: str, epoch: int) -> None:
        self.epochs[job_id] = epoch
        for q in self.queues.values():  # older epochs' assignments are superseded
            for a in q:
                if a["job_id"] == job_id and a["epoch"] < epoch:
                    a["acked"] = True

    def pending(self, provider_id: str) -> list[dict[str, Any]]:
        return [a for a in self.queues.get(provider_id, []) if not a["acked"]]

    def _ack(self, provider_id: str, job_id: str, epoch: int, actions: tuple[str, ...]) -> None:
        for a in self.queues.get(provider_id, []):
            if a["job_id"] == job_id and a["epoch"] <= epoch and a["action"] in actions:
                a["acked"] = True

    def statuses(self, job_id: str, provider_id: str | None = None) -> list[dict[str, Any]]:
        return [
            {**c.body, "provider_id": c.provider_id}
            for c in self.calls
            if c.kind == "status"
            and c.accepted
            and c.job_id == job_id
            and (provider_id is None or c.provider_id == provider_id)
        ]

    def log_lines(self, job_id: str, epoch: int | None = None) -> list[str]:
        return [
            line
            for c in self.calls
            if c.kind == "logs"
            and c.accepted
            and c.job_id == job_id
            and (epoch is None or c.epoch == epoch)
            for line in c.body
        ]

    def gpu_uuids(self, provider_id: str) -> list[str]:
        return [g["uuid"] for g in self.providers[provider_id]["machine"]["gpus"]]

    async def wait_for(
        self, pred: Callable[[], Any], timeout: float = 30.0, what: str = "condition"
    ) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            v = pred()
            if v:
                return v
            await asyncio.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")

    def _notify(self) -> None:
        if self._wake is not None:
            self._wake.set()

    # ---------------------------------------------------------------- app

    def app(self) -> FastAPI:
        app = FastAPI(title="fake scheduler (agent tests)")
        fs = self

        @app.middleware("http")
        async def auth_and_faults(request: Request, call_next: Any) -> Response:
            auth = request.headers.get("authorization", "")
            if not auth.startswith("Bearer qlp_"):
                return JSONResponse({"type": "about:blank", "title": "unauthorized"}, 401)
            if fs.fail_next > 0:
                fs.fail_next -= 1
                return JSONResponse({"title": "unavailable"}, 503)
            resp: Response = await call_next(request)
            return resp

        def stale(pid: str, job_id: str, epoch: int, kind: str, body: Any) -> JSONResponse | None:
            current = fs.epochs.get(job_id, epoch)
            ok = epoch >= current
            fs.calls.append(Call(time.monotonic(), pid, job_id, epoch, kind, body, ok))
            if ok:
                return None
            return JSONResponse(
                {
                    "type": STALE_TYPE,
                    "title": "stale epoch",
                    "status": 409,
                    "detail": f"epoch {epoch} < {current}",
                },
                409,
                media_type="application/problem+json",
            )

        @app.post("/v1/providers")
        async def register(body: dict[str, Any], request: Request) -> JSONResponse:
            fs.registrations.append(body)
            # like the real scheduler: one provider per (org, machine); the key is the org
            fp = (request.headers["authorization"], body["machine"]["fingerprint"])
            if fp in fs.by_fingerprint:
                pid = fs.by_fingerprint[fp]
                fs.providers[pid] = {**body, "id": pid}
                return JSONResponse(fs.providers[pid], 200)
            pid = f"prv_{next(fs._ids):04d}"
            fs.by_fingerprint[fp] = pid
            fs.providers[pid] = {**body, "id": pid}
            return JSONResponse(fs.providers[pid], 201)

        @app.post("/v1/providers/{pid}/heartbeat")
        async def heartbeat(pid: str, body: dict[str, Any]) -> dict[str, Any]:
            # like the real scheduler: held leases acknowledge start/prepare; cancels of
            # jobs no longer held are done
            fs.heartbeats.append((pid, body))
            held = {r["job_id"] for r in body.get("running", [])}
            handled = body.get("handled_through_ms")
            for r in body.get("running", []):
                fs._ack(pid, r["job_id"], int(r["epoch"]), ("start", "prepare"))
            for a in fs.queues.get(pid, []):
                if (
                    a["action"] == "cancel"
                    and a["job_id"] not in held
                    and a["deliveries"]
                    and (handled is None or handled >= a["delivered_ms"])
                ):
                    a["acked"] = True
            return {"status": "ok"}

        @app.get("/v1/providers/{pid}/assignments")
        async def assignments(pid: str, wait_s: float = 0) -> dict[str, Any]:
            # like the real scheduler: unacknowledged assignments are delivered again
            fs.polls[pid] = fs.polls.get(pid, 0) + 1
            deadline = time.monotonic() + min(wait_s, 5)
            while not fs.pending(pid) and time.monotonic() < deadline:
                fs._wake = asyncio.Event()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(fs._wake.wait(), max(0.01, deadline - time.monotonic()))
            items = fs.pending(pid)
            for a in items:
                a["deliveries"] += 1
                a["delivered_ms"] = int(time.time() * 1000)
            drop = ("acked", "deliveries")
            return {"items": [{k: v for k, v in a.items() if k not in drop} for a in items]}

        @app.post("/v1/providers/{pid}/jobs/{job_id}/status")
        async def status(pid: str, job_id: str, body: dict[str, Any]) -> Response:
            err = stale(pid, job_id, int(body["epoch"]), "status", body)
            if err:
                return err
            # like the real scheduler: a report acknowledges starts/prepares; a cancel
            # only once the agent says it no longer runs the job (a terminal report)
            current = fs.job_status.get(job_id, "running")
            terminal = body["status"] in ("completed", "failed", "canceled")
            actions = ("start", "prepare", "cancel") if terminal else ("start", "prepare")
            fs._ack(pid, job_id, int(body["epoch"]), actions)
            if body["status"] == "canceled" and current != "canceled":
                return JSONResponse(
                    {"type": "invalid-transition", "title": "Conflict", "status": 409}, 409
                )
            if current not in ("canceled", "completed", "failed"):
                current = fs.job_status[job_id] = body["status"]
            return JSONResponse({"status": "ok", "job_status": current, "role": "primary"})

        @app.post("/v1/providers/{pid}/jobs/{job_id}/logs")
        async def logs(pid: str, job_id: str, body: dict[str, Any]) -> Response:
            return stale(pid, job_id, int(body["epoch"]), "logs", body["lines"]) or JSONResponse(
                {"accepted": len(body["lines"])}, 202
            )

        @app.post("/v1/providers/{pid}/jobs/{job_id}/checkpoints")
        async def upload(
            pid: str, job_id: str, epoch: int, step: int, request: Request
        ) -> Response:
            data = await request.body()
            err = stale(pid, job_id, epoch, "checkpoint", {"step": step, "bytes": len(data)})
            if err:
                return err
            ck = {
                "checkpoint_id": f"ckp_{next(fs._ids)}",
                "step": step,
                "epoch": epoch,
                "data": data,
            }
            fs.checkpoints.setdefault(job_id, []).append(ck)
            return JSONResponse({"checkpoint_id": ck["checkpoint_id"], "step": step}, 201)

        @app.get("/v1/providers/{pid}/jobs/{job_id}/checkpoints/latest")
        async def latest(pid: str, job_id: str, epoch: int) -> Response:
            err = stale(pid, job_id, epoch, "latest", {})
            if err:
                return err
            cks = fs.checkpoints.get(job_id)
            if not cks:
                return JSONResponse({"title": "no checkpoint"}, 404)
            ck = cks[-1]
            return Response(
                ck["data"],
                media_type="application/octet-stream",
                headers={
                    "X-Checkpoint-Id": ck["checkpoint_id"],
                    "X-Checkpoint-Step": str(ck["step"]),
                },
            )

        return app


@contextlib.asynccontextmanager
async def serve_fake_scheduler() -> AsyncIterator[tuple[FakeScheduler, str]]:
    fs = FakeScheduler()
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(fs.app(), host="127.0.0.1", port=port, log_config=None, access_log=False)
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield fs, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(task), 10)
        except TimeoutError:  # a long-poll still open: don't wait for it
            server.force_exit = True
            await asyncio.wait_for(task, 10)
