"""Scheduler domain logic: pure functions and small value types, no I/O.

- offer eligibility (capacity, model / VRAM, price, region, health) and scoring
  (price, reliability, locality) with a deterministic tie-break by offer id;
- exact top-k candidate selection over offers sorted by price (branch and bound:
  the score is bounded by its price term plus the best possible reliability and
  locality, so the scan stops as soon as no cheaper-ranked offer can win);
- the claim/release rules of GPUs on one offer (:class:`OfferState`), the same rules
  the database enforces with one conditional update per claim;
- escrow estimate, reliability, GPU-minute metering and cost, job transitions.
"""

from __future__ import annotations

import heapq
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

ACTIVE = "active"
DRAINING = "draining"
# the agent said it stopped (SIGTERM): no new jobs until it registers again
OFFLINE = "offline"

# Job statuses.
SUBMITTED = "submitted"
ESCROW_HELD = "escrow_held"
PLACED = "placed"
STARTING = "starting"
RUNNING = "running"
COMPLETED = "completed"
FAILED = "failed"
CANCELED = "canceled"
TERMINAL = frozenset({COMPLETED, FAILED, CANCELED})
LIVE = frozenset({PLACED, STARTING, RUNNING})
OPEN = frozenset({SUBMITTED, ESCROW_HELD, PLACED, STARTING, RUNNING})
# What an agent reports once it no longer runs the job (acknowledges a cancel).
AGENT_TERMINAL = frozenset({COMPLETED, FAILED, CANCELED})
# Assignments that make an agent run (or get ready to run) a job.
START_ACTIONS = ("start", "prepare")
# A standby is told to fetch each new checkpoint ahead of a promotion (best effort: it
# is done once delivered; a standby that missed one downloads at promotion).
STAGE_ACTION = "stage"
# Checked at delivery: never delivered once the job ended or moved to another epoch.
EPOCH_BOUND_ACTIONS = (*START_ACTIONS, STAGE_ACTION)

_TOKEN = re.compile(r"[^a-z0-9]+")

PRIMARY = "primary"
STANDBY = "standby"

# Score weights (sum to 1). Price dominates, then reliability, then locality.
W_PRICE = 0.55
W_RELIABILITY = 0.35
W_LOCALITY = 0.10


class DomainError(Exception):
    """Base of the scheduler's domain errors (mapped to problems by the API)."""


class NotFound(DomainError):
    pass


class StaleEpoch(DomainError):
    def __init__(self, job_id: str, reported: int, current: int) -> None:
        super().__init__(f"epoch {reported} of job {job_id} is stale (current {current})")
        self.reported = reported
        self.current = current


class InvalidTransition(DomainError):
    pass


class NoCapacity(DomainError):
    pass


class Invalid(DomainError):
    pass


class Unsatisfiable(DomainError):
    """No registered offer could ever hold the job (and it does not ask to wait)."""


class InsufficientBalance(DomainError):
    """The org's prepaid balance, as the scheduler last saw it, cannot cover the
    job's escrow estimate."""

    def __init__(self, required: int, available: int, currency: str) -> None:
        super().__init__(
            f"the escrow estimate is {required} {currency} minor units but the prepaid "
            f"balance available for it is {available}: add at least {required - available} "
            f"(POST /v1/billing/credits), or lower gpu_count, max_price_per_gpu_hour or "
            f"max_duration_s"
        )
        self.required = required
        self.available = available
        self.currency = currency

    @property
    def shortfall(self) -> int:
        return self.required - self.available


@dataclass(slots=True)
class OfferView:
    """What placement knows about one offer (one provider machine)."""

    offer_id: str
    provider_id: str
    provider_org_id: str
    machine_id: str
    gpu_model: str
    gpu_memory_gb: float
    gpu_count: int
    available_gpus: int
    price_minor: int
    currency: str
    region: str
    reliability: float
    last_heartbeat_ts: float  # POSIX seconds; 0 when never
    status: str = ACTIVE
    containers: bool = False  # can run container images
    # uuid -> owning claim key ("" = free); order = device index order.
    gpu_owner: dict[str, str] = field(default_factory=dict)

    def free_uuids(self) -> list[str]:
        return [u for u, owner in self.gpu_owner.items() if not owner]


@dataclass(frozen=True, slots=True)
class Requirements:
    gpu_count: int
    max_price_minor: int
    currency: str = "USD"
    gpu_model: str = ""
    min_gpu_memory_gb: float = 0.0
    region: str = ""
    region_strict: bool = False
    container: bool = False  # the job names an image


