"""The local runtime behind ``make up``: infrastructure, topics, every service.

State lives in ``.qlp/`` under the current directory: ``state.json`` (pids, ports,
URLs), ``logs/<process>.log`` and the embedded database's files. With
``KAFKA_BOOTSTRAP_SERVERS`` and ``MONGODB_URL`` set, no infrastructure is started and
those are used.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from qlp_infra.embedded import Proc, free_port, port_open, start_kafka, start_mongodb
from qlp_infra.topics import provision

__all__ = ["Runtime", "State", "down", "provision", "read_state", "running_state"]

GATEWAY = "gateway"
SERVICES_GROUP = "qlp.services"  # the entry-point group every service registers in
#: Billing's Stripe webhook signing secrets (comma-separated during a rotation).
WEBHOOK_SECRETS_ENV = "QLP_BILLING_STRIPE_WEBHOOK_SECRETS"


def installed_services() -> list[str]:
    """Names of the installed services (without importing them: the CLI stays quick)."""
    from importlib.metadata import entry_points

    return sorted({ep.name for ep in entry_points(group=SERVICES_GROUP)})


@dataclass
class State:
    supervisor_pid: int
    kafka: str
    mongodb: str
    embedded: bool
    gateway_url: str | None
    services: dict[str, dict[str, object]] = field(default_factory=dict)
    infra_pids: dict[str, int] = field(default_factory=dict)
    ready: bool = False
    started_at: float = field(default_factory=time.time)
    ready_after_s: float | None = None


def state_dir() -> Path:
    return Path(os.environ.get("QLP_STATE_DIR", ".qlp")).resolve()


def _alive(pid: int) -> bool:
    """True for a running process; an exited one awaiting its reaper (zombie) is dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def read_state() -> State | None:
    path = state_dir() / "state.json"
    if not path.exists():
        return None
    try:
        return State(**json.loads(path.read_text()))
    except (ValueError, TypeError):
        return None


def write_state(st: State, base: Path | None = None) -> None:
    path = (base or state_dir()) / "state.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(st), indent=2))
    tmp.replace(path)


def running_state() -> State | None:
    st = read_state()
    return st if st and _alive(st.supervisor_pid) else None


def service_order(names: list[str]) -> list[str]:
    """Every service before the gateway, which needs their URLs."""
    return sorted(n for n in names if n != GATEWAY) + ([GATEWAY] if GATEWAY in names else [])


