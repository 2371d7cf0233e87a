"""Invoice lines, pure: subscription, proration, usage by meter, marketplace and GPU
compute. Usage above what the plan includes is priced with the plan data."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from qlp_billing.metering import MeterAggregate
from qlp_billing.plans import (
    API_CALLS,
    COMPUTE_MINUTES,
    HOURS_PER_MONTH,
    PREMIUM_MULTIPLIER,
    STORAGE_GB_HOURS,
    TIERS,
    TRIAL_DAYS,
    USAGE_PRICES,
    Plan,
    UnitPrice,
)
from qlp_kit.money import Money

SUBSCRIPTION = "subscription"
PRORATION = "proration"
USAGE = "usage"
MARKETPLACE = "marketplace"
GPU_COMPUTE = "gpu_compute"
CREDIT = "credit"


@dataclass(frozen=True)
class Line:
    kind: str
    description: str
    amount: int
    quantity: int = 1
    meter: str = ""
    #: Already paid from the prepaid balance when it happened (informational).
    prepaid: bool = False

    def to_dict(self, currency: str = "USD") -> dict[str, Any]:
        return {
            "kind": self.kind,
            "description": self.description,
            "meter": self.meter,
            "quantity": self.quantity,
            "amount": {"amount": self.amount, "currency": currency},
            "prepaid": self.prepaid,
        }


def _n(count: int, unit: str) -> str:
    """``1,200 calls``, ``1 minute``."""
    return f"{count:,} {unit}" + ("" if count == 1 else "s")


def _price(price: UnitPrice, units: int = 1) -> str:
    """A unit price in words: ``0.001 USD``, ``0.10 USD`` (``units`` of the meter)."""
    num, den = price.amount * units, price.per
    whole, frac = divmod(num * 1000 // (den * 100), 1000)  # minor units: cents
    text = f"{whole}.{frac:03d}".rstrip("0")
    if len(text.split(".")[1]) < 2:
        text = f"{whole}.{frac // 10:02d}"
    return f"{text} USD"


def prorate(amount: int, remaining_s: int, period_s: int) -> int:
    """``amount`` * remaining/period, rounded half away from zero."""
    if period_s <= 0:
        return 0
    sign = -1 if amount < 0 else 1
    return sign * ((2 * abs(amount) * max(remaining_s, 0) + period_s) // (2 * period_s))


@dataclass(frozen=True)
class Charge:
    """A plan-change line recorded on the subscription for its period's invoice."""

    description: str
    amount: int
    kind: str = PRORATION


