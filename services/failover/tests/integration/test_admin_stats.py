"""Failovers per hour for operators, against the real database: every hour of the
window is listed (empty ones too), primaries and standbys counted apart, the recovery
median of the completed ones, and the providers lost now."""

from __future__ import annotations

from typing import Any

import pytest

from qlp_failover.repository import Store
from qlp_failover.service import Failover
from qlp_failover.settings import FailoverSettings

pytestmark = pytest.mark.integration

HOUR = 3_600_000


async def test_failovers_are_counted_per_hour(qlp_infra: Any, mongo_db: Any) -> None:
    s = FailoverSettings(
        kafka_bootstrap_servers=qlp_infra.kafka,
        mongodb_url=qlp_infra.mongodb_url,
        mongodb_database=mongo_db.name,
    )
    svc = Failover(Store(mongo_db), s)
    now = 1_000 * HOUR + 1_234
    docs = [
        ("a:1", now - 10, "primary", "completed", 400),
        ("b:1", now - 20, "primary", "completed", 900),
        ("c:1", now - 30, "primary", "completed", 100),
        ("d:1", now - 40, "standby", "started", None),
        ("e:1", now - 2 * HOUR, "primary", "completed", 700),  # two hours ago
        ("f:1", now - 30 * HOUR, "primary", "completed", 5),  # outside a day
    ]
    await mongo_db["failovers"].insert_many(
        [
            {
                "_id": fid,
                "org_id": "org_x",
                "job_id": fid.split(":")[0],
                "epoch": 1,
                "decided_ms": at,
                "role": role,
                "status": status,
                **({"recovery_ms": rec} if rec is not None else {}),
            }
            for fid, at, role, status, rec in docs
        ]
    )
    await mongo_db["liveness"].insert_many(
        [
            {"_id": "prv_1", "org_id": "org_p", "state": "lost", "partition": 0},
            {"_id": "prv_2", "org_id": "org_p", "state": "alive", "partition": 1},
        ]
    )
    out = await svc.stats_per_hour(24, now_ms=now)
    assert len(out["hours"]) == 24 and out["hours"][-1]["hour_ms"] == 1_000 * HOUR
    last, two_ago = out["hours"][-1], out["hours"][-3]
    assert (last["failovers"], last["primary"], last["standby"], last["completed"]) == (4, 3, 1, 3)
    assert last["recovery_ms_p50"] == 400
    assert (two_ago["failovers"], two_ago["recovery_ms_p50"]) == (1, 700)
    assert out["hours"][-2] == {
        "hour_ms": 999 * HOUR,
        "failovers": 0,
        "primary": 0,
        "standby": 0,
        "completed": 0,
        "recovery_ms_p50": None,
    }
    assert out["total"] == 5 and out["providers_lost"] == 1
