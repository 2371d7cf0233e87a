"""Fail points (pure logic; ``os.kill`` replaced by a recorder)."""

from __future__ import annotations

import pytest

from qlp_kit import faults


@pytest.fixture
def kills(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    killed: list[int] = []
    monkeypatch.setattr(faults.os, "kill", lambda pid, sig: killed.append(sig))
    monkeypatch.setattr(faults, "_counts", {})
    return killed


def arm(monkeypatch: pytest.MonkeyPatch, spec: str) -> None:
    monkeypatch.setenv("QLP_FAULTS", spec)
    monkeypatch.setattr(faults, "_ARMED", faults._armed())


def test_unarmed_points_never_kill(kills: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    arm(monkeypatch, "")
    for _ in range(10):
        faults.hit("relay.after_publish")
    assert kills == []


def test_the_nth_hit_kills(kills: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    arm(monkeypatch, "relay.after_publish:3")
    faults.hit("relay.after_publish")
    faults.hit("relay.before_publish")
    faults.hit("relay.after_publish")
    assert kills == []
    faults.hit("relay.after_publish")
    assert len(kills) == 1


def test_a_scoped_point_counts_only_its_scope(
    kills: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    arm(monkeypatch, "consumer.after_effect@billing.metering:2")
    for _ in range(5):
        faults.hit("consumer.after_effect", "billing.quotas")
    faults.hit("consumer.after_effect")
    faults.hit("consumer.after_effect", "billing.metering")
    assert kills == []
    faults.hit("consumer.after_effect", "billing.metering")
    assert len(kills) == 1


def test_an_unscoped_point_counts_every_scope(
    kills: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    arm(monkeypatch, "consumer.after_effect:2")
    faults.hit("consumer.after_effect", "a")
    faults.hit("consumer.after_effect", "b")
    assert len(kills) == 1
