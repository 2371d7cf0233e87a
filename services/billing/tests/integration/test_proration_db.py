"""Plan changes in the real database are prorated over the full billing period; a
trial started from a paid plan credits the paid plan's unused time."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from qlp_billing.service import Billing
from qlp_billing.timeutil import dt
from qlp_kit.money import Money

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _charges(sub: dict[str, Any]) -> list[int]:
    cs = sorted(sub["charges"].values(), key=lambda c: (dt(c["at"]), c.get("seq", 0)))
    return [int(c["amount"]) for c in cs]


async def test_upgrade_hours_after_opening_is_prorated_over_the_month(
    clocked: Billing, clock: Any, unique: str
) -> None:
    org = f"org_pr{unique}"
    clock.now = datetime(2026, 3, 31, 9, 0, tzinfo=UTC)
    await clocked.open_subscription(org)
    clock.now = datetime(2026, 3, 31, 10, 0, tzinfo=UTC)  # 14 hours before the month ends
    sub = await clocked.change_plan(org, "starter")
    assert _charges(sub) == [186]  # 9,900 x 14 h / 744 h, not 14/15 of a month
    assert dt(sub["period_start"]) == clock.now  # free -> paid: the paid period starts now
    # starter -> professional a little later: credit and charge, each rounded
    clock.now = datetime(2026, 3, 31, 17, 0, tzinfo=UTC)  # 7 hours left
    sub = await clocked.change_plan(org, "professional")
    assert _charges(sub) == [186, -93, 469]  # 9,900 and 49,900 x 7/744
    upcoming = await clocked.upcoming_invoice(org)
    assert [x["amount"]["amount"] for x in upcoming["lines"]] == [0, 186, -93, 469]
    assert upcoming["total"]["amount"] == 562


async def test_trial_from_a_paid_plan_credits_it_and_bills_the_new_plan_after(
    clocked: Billing, clock: Any, unique: str
) -> None:
    org = f"org_pt{unique}"
    clock.now = datetime(2026, 3, 1, tzinfo=UTC)
    await clocked.open_subscription(org, plan_id="starter")
    await clocked.top_up(org, Money(100_000), f"pay_{unique}")
    clock.now = datetime(2026, 3, 10, tzinfo=UTC)
    sub = await clocked.change_plan(org, "professional", trial=True)
    assert sub["status"] == "trialing"
    assert _charges(sub) == [-7_026]  # 22 of 31 days of Starter unused
    clock.now = datetime(2026, 3, 24, 0, 0, 1, tzinfo=UTC)  # the trial ended at 00:00
    sub = await clocked.subscription(org)
    assert sub["status"] == "active"
    assert _charges(sub) == [-7_026, 12_877]  # 8 of 31 days of Professional
    clock.now = datetime(2026, 4, 2, tzinfo=UTC)
    await clocked.roll_due()
    await clocked.run_invoicing()
    clock.now = datetime(2026, 4, 4, 0, 0, 1, tzinfo=UTC)
    await clocked.run_invoicing()
    inv = await clocked.store.invoice_for(org, "2026-03")
    assert inv["status"] == "paid"
    assert [x["amount"]["amount"] for x in inv["lines"]] == [9_900, -7_026, 12_877]
    assert inv["amount_due"]["amount"] == 15_751  # not 9,900 + 12,877
    assert (await clocked.balance(org))["balance"]["amount"] == 100_000 - 15_751
    assert (await clocked.ledger_check()).ok