def _when(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def period_fraction(at: datetime, start: datetime, end: datetime) -> tuple[int, int]:
    """(seconds left after ``at``, seconds of the whole period), to the second."""
    period_s = int((end - start).total_seconds())
    remaining_s = min(max(int((end - at).total_seconds()), 0), period_s)
    return remaining_s, period_s


def change_charges(
    *,
    old_name: str,
    old_price: int,
    new_name: str,
    new_price: int,
    at: datetime,
    period_start: datetime,
    period_end: datetime,
) -> list[Charge]:
    """Stripe's proration of a mid-period price change: a credit for the unused time
    of the old price and a charge for the remaining time of the new one, each the
    price times (time left / the full billing period), each rounded on its own line.
    ``old_price`` is what was paid for the rest of the period (0 on Free or in a
    trial); lines of zero are left out."""
    remaining_s, period_s = period_fraction(at, period_start, period_end)
    when = _when(at)
    out = []
    credit = prorate(old_price, remaining_s, period_s)
    if credit:
        out.append(Charge(f"Unused time on {old_name} after {when}", -credit))
    charge = prorate(new_price, remaining_s, period_s)
    if charge:
        out.append(Charge(f"Remaining time on {new_name} after {when}", charge))
    return out


def generation_lines(plan: Plan, aggs: Mapping[str, MeterAggregate]) -> list[Line]:
    """Generations by tier; the plan's included generations waive the most expensive
    tiers first; premium-model generations cost twice."""
    included = plan.generations_included
    lines = []
    for tier in reversed(TIERS):
        meter = f"generations.{tier}"
        agg = aggs.get(meter)
        if agg is None or agg.sum <= 0:
            continue
        # premium units first (they cost more), then standard ones
        premium = min(agg.premium_sum, agg.sum)
        standard = agg.sum - premium
        waived_p = min(premium, included)
        included -= waived_p
        waived_s = min(standard, included)
        included -= waived_s
        price = USAGE_PRICES[meter]
        amount = price.cost(premium - waived_p, PREMIUM_MULTIPLIER) + price.cost(
            standard - waived_s
        )
        billed = (premium - waived_p) + (standard - waived_s)
        lines.append(
            Line(
                USAGE,
                f"Generations {tier.upper()}: {_n(agg.sum, 'generation')}, "
                f"{agg.sum - billed:,} included in the {plan.name} plan, {billed:,} billed "
                f"at {_price(price)} each" + (" (premium models cost twice)" if premium else ""),
                amount,
                agg.sum,
                meter,
            )
        )
    return lines


def usage_lines(plan: Plan, aggs: Mapping[str, MeterAggregate]) -> list[Line]:
    lines = generation_lines(plan, aggs)
    if (a := aggs.get(API_CALLS)) and a.sum > 0:
        billable = max(a.sum - plan.api_calls_included, 0)
        lines.append(
            Line(
                USAGE,
                f"API calls: {_n(a.sum, 'call')}, {a.sum - billable:,} included in the "
                f"{plan.name} plan, {billable:,} billed at {_price(USAGE_PRICES[API_CALLS])} each",
                USAGE_PRICES[API_CALLS].cost(billable),
                a.sum,
                API_CALLS,
            )
        )
    if (a := aggs.get(STORAGE_GB_HOURS)) and a.sum > 0:
        billable = max(a.sum - plan.storage_gb_included * HOURS_PER_MONTH, 0)
        lines.append(
            Line(
                USAGE,
                f"Storage: {a.sum:,} GB-hours, {a.sum - billable:,} included in the "
                f"{plan.name} plan, {billable:,} billed at "
                f"{_price(USAGE_PRICES[STORAGE_GB_HOURS], HOURS_PER_MONTH)} per GB-month",
                USAGE_PRICES[STORAGE_GB_HOURS].cost(billable),
                a.sum,
                STORAGE_GB_HOURS,
            )
        )
    if (a := aggs.get(COMPUTE_MINUTES)) and a.sum > 0:
        premium = min(a.premium_sum, a.sum)
        price = USAGE_PRICES[COMPUTE_MINUTES]
        lines.append(
            Line(
                USAGE,
                f"Compute: {_n(a.sum, 'minute')} at {_price(price)} per minute",
                price.cost(premium, PREMIUM_MULTIPLIER) + price.cost(a.sum - premium),
                a.sum,
                COMPUTE_MINUTES,
            )
        )
    return lines


def late_usage_lines(
    period: str,
    plan: Plan,
    billed_before: Mapping[str, MeterAggregate],
    billed_now: Mapping[str, MeterAggregate],
) -> list[Line]:
    """Usage of an earlier ``period`` that arrived after its invoice was finalized,
    billed on a later invoice: per meter, the price of everything billed for that
    period (``billed_now``: its earlier invoices' usage plus what this one picks up)
    minus what its earlier invoices already charged (``billed_before``), so included
    allowances apply once and nothing is charged twice."""
    before = {x.meter: x for x in usage_lines(plan, billed_before)}
    out = []
    for x in usage_lines(plan, billed_now):
        prev = before.get(x.meter)
        qty = x.quantity - (prev.quantity if prev else 0)
        amount = x.amount - (prev.amount if prev else 0)
        if qty <= 0 and amount == 0:
            continue
        label = x.description.split(":", 1)[0]
        out.append(
            Line(
                USAGE,
                f"Late usage for {period}: {label} (+{qty}, reported after that invoice)",
                amount,
                qty,
                x.meter,
            )
        )
    return out


def invoice_lines(
    *,
    plan_at_start: Plan,
    trial: bool,
    plan_for_usage: Plan,
    charges: Iterable[Mapping[str, Any]],
    aggs: Mapping[str, MeterAggregate],
    ledger_txns: Iterable[Mapping[str, Any]],
    late: Iterable[Line] = (),
) -> list[Line]:
    lines = [
        Line(
            SUBSCRIPTION,
            f"{plan_at_start.name} plan, monthly subscription"
            + (f" ({TRIAL_DAYS}-day free trial)" if trial else ""),
            0 if trial else plan_at_start.price.amount,
        )
    ]
    for c in charges:
        lines.append(Line(str(c.get("kind", PRORATION)), str(c["description"]), int(c["amount"])))
    lines += usage_lines(plan_for_usage, aggs)
    lines += list(late)
    for t in ledger_txns:
        if t.get("kind") == "sale":
            amount = sum(-int(x["amount"]) for x in t["legs"] if int(x["amount"]) < 0)
            ref = (t.get("refs") or {}).get("purchase_id", "")
            lines.append(
                Line(MARKETPLACE, f"Marketplace purchase {ref}".strip(), amount, prepaid=True)
            )
        elif t.get("kind") == "escrow_settle":
            refs = t.get("refs") or {}
            refund = sum(
                -int(x["amount"])
                for x in t["legs"]
                if str(x["account"]).startswith("customer_balance:")
            )
            held = sum(int(x["amount"]) for x in t["legs"] if int(x["amount"]) > 0)
            cost = held - refund
            if cost <= 0:
                continue  # a job that failed or was canceled before costing anything
            lines.append(Line(GPU_COMPUTE, gpu_job_description(refs), cost, prepaid=True))
    return lines


def gpu_job_description(refs: Mapping[str, Any]) -> str:
    """``GPU job job_1 (2 x A100): 90 GPU-minutes at 1.20 USD per GPU-hour``, from what
    the settlement recorded (older settlements name the job only)."""
    text = f"GPU job {refs.get('job_id', '')}".strip()
    model = str(refs.get("gpu_model") or "")
    if model:
        count = str(refs.get("gpu_count") or "")
        text += f" ({count} x {model})" if count else f" ({model})"
    minutes = str(refs.get("gpu_minutes") or "")
    if minutes.isdigit():
        text += f": {_n(int(minutes), 'GPU-minute')}"
        rate = str(refs.get("price_per_gpu_hour") or "")
        if rate.isdigit():
            text += f" at {Money(int(rate)).format()} per GPU-hour"
    return text


def totals(lines: Iterable[Line]) -> tuple[int, int]:
    """(total of all lines, amount due = total minus what was prepaid)."""
    ls = list(lines)
    total = sum(x.amount for x in ls)
    prepaid = sum(x.amount for x in ls if x.prepaid)
    return total, total - prepaid