def normalize_model(model: str) -> str:
    """Lower-case alphanumeric tokens joined by single spaces ("SIM-A100" → "sim a100")."""
    return " ".join(t for t in _TOKEN.split(model.lower()) if t)


def model_matches(offer_model: str, wanted: str) -> bool:
    """A wanted model matches when its tokens appear, in order and adjacent, among the
    offer model's tokens ("h100" matches "NVIDIA H100 80GB HBM3", "a100" "SIM-A100")."""
    if not wanted:
        return True
    return f" {normalize_model(wanted)} " in f" {normalize_model(offer_model)} "


def is_healthy(offer: OfferView, now_ts: float, timeout_s: float) -> bool:
    return offer.last_heartbeat_ts > 0 and now_ts - offer.last_heartbeat_ts <= timeout_s


def eligible(
    offer: OfferView,
    req: Requirements,
    now_ts: float,
    heartbeat_timeout_s: float,
    exclude_machines: Iterable[str] = (),
) -> bool:
    if offer.status != ACTIVE or offer.available_gpus < req.gpu_count:
        return False
    if offer.currency != req.currency or offer.price_minor > req.max_price_minor:
        return False
    if offer.gpu_memory_gb < req.min_gpu_memory_gb:
        return False
    if req.gpu_model and not model_matches(offer.gpu_model, req.gpu_model):
        return False
    if req.region_strict and req.region and offer.region != req.region:
        return False
    if req.container and not offer.containers:
        return False
    if offer.machine_id in exclude_machines:
        return False
    return is_healthy(offer, now_ts, heartbeat_timeout_s)


def price_term(price_minor: int, max_price_minor: int) -> float:
    if max_price_minor <= 0:
        return 0.0
    return max(0.0, 1.0 - price_minor / max_price_minor)


def score(offer: OfferView, req: Requirements) -> float:
    """Higher is better: cheaper, more reliable, in the preferred region."""
    locality = 1.0 if req.region and offer.region == req.region else 0.0
    return (
        W_PRICE * price_term(offer.price_minor, req.max_price_minor)
        + W_RELIABILITY * max(0.0, min(1.0, offer.reliability))
        + W_LOCALITY * locality
    )


def score_upper_bound(price_minor: int, req: Requirements) -> float:
    """The best score any offer at this price can have."""
    return W_PRICE * price_term(price_minor, req.max_price_minor) + W_RELIABILITY + W_LOCALITY


def rank_key(offer: OfferView, req: Requirements) -> tuple[float, str]:
    """Sort key: best score first, then offer id (deterministic tie-break)."""
    return (-score(offer, req), offer.offer_id)


class _Rev:
    """Reverses string order inside heap tuples (ties: the smaller id is better)."""

    __slots__ = ("s",)

    def __init__(self, s: str) -> None:
        self.s = s

    def __lt__(self, other: _Rev) -> bool:
        return self.s > other.s

    def __gt__(self, other: _Rev) -> bool:
        return self.s < other.s

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Rev) and self.s == other.s

    def __hash__(self) -> int:
        return hash(self.s)


@dataclass(frozen=True, slots=True)
class OfferGroup:
    """Offers in ascending price order that share a model and/or region (``None``:
    mixed, checked per offer); ``max_reliability`` bounds their reliability."""

    offers_by_price: Iterable[OfferView]
    model: str | None = None
    region: str | None = None
    max_reliability: float = 1.0


def top_candidates(
    offers_by_price: Iterable[OfferView],
    req: Requirements,
    now_ts: float,
    heartbeat_timeout_s: float,
    k: int = 8,
    exclude_machines: Iterable[str] = (),
    exclude_offers: Iterable[str] = (),
) -> list[OfferView]:
    """The exact ``k`` best eligible offers of one price-ordered sequence, best first."""
    return top_candidates_grouped(
        [OfferGroup(offers_by_price)],
        req,
        now_ts,
        heartbeat_timeout_s,
        k,
        exclude_machines,
        exclude_offers,
    )


