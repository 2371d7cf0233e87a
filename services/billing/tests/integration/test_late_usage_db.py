"""Usage accepted at the very end of the grace window, after its period's invoice was
finalized, is billed on the next invoice as a described line: never lost, never
billed twice (each event is tagged by the one invoice that bills it)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from qlp_billing.metering import ACCEPTED, usage_doc
from qlp_billing.service import Billing
from qlp_kit.money import Money

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def _calls(clocked: Billing, org: str, eid: str, n: int, at: datetime, now: datetime) -> Any:
    return usage_doc(
        source="qlp/tests",
        event_id=eid,
        org_id=org,
        meter="api_calls",
        quantity=n,
        occurred_at=at,
        subject_id="",
        attributes={},
        now=now,
        grace=clocked.grace,
    )


def _amounts(inv: dict[str, Any]) -> list[tuple[str, int]]:
    return [(x["kind"], x["amount"]["amount"]) for x in inv["lines"]]


async def test_usage_accepted_at_the_end_of_grace_is_billed_next_time_once(
    clocked: Billing, clock: Any, unique: str
) -> None:
    org = f"org_lu{unique}"
    clock.now = datetime(2026, 3, 1, tzinfo=UTC)
    await clocked.open_subscription(org, plan_id="starter")  # 100,000 calls included
    await clocked.top_up(org, Money(100_000), f"pay_{unique}")
    march = datetime(2026, 3, 20, tzinfo=UTC)
    await clocked.store.insert_usage([_calls(clocked, org, "e1", 150_000, march, march)])

    end_of_grace = datetime(2026, 4, 4, tzinfo=UTC)  # March 31 24:00 + 3 days
    clock.now = end_of_grace
    await clocked.roll_due()
    await clocked.run_invoicing()  # drafts March ... and finalizes it at this instant
    inv = await clocked.store.invoice_for(org, "2026-03")
    assert inv["status"] == "paid"
    assert _amounts(inv) == [("subscription", 9_900), ("usage", 5_000)]
    # an event the metering consumer accepted at the same instant lands afterwards
    late = _calls(clocked, org, "e2", 20_000, datetime(2026, 3, 31, 23, 59, tzinfo=UTC), clock.now)
    assert late["status"] == ACCEPTED and late["period"] == "2026-03"
    await clocked.store.insert_usage([late])
    assert await clocked.run_invoicing() == {"drafted": 0, "finalized": 0, "booked": 0, "paid": 0}
    again = await clocked.store.invoice_for(org, "2026-03")
    assert again["lines"] == inv["lines"]  # an issued invoice does not change

    clock.now = datetime(2026, 4, 10, tzinfo=UTC)
    upcoming = await clocked.upcoming_invoice(org)
    late_lines = [x for x in upcoming["lines"] if x["description"].startswith("Late usage")]
    assert [(x["quantity"], x["amount"]["amount"]) for x in late_lines] == [(20_000, 2_000)]
    assert "2026-03" in late_lines[0]["description"]

    clock.now = datetime(2026, 5, 4, 0, 0, 1, tzinfo=UTC)
    await clocked.roll_due()
    await clocked.run_invoicing()
    april = await clocked.store.invoice_for(org, "2026-04")
    assert april["status"] == "paid"
    # 170,000 - 100,000 included = $70 for March, $50 of it billed already: $20 more
    assert _amounts(april) == [("subscription", 9_900), ("usage", 2_000)]
    assert "Late usage for 2026-03" in april["lines"][1]["description"]

    clock.now = datetime(2026, 6, 4, 0, 0, 1, tzinfo=UTC)
    await clocked.roll_due()
    await clocked.run_invoicing()
    may = await clocked.store.invoice_for(org, "2026-05")
    assert _amounts(may) == [("subscription", 9_900)]  # not billed a second time
    bal = await clocked.balance(org)
    assert bal["balance"]["amount"] == 100_000 - (9_900 + 5_000) - (9_900 + 2_000) - 9_900
    assert (await clocked.ledger_check()).ok


async def test_a_period_with_only_late_usage_is_billed_in_full_later(
    clocked: Billing, clock: Any, unique: str
) -> None:
    org = f"org_lo{unique}"
    clock.now = datetime(2026, 3, 1, tzinfo=UTC)
    await clocked.open_subscription(org, plan_id="free")  # 1,000 calls included
    clock.now = datetime(2026, 4, 4, tzinfo=UTC)
    await clocked.roll_due()
    await clocked.run_invoicing()
    assert (await clocked.store.invoice_for(org, "2026-03"))["status"] == "paid"  # $0
    at = datetime(2026, 3, 31, 12, tzinfo=UTC)
    await clocked.store.insert_usage([_calls(clocked, org, "x1", 3_000, at, clock.now)])
    clock.now = datetime(2026, 5, 4, 0, 0, 1, tzinfo=UTC)
    await clocked.roll_due()
    await clocked.run_invoicing()
    april = await clocked.store.invoice_for(org, "2026-04")
    assert _amounts(april) == [("subscription", 0), ("usage", 200)]  # 2,000 x $0.001
