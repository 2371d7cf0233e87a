"""The agent loop: detect → register → recover jobs → heartbeat task + assignment
long-poll loop. Everything goes over HTTP(S) to the gateway."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

from qlp_agent import checkpoints
from qlp_agent.client import (
    Checkpoint,
    GatewayClient,
    GatewayError,
    GatewayUnavailable,
    StaleEpoch,
)
from qlp_agent.config import AgentSettings
from qlp_agent.containers import (
    ContainerEngineError,
    container_argv,
    container_rm_argv,
    detect_engine,
)
from qlp_agent.gpu import GpuBackend, MachineInfo, detect_backend, machine_info
from qlp_agent.health import HealthServer
from qlp_agent.runner import PINNED_ENV, Assignment, JobLimits, JobProcess, JobRunner, job_env
from qlp_agent.state import (
    AgentState,
    JobRecord,
    KeyIdentity,
    Recovery,
    StateLayout,
    StateStore,
    decide_recovery,
    final_status,
    pid_alive,
    read_exit_code,
)
from qlp_kit.aio import wait_event, within
from qlp_kit.logging import get_logger

log = get_logger("qlp_agent")


class FatalAgentError(Exception):
    """Cannot go on (e.g. the gateway rejects the API key)."""


def registration_payload(
    settings: AgentSettings, machine: MachineInfo, container_engine: str = ""
) -> dict[str, Any]:
    return {
        "name": (settings.name or machine.hostname or socket.gethostname())[:120],
        "region": settings.region,
        "price_per_gpu_hour": {"amount": settings.price_minor_units, "currency": "USD"},
        "machine": {**machine.to_json(), "container_engine": container_engine},
    }


def sim_seed_for(layout: StateLayout, api_key: str, ident: KeyIdentity) -> str:
    """Simulated GPU identities are stable per state dir and API key (idempotent
    re-register; two agents with two keys sharing a folder are two machines)."""
    if not ident.sim_seed:
        ident.sim_seed = secrets.token_hex(8)
        layout.save_identity(api_key, ident)
    return ident.sim_seed


class Agent:
    def __init__(
        self,
        settings: AgentSettings,
        *,
        client: GatewayClient | None = None,
        backend: GpuBackend | None = None,
    ) -> None:
        self.settings = settings
        self.state_dir = Path(settings.state_dir).expanduser()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.layout = StateLayout(self.state_dir)
        self.identity = self.layout.identity(settings.api_key.get_secret_value())
        # the job state is the provider's: loaded once registration says which one
        self.store: StateStore | None = None
        self.state = AgentState()
        self.client = client or GatewayClient(
            settings.gateway_url,
            settings.api_key.get_secret_value(),
            timeout=settings.request_timeout_s,
            max_retries=settings.max_retries,
        )
        self.backend = backend or detect_backend(
            settings.simulate_gpus,
            settings.gpu_model,
            settings.gpu_memory_gb,
            sim_seed_for(self.layout, settings.api_key.get_secret_value(), self.identity)
            if settings.simulated
            else "",
        )
        try:
            self.container_engine = detect_engine(settings.container_engine)
        except ContainerEngineError as exc:
            raise FatalAgentError(
                f"--container-engine (QLP_AGENT_CONTAINER_ENGINE): {exc}"
            ) from exc
        self.machine: MachineInfo | None = None
        self.provider_id: str | None = None
        self.runners: dict[str, JobRunner] = {}
        self.tasks: dict[str, asyncio.Task[str]] = {}
        self.prepared: dict[str, Assignment] = {}
        #: checkpoints a standby fetched ahead of a promotion: job id -> Checkpoint
        self.staged: dict[str, Checkpoint] = {}
        self.seen_assignments: set[str] = set()
        self.fenced: set[tuple[str, int]] = set()
        self.heartbeats_sent = 0
        # newest delivery stamp among the assignments handled so far: a heartbeat says
        # it was built after those, so the scheduler takes "no longer listed" as done
        # only for cancels this agent had handled
        self.handled_through_ms = 0
        self._hb_wake = asyncio.Event()
        self.probe_server: HealthServer | None = None
        self.registered = asyncio.Event()
        self.limits = JobLimits(
            settings.job_max_address_space_mb,
            settings.job_max_cpu_seconds,
            settings.job_max_open_files,
        )

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        health = None
        if self.settings.probe_port is not None:
            health = HealthServer(self, self.settings.probe_port, self.settings.http_host)
            await health.start()
            self.probe_server = health
        try:
            await self.register()
            await self.recover()
            hb = asyncio.create_task(self.heartbeat_loop(), name="heartbeat")
            try:
                await self.assignment_loop()
            finally:
                hb.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await hb
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.go_offline())
            await self.shutdown()
            if health is not None:
                await health.stop()

    async def go_offline(self) -> None:
        """Tell the platform this machine goes offline (no new jobs until it registers
        again), and say so."""
        if not self.provider_id or not self.settings.offline_on_exit:
            return
        try:
            await within(self.client.go_offline(self.provider_id), 10)
        except (GatewayError, GatewayUnavailable, TimeoutError) as exc:
            say(f"stopping; could not tell the platform ({exc}): it will see no heartbeat")
            return
        say(
            f"stopping: told the platform {self.provider_id} is offline (no new jobs until "
            "the next start); running jobs keep their state and resume on the next start"
        )

    async def shutdown(self) -> None:
        """Stop monitoring; jobs keep running and stay in the state file."""
        for t in self.tasks.values():
            t.cancel()
        for t in list(self.tasks.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self.save()
        await self.client.aclose()
        self.backend.close()

    def save(self) -> None:
        if self.store is not None:
            self.store.save(self.state)

    def _open_provider_state(self, provider_id: str) -> None:
        """This provider's state (and the legacy shared one, when it is ours)."""
        self.store = self.layout.store(provider_id)
        self.state = self.store.load()
        if self.layout.adopt_legacy(provider_id, self.state):
            log.info("agent.legacy_state_migrated", provider_id=provider_id)
        elif (other := self.layout.foreign_legacy(provider_id)) is not None:
            log.info("agent.legacy_state_ignored", provider_id=provider_id, owner=other)
        if self.identity.provider_id != provider_id:
            self.identity.provider_id = provider_id
            self.layout.save_identity(self.settings.api_key.get_secret_value(), self.identity)

    async def register(self) -> str:
        self.machine = machine_info(self.backend, self.state_dir)
        payload = registration_payload(self.settings, self.machine, self.container_engine)
        attempt = 0
        while True:
            try:
                body = await self.client.register(payload)
                break
            except GatewayUnavailable as exc:
                attempt += 1
                delay = min(60.0, 2.0 * attempt)
                url = self.settings.gateway_url
                if self.settings.fail_fast:
                    raise FatalAgentError(
                        f"cannot reach the gateway at {url} ({exc}); is the platform up "
                        "and --gateway (QLP_AGENT_GATEWAY_URL) right?"
                    ) from exc
                say(
                    f"cannot reach the gateway at {url}: retrying in {delay:g}s "
                    "(--fail-fast to exit instead)"
                )
                log.warning("agent.register_retry", error=str(exc), retry_in_s=delay)
                await asyncio.sleep(delay)
            except GatewayError as exc:
                raise FatalAgentError(f"registration rejected: {exc}") from exc
        self.provider_id = str(body["id"])
        self._open_provider_state(self.provider_id)
        self.state.provider_id = self.provider_id
        self.state.sim_seed = self.identity.sim_seed
        self.state.fingerprint = self.machine.fingerprint
        self.save()
        self.registered.set()
        log.info(
            "agent.registered",
            provider_id=self.provider_id,
            gpus=len(self.machine.gpus),
            source=self.machine.source,
            simulated=self.machine.simulated,
        )
        say(startup_summary(self.provider_id, self.settings, self.machine, body))
        return self.provider_id

    # ------------------------------------------------------------------ heartbeat

    async def heartbeat_payload(self) -> dict[str, Any]:
        busy = {u for r in self.runners.values() for u in r.record.gpu_uuids}
        try:
            # nvidia-smi is a subprocess and NVML calls can block: off the event loop
            samples = [s.to_json() for s in await asyncio.to_thread(self.backend.sample, busy)]
        except Exception as exc:
            log.warning("agent.gpu_sample_failed", error=str(exc))
            samples = []
        # The leases this machine holds: running jobs, and standbys it prepared (the
        # scheduler acknowledges start/prepare assignments from this list).
        running = [
            {"job_id": r.job_id, "epoch": r.epoch, "status": "running"}
            for r in self.runners.values()
        ]
        running += [
            {"job_id": a.job_id, "epoch": a.epoch, "status": "standby"}
            for a in self.prepared.values()
            if a.job_id not in self.runners
        ]
        out: dict[str, Any] = {"gpus": samples, "running": running}
        if self.handled_through_ms:
            out["handled_through_ms"] = self.handled_through_ms
        return out

    def poke_heartbeat(self) -> None:
        """Send the next heartbeat now (the set of held leases changed)."""
        self._hb_wake.set()

    async def heartbeat_loop(self) -> None:
        assert self.provider_id
        while True:
            self._hb_wake.clear()
            try:
                await self.client.heartbeat(self.provider_id, await self.heartbeat_payload())
                self.heartbeats_sent += 1
            except (GatewayUnavailable, GatewayError) as exc:
                log.warning("agent.heartbeat_failed", error=str(exc))
            await wait_event(self._hb_wake, self.settings.heartbeat_interval)

    # ------------------------------------------------------------------ assignments

    async def assignment_loop(self) -> None:
        assert self.provider_id
        failures = 0
        while True:
            try:
                items = await self.client.assignments(self.provider_id, self.settings.poll_wait_s)
                failures = 0
            except (GatewayUnavailable, GatewayError) as exc:
                failures += 1
                delay = min(30.0, 1.0 * failures)
                log.warning("agent.poll_failed", error=str(exc), retry_in_s=delay)
                await asyncio.sleep(delay)
                continue
            fresh = 0
            for item in items:
                try:
                    a = Assignment.parse(item)
                    fresh += await self.handle(a)
                except (KeyError, TypeError, ValueError) as exc:
                    log.error("agent.bad_assignment", error=str(exc), item=item)
                    continue
                self.handled_through_ms = max(self.handled_through_ms, a.delivered_ms)
            self._reap_tasks()
            if (items and not fresh) or (not items and self.settings.poll_wait_s == 0):
                # only redeliveries (not yet acknowledged): don't spin on them
                await asyncio.sleep(min(1.0, self.settings.heartbeat_interval))

    async def handle(self, a: Assignment) -> bool:
        """Act on one assignment; False when it was a redelivery of one already handled."""
        if a.assignment_id:
            key = f"{a.assignment_id}:{a.action}"
            if key in self.seen_assignments:
                return False
            if len(self.seen_assignments) > 10_000:
                self.seen_assignments.clear()
            self.seen_assignments.add(key)
        if (a.job_id, a.epoch) in self.fenced:
            return False
        bound = log.bind(job_id=a.job_id, epoch=a.epoch, action=a.action, role=a.role)
        if a.action == "cancel":
            runner = self.runners.get(a.job_id)
            self.staged.pop(a.job_id, None)
            if self.prepared.pop(a.job_id, None) is not None:
                self.poke_heartbeat()
            if runner is not None and runner.epoch <= a.epoch:
                bound.info("job.cancel")
                runner.cancel()
            return True
        if a.action == "prepare":
            if a.job_id in self.runners:
                return False
            bound.info("job.prepare")
            self.prepared[a.job_id] = a
            self.job_dirs(a.job_id, a.epoch)[1].mkdir(parents=True, exist_ok=True)
            self.poke_heartbeat()
            return True
        if a.action == "stage":
            await self.stage_checkpoint(a)
            return True
        if a.action != "start":
            bound.warning("job.unknown_action")
            return True
        if self.state.is_finished(a.job_id, a.epoch):
            bound.info("job.already_ran_here")
            return False
        current = self.runners.get(a.job_id)
        if current is not None:
            if current.epoch >= a.epoch:
                return False  # duplicate delivery
            current.cancel()  # a newer lease for the same job: the old run must stop
            old = self.tasks.get(a.job_id)
            if old is not None:
                await asyncio.wait({old}, timeout=self.settings.cancel_grace_s + 5)
        self.prepared.pop(a.job_id, None)
        if not await self.start_job(a) and a.assignment_id:
            # transient failure (gateway unavailable): take the redelivery
            self.seen_assignments.discard(f"{a.assignment_id}:{a.action}")
        return True

    async def stage_checkpoint(self, a: Assignment) -> None:
        """A standby fetches the job's newest checkpoint now, so a promotion restores
        it from memory instead of waiting for the download. Best effort."""
        assert self.provider_id
        bound = log.bind(job_id=a.job_id, epoch=a.epoch)
        if a.job_id not in self.prepared or a.job_id in self.runners:
            return
        have = self.staged.get(a.job_id)
        if have is not None and have.checkpoint_id == a.checkpoint_id:
            return
        try:
            ckpt = await self.client.latest_checkpoint(self.provider_id, a.job_id, a.epoch)
        except (GatewayError, GatewayUnavailable, StaleEpoch) as exc:
            bound.info("job.stage_skipped", error=str(exc))
            return
        if ckpt is not None:
            self.staged[a.job_id] = ckpt
            bound.info("job.checkpoint_staged", step=ckpt.step, id=ckpt.checkpoint_id)

    def job_dirs(self, job_id: str, epoch: int) -> tuple[Path, Path]:
        assert self.provider_id
        base = self.layout.provider_dir(self.provider_id) / "jobs" / job_id
        return base / f"epoch-{epoch}", base / "checkpoints"

    async def start_job(self, a: Assignment) -> bool:
        """Restore (when resuming), spawn and start monitoring. False only when it could
        not even try because the gateway was unavailable (a redelivery retries)."""
        assert self.provider_id
        pid_ = self.provider_id
        bound = log.bind(job_id=a.job_id, epoch=a.epoch)
        if not a.command:
            with contextlib.suppress(GatewayError, GatewayUnavailable):
                await self.client.job_status(
                    pid_, a.job_id, a.epoch, "failed", message="empty command"
                )
            return True
        job_dir, ckpt_dir = self.job_dirs(a.job_id, a.epoch)
        try:
            await self.client.job_status(pid_, a.job_id, a.epoch, "starting")
            restored_step: int | None = None
            if a.resume:
                staged = self.staged.pop(a.job_id, None)
                if (
                    staged is not None
                    and a.checkpoint_id
                    and staged.checkpoint_id == a.checkpoint_id
                ):
                    ckpt: Checkpoint | None = staged  # pre-staged: no download
                    bound.info(
                        "job.checkpoint_prestaged", step=staged.step, id=staged.checkpoint_id
                    )
                else:
                    ckpt = await self.client.latest_checkpoint(pid_, a.job_id, a.epoch)
                if ckpt is not None:
                    try:
                        await asyncio.to_thread(checkpoints.unpack, ckpt.data, ckpt_dir)
                    except (OSError, ValueError, tarfile.TarError) as exc:
                        bound.error("job.restore_failed", error=str(exc))
                        await self.client.job_status(
                            pid_,
                            a.job_id,
                            a.epoch,
                            "failed",
                            message=f"checkpoint restore failed: {exc}",
                        )
                        self.state.mark_finished(a.job_id, a.epoch)
                        self.save()
                        return True
                    restored_step = ckpt.step
                    bound.info("job.checkpoint_restored", step=ckpt.step, id=ckpt.checkpoint_id)
                else:
                    checkpoints.clear(ckpt_dir)
                    bound.info("job.no_checkpoint_to_restore")
            else:
                checkpoints.clear(ckpt_dir)
        except StaleEpoch:
            bound.warning("job.stale_epoch_before_start")
            self.fenced.add((a.job_id, a.epoch))
            return True
        except GatewayUnavailable as exc:
            bound.error("job.start_deferred", error=str(exc))
            return False
        except GatewayError as exc:
            bound.error("job.start_rejected", error=str(exc))
            return True
        env = job_env(dict(os.environ), a.env, a.gpu_uuids, ckpt_dir, a.job_id, a.epoch)
        limits = JobLimits.merge(self.limits, a.limits)
        command = a.command
        container_rm: list[str] = []
        if a.image:
            if not self.container_engine:
                with contextlib.suppress(GatewayError, GatewayUnavailable):
                    await self.client.job_status(
                        pid_,
                        a.job_id,
                        a.epoch,
                        "failed",
                        message="this provider has no container engine for the job's image",
                        exit_code=127,
                    )
                self.state.mark_finished(a.job_id, a.epoch)
                self.save()
                return True
            command = container_argv(
                self.container_engine,
                a.image,
                a.command,
                job_id=a.job_id,
                epoch=a.epoch,
                gpu_uuids=a.gpu_uuids,
                simulated=bool(self.machine and self.machine.simulated),
                env_names=[*a.env, *PINNED_ENV],
                checkpoint_dir=str(ckpt_dir),
            )
            container_rm = container_rm_argv(self.container_engine, a.job_id, a.epoch)
        try:
            proc = JobProcess.spawn(command, env, job_dir, limits)
        except OSError as exc:
            with contextlib.suppress(GatewayError, GatewayUnavailable):
                await self.client.job_status(
                    pid_, a.job_id, a.epoch, "failed", message=f"cannot start: {exc}", exit_code=127
                )
            return True
        record = JobRecord(
            job_id=a.job_id,
            epoch=a.epoch,
            pid=proc.pid,
            pid_start=proc.pid_start,
            started_at=time.time(),
            job_dir=str(job_dir),
            checkpoint_dir=str(ckpt_dir),
            assignment_id=a.assignment_id,
            max_duration_s=a.max_duration_s,
            checkpoint_interval_s=a.checkpoint_interval_s
            or self.settings.default_checkpoint_interval_s,
            gpu_uuids=a.gpu_uuids,
            checkpoint_sig=checkpoints.signature(ckpt_dir) if restored_step is not None else "",
            last_step=restored_step,
            container_rm=container_rm,
        )
        self.state.jobs[a.job_id] = record
        self.save()
        bound.info("job.started", pid=proc.pid, resume=a.resume, role=a.role)
        runner = self._runner(record, proc)
        try:
            answer = await self.client.job_status(
                pid_, a.job_id, a.epoch, "running", step=restored_step
            )
        except StaleEpoch:
            runner.cancel()
            self.fenced.add((a.job_id, a.epoch))
        except (GatewayError, GatewayUnavailable) as exc:
            bound.warning("job.running_not_reported", error=str(exc))
        else:
            runner.learn(answer)  # canceled meanwhile: stop it again at once
        self._launch(runner)
        self.poke_heartbeat()
        return True

    def _runner(self, record: JobRecord, proc: JobProcess) -> JobRunner:
        assert self.provider_id
        return JobRunner(
            client=self.client,
            provider_id=self.provider_id,
            record=record,
            process=proc,
            persist=self.save,
            log_batch_interval_s=self.settings.log_batch_interval_s,
            cancel_grace_s=self.settings.cancel_grace_s,
            status_interval_s=self.settings.status_interval_s,
        )

    def _launch(self, runner: JobRunner) -> None:
        self.runners[runner.job_id] = runner
        task = asyncio.create_task(self._supervise(runner), name=f"job-{runner.job_id}")
        self.tasks[runner.job_id] = task

    async def _supervise(self, runner: JobRunner) -> str:
        outcome = await runner.run()  # CancelledError (shutdown) skips the cleanup below
        if outcome == "fenced":
            self.fenced.add((runner.job_id, runner.epoch))
        if outcome != "cancelled":  # a cancelled run may legitimately be started again
            self.state.mark_finished(runner.job_id, runner.epoch)
        if self.runners.get(runner.job_id) is runner:
            self.runners.pop(runner.job_id, None)
            rec = self.state.jobs.get(runner.job_id)
            if rec is not None and rec.epoch == runner.epoch:
                self.state.jobs.pop(runner.job_id, None)
        self.save()
        self.poke_heartbeat()
        return outcome

    def _reap_tasks(self) -> None:
        for job_id, t in list(self.tasks.items()):
            if t.done():
                self.tasks.pop(job_id, None)
                if not t.cancelled() and t.exception() is not None:
                    log.error("job.monitor_crashed", job_id=job_id, error=repr(t.exception()))
                    self.runners.pop(job_id, None)

    # ------------------------------------------------------------------ restart survival

    async def recover(self) -> None:
        """Re-attach to jobs that survived the agent; report the rest. Never forget one."""
        assert self.provider_id
        for job_id, rec in list(self.state.jobs.items()):
            alive = pid_alive(rec.pid, rec.pid_start)
            decision = decide_recovery(alive, read_exit_code(rec.exit_file))
            bound = log.bind(job_id=job_id, epoch=rec.epoch, pid=rec.pid)
            bound.info("job.recover", decision=decision.action.value)
            proc = JobProcess(rec.pid, rec.pid_start, rec.exit_file)
            runner = self._runner(rec, proc)
            if decision.action is Recovery.REATTACH:
                self._launch(runner)
                continue
            if decision.action is Recovery.FINISHED:
                # the runner's first poll sees the exit code, ships the rest of the log,
                # uploads a final checkpoint and reports the status
                self._launch(runner)
                continue
            try:
                status, message = "failed", decision.message
                await runner._ship_logs(final=True, quiet=True)
                await runner._report_final(status, message, None)
            except StaleEpoch:
                bound.warning("job.lost_and_stale")
            self.state.mark_finished(job_id, rec.epoch)
            self.state.jobs.pop(job_id, None)
            self.save()

    # ------------------------------------------------------------------ health

    def health(self) -> dict[str, Any]:
        return {
            "registered": self.registered.is_set(),
            "provider_id": self.provider_id,
            "jobs_running": len(self.runners),
            "heartbeats_sent": self.heartbeats_sent,
            "simulated": bool(self.machine and self.machine.simulated),
        }


__all__ = ["Agent", "FatalAgentError", "final_status", "registration_payload"]


def say(message: str) -> None:
    """A line for the person at the terminal (stderr), beside the JSON logs."""
    print(f"qlp-agent: {message}", file=sys.stderr, flush=True)


def startup_summary(provider_id: str, settings: Any, machine: Any, body: dict[str, Any]) -> str:
    """The line said at startup: registered prv_… offering 2 x A100 at $1.20/GPU-hour."""
    models = sorted({str(g.model) for g in machine.gpus})
    n = len(machine.gpus)
    price = body.get("price_per_gpu_hour") or {}
    minor = int(price.get("amount", settings.price_minor_units))
    region = body.get("region") or settings.region
    sim = " (simulated GPUs)" if machine.simulated else ""
    return (
        f"registered {provider_id} offering {n} \u00d7 {' + '.join(models)} at "
        f"${minor // 100}.{minor % 100:02d}/GPU-hour in {region}{sim}"
    )
