"""Placement rules, pure: eligibility, scoring, exact top-k selection, claim/release
invariants (hypothesis stateful), money and metering arithmetic."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from qlp_scheduler import service as S
from qlp_scheduler.offer_index import OfferIndex

NOW = 1_800_000_000.0


def offer(
    oid: str,
    price: int = 100,
    *,
    model: str = "NVIDIA H100 80GB HBM3",
    mem: float = 80,
    gpus: int = 2,
    region: str = "eu-west",
    rel: float = 1.0,
    hb_age: float = 1.0,
    machine: str | None = None,
    status: str = S.ACTIVE,
    containers: bool = False,
) -> S.OfferView:
    owner = {f"{oid}-g{i}": "" for i in range(gpus)}
    return S.OfferView(
        offer_id=oid,
        provider_id=f"prv-{oid}",
        provider_org_id="org_p",
        machine_id=machine or f"mch-{oid}",
        gpu_model=model,
        gpu_memory_gb=mem,
        gpu_count=gpus,
        available_gpus=gpus,
        price_minor=price,
        currency="USD",
        region=region,
        reliability=rel,
        last_heartbeat_ts=NOW - hb_age,
        status=status,
        containers=containers,
        gpu_owner=owner,
    )


def req(**kw: object) -> S.Requirements:
    base: dict[str, object] = {"gpu_count": 1, "max_price_minor": 300}
    base.update(kw)
    return S.Requirements(**base)  # type: ignore[arg-type]


# ------------------------------------------------------------------ eligibility


@pytest.mark.parametrize(
    ("o", "r", "ok"),
    [
        (offer("a"), req(), True),
        (offer("a", price=301), req(), False),
        (offer("a", gpus=1), req(gpu_count=2), False),
        (offer("a", mem=40), req(min_gpu_memory_gb=48), False),
        (offer("a", model="NVIDIA A100"), req(gpu_model="H100"), False),
        (offer("a"), req(gpu_model="h100"), True),
        (offer("a"), req(gpu_model="NVIDIA H100 80GB HBM3"), True),
        (offer("a"), req(gpu_model="h100 80gb"), True),
        (offer("a"), req(gpu_model="H10"), False),
        (offer("a", model="SIM-A100"), req(gpu_model="A100"), True),
        (offer("a", hb_age=31), req(), False),
        (offer("a", status=S.DRAINING), req(), False),
        (offer("a", region="us-east"), req(region="eu-west"), True),
        (offer("a", region="us-east"), req(region="eu-west", region_strict=True), False),
        (offer("a"), req(currency="EUR"), False),
        (offer("a"), req(container=True), False),  # an image needs a container engine
        (offer("a", containers=True), req(container=True), True),
        (offer("a", containers=True), req(), True),
    ],
)
def test_eligibility(o: S.OfferView, r: S.Requirements, ok: bool) -> None:
    assert S.eligible(o, r, NOW, 30.0) is ok


def test_score_prefers_cheaper_reliable_local_and_ties_break_by_id() -> None:
    r = req(region="eu-west")
    cheap = offer("b", price=100)
    dear = offer("a", price=200)
    assert S.score(cheap, r) > S.score(dear, r)
    flaky = offer("c", price=100, rel=0.2)
    assert S.score(cheap, r) > S.score(flaky, r)
    remote = offer("d", price=100, region="us-east")
    assert S.score(cheap, r) > S.score(remote, r)
    twin_a, twin_b = offer("x1", price=100), offer("x2", price=100)
    ranked = S.rank_offers([twin_b, twin_a], r, NOW, 30.0)
    assert [o.offer_id for o in ranked] == ["x1", "x2"]


def test_exclude_machine_keeps_standby_off_the_primary_machine() -> None:
    offers = [offer("a", price=100, machine="m1"), offer("b", price=150, machine="m2")]
    top = S.top_candidates(offers, req(), NOW, 30.0, k=2, exclude_machines={"m1"})
    assert [o.offer_id for o in top] == ["b"]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(50, 400),  # price
            st.floats(0, 1),  # reliability
            st.sampled_from(["eu-west", "us-east"]),
            st.integers(0, 4),  # gpus
            st.sampled_from(["NVIDIA H100 80GB HBM3", "NVIDIA A100 40GB"]),
            st.floats(0, 60),  # heartbeat age
            st.booleans(),  # container engine
        ),
        max_size=60,
    ),
    st.integers(1, 3),
    st.integers(1, 10),
    st.sampled_from(["", "H100", "A100"]),
    st.booleans(),
    st.booleans(),
)
def test_top_candidates_equals_full_ranking(
    rows: list[tuple[int, float, str, int, str, float, bool]],
    count: int,
    k: int,
    model: str,
    strict: bool,
    container: bool,
) -> None:
    """Branch and bound over price order returns exactly the k best of a full sort."""
    offers = [
        offer(f"o{i:03d}", price=p, rel=rel, region=reg, gpus=g, model=m, hb_age=age, containers=c)
        for i, (p, rel, reg, g, m, age, c) in enumerate(rows)
    ]
    r = req(
        gpu_count=count,
        gpu_model=model,
        region="eu-west",
        region_strict=strict,
        container=container,
    )
    by_price = sorted(offers, key=lambda o: (o.price_minor, o.offer_id))
    fast = S.top_candidates(by_price, r, NOW, 30.0, k=k)
    full = S.rank_offers(offers, r, NOW, 30.0)[:k]
    assert [o.offer_id for o in fast] == [o.offer_id for o in full]
    # the same through the (model, region) buckets of the offer index
    idx = OfferIndex()
    for o in offers:
        idx.upsert(o)
    grouped = S.top_candidates_grouped(idx.groups(), r, NOW, 30.0, k=k)
    assert [o.offer_id for o in grouped] == [o.offer_id for o in full]


# --------------------------------------------------------------- offer index


def test_offer_index_orders_by_price_and_follows_changes() -> None:
    idx = OfferIndex()
    for oid, price in (("a", 300), ("b", 100), ("c", 200)):
        idx.upsert(offer(oid, price=price))
    assert [o.offer_id for o in idx.by_price()] == ["b", "c", "a"]
    idx.upsert(offer("a", price=50))
    assert [o.offer_id for o in idx.by_price()] == ["a", "b", "c"]
    idx.upsert(offer("b", price=100, status=S.DRAINING))
    assert [o.offer_id for o in idx.by_price()] == ["a", "c"]
    idx.remove("a")
    assert [o.offer_id for o in idx.by_price()] == ["c"] and len(idx) == 1


# --------------------------------------------------------- claims (stateful)


class PlacementMachine(RuleBasedStateMachine):
    """Jobs claim GPUs on offers (primary, optional standby on another machine) and
    release them; the rules are those of the database's conditional update. No GPU is
    ever held by two jobs, availability is never negative and always equals the free
    GPUs, and a hot-standby job holds GPUs on two different machines or none."""

    def __init__(self) -> None:
        super().__init__()
        self.offers: dict[str, S.OfferState] = {}
        self.machine: dict[str, str] = {}
        self.jobs: dict[str, list[tuple[str, list[str]]]] = {}
        self.n = 0

    @rule(gpus=st.integers(1, 4), machine=st.integers(0, 3))
    def add_offer(self, gpus: int, machine: int) -> None:
        oid = f"o{len(self.offers)}"
        self.offers[oid] = S.OfferState.fresh(f"{oid}-g{i}" for i in range(gpus))
        self.machine[oid] = f"m{machine}-{oid}"

    def _claim(self, job: str, n: int, exclude: set[str]) -> tuple[str, list[str]] | None:
        for oid in sorted(self.offers):
            if self.machine[oid] in exclude:
                continue
            st_ = self.offers[oid]
            free = [u for u, o in st_.gpu_owner.items() if not o][:n]
            if len(free) == n and st_.claim(job, free):
                return oid, free
        return None

    @precondition(lambda self: bool(self.offers))
    @rule(n=st.integers(1, 3), standby=st.booleans())
    def place(self, n: int, standby: bool) -> None:
        self.n += 1
        job = f"j{self.n}"
        primary = self._claim(job, n, set())
        if primary is None:
            return
        held = [primary]
        if standby:
            sb = self._claim(job, n, {self.machine[primary[0]]})
            if sb is None:
                assert self.offers[primary[0]].release(job)  # compensate
                return
            held.append(sb)
        self.jobs[job] = held

    @precondition(lambda self: bool(self.offers))
    @rule(data=st.data())
    def stale_double_claim(self, data: st.DataObject) -> None:
        """A claim with a stale view (GPUs someone else holds) must fail."""
        oid = data.draw(st.sampled_from(sorted(self.offers)))
        st_ = self.offers[oid]
        taken = [u for u, o in st_.gpu_owner.items() if o]
        if taken:
            assert not st_.claim("intruder", taken[:1])

    @precondition(lambda self: bool(self.jobs))
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        job = data.draw(st.sampled_from(sorted(self.jobs)))
        for oid, _ in self.jobs.pop(job):
            assert self.offers[oid].release(job)
            assert not self.offers[oid].release(job)  # idempotent

    @invariant()
    def no_double_allocation(self) -> None:
        owners: dict[str, str] = {}
        for st_ in self.offers.values():
            assert st_.available >= 0
            assert st_.available == sum(1 for o in st_.gpu_owner.values() if not o)
            for key, uuids in st_.claims.items():
                for u in uuids:
                    assert u not in owners
                    owners[u] = key
                    assert st_.gpu_owner[u] == key

    @invariant()
    def standby_on_another_machine(self) -> None:
        for held in self.jobs.values():
            machines = [self.machine[oid] for oid, _ in held]
            assert len(set(machines)) == len(machines)


TestPlacementMachine = PlacementMachine.TestCase
TestPlacementMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


# ------------------------------------------------------------ money, metering


@given(st.integers(1, 64), st.integers(1, 100_000), st.integers(1, 7 * 86_400))
def test_escrow_estimate_is_the_rounded_up_upper_bound(n: int, price: int, dur: int) -> None:
    est = S.escrow_estimate(n, price, dur)
    assert est * 3600 >= n * price * dur > (est - 1) * 3600


def test_gpu_minutes_round_up_started_minutes() -> None:
    assert S.gpu_minutes(0) == 0
    assert S.gpu_minutes(0.5) == 1
    assert S.gpu_minutes(60) == 1
    assert S.gpu_minutes(60.2) == 2
    assert S.cost_minor(1, 200) == 3  # 200/60 = 3.33 -> 3 (half up, like billing)
    assert S.cost_minor(1, 210) == 4  # 3.5 -> 4
    assert S.cost_minor(60, 200) == 200


@given(st.lists(st.integers(0, 10_000), max_size=200), st.integers(1, 120))
def test_reliability_is_a_share(minutes: list[int], window: int) -> None:
    now = 10_000
    ring = {str(m % window): m for m in minutes}
    r = S.reliability(ring, 0, now, window)
    assert 0.0 <= r <= 1.0


def test_reliability_counts_minutes_with_heartbeats() -> None:
    ring = {str(m % 60): m for m in range(1000, 1060, 2)}  # every other minute
    assert S.reliability(ring, 0, 1059, 60) == pytest.approx(0.5)
    assert S.reliability({"0": 1020}, 1020, 1020, 60) == 1.0  # new provider, always seen


def test_a_minute_without_a_heartbeat_yet_is_not_downtime() -> None:
    ring = {str(m % 60): m for m in range(1000, 1010)}  # every minute up to 1009
    assert S.reliability(ring, 1000, 1010, 60) == 1.0  # 1010 has just begun
    assert S.reliability(ring, 1000, 1011, 60) == pytest.approx(10 / 11)  # 1010 was missed
    ring["10"] = 1010
    assert S.reliability(ring, 1000, 1010, 60) == 1.0
    assert S.reliability({"0": 1020}, 1020, 1021, 60) == 1.0  # registered, next minute begun


def test_transitions() -> None:
    assert S.next_status(S.PLACED, S.STARTING) == S.STARTING
    assert S.next_status(S.RUNNING, S.COMPLETED) == S.COMPLETED
    assert S.next_status(S.RUNNING, S.STARTING) == S.RUNNING  # late re-report
    with pytest.raises(S.InvalidTransition):
        S.next_status(S.PLACED, "canceled")
    with pytest.raises(S.InvalidTransition):
        S.next_status(S.SUBMITTED, S.RUNNING)


def test_usage_lines_and_cost_cap() -> None:
    usage = {
        "prv_b": {"provider_org_id": "org_b", "gpu_seconds": 61.0, "price_minor": 120},
        "prv_a": {"provider_org_id": "org_a", "gpu_seconds": 10.0, "price_minor": 60},
    }
    lines = S.usage_lines(usage)
    assert [(u.provider_id, u.gpu_minutes) for u in lines] == [("prv_a", 1), ("prv_b", 2)]
    assert S.total_cost(lines) == 1 + 4  # 60/60 = 1; 2 x 120 / 60 = 4
    assert S.total_cost(lines, cap_minor=3) == 3


def test_pick_gpus_in_device_order() -> None:
    o = offer("a", gpus=3)
    o.gpu_owner["a-g0"] = "job_x"
    assert S.pick_gpus(o, 2) == ["a-g1", "a-g2"]
    assert S.pick_gpus(o, 3) == []


def test_shuffled_input_order_does_not_change_the_choice() -> None:
    offers = [offer(f"o{i}", price=100 + (i % 7) * 10, rel=(i % 5) / 4) for i in range(50)]
    r = req()
    expected = S.rank_offers(offers, r, NOW, 30.0)[:5]
    rnd = random.Random(7)
    for _ in range(5):
        rnd.shuffle(offers)
        by_price = sorted(offers, key=lambda o: (o.price_minor, o.offer_id))
        got = S.top_candidates(by_price, r, NOW, 30.0, k=5)
        assert [o.offer_id for o in got] == [o.offer_id for o in expected]


# ------------------------------------------------------------------ why a job waits


def _busy(o: S.OfferView) -> S.OfferView:
    o.available_gpus = 0
    return o


@pytest.mark.parametrize(
    ("offers", "r", "standby", "expected"),
    [
        ([], req(), 1, "no machine is registered and active"),
        (
            [offer("a", gpus=8), offer("b", gpus=2)],
            req(gpu_count=64),
            1,
            "no registered machine has 64 GPUs (largest: 8)",
        ),
        (
            [offer("a", gpus=8, status=S.DRAINING)],
            req(),
            1,
            "no machine is registered and active",
        ),
        (
            [offer("a", model="NVIDIA A100 80GB")],
            req(gpu_model="H100"),
            1,
            "no registered machine with 1+ GPUs has GPU model 'H100' (models: NVIDIA A100 80GB)",
        ),
        (
            [offer("a", mem=24)],
            req(min_gpu_memory_gb=48),
            1,
            "no matching machine has GPUs with 48 GB of memory (largest: 24 GB)",
        ),
        ([offer("a")], req(container=True), 1, "no matching machine can run container images"),
        (
            [offer("a", region="us-east")],
            req(region="eu-west", region_strict=True),
            1,
            "no matching machine is in region 'eu-west'",
        ),
        (
            [offer("a", price=500), offer("b", price=400)],
            req(max_price_minor=300),
            1,
            "no matching machine is offered at or below 300 USD minor units per GPU-hour "
            "(cheapest: 400)",
        ),
        (
            [offer("a")],
            req(),
            2,
            "hot standby needs 2 matching machines; 1 is registered",
        ),
        (
            [offer("a", hb_age=600)],
            req(),
            1,
            "all 1 matching machine is offline (no recent heartbeat)",
        ),
        (
            [_busy(offer("a")), _busy(offer("b")), offer("c", gpus=1)],
            req(gpu_count=2),
            1,
            "all matching machines busy (2 match, 2 online, 0 with 2 free GPUs)",
        ),
        ([offer("a")], req(), 1, "waiting for capacity"),
    ],
)
def test_placement_reason_says_why_a_job_waits(
    offers: list[S.OfferView], r: S.Requirements, standby: int, expected: str
) -> None:
    assert S.placement_reason(offers, r, NOW, 30.0, machines_needed=standby) == expected