def top_candidates_grouped(
    groups: Iterable[OfferGroup],
    req: Requirements,
    now_ts: float,
    heartbeat_timeout_s: float,
    k: int = 8,
    exclude_machines: Iterable[str] = (),
    exclude_offers: Iterable[str] = (),
) -> list[OfferView]:
    """The exact ``k`` best eligible offers over several price-ordered groups, best first.

    Branch and bound: within a group, an offer's score is at most its price term plus
    the group's best reliability and (when the group is in the preferred region) the
    locality bonus; the scan of a group stops once that bound falls below the k-th best
    score found. Groups in the preferred region go first so the bar rises early.
    """
    excl_m = set(exclude_machines)
    excl_o = set(exclude_offers)
    heap: list[tuple[float, _Rev, OfferView]] = []  # min-heap: the worst kept on top
    max_price = req.max_price_minor
    ordered = sorted(groups, key=lambda g: 0 if g.region is None or g.region == req.region else 1)
    for g in ordered:
        if g.model is not None and req.gpu_model and not model_matches(g.model, req.gpu_model):
            continue
        if g.region is not None and req.region_strict and req.region and g.region != req.region:
            continue
        local = W_LOCALITY if g.region is None or (req.region and g.region == req.region) else 0.0
        head_room = W_RELIABILITY * max(0.0, min(1.0, g.max_reliability)) + local
        check_model = g.model is None and bool(req.gpu_model)
        for o in g.offers_by_price:
            price = o.price_minor
            if price > max_price:
                break
            if len(heap) >= k and W_PRICE * price_term(price, max_price) + head_room < heap[0][0]:
                break
            if (
                o.available_gpus < req.gpu_count
                or o.status != ACTIVE
                or o.currency != req.currency
                or o.gpu_memory_gb < req.min_gpu_memory_gb
                or now_ts - o.last_heartbeat_ts > heartbeat_timeout_s
                or o.last_heartbeat_ts <= 0
                or o.offer_id in excl_o
                or o.machine_id in excl_m
                or (check_model and not model_matches(o.gpu_model, req.gpu_model))
                or (req.container and not o.containers)
                or (
                    g.region is None and req.region_strict and req.region and o.region != req.region
                )
            ):
                continue
            item = (score(o, req), _Rev(o.offer_id), o)
            if len(heap) < k:
                heapq.heappush(heap, item)
            elif item[:2] > heap[0][:2]:
                heapq.heapreplace(heap, item)
    return [o for _, _, o in sorted(heap, key=lambda t: (-t[0], t[2].offer_id))]


def unsatisfiable_reason(
    offers: Iterable[OfferView], req: Requirements, machines_needed: int = 1
) -> str | None:
    """The first requirement that no registered active machine meets, whatever its
    load or liveness (more GPUs than any machine has, a model nobody offers, ...);
    None when some registered machines could hold the job once free and online."""
    why, _ = _unmet(offers, req, machines_needed)
    return why


def _unmet(
    offers: Iterable[OfferView], req: Requirements, machines_needed: int
) -> tuple[str | None, list[OfferView]]:
    pool = [o for o in offers if o.status == ACTIVE]
    if not pool:
        return "no machine is registered and active", []
    n = req.gpu_count
    checks: list[tuple[Callable[[OfferView], bool], Callable[[list[OfferView]], str]]] = [
        (
            lambda o: o.gpu_count >= n,
            lambda left: (
                f"no registered machine has {n} GPUs (largest: {max(o.gpu_count for o in left)})"
            ),
        ),
        (
            lambda o: model_matches(o.gpu_model, req.gpu_model),
            lambda left: (
                f"no registered machine with {n}+ GPUs has GPU model "
                f"{req.gpu_model!r} (models: {', '.join(sorted({o.gpu_model for o in left})[:5])})"
            ),
        ),
        (
            lambda o: o.gpu_memory_gb >= req.min_gpu_memory_gb,
            lambda left: (
                f"no matching machine has GPUs with {req.min_gpu_memory_gb:g} GB "
                f"of memory (largest: {max(o.gpu_memory_gb for o in left):g} GB)"
            ),
        ),
        (
            lambda o: o.containers or not req.container,
            lambda left: "no matching machine can run container images",
        ),
        (
            lambda o: not (req.region_strict and req.region) or o.region == req.region,
            lambda left: f"no matching machine is in region {req.region!r}",
        ),
        (
            lambda o: o.currency == req.currency,
            lambda left: f"no matching machine is priced in {req.currency}",
        ),
        (
            lambda o: o.price_minor <= req.max_price_minor,
            lambda left: (
                f"no matching machine is offered at or below {req.max_price_minor} "
                f"{req.currency} minor units per GPU-hour "
                f"(cheapest: {min(o.price_minor for o in left)})"
            ),
        ),
    ]
    for keep, why in checks:
        kept = [o for o in pool if keep(o)]
        if not kept:
            return why(pool), []
        pool = kept
    k = len(pool)
    if k < machines_needed:
        return (
            f"hot standby needs {machines_needed} matching machines; "
            f"{k} {'is' if k == 1 else 'are'} registered"
        ), pool
    return None, pool


