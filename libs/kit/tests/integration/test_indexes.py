"""``python -m qlp_kit.indexes ensure <service>``: the chart's index hook, against the real
database. It must create exactly the indexes the service's startup would (definition
indexes and the outbox relay's), be safe to run again, and fail (so the hook Job
retries) while MongoDB cannot be reached. It gets only what the chart puts inline (the
ConfigMap's keys): before a first install the platform Secret does not exist yet."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

from qlp_kit.outbox import PENDING
from qlp_kit.serve import installed_services, resolve
from qlp_testing.infra import TestInfra

pytestmark = pytest.mark.integration


def _run(service: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qlp_kit.indexes", "ensure", service],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _undirected(keys: Any) -> tuple[tuple[str, int], ...]:
    """Key fields without their sort direction: the embedded database reports a
    descending key as ascending (its indexes serve both directions)."""
    return tuple((k, abs(int(v))) for k, v in keys)


async def _indexes(db: Any) -> set[tuple[str, tuple[tuple[str, int], ...], bool, Any]]:
    out = set()
    for name in await db.list_collection_names():
        async for ix in await db[name].list_indexes():
            keys = _undirected(ix["key"].items())
            if keys == (("_id", 1),):
                continue
            out.add((name, keys, bool(ix.get("unique")), ix.get("expireAfterSeconds")))
    return out


@pytest.mark.parametrize("service", sorted(installed_services()))
async def test_index_hook_creates_the_services_indexes_idempotently(
    service: str, qlp_infra: TestInfra, mongo_db: Any, mongo_db_name: str
) -> None:
    definition = resolve(service)
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": qlp_infra.kafka,
        "MONGODB_URL": qlp_infra.mongodb_url,
        f"QLP_{service.upper()}_MONGODB_DATABASE": mongo_db_name,
    }
    first = _run(service, env)
    assert first.returncode == 0, first.stderr
    expected = {
        (s.collection, _undirected(s.keys), s.unique, s.expire_after_seconds)
        for s in definition.indexes
    } | {(c, ((PENDING, 1),), False, None) for c in definition.outbox_collections}
    assert expected, f"{service} declares no indexes"
    assert await _indexes(mongo_db) == expected

    again = _run(service, env)  # an upgrade runs the hook again: nothing changes
    assert again.returncode == 0, again.stderr
    assert await _indexes(mongo_db) == expected


def test_index_hook_fails_while_the_database_is_unreachable() -> None:
    result = _run(
        "identity",
        {
            "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
            "MONGODB_URL": "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=500",
        },
    )
    assert result.returncode == 1
    assert "indexes of identity" in result.stderr
