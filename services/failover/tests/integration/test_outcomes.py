"""A failover record's life against the real database: decided once, promoted by the
scheduler's StandbyPromoted, completed once when the job runs again (whoever reads the
event, however often), a lost standby's record closed by the new placement, and open
records ended when the job finishes first."""

from __future__ import annotations

from typing import Any

import pytest

from qlp_failover.liveness import Lease, State, Transition
from qlp_failover.repository import Store
from qlp_failover.service import Failover
from qlp_failover.settings import FailoverSettings

pytestmark = pytest.mark.integration


def _settings(infra: Any, db: str) -> FailoverSettings:
    return FailoverSettings(
        kafka_bootstrap_servers=infra.kafka, mongodb_url=infra.mongodb_url, mongodb_database=db
    )


def _lost(provider: str, *leases: Lease, at: int = 10_000) -> Transition:
    return Transition(provider, "org_p", State.SUSPECTED, State.LOST, at - 3_500, at, leases)


def _types(doc: dict[str, Any]) -> list[str]:
    return sorted(e["headers"]["ce_type"] for e in (doc.get("_outbox") or {}).values())


async def test_a_primary_failover_is_promoted_then_completed_once(
    qlp_infra: Any, mongo_db: Any
) -> None:
    s = _settings(qlp_infra, mongo_db.name)
    a, b = Failover(Store(mongo_db), s), Failover(Store(mongo_db), s)  # two replicas
    assert await a.decide(_lost("prv_a", Lease("job_1", 1, "primary"))) == ["job_1:1"]
    assert await a.promoted("job_1:1", 2, "prv_b", 11_000)
    assert not await b.promoted("job_1:1", 2, "prv_b", 11_000)  # a redelivery
    # the old epoch's start (a replay) closes nothing; the new epoch's does, once
    assert await a.job_running_again("job_1", 1, "prv_a", "", 11_500) == []
    assert await a.job_running_again("job_1", 2, "prv_b", "ckp_1", 12_000) == ["job_1:1"]
    assert await b.job_running_again("job_1", 2, "prv_b", "ckp_1", 12_000) == []
    rec = await mongo_db.failovers.find_one({"_id": "job_1:1"})
    assert rec["status"] == "completed" and rec["recovery_ms"] == 2_000
    assert rec["provider_id"] == "prv_b" and rec["epoch_after"] == 2
    assert (
        _types(rec)
        == [
            "qlp.failover.v1.FailoverCompleted",
            "qlp.failover.v1.FailoverStarted",
        ]
        or rec.get("_outbox_pending") == 0
    )


async def test_a_lost_standby_has_its_own_record_and_closes_on_the_new_placement(
    qlp_infra: Any, mongo_db: Any
) -> None:
    svc = Failover(Store(mongo_db), _settings(qlp_infra, mongo_db.name))
    # the standby is lost at epoch 1, later the primary at the same epoch: two records
    assert await svc.decide(_lost("prv_s", Lease("job_2", 1, "standby"))) == [
        "job_2:1:standby:prv_s"
    ]
    # a JobStarted (epoch 1, the primary) does not close a standby's record
    assert await svc.job_running_again("job_2", 1, "prv_p", "", 10_100) == []
    closed = await svc.job_running_again(
        "job_2", 1, "prv_p", "", 10_400, standby_provider_id="prv_t", placed=True
    )
    assert closed == ["job_2:1:standby:prv_s"]
    assert await svc.decide(_lost("prv_p", Lease("job_2", 1, "primary"), at=20_000)) == ["job_2:1"]
    recs = {d["_id"]: d async for d in mongo_db.failovers.find({"job_id": "job_2"})}
    assert recs["job_2:1:standby:prv_s"]["status"] == "completed"
    assert recs["job_2:1"]["status"] == "started"


async def test_open_records_end_with_the_job(qlp_infra: Any, mongo_db: Any) -> None:
    svc = Failover(Store(mongo_db), _settings(qlp_infra, mongo_db.name))
    await svc.decide(_lost("prv_a", Lease("job_3", 4, "primary")))
    assert await svc.job_ended("job_3", "JobCanceled", 12_000) == 1
    assert await svc.job_ended("job_3", "JobCanceled", 12_000) == 0
    assert await svc.job_running_again("job_3", 5, "prv_b", "", 13_000) == []
    rec = await mongo_db.failovers.find_one({"_id": "job_3:4"})
    assert (rec["status"], rec["job_status"]) == ("ended", "JobCanceled")
