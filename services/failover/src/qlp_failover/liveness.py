"""The liveness state machine of the providers one replica watches (pure, no I/O).

Every heartbeat event is an ``observe`` at the time it reached this service (its own
clock, never the agent's or the scheduler's); ``tick`` moves providers whose silence
passed a threshold: ``alive → suspected`` after ``suspect_ms``, ``→ lost`` after
``lost_ms``. A heartbeat from a suspected or lost provider is a recovery. A lost
provider stays lost (no second verdict) until it is heard from again.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

#: Gaps between heartbeats remembered per provider to learn its interval.
LEARN_GAPS = 5


class State(StrEnum):
    ALIVE = "alive"
    SUSPECTED = "suspected"
    LOST = "lost"


@dataclass(frozen=True, slots=True)
class Lease:
    job_id: str
    epoch: int
    role: str = ""
    status: str = ""


@dataclass(slots=True)
class Watch:
    provider_id: str
    org_id: str
    state: State
    last_seen_ms: int
    leases: tuple[Lease, ...] = ()
    #: Kafka partition the provider's heartbeats arrive on (who owns it).
    partition: int = -1
    #: The provider's own interval as learned from its heartbeats (0: not yet).
    learned_ms: int = 0
    gaps: deque[int] = field(default_factory=lambda: deque(maxlen=LEARN_GAPS))


@dataclass(frozen=True, slots=True)
class Transition:
    provider_id: str
    org_id: str
    previous: State
    state: State
    last_seen_ms: int
    at_ms: int
    leases: tuple[Lease, ...] = ()

    @property
    def silent_ms(self) -> int:
        return self.at_ms - self.last_seen_ms


@dataclass
class Detector:
    interval_ms: int
    suspect_ms: int
    lost_ms: int
    watches: dict[str, Watch] = field(default_factory=dict)
    #: Learn each provider's interval (median of its last gaps) and scale its
    #: thresholds when it is slower than ``interval_ms``: an agent started with
    #: ``--heartbeat-interval 10`` is lost after 35 s of silence, not 3.5 s. Never
    #: lower than the configured interval.
    learn: bool = True

    def thresholds(self, w: Watch) -> tuple[int, int]:
        """(suspect_ms, lost_ms) of one provider."""
        if not self.learn or w.learned_ms <= self.interval_ms:
            return self.suspect_ms, self.lost_ms
        scale = w.learned_ms / self.interval_ms
        return round(self.suspect_ms * scale), round(self.lost_ms * scale)

    @classmethod
    def from_intervals(
        cls,
        interval_s: float,
        miss_threshold: int = 3,
        grace_intervals: float = 0.5,
        suspect_intervals: float = 2.0,
        learn: bool = True,
    ) -> Detector:
        interval_ms = round(interval_s * 1000)
        lost_ms = round(interval_ms * (miss_threshold + grace_intervals))
        suspect_ms = min(round(interval_ms * suspect_intervals), lost_ms)
        if interval_ms <= 0 or miss_threshold < 1:
            raise ValueError("the heartbeat interval and the miss threshold must be positive")
        return cls(interval_ms, suspect_ms, lost_ms, learn=learn)

    def observe(
        self,
        provider_id: str,
        org_id: str,
        now_ms: int,
        leases: Iterable[Lease] = (),
        partition: int = -1,
    ) -> Transition | None:
        """A heartbeat arrived; the recovery when the provider was suspected or lost."""
        held = tuple(leases)
        w = self.watches.get(provider_id)
        if w is None:
            self.watches[provider_id] = Watch(
                provider_id, org_id, State.ALIVE, now_ms, held, partition
            )
            return None
        if now_ms < w.last_seen_ms:
            # Delivered out of order (or a rebuilt clock ahead of it): nothing newer.
            return None
        previous = w.state
        silent_from = w.last_seen_ms
        w.last_seen_ms = now_ms
        w.leases = held
        if now_ms > silent_from:
            # the median of the last gaps: one outage or dropped heartbeat does not move it
            w.gaps.append(now_ms - silent_from)
            if len(w.gaps) >= 3:
                w.learned_ms = round(statistics.median(w.gaps))
        w.org_id = org_id or w.org_id
        if partition >= 0:
            w.partition = partition
        if previous is State.ALIVE:
            return None
        w.state = State.ALIVE
        return Transition(provider_id, w.org_id, previous, State.ALIVE, silent_from, now_ms, held)

    def tick(self, now_ms: int) -> list[Transition]:
        """Providers whose silence crossed a threshold since the last tick."""
        out: list[Transition] = []
        for w in self.watches.values():
            silent = now_ms - w.last_seen_ms
            suspect_ms, lost_ms = self.thresholds(w)
            target = w.state
            if silent > lost_ms:
                target = State.LOST
            elif silent > suspect_ms and w.state is State.ALIVE:
                target = State.SUSPECTED
            if target is not w.state:
                out.append(
                    Transition(
                        w.provider_id, w.org_id, w.state, target, w.last_seen_ms, now_ms, w.leases
                    )
                )
                w.state = target
        return out

    def adopt(self, watch: Watch) -> None:
        """Take over a provider from persisted state (a rebalance gave us its partition).

        Its clock restarts at the time of adoption at the earliest: the persisted
        last-seen time may be up to ``persist_every_s`` old for a provider that is fine,
        so judging by it would fail healthy jobs over. A provider that died before the
        rebalance is still declared, one threshold after adoption: late, never missed.
        A provider already declared lost stays lost (never declared twice).
        """
        current = self.watches.get(watch.provider_id)
        if current is not None and current.last_seen_ms >= watch.last_seen_ms:
            return
        self.watches[watch.provider_id] = watch

    def release(self, partitions: set[int]) -> list[str]:
        """Stop watching the providers of partitions this replica no longer owns."""
        gone = [p for p, w in self.watches.items() if w.partition in partitions]
        for p in gone:
            del self.watches[p]
        return gone

    def at_risk(self) -> int:
        return sum(1 for w in self.watches.values() if w.state is not State.ALIVE)