async def _wait_ready(
    url: str, proc: subprocess.Popen[bytes], name: str, log: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=1.0) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
                raise RuntimeError(f"{name} exited with {proc.returncode}; last log lines:\n{tail}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{url}/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise TimeoutError(f"{name} not ready at {url} after {timeout}s; see {log}")


class Runtime:
    def __init__(
        self,
        *,
        only: list[str] | None = None,
        ready_timeout: float = 90.0,
        kafka: str | None = None,
        mongodb_url: str | None = None,
        gateway_port: int | None = None,
        dir_: Path | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.dir = dir_ or state_dir()
        self.only = only
        self.kafka = kafka or os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        self.mongodb_url = mongodb_url or os.environ.get("MONGODB_URL")
        self.gateway_port = gateway_port or int(os.environ.get("QLP_GATEWAY_PORT", "8080"))
        self.extra_env = extra_env or {}
        self.ready_timeout = ready_timeout
        self.infra: list[Proc] = []
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.state: State | None = None
        self._env: dict[str, str] = {}

    def _secret(self) -> str:
        if self.extra_env.get("QLP_INTERNAL_AUTH_SECRET"):
            return self.extra_env["QLP_INTERNAL_AUTH_SECRET"]
        if os.environ.get("QLP_INTERNAL_AUTH_SECRET"):
            return os.environ["QLP_INTERNAL_AUTH_SECRET"]
        path = self.dir / "internal-auth-secret"
        if not path.exists():
            path.write_text(secrets.token_hex(32))
            path.chmod(0o600)
        return path.read_text().strip()

    def webhook_secret(self) -> str:
        """Billing's Stripe webhook signing secret: the one given in the environment,
        else a development ``whsec_...`` kept in the state directory (stable across
        restarts), so signed test events are accepted locally."""
        given = self.extra_env.get(WEBHOOK_SECRETS_ENV) or os.environ.get(WEBHOOK_SECRETS_ENV)
        if given:
            return given
        path = self.dir / "stripe-webhook-secret"
        if not path.exists():
            path.write_text(f"whsec_{secrets.token_urlsafe(32)}")
            path.chmod(0o600)
        return path.read_text().strip()

    async def start(self) -> State:
        t0 = time.monotonic()
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "logs").mkdir(exist_ok=True)
        kafka = self.kafka
        mongo = self.mongodb_url
        embedded = not (kafka and mongo)
        if embedded:
            kport = int(os.environ["QLP_KAFKA_PORT"]) if os.environ.get("QLP_KAFKA_PORT") else None
            mport = (
                int(os.environ["QLP_MONGODB_PORT"]) if os.environ.get("QLP_MONGODB_PORT") else None
            )
            if not kafka:
                k = start_kafka(self.dir, kport)
                self.infra.append(k)
                kafka = f"127.0.0.1:{k.port}"
            if not mongo:
                m = start_mongodb(self.dir, mport)
                self.infra.append(m)
                mongo = f"mongodb://127.0.0.1:{m.port}"
        assert kafka and mongo
        self.state = State(
            os.getpid(),
            kafka,
            mongo,
            embedded,
            None,
            infra_pids={p.name: p.pid for p in self.infra},
        )
        write_state(self.state, self.dir)
        created = await provision(kafka)
        print(
            f"kafka     {kafka}  ({len(created)} topics provisioned from the registry)", flush=True
        )
        print(f"mongodb   {mongo}", flush=True)
        names = service_order([n for n in installed_services() if not self.only or n in self.only])
        secret = self._secret()
        whsec = self.webhook_secret()
        if "billing" in names:
            print(
                f"billing   Stripe webhook secret {whsec}\n"
                "          sign a test event: stripe.WebhookSignature.generate_signature_header"
                "(payload, secret); POST it to /v1/billing/webhooks/stripe with the header"
                " Stripe-Signature",
                flush=True,
            )
        urls: dict[str, str] = {}
        gw_port = self.gateway_port
        if GATEWAY in names and port_open("127.0.0.1", gw_port):
            raise RuntimeError(f"port {gw_port} is in use; choose another with QLP_GATEWAY_PORT")

        self._env = {
            "KAFKA_BOOTSTRAP_SERVERS": kafka,
            "MONGODB_URL": mongo,
            "QLP_INTERNAL_AUTH_SECRET": secret,
            WEBHOOK_SECRETS_ENV: whsec,
            # the web console calls the public API through the gateway
            "QLP_CONSOLE_GATEWAY_URL": f"http://127.0.0.1:{gw_port}",
        }

        def spawn(name: str) -> tuple[str, subprocess.Popen[bytes], Path]:
            port = gw_port if name == GATEWAY else free_port()
            proc, url, log = self._spawn(name, name, port, urls)
            return url, proc, log

        async def ready(name: str, url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
            await _wait_ready(url, proc, name, log, self.ready_timeout)
            print(f"{name:<9} {url}  ready", flush=True)

        # the services start together; the gateway, which needs their URLs, last
        backends = [n for n in names if n != GATEWAY]
        started = {n: spawn(n) for n in backends}
        urls.update({n: started[n][0] for n in backends})
        await asyncio.gather(*(ready(n, *started[n]) for n in backends))
        if GATEWAY in names:
            await ready(GATEWAY, *spawn(GATEWAY))
        self.state.gateway_url = (
            str(self.state.services[GATEWAY]["url"]) if GATEWAY in names else None
        )
        self.state.ready = True
        self.state.ready_after_s = round(time.monotonic() - t0, 2)
        write_state(self.state, self.dir)
        return self.state

    def _spawn(
        self, name: str, key: str, port: int, urls: dict[str, str]
    ) -> tuple[subprocess.Popen[bytes], str, Path]:
        """Start service ``name`` on ``port`` as ``self.procs[key]`` (``key`` differs from
        ``name`` for an extra replica)."""
        assert self.state is not None
        env = {
            **os.environ,
            **self.extra_env,
            **self._env,
            "QLP_GATEWAY_SERVICE_URLS": json.dumps(urls),
            "PYTHONUNBUFFERED": "1",
        }
        log = self.dir / "logs" / f"{key}.log"
        with open(log, "ab") as fh:
            proc = subprocess.Popen(
                [sys.executable, "-m", "qlp_kit.serve", name, "--port", str(port)],
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        self.procs[key] = proc
        url = f"http://127.0.0.1:{port}"
        self.state.services[key] = {"pid": proc.pid, "url": url, "log": str(log)}
        write_state(self.state, self.dir)
        return proc, url, log

    def _urls(self) -> dict[str, str]:
        assert self.state is not None
        return {
            n: str(v["url"])
            for n, v in self.state.services.items()
            if n != GATEWAY and "#" not in n
        }

    async def restart(self, name: str) -> None:
        """Start service ``name`` again on its port (after it died or was killed), as a
        supervisor would, and wait until it is ready."""
        assert self.state is not None
        old = self.procs[name]
        if old.poll() is None:
            old.kill()
        old.wait(10)
        port = int(str(self.state.services[name]["url"]).rsplit(":", 1)[1])
        proc, url, log = self._spawn(name, name, port, self._urls())
        await _wait_ready(url, proc, name, log, self.ready_timeout)

    async def add_replica(self, name: str) -> str:
        """One more replica of service ``name`` on a free port (not behind the gateway:
        for consumers and background work); returns its key in ``procs``."""
        n = 2
        while f"{name}#{n}" in self.procs:
            n += 1
        key = f"{name}#{n}"
        proc, url, log = self._spawn(name, key, free_port(), self._urls())
        await _wait_ready(url, proc, key, log, self.ready_timeout)
        return key

    def remove(self, key: str) -> None:
        """Stop an extra replica (SIGTERM, then SIGKILL)."""
        proc = self.procs.pop(key)
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if self.state is not None:
            self.state.services.pop(key, None)
            write_state(self.state, self.dir)

    def stop(self) -> None:
        for proc in reversed(list(self.procs.values())):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
            if proc.poll() is None:
                proc.kill()
        for p in reversed(self.infra):
            p.stop()
        with contextlib.suppress(FileNotFoundError):
            (self.dir / "state.json").unlink()

    def url(self, name: str) -> str:
        assert self.state is not None
        return str(self.state.services[name]["url"])

    def watch(self) -> str | None:
        """Block until a signal or a child dies; returns the name of a dead child."""
        stop = {"flag": False}

        def _on_signal(signum: int, _frame: object) -> None:
            stop["flag"] = True

        signal.signal(signal.SIGINT, _on_signal)
        signal.signal(signal.SIGTERM, _on_signal)
        while not stop["flag"]:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    return name
            for p in self.infra:
                if p.proc.poll() is not None:
                    return p.name
            time.sleep(0.3)
        return None


def down(timeout: float = 30.0) -> bool:
    """Stop a running platform; also cleans up after a supervisor that died."""
    st = read_state()
    if st is None:
        return False
    if _alive(st.supervisor_pid):
        os.kill(st.supervisor_pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(st.supervisor_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
    # Whatever is still there (a supervisor killed with -9 leaves orphans).
    pids = [int(str(s["pid"])) for s in st.services.values()] + list(st.infra_pids.values())
    for pid in pids:
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
    time.sleep(0.5)
    for pid in pids:
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(FileNotFoundError):
        (state_dir() / "state.json").unlink()
    return True
