from __future__ import annotations

import json

import pytest

from qlp_console.live import metrics_sample, relay_lines, sse
from qlp_console.routes_gpu import job_spec


def _metrics(at: str | None) -> dict[str, object]:
    return {
        "status": "running",
        "step": 3,
        "gpu_minutes": 1,
        "cost": {"amount": 100, "currency": "USD"},
        "gpus": [
            {"uuid": "GPU-a", "utilization_pct": 80.0, "memory_used_mb": 1000.0,
             "temperature_c": 60.0, "power_w": 250.0, "at": at},
        ],
    }  # fmt: skip


def test_a_sample_is_sent_once_per_new_reading() -> None:
    sample, seen = metrics_sample(_metrics("2026-12-02T10:00:01Z"), None)
    assert sample is not None and sample["gpus"][0]["utilization_pct"] == 80.0
    again, seen2 = metrics_sample(_metrics("2026-12-02T10:00:01Z"), seen)
    assert again is None and seen2 == seen
    newer, seen3 = metrics_sample(_metrics("2026-12-02T10:00:02Z"), seen)
    assert newer is not None and seen3 == "2026-12-02T10:00:02Z"
    assert metrics_sample(_metrics(None), None) == (None, None)
    assert metrics_sample({"gpus": []}, "x") == (None, "x")


def test_sse_frames() -> None:
    frame = sse("sample", {"a": 1}, "7").decode()
    assert frame == 'event: sample\nid: 7\ndata: {"a":1}\n\n'


def test_relay_parses_complete_events_and_keeps_the_rest() -> None:
    raw = 'event: log\nid: 1\ndata: {"line": "x"}\n\n: ping\n\nevent: end\ndata: {"status"'
    events, rest = relay_lines(raw)
    assert events == [("log", '{"line": "x"}', "1")]
    assert rest == 'event: end\ndata: {"status"'
    events, rest = relay_lines(rest + ': "completed"}\n\n')
    assert events == [("end", '{"status": "completed"}', None)]
    assert json.loads(events[0][1]) == {"status": "completed"}
    assert rest == ""


def test_job_spec_from_a_launch_form() -> None:
    spec = job_spec(
        {"gpu_count": "2", "max_price": "2.50", "max_minutes": "30",
         "command": "python train.py --epochs '3'", "region": "eu-west", "gpu_model": "",
         "redundancy": "hot_standby", "checkpoint_interval_s": "30"}
    )  # fmt: skip
    assert spec == {
        "gpu_count": 2,
        "max_price_per_gpu_hour": {"amount": 250, "currency": "USD"},
        "command": ["python", "train.py", "--epochs", "3"],
        "max_duration_s": 1800,
        "redundancy": "hot_standby",
        "checkpoint_interval_s": 30,
        "region": "eu-west",
    }


def test_job_spec_names_every_bad_field() -> None:
    with pytest.raises(ValueError) as err:
        job_spec({"gpu_count": "0", "max_price": "", "max_minutes": "x", "command": ""})
    text = str(err.value)
    for field in ("GPU count", "Highest price", "Longest run", "Command"):
        assert field in text
