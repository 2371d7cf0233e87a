"""Quota counters in the real database keep ``available == cap(limit) - used -
reserved`` through Enterprise custom limits and plan changes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from qlp_billing import quotas as Q
from qlp_billing.plans import GENERATIONS
from qlp_billing.service import Billing, Conflict

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def _quotas(mongo_db: Any, org: str) -> dict[str, Any]:
    sub = await mongo_db["subscriptions"].find_one({"_id": org})
    return dict(sub["quotas"])


async def test_custom_unlimited_then_plan_change_enforces_the_new_cap(
    clocked: Billing, clock: Any, mongo_db: Any, unique: str
) -> None:
    org = f"org_cq{unique}"
    await clocked.open_subscription(org, plan_id="enterprise")
    assert (await clocked.reserve(org, "r1", "generations.t1", 7)).ok
    await clocked.set_custom_limits(org, {GENERATIONS: 50_000, "projects": 40})
    q = await _quotas(mongo_db, org)
    assert (q[GENERATIONS]["limit"], q[GENERATIONS]["available"]) == (50_000, 50_000 - 7)
    assert q["projects"]["available"] == 40  # every meter moves, not only generations
    await clocked.set_custom_limits(org, {GENERATIONS: -1})
    assert Q.violations(await _quotas(mongo_db, org)) == {}
    await clocked.change_plan(org, "professional")  # a downgrade: at the period end
    clock.now = datetime(2026, 4, 1, 0, 0, 1, tzinfo=UTC)
    sub = await clocked.subscription(org)
    assert sub["plan_id"] == "professional"
    q = sub["quotas"]
    assert q[GENERATIONS]["limit"] == 1_000
    assert q[GENERATIONS]["available"] == 1_000 - 7  # r1 is still open
    assert Q.violations(q) == {}
    # enforcement follows the new cap: 993 more fit, one more does not
    assert (await clocked.reserve(org, "r2", "generations.t1", 993)).ok
    assert not (await clocked.reserve(org, "r3", "generations.t1", 1)).ok
    assert Q.violations(await _quotas(mongo_db, org)) == {}


async def test_custom_limits_then_period_end_downgrade_keep_the_invariant(
    clocked: Billing, clock: Any, unique: str
) -> None:
    org = f"org_cu{unique}"
    await clocked.open_subscription(org, plan_id="enterprise")
    await clocked.set_custom_limits(org, {GENERATIONS: 200, "storage_gb": 5})
    assert (await clocked.reserve(org, "a", "generations.t0", 3)).ok
    assert await clocked.commit_reservation(org, "a")
    await clocked.change_plan(org, "starter")
    clock.now = datetime(2026, 4, 1, 0, 0, 1, tzinfo=UTC)
    sub = await clocked.subscription(org)
    assert sub["plan_id"] == "starter"
    q = sub["quotas"]
    assert (q[GENERATIONS]["limit"], q[GENERATIONS]["used"]) == (100, 0)
    assert q[GENERATIONS]["available"] == 100
    assert q["storage_gb"]["available"] == 10
    assert Q.violations(q) == {}


async def test_limit_changes_racing_reservations_keep_the_invariant(
    billing: Billing, mongo_db: Any, unique: str
) -> None:
    org = f"org_cr{unique}"
    await billing.open_subscription(org, plan_id="enterprise")

    async def change(limit: int) -> None:
        for _ in range(5):  # a version conflict after the internal retries: try again
            try:
                await billing.set_custom_limits(org, {GENERATIONS: limit})
                return
            except Conflict:
                await asyncio.sleep(0.05)

    await asyncio.gather(
        *(billing.reserve(org, f"r{i}", "generations.t0", 3) for i in range(60)),
        *(change(x) for x in (-1, 300, 5_000, 40, -1, 1_000)),
    )
    sub = await mongo_db["subscriptions"].find_one({"_id": org})
    q = sub["quotas"]
    assert Q.violations(q) == {}, q
    assert q[GENERATIONS]["reserved"] == 3 * len(sub["res"])
