"""Restart survival: the state file and the recovery decision."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qlp_agent.state import (
    LOST_MESSAGE,
    AgentState,
    JobRecord,
    Recovery,
    StateStore,
    atomic_write_json,
    decide_recovery,
    final_status,
    pid_alive,
    pid_start_time,
    read_exit_code,
)


def record(tmp_path: Path, **kw: object) -> JobRecord:
    base = dict(
        job_id="job_1",
        epoch=2,
        pid=os.getpid(),
        pid_start=pid_start_time(os.getpid()),
        started_at=1.0,
        job_dir=str(tmp_path / "j"),
        checkpoint_dir=str(tmp_path / "c"),
    )
    return JobRecord(**{**base, **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("alive", "code", "action", "exit_code", "message"),
    [
        (True, None, Recovery.REATTACH, None, None),
        (False, None, Recovery.LOST, None, LOST_MESSAGE),
        (False, 0, Recovery.FINISHED, 0, None),
        (False, 1, Recovery.FINISHED, 1, None),
        # exit file written, wrapper not yet gone: the job itself is over
        (True, -15, Recovery.FINISHED, -15, None),
    ],
)
def test_decide_recovery(
    alive: bool, code: int | None, action: Recovery, exit_code: int | None, message: str | None
) -> None:
    d = decide_recovery(alive, code)
    assert (d.action, d.exit_code, d.message) == (action, exit_code, message)


@pytest.mark.parametrize(
    ("code", "status", "fragment"),
    [
        (0, "completed", None),
        (2, "failed", "code 2"),
        (-9, "failed", "signal 9"),
        (127, "failed", "not found"),
    ],
)
def test_final_status(code: int, status: str, fragment: str | None) -> None:
    s, msg = final_status(code)
    assert s == status
    assert (msg is None) if fragment is None else (fragment in (msg or ""))


def test_state_roundtrip_and_unknown_fields(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    assert store.load().jobs == {}
    st = AgentState(
        provider_id="prv_1", fingerprint="fp", sim_seed="s", jobs={"job_1": record(tmp_path)}
    )
    store.save(st)
    doc = json.loads((tmp_path / "state.json").read_text())
    doc["jobs"]["job_1"]["added_by_a_newer_agent"] = 1
    (tmp_path / "state.json").write_text(json.dumps(doc))
    back = store.load()
    assert back.provider_id == "prv_1" and back.jobs["job_1"] == st.jobs["job_1"]
    assert back.jobs["job_1"].exit_file == tmp_path / "j" / "exit_code"


def test_atomic_write_leaves_no_temp_files(tmp_path: Path) -> None:
    for i in range(5):
        atomic_write_json(tmp_path / "s.json", {"i": i})
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]
    assert json.loads((tmp_path / "s.json").read_text()) == {"i": 4}


def test_pid_alive_checks_identity() -> None:
    me = os.getpid()
    assert pid_alive(me) and pid_alive(me, pid_start_time(me))
    assert not pid_alive(me, "1")  # same pid, different start time: reused pid
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    assert not pid_alive(p.pid)
    assert not pid_alive(0)


def test_read_exit_code(tmp_path: Path) -> None:
    f = tmp_path / "exit_code"
    assert read_exit_code(f) is None
    f.write_text("-15\n")
    assert read_exit_code(f) == -15
    f.write_text("garbage")
    assert read_exit_code(f) is None


def test_finished_runs_are_remembered_and_bounded(tmp_path: Path) -> None:
    st = AgentState()
    for i in range(10):
        st.mark_finished(f"job_{i}", 1, keep=5)
    st.mark_finished("job_9", 1, keep=5)
    assert st.finished == [f"job_{i}@1" for i in range(5, 10)]
    assert (
        st.is_finished("job_9", 1)
        and not st.is_finished("job_9", 2)
        and not st.is_finished("job_0", 1)
    )
    StateStore(tmp_path).save(st)
    assert StateStore(tmp_path).load().finished == st.finished


# ------------------------------------------------------------------ per-provider layout


def test_state_is_kept_per_provider(tmp_path: Path) -> None:
    from qlp_agent.state import StateLayout

    layout = StateLayout(tmp_path)
    a = AgentState(provider_id="prv_a", jobs={"job_1": record(tmp_path)})
    layout.store("prv_a").save(a)
    assert layout.store("prv_b").load().jobs == {}
    assert set(layout.store("prv_a").load().jobs) == {"job_1"}
    assert [s.dir.name for s in layout.stores()] == ["prv_a"]
    with pytest.raises(ValueError):
        layout.provider_dir("../escape")


def test_identity_is_per_api_key_and_never_stores_the_key(tmp_path: Path) -> None:
    from qlp_agent.state import StateLayout

    layout = StateLayout(tmp_path)
    one = layout.identity("qlp_key_one")
    one.sim_seed = "seed-1"
    layout.save_identity("qlp_key_one", one)
    assert layout.identity("qlp_key_one").sim_seed == "seed-1"
    assert layout.identity("qlp_key_two").sim_seed is None
    for f in (tmp_path / "keys").iterdir():
        assert "qlp_key" not in f.name and "qlp_key" not in f.read_text()


def test_legacy_state_is_migrated_by_its_provider_and_ignored_by_others(tmp_path: Path) -> None:
    from qlp_agent.state import LEGACY_MIGRATED, STATE_FILE, StateLayout

    legacy = AgentState(
        provider_id="prv_old",
        sim_seed="legacy-seed",
        jobs={"job_1": record(tmp_path)},
        finished=["job_0@1"],
    )
    StateStore(tmp_path).save(legacy)
    layout = StateLayout(tmp_path)
    # the first new key takes the legacy simulated-GPU seed (exactly once)
    assert layout.identity("qlp_first").sim_seed == "legacy-seed"
    assert layout.identity("qlp_second").sim_seed is None

    mine = AgentState()
    assert layout.adopt_legacy("prv_other", mine) is False
    assert mine.jobs == {} and (tmp_path / STATE_FILE).exists()
    assert layout.foreign_legacy("prv_other") == "prv_old"

    assert layout.adopt_legacy("prv_old", mine) is True
    assert set(mine.jobs) == {"job_1"} and mine.is_finished("job_0", 1)
    assert set(layout.store("prv_old").load().jobs) == {"job_1"}
    assert not (tmp_path / STATE_FILE).exists() and (tmp_path / LEGACY_MIGRATED).exists()
    assert layout.adopt_legacy("prv_old", AgentState()) is False  # only once
    assert layout.foreign_legacy("prv_other") is None
