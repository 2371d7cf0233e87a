"""The app factory: a service is its definition plus its own domain code.

``create_app`` wires what every service shares: settings, JSON logging, tracing,
metrics, problem+json errors, request ids, ``/healthz`` and ``/readyz``, API docs at
``/docs`` and ``/redoc`` served without a CDN (see docs.py), MongoDB with
index bootstrapping, the outbox relay, event consumers with retries and DLQ, and the
AsyncAPI document of its topics at ``/asyncapi.json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

import structlog
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI
from opentelemetry import context as otel_context
from opentelemetry import trace
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

from qlp_kit import consumer_admin
from qlp_kit.consumer import ConsumerRunner, ConsumerSpec, RetryPolicy, register_consumer
from qlp_kit.docs import install_docs
from qlp_kit.inputs import StorableInputMiddleware
from qlp_kit.logging import configure_logging
from qlp_kit.metrics import HTTP_LATENCY, HTTP_REQUESTS, metrics_endpoint
from qlp_kit.mongo import IndexSpec, Mongo
from qlp_kit.openapi_docs import install_openapi_docs
from qlp_kit.outbox import OutboxRelay
from qlp_kit.problems import install_problem_handlers
from qlp_kit.producer import Producer
from qlp_kit.settings import ServiceSettings
from qlp_kit.tracing import configure_tracing, extract_context, tracer

log = structlog.get_logger("qlp.app")

T = TypeVar("T")
S = TypeVar("S", bound=ServiceSettings)


@dataclass
class ServiceContext:
    """What routes, services and handlers of one process share."""

    settings: ServiceSettings
    mongo: Mongo
    producer: Producer
    broker: KafkaBroker
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def db(self) -> Any:
        return self.mongo.db

    def settings_as(self, cls: type[S]) -> S:
        """The process's settings as the service's own settings class."""
        assert isinstance(self.settings, cls), type(self.settings)
        return self.settings

    def singleton(self, key: str, cls: type[T], make: Callable[[], T]) -> T:
        """The process's one ``cls`` under ``key`` (made by ``make`` on first use): the
        domain object routes and handlers share."""
        obj = self.extras.get(key)
        if obj is None:
            obj = self.extras[key] = make()
        assert isinstance(obj, cls), type(obj)
        return obj


@dataclass
class ServiceDefinition:
    name: str
    settings_cls: type[ServiceSettings]
    routers: Sequence[APIRouter] = ()
    indexes: Sequence[IndexSpec] = ()
    outbox_collections: Sequence[str] = ()
    tenant_collections: Sequence[str] = ()  # every document carries org_id; guarded in tests
    consumers: Callable[[ServiceContext], Sequence[ConsumerSpec]] | None = None
    publishes: Sequence[str] = ()  # topic names, for AsyncAPI
    on_startup: Callable[[ServiceContext], Awaitable[None]] | None = None
    on_shutdown: Callable[[ServiceContext], Awaitable[None]] | None = None
    background: (
        Callable[[ServiceContext], Sequence[Callable[[], Coroutine[Any, Any, None]]]] | None
    ) = None
    description: str = ""
    version: str = "0.1.0"
    #: Serve GET /v1/admin/consumers/<name> (services with consumers). The gateway
    #: serves its own, as it authenticates callers itself.
    consumer_admin: bool = True


def get_ctx(request: Request) -> ServiceContext:
    ctx: ServiceContext = request.app.state.ctx
    return ctx


Ctx = Annotated[ServiceContext, Depends(get_ctx)]


class _RequestMiddleware(BaseHTTPMiddleware):
    def __init__(self, app: Any, service: str) -> None:
        super().__init__(app)
        self.service = service

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        rid = request.headers.get("x-request-id") or uuid.uuid4().hex
        request.state.request_id = rid
        structlog.contextvars.bind_contextvars(request_id=rid)
        token = otel_context.attach(extract_context(dict(request.headers)))
        start = time.perf_counter()
        route = request.url.path
        status = 500
        try:
            with tracer("qlp.http").start_as_current_span(
                f"{request.method} {route}", kind=trace.SpanKind.SERVER
            ):
                response = await call_next(request)
                status = response.status_code
        finally:
            otel_context.detach(token)
            structlog.contextvars.unbind_contextvars("request_id")
            matched = request.scope.get("route")
            route = getattr(matched, "path", "unmatched")
            HTTP_REQUESTS.labels(self.service, request.method, route, str(status)).inc()
            HTTP_LATENCY.labels(self.service, request.method, route).observe(
                time.perf_counter() - start
            )
        response.headers["x-request-id"] = rid
        return response


def build_broker(settings: ServiceSettings, definition: ServiceDefinition) -> KafkaBroker:
    return KafkaBroker(
        settings.kafka_bootstrap_servers,
        client_id=f"qlp-{definition.name}",
        enable_idempotence=False,
        description=definition.description or f"qlp {definition.name} events",
        logger=None,
    )


def asyncapi_document(broker: KafkaBroker, definition: ServiceDefinition) -> dict[str, Any]:
    for topic in definition.publishes:
        broker.publisher(topic, title=f"{definition.name} publishes {topic}")
    spec = AsyncAPI(
        broker,
        title=f"qlp-{definition.name}",
        version=definition.version,
        description=definition.description or None,
    )
    doc: dict[str, Any] = spec.to_specification().to_jsonable()
    return without_broker_addresses(doc)


def without_broker_addresses(doc: dict[str, Any]) -> dict[str, Any]:
    """The document with no broker address in it: it is public (the gateway serves it
    to anyone), and where the cluster lives is the deployment's business. Each server's
    host becomes the variable ``{bootstrap}``; any other mention of an address is
    replaced by the same placeholder."""
    hosts: set[str] = set()
    for server in (doc.get("servers") or {}).values():
        hosts |= {h.strip() for h in str(server.get("host", "")).split(",") if h.strip()}
        server["host"] = "{bootstrap}"
        server["variables"] = {
            "bootstrap": {
                "description": "the Kafka bootstrap servers of your deployment"
                " (host:port, comma-separated)",
            }
        }
    text = json.dumps(doc)
    for host in sorted(hosts, key=len, reverse=True):
        text = text.replace(host, "{bootstrap}")
    public: dict[str, Any] = json.loads(text)
    return public


async def start_subscribers(broker: KafkaBroker) -> None:
    """``broker.start()``, with the subscribers started together: each one's consumer
    joins its group (seconds against a broker that delays joins), and FastStream starts
    them one after another."""
    await broker.connect()
    await asyncio.gather(*(sub.start() for sub in broker.subscribers))
    for pub in broker.publishers:
        await pub.start()
    broker.running = True


def create_app(definition: ServiceDefinition, settings: ServiceSettings) -> FastAPI:
    configure_logging(definition.name, settings.log_level)
    configure_tracing(definition.name, settings.otel_exporter_otlp_endpoint)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        mongo = Mongo(
            settings.mongodb_url,
            settings.database_name,
            tenant_guard=definition.tenant_collections if settings.tenant_guard else None,
        )
        producer = Producer(settings.kafka_bootstrap_servers, client_id=f"qlp-{definition.name}")
        broker = build_broker(settings, definition)
        ctx = ServiceContext(settings, mongo, producer, broker)
        app.state.ctx = ctx
        await mongo.ensure_indexes(list(definition.indexes))
        relay = OutboxRelay(
            mongo.db,
            definition.outbox_collections,
            producer,
            service=definition.name,
            batch_size=settings.relay_batch_size,
            poll_interval_s=settings.relay_poll_interval_s,
        )
        await relay.ensure_indexes()
        await producer.start()
        specs = list(definition.consumers(ctx)) if definition.consumers else []
        ctx.extras[consumer_admin.SPECS_KEY] = specs if settings.consumers_enabled else []
        retry = RetryPolicy(
            settings.consumer_max_attempts,
            settings.consumer_backoff_initial_s,
            settings.consumer_backoff_max_s,
            settings.consumer_transient_backoff_max_s,
        )
        if settings.consumers_enabled:
            for spec in specs:
                register_consumer(
                    broker,
                    ConsumerRunner(spec, producer, retry, definition.name),
                    max_records=settings.consumer_batch_max_records,
                )
        app.state.asyncapi = asyncapi_document(broker, definition)
        if definition.on_startup:
            await definition.on_startup(ctx)
        if settings.consumers_enabled and specs:
            await start_subscribers(broker)
        tasks: list[asyncio.Task[None]] = []
        if settings.relay_enabled and definition.outbox_collections:
            tasks.append(asyncio.create_task(relay.run(), name="outbox-relay"))
        if definition.background:
            tasks += [asyncio.create_task(job()) for job in definition.background(ctx)]
        ctx.extras["relay"] = relay
        app.state.ready = True
        log.info("service started", port=settings.http_port, consumers=[s.group for s in specs])
        try:
            yield
        finally:
            app.state.ready = False
            relay.stop()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if definition.on_shutdown:
                await definition.on_shutdown(ctx)
            await broker.stop()
            await producer.stop()
            await mongo.close()

    app = FastAPI(
        title=f"qlp-{definition.name}",
        version=definition.version,
        description=definition.description,
        lifespan=lifespan,
        # FastAPI's pages load their assets from a CDN: the kit serves its own.
        docs_url=None,
        redoc_url=None,
    )
    app.state.ready = False
    install_docs(app)
    install_problem_handlers(app)
    app.add_middleware(StorableInputMiddleware)
    app.add_middleware(_RequestMiddleware, service=definition.name)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        ctx: ServiceContext | None = getattr(request.app.state, "ctx", None)
        checks = {
            "started": bool(request.app.state.ready),
            "mongodb": bool(ctx and await ctx.mongo.ping()),
            "kafka": bool(ctx and ctx.producer.started),
        }
        ok = all(checks.values())
        return JSONResponse(
            {"status": "ready" if ok else "not ready", "checks": checks},
            status_code=200 if ok else 503,
        )

    @app.get("/asyncapi.json", include_in_schema=False)
    async def asyncapi(request: Request) -> JSONResponse:
        return JSONResponse(getattr(request.app.state, "asyncapi", {}))

    app.add_route("/metrics", metrics_endpoint, include_in_schema=False)
    for router in definition.routers:
        app.include_router(router)
    if definition.consumers is not None and definition.consumer_admin:
        app.include_router(consumer_admin.router_for(definition.name))
    install_openapi_docs(app)
    return app