def placement_reason(
    offers: Iterable[OfferView],
    req: Requirements,
    now_ts: float,
    heartbeat_timeout_s: float,
    machines_needed: int = 1,
) -> str:
    """Why a job waits: the first requirement that no active machine meets (a job that
    no registered machine could ever hold), else why the matching ones cannot take it
    now. Said on the job (``placement_reason``) so a consumer is not left guessing."""
    why, pool = _unmet(offers, req, machines_needed)
    if why is not None:
        return why
    n = req.gpu_count
    k = len(pool)
    healthy = [o for o in pool if is_healthy(o, now_ts, heartbeat_timeout_s)]
    if not healthy:
        return (
            f"all {k} matching machine{'s are' if k > 1 else ' is'} offline (no recent heartbeat)"
        )
    free = [o for o in healthy if o.available_gpus >= n]
    if len(free) < machines_needed:
        return (
            f"all matching machines busy ({k} match, {len(healthy)} online, "
            f"{len(free)} with {n} free GPUs)"
        )
    return "waiting for capacity"


def rank_offers(
    offers: Iterable[OfferView], req: Requirements, now_ts: float, heartbeat_timeout_s: float
) -> list[OfferView]:
    """All eligible offers, best first (reference implementation of the ranking)."""
    good = [o for o in offers if eligible(o, req, now_ts, heartbeat_timeout_s)]
    return sorted(good, key=lambda o: rank_key(o, req))


# --- claims on one offer: the rules the database's conditional update enforces ------


@dataclass
class OfferState:
    """GPUs of one offer and who holds them. A claim of ``uuids`` by ``key`` succeeds
    only when the offer has ``len(uuids)`` available GPUs, each of them is free and the
    key holds nothing yet; release gives exactly the key's GPUs back (idempotent)."""

    gpu_owner: dict[str, str]
    available: int
    claims: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def fresh(cls, uuids: Iterable[str]) -> OfferState:
        owner = dict.fromkeys(uuids, "")
        return cls(owner, len(owner))

    def can_claim(self, key: str, uuids: list[str]) -> bool:
        return (
            bool(uuids)
            and len(set(uuids)) == len(uuids)
            and key not in self.claims
            and self.available >= len(uuids)
            and all(self.gpu_owner.get(u, None) == "" for u in uuids)
        )

    def claim(self, key: str, uuids: list[str]) -> bool:
        if not self.can_claim(key, uuids):
            return False
        self.available -= len(uuids)
        for u in uuids:
            self.gpu_owner[u] = key
        self.claims[key] = list(uuids)
        return True

    def release(self, key: str) -> bool:
        uuids = self.claims.pop(key, None)
        if uuids is None:
            return False
        self.available += len(uuids)
        for u in uuids:
            self.gpu_owner[u] = ""
        return True


def pick_gpus(offer: OfferView, n: int) -> list[str]:
    """The first ``n`` free GPUs in device order, or [] when there are not enough."""
    free = offer.free_uuids()
    return free[:n] if len(free) >= n else []


# --- money, metering, reliability ---------------------------------------------------


