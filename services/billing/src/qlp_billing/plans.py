"""Plans and prices as data (integer minor units, USD).

A plan's quotas cap what can be reserved per period (hard caps: reservations never
overshoot); ``included`` is what the subscription fee covers, usage above it is
priced with :data:`USAGE_PRICES`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from qlp_kit.money import Money

UNLIMITED = -1
#: What "available" starts at for an unlimited quota (never reached in practice).
UNLIMITED_AVAILABLE = 10**15

GENERATIONS = "generations"
PROJECTS = "projects"
STORAGE_GB = "storage_gb"
API_CALLS = "api_calls"
STORAGE_GB_HOURS = "storage_gb_hours"
COMPUTE_MINUTES = "compute_minutes"
GPU_MINUTES = "gpu_minutes"
TIERS = ("t0", "t1", "t2", "t3")
HOURS_PER_MONTH = 730


@dataclass(frozen=True)
class UnitPrice:
    """``amount`` minor units per ``per`` units of a meter (exact rational price)."""

    amount: int
    per: int = 1

    def cost(self, quantity: int, multiplier: int = 1) -> int:
        """Cost in minor units, rounded half up."""
        num = quantity * self.amount * multiplier
        return (2 * num + self.per) // (2 * self.per)


#: Usage prices: generation by tier, API calls, storage per GB-month, compute minutes.
USAGE_PRICES: dict[str, UnitPrice] = {
    "generations.t0": UnitPrice(10),
    "generations.t1": UnitPrice(25),
    "generations.t2": UnitPrice(50),
    "generations.t3": UnitPrice(100),
    API_CALLS: UnitPrice(1, 10),  # $0.001 per call
    STORAGE_GB_HOURS: UnitPrice(10, HOURS_PER_MONTH),  # $0.10 per GB-month
    COMPUTE_MINUTES: UnitPrice(5),  # $0.05 per minute
}
PREMIUM_MULTIPLIER = 2


@dataclass(frozen=True)
class Quota:
    meter: str
    limit: int  # UNLIMITED (-1) for no cap
    overage_allowed: bool = False

    @property
    def unlimited(self) -> bool:
        return self.limit == UNLIMITED


@dataclass(frozen=True)
class Plan:
    id: str
    name: str
    price: Money
    quotas: tuple[Quota, ...]
    #: API calls included per period (priced beyond).
    api_calls_included: int
    rank: int
    custom: bool = False
    features: tuple[str, ...] = field(default=())

    def quota(self, meter: str) -> Quota | None:
        return next((q for q in self.quotas if q.meter == meter), None)

    @property
    def generations_included(self) -> int:
        q = self.quota(GENERATIONS)
        return 0 if q is None else max(q.limit, 0)

    @property
    def storage_gb_included(self) -> int:
        q = self.quota(STORAGE_GB)
        return 0 if q is None else max(q.limit, 0)


PLANS: dict[str, Plan] = {
    "free": Plan(
        "free",
        "Free",
        Money(0),
        (Quota(GENERATIONS, 10), Quota(PROJECTS, 1), Quota(STORAGE_GB, 1)),
        api_calls_included=1_000,
        rank=0,
    ),
    "starter": Plan(
        "starter",
        "Starter",
        Money(9_900),
        (Quota(GENERATIONS, 100), Quota(PROJECTS, 5), Quota(STORAGE_GB, 10)),
        api_calls_included=100_000,
        rank=1,
    ),
    "professional": Plan(
        "professional",
        "Professional",
        Money(49_900),
        (Quota(GENERATIONS, 1_000), Quota(PROJECTS, UNLIMITED), Quota(STORAGE_GB, 100)),
        api_calls_included=1_000_000,
        rank=2,
    ),
    "enterprise": Plan(
        "enterprise",
        "Enterprise",
        Money(249_900),
        (Quota(GENERATIONS, 10_000), Quota(PROJECTS, UNLIMITED), Quota(STORAGE_GB, 1_000)),
        api_calls_included=10_000_000,
        rank=3,
        custom=True,
    ),
}
FREE = "free"
TRIAL_DAYS = 14


class UnknownPlan(LookupError):
    def __init__(self, plan_id: str) -> None:
        super().__init__(f"there is no plan {plan_id!r}; the plans are {', '.join(PLANS)}")
        self.plan_id = plan_id


def normalize_plan_id(plan_id: str) -> str:
    """Plan ids are case-insensitive: ``"Starter "`` is ``"starter"``."""
    return plan_id.strip().lower()


def get_plan(plan_id: str) -> Plan:
    try:
        return PLANS[normalize_plan_id(plan_id)]
    except KeyError:
        raise UnknownPlan(plan_id) from None


def quota_meter(meter: str) -> str:
    """The quota a usage meter counts against ("generations.t2" → "generations")."""
    return GENERATIONS if meter == GENERATIONS or meter.startswith(GENERATIONS + ".") else meter
