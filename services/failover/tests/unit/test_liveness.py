"""The liveness state machine: thresholds, jitter, a dropped heartbeat, recovery,
rebuild on adoption; plus a Hypothesis stateful test against a simple model."""

from __future__ import annotations

import random

from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from qlp_failover.liveness import Detector, Lease, State, Watch

S = 1000


def det(learn: bool = False) -> Detector:
    return Detector.from_intervals(1.0, miss_threshold=3, grace_intervals=0.5, learn=learn)


def test_thresholds_from_intervals() -> None:
    d = det()
    assert (d.interval_ms, d.suspect_ms, d.lost_ms) == (1000, 2000, 3500)


def test_silence_goes_suspected_then_lost_once() -> None:
    d = det()
    d.observe("p", "org", 0, [Lease("job", 1, "primary")])
    assert d.tick(2000) == []
    [t] = d.tick(2001)
    assert (t.previous, t.state) == (State.ALIVE, State.SUSPECTED)
    [t] = d.tick(3501)
    assert (t.previous, t.state, t.last_seen_ms) == (State.SUSPECTED, State.LOST, 0)
    assert t.leases == (Lease("job", 1, "primary"),)
    assert d.tick(10_000) == [] and d.tick(60_000) == []  # never declared twice


def test_a_late_tick_goes_straight_to_lost() -> None:
    d = det()
    d.observe("p", "org", 0)
    [t] = d.tick(9000)
    assert (t.previous, t.state) == (State.ALIVE, State.LOST)


def test_one_dropped_heartbeat_with_jitter_is_not_a_loss() -> None:
    d = det()
    rng = random.Random(7)
    now = 0
    d.observe("p", "org", now)
    lost = 0
    for i in range(60):
        now += round(S * rng.uniform(0.5, 1.5))
        if i == 30:
            now += round(S * 1.5)  # the dropped one: the worst case, both gaps 1.5 s
        for t in range(now - 900, now, 250):
            lost += sum(x.state is State.LOST for x in d.tick(t))
        d.observe("p", "org", now)
    assert lost == 0


def test_a_slower_agent_gets_thresholds_scaled_to_its_own_interval() -> None:
    d = det(learn=True)
    for at in range(0, 50_001, 10_000):  # an agent started with --heartbeat-interval 10
        d.tick(at)  # until three gaps are learned it is judged by the configured interval
        d.observe("slow", "org", at)
    assert d.watches["slow"].learned_ms == 10_000
    assert d.tick(50_000 + 20_000) == []  # suspected at 20 s of silence: not yet
    assert [t.state for t in d.tick(50_000 + 20_001)] == [State.SUSPECTED]
    assert [t.state for t in d.tick(50_000 + 35_001)] == [State.LOST]
    # a fast agent never gets thresholds under the configured interval
    fast = det(learn=True)
    for at in range(0, 2001, 200):
        fast.observe("f", "org", at)
    assert fast.thresholds(fast.watches["f"]) == (2000, 3500)


def test_heartbeat_after_loss_is_a_recovery() -> None:
    d = det()
    d.observe("p", "org", 0)
    d.tick(5000)
    t = d.observe("p", "org", 6000)
    assert t is not None and (t.previous, t.state, t.silent_ms) == (State.LOST, State.ALIVE, 6000)
    assert d.observe("p", "org", 7000) is None


def test_out_of_order_heartbeat_changes_nothing() -> None:
    d = det()
    d.observe("p", "org", 5000)
    assert d.observe("p", "org", 4000) is None
    assert d.watches["p"].last_seen_ms == 5000


def test_adopt_keeps_a_lost_provider_lost_and_release_forgets() -> None:
    d = det()
    d.adopt(Watch("p", "org", State.LOST, 1000, (), 2))
    d.adopt(Watch("q", "org", State.ALIVE, 1000, (), 3))
    assert [t.provider_id for t in d.tick(4501)] == ["q"]
    assert d.release({2}) == ["p"] and "p" not in d.watches


class LivenessMachine(RuleBasedStateMachine):
    """Model: a provider is lost iff its silence exceeds lost_ms; each loss is reported
    exactly once per silence; recoveries only after a suspicion or a loss."""

    @initialize()
    def start(self) -> None:
        self.d = det()
        self.now = 0
        self.last: dict[str, int] = {}
        self.reported_lost: dict[str, int] = {}
        self.state: dict[str, State] = {}

    @rule(p=st.sampled_from(["a", "b", "c"]))
    def heartbeat(self, p: str) -> None:
        t = self.d.observe(p, "org", self.now)
        before = self.state.get(p)
        if before in (State.SUSPECTED, State.LOST):
            assert t is not None and t.previous is before and t.state is State.ALIVE
        else:
            assert t is None
        self.last[p] = self.now
        self.state[p] = State.ALIVE
        self.reported_lost[p] = 0

    @rule(dt=st.integers(min_value=0, max_value=5000))
    def advance(self, dt: int) -> None:
        self.now += dt
        for t in self.d.tick(self.now):
            assert t.previous is self.state[t.provider_id]
            assert t.last_seen_ms == self.last[t.provider_id]
            if t.state is State.LOST:
                self.reported_lost[t.provider_id] += 1
                assert self.now - self.last[t.provider_id] > self.d.lost_ms
            else:
                assert self.now - self.last[t.provider_id] > self.d.suspect_ms
            self.state[t.provider_id] = t.state

    @invariant()
    def verdicts_match_silence(self) -> None:
        for p, seen in self.last.items():
            silent = self.now - seen
            assert self.reported_lost[p] == (1 if silent > self.d.lost_ms else 0)
            assert (self.state[p] is State.LOST) == (silent > self.d.lost_ms)
            if self.state[p] is State.ALIVE:
                assert silent <= self.d.suspect_ms


LivenessMachine.TestCase.settings = hsettings(
    max_examples=150, stateful_step_count=40, deadline=None
)
TestLivenessMachine = LivenessMachine.TestCase
