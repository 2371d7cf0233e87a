"""Which running jobs a provider loss would set back (the jobs-at-risk gauge)."""

from __future__ import annotations

from typing import Any

from qlp_scheduler.service import at_risk

NOW = 1_000_000


def job(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "status": "running",
        "standby": {"provider_id": "prv_s"},
        "spec": {"checkpoint_interval_s": 10},
        "run_started_ms": NOW - 60_000,
        "latest_checkpoint": {"at_ms": NOW - 5_000},
    }
    return {**base, **over}


def test_a_warm_standby_and_a_fresh_checkpoint_cover_a_job() -> None:
    assert at_risk(job(), NOW) is None


def test_no_standby_is_at_risk() -> None:
    assert at_risk(job(standby=None), NOW) == "no_standby"


def test_a_checkpoint_older_than_two_intervals_is_at_risk() -> None:
    assert at_risk(job(latest_checkpoint={"at_ms": NOW - 20_001}), NOW) == "stale_checkpoint"
    assert at_risk(job(latest_checkpoint={"at_ms": NOW - 20_000}), NOW) is None
    # none yet: judged from when it started running
    assert at_risk(job(latest_checkpoint=None), NOW) == "stale_checkpoint"
    assert at_risk(job(latest_checkpoint=None, run_started_ms=NOW - 1_000), NOW) is None


def test_only_running_jobs_and_checkpointing_jobs_are_judged() -> None:
    assert at_risk(job(status="placed", standby=None), NOW) is None
    assert at_risk(job(spec={"checkpoint_interval_s": 0}, latest_checkpoint=None), NOW) is None
