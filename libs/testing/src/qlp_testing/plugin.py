"""pytest plugin: one real broker and database per session, isolated per test.

Fixtures: ``qlp_infra`` (session; starts only when a test asks for it),
``mongo_db_name``/``mongo_db`` (a fresh database per test), ``unique`` (a short
random suffix), ``service_env`` (the environment a service process needs) and
``tmp_logs``. Servers are real processes; nothing here is an in-memory fake.
"""

from __future__ import annotations

import faulthandler
import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from qlp_testing.infra import TestInfra, start_infra


@pytest.fixture(scope="session")
def qlp_infra() -> Iterator[TestInfra]:
    infra = start_infra()
    os.environ.setdefault("QLP_TEST_KAFKA", infra.kafka)
    try:
        yield infra
    finally:
        infra.close()


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def mongo_db_name(unique: str) -> str:
    return f"t_{unique}"


@pytest.fixture
async def mongo_db(qlp_infra: TestInfra, mongo_db_name: str) -> AsyncIterator[Any]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        qlp_infra.mongodb_url, tz_aware=True
    )
    try:
        yield client[mongo_db_name]
        await client.drop_database(mongo_db_name)
    finally:
        await client.close()


@pytest.fixture
def tmp_logs(tmp_path: Path) -> Path:
    d = tmp_path / "logs"
    d.mkdir()
    return d


@pytest.fixture
def service_env(qlp_infra: TestInfra) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": qlp_infra.kafka,
        "MONGODB_URL": qlp_infra.mongodb_url,
        "QLP_INTERNAL_AUTH_SECRET": "test-internal-secret",
    }


#: The longest a test's teardown (session fixtures included, after the last test) may take.
TEARDOWN_LIMIT_S = 300.0
#: A copy of the terminal's stderr taken before any test captures it (as pytest's own
#: faulthandler plugin does): where the watchdog writes.
_stderr_fd: int | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _stderr_fd
    try:
        fileno = sys.stderr.fileno()
    except (AttributeError, ValueError):
        fileno = sys.__stderr__.fileno() if sys.__stderr__ is not None else 2
    _stderr_fd = os.dup(fileno)


def pytest_unconfigure(config: pytest.Config) -> None:
    global _stderr_fd
    if _stderr_fd is not None:
        os.close(_stderr_fd)
        _stderr_fd = None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """pytest-timeout's one timer covers setup, call and teardown together and is spent
    once it fired during the call: a teardown that then hangs would stall the whole run
    silently. This watchdog prints every thread's stack and ends the run instead."""
    if _stderr_fd is None:
        yield
        return
    faulthandler.dump_traceback_later(TEARDOWN_LIMIT_S, exit=True, file=_stderr_fd)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests on the whole platform run last, in their collected order: once started
    (for the session) its services consume every event on the shared topics, so a
    component test that publishes its own events would see them answered twice."""
    on = [i for i in items if "qlp_platform" in getattr(i, "fixturenames", ())]
    if on:
        items[:] = [i for i in items if "qlp_platform" not in getattr(i, "fixturenames", ())] + on


@pytest.fixture(scope="session")
async def qlp_platform(
    qlp_infra: TestInfra, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Any]:
    """Every installed service as a real process against the session's broker and
    database, the gateway last, exactly as ``make up`` runs them. ``QLP_E2E_SERVICES``
    (comma-separated) limits which start. Yields the :class:`qlp_infra.runtime.Runtime`;
    ``runtime.state.gateway_url`` is the public entry."""
    from qlp_infra.embedded import free_port
    from qlp_infra.runtime import Runtime

    only = [s for s in os.environ.get("QLP_E2E_SERVICES", "").split(",") if s] or None
    rt = Runtime(
        only=only,
        kafka=qlp_infra.kafka,
        mongodb_url=qlp_infra.mongodb_url,
        gateway_port=free_port(),
        dir_=tmp_path_factory.mktemp("platform"),
        extra_env={"QLP_INTERNAL_AUTH_SECRET": "e2e-internal-secret", "QLP_TENANT_GUARD": "1"},
    )
    try:
        await rt.start()
        yield rt
    finally:
        rt.stop()
