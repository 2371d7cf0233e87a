"""Platform admin reports (cross-tenant, read-only)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from qlp_billing import metering as M
from qlp_billing.base import BillingBase
from qlp_billing.plans import FREE, PLANS, TIERS, get_plan
from qlp_billing.timeutil import dt

Doc = dict[str, Any]


class Reports(BillingBase):
    """Admin metrics."""

    async def admin_metrics(self, period: str | None = None) -> Doc:
        now = self.clock()
        subs = await self.store.all_subscriptions()
        mrr = 0
        by_plan: dict[str, int] = dict.fromkeys(PLANS, 0)
        paid = 0
        churned = 0
        for s in subs:
            by_plan[s["plan_id"]] = by_plan.get(s["plan_id"], 0) + 1
            plan = get_plan(s["plan_id"])
            if s.get("status") == "active" and plan.price.amount > 0:
                mrr += plan.price.amount
                paid += 1
                if s.get("cancel_at_period_end") or (
                    s.get("canceled_at") and dt(s["canceled_at"]) >= now - timedelta(days=30)
                ):
                    churned += 1
        key = period or M.period_key(now)
        usage = await self.store.usage_by_meter_all(key)
        plan_of = {str(s["org_id"]): str(s["plan_id"]) for s in subs}
        gen_by_plan: dict[str, int] = dict.fromkeys(PLANS, 0)
        per_org = await self.store.usage_by_org(key, [f"generations.{t}" for t in TIERS])
        for org, n in per_org.items():
            plan_id = plan_of.get(org, FREE)
            gen_by_plan[plan_id] = gen_by_plan.get(plan_id, 0) + n
        return {
            "mrr": {"amount": mrr, "currency": "USD"},
            "subscriptions_by_plan": by_plan,
            "paid_subscriptions": paid,
            "churn_30d": {
                "canceling": churned,
                "rate_bps": (churned * 10_000 // paid) if paid else 0,
            },
            "usage_period": key,
            "generations_by_plan": gen_by_plan,
            "usage_by_meter": {
                str(r["_id"]): {"sum": int(r.get("sum") or 0), "count": int(r.get("count") or 0)}
                for r in usage
            },
        }