def escrow_estimate(gpu_count: int, max_price_per_gpu_hour_minor: int, max_duration_s: int) -> int:
    """gpu_count x max price per GPU-hour x max duration, rounded up in minor units."""
    return -(-(gpu_count * max_price_per_gpu_hour_minor * max_duration_s) // 3600)


def gpu_minutes(gpu_seconds: float) -> int:
    """Billable GPU minutes: started minutes count (rounded up)."""
    if gpu_seconds <= 0:
        return 0
    return math.ceil(round(gpu_seconds, 3) / 60)


def cost_minor(minutes: int, price_per_gpu_hour_minor: int) -> int:
    """Cost of ``minutes`` GPU minutes at an hourly GPU price, rounded half up (the
    rounding billing settles with)."""
    return (minutes * price_per_gpu_hour_minor * 2 + 60) // 120


#: Each loss of the provider (declared dead while holding a job) within the window
#: multiplies its reliability by this factor.
LOSS_FACTOR = 0.8


def reliability(
    uptime: Mapping[str, int],
    registered_minute: int,
    now_minute: int,
    window_min: int,
    losses: Mapping[str, int] | None = None,
) -> float:
    """Share of the minutes in the rolling window (or since registration, when
    younger) during which at least one heartbeat arrived. ``uptime`` is a ring of
    ``window_min`` slots, ``str(minute % window_min) -> minute``; ``losses`` is a ring
    of the same shape of the minutes in which the provider was lost holding a job,
    each of which multiplies the score by ``LOSS_FACTOR``.

    The current minute counts only once a heartbeat arrived in it: a minute that has
    just begun is not downtime yet (otherwise every provider's score would dip at each
    minute boundary until its next heartbeat, and placement would flap)."""
    minutes = {int(m) for m in uptime.values()}
    last = now_minute if now_minute in minutes else now_minute - 1
    span = max(1, min(window_min, last - registered_minute + 1))
    lo = last - span + 1
    seen = sum(1 for m in minutes if lo <= m <= last)
    lost = sum(1 for m in (losses or {}).values() if now_minute - window_min < int(m) <= now_minute)
    return min(1.0, seen / span) * LOSS_FACTOR**lost


def minute_of(ts: datetime) -> int:
    return int(ts.timestamp() // 60)


def ms(ts: datetime) -> int:
    """Epoch milliseconds: how mutable timestamps are stored (the embedded database
    keeps a top-level datetime written by ``$set`` as a string)."""
    return int(ts.timestamp() * 1000)


def from_ms(value: int | float | None) -> datetime | None:
    if value is None or isinstance(value, str):
        return None
    return datetime.fromtimestamp(value / 1000, UTC)


# --- job transitions ---------------------------------------------------------------

_AGENT_NEXT: dict[str, frozenset[str]] = {
    PLACED: frozenset({STARTING, RUNNING, COMPLETED, FAILED}),
    STARTING: frozenset({STARTING, RUNNING, COMPLETED, FAILED}),
    RUNNING: frozenset({RUNNING, COMPLETED, FAILED}),
}


def next_status(current: str, reported: str) -> str:
    """The job status after the primary reports ``reported``; raises
    :class:`InvalidTransition` for a report that does not fit. A late ``starting``
    of a running job (a restarted agent re-reporting) keeps it running."""
    if current == RUNNING and reported == STARTING:
        return RUNNING
    allowed = _AGENT_NEXT.get(current)
    if allowed is None or reported not in allowed:
        raise InvalidTransition(f"a job in status {current!r} cannot become {reported!r}")
    return reported


@dataclass(frozen=True)
class UsageLine:
    provider_id: str
    provider_org_id: str
    role: str
    gpu_minutes: int
    price_minor: int
    gpu_model: str = ""
    gpu_count: int = 0


def usage_lines(usage: Mapping[str, Mapping[str, object]]) -> list[UsageLine]:
    """Usage per provider from the job document's ``usage`` map, in provider order."""
    out = []
    for pid in sorted(usage):
        u = usage[pid]
        out.append(
            UsageLine(
                pid,
                str(u.get("provider_org_id", "")),
                str(u.get("role", PRIMARY)),
                gpu_minutes(float(u.get("gpu_seconds", 0) or 0)),  # type: ignore[arg-type]
                int(u.get("price_minor", 0) or 0),  # type: ignore[call-overload]
                str(u.get("gpu_model", "") or ""),
                int(u.get("gpu_count", 0) or 0),  # type: ignore[call-overload]
            )
        )
    return out


def total_cost(lines: Iterable[UsageLine], cap_minor: int | None = None) -> int:
    total = sum(cost_minor(u.gpu_minutes, u.price_minor) for u in lines)
    return min(total, cap_minor) if cap_minor is not None and cap_minor > 0 else total


def at_risk(job: Mapping[str, object], now_ms: int) -> str | None:
    """Why a running job would lose work if its primary died now: ``no_standby``, or
    ``stale_checkpoint`` (none, or older than two checkpoint intervals); None when a
    warm standby and a fresh checkpoint cover it. Only running jobs are judged."""
    if job.get("status") != RUNNING:
        return None
    if not job.get("standby"):
        return "no_standby"
    spec = job.get("spec") or {}
    interval = int(spec.get("checkpoint_interval_s", 0) or 0) if isinstance(spec, Mapping) else 0
    if interval <= 0:
        return None
    ck = job.get("latest_checkpoint")
    since = (
        int(ck.get("at_ms", 0) or 0)
        if isinstance(ck, Mapping)
        else int(job.get("run_started_ms", 0) or 0)  # type: ignore[call-overload]
    )
    return "stale_checkpoint" if now_ms - since > 2 * interval * 1000 else None
