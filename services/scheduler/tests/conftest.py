"""Fixtures of the scheduler's integration tests: the service in-process
(``running_app``) against the session's real broker and database."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

sys.path.insert(0, str(Path(__file__).parent))

from scheduler_testlib import SECRET, App


@pytest.fixture
def scheduler_settings(qlp_infra: Any, unique: str) -> Any:
    from qlp_scheduler.settings import SchedulerSettings

    return SchedulerSettings(
        kafka_bootstrap_servers=qlp_infra.kafka,
        mongodb_url=qlp_infra.mongodb_url,
        mongodb_database=f"t_sched_{unique}",
        internal_auth_secret=SECRET,
        escrow_required=False,
        escrow_consumer_group=f"scheduler.escrow.{unique}",
        offer_refresh_s=0.2,
        tenant_guard=True,
    )


@pytest.fixture
async def sched_app(scheduler_settings: Any, qlp_infra: Any) -> AsyncIterator[App]:
    from qlp_scheduler.main import service
    from qlp_testing.services import running_app

    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(qlp_infra.mongodb_url, tz_aware=True)
    try:
        async with running_app(service, scheduler_settings) as url:
            yield App(url, scheduler_settings.mongodb_database, scheduler_settings, mongo)
        await mongo.drop_database(scheduler_settings.mongodb_database)
    finally:
        await mongo.close()
