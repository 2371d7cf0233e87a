"""Subscriptions: the plan lifecycle (open, upgrade with proration, trial, downgrade
and cancel at the period end, Enterprise custom limits) and the period roll."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import structlog

from qlp_billing import ledger as L
from qlp_billing import metering as M
from qlp_billing import pricing
from qlp_billing.base import (
    BillingBase,
    BillingError,
    Conflict,
    PaymentRequired,
    ProviderUnavailable,
    actor_of,
    month_period,
)
from qlp_billing.events import SYSTEM, bev, bt, money, out, quota_limits, ts
from qlp_billing.payments import provider_for
from qlp_billing.plans import FREE, GENERATIONS, TRIAL_DAYS, Plan, get_plan
from qlp_billing.quotas import BadLimit, custom_limit_change, quota_change, quota_docs
from qlp_billing.timeutil import dt, ms
from qlp_kit.ids import new_id
from qlp_kit.money import Money

log = structlog.get_logger("qlp.billing")

Doc = dict[str, Any]


def money_dict(amount: int) -> Doc:
    return {"amount": amount, "currency": "USD"}


class Subscriptions(BillingBase):
    """Plan changes and the period roll on the subscription document."""

    def _new_subscription(self, org_id: str, plan: Plan, now: datetime) -> Doc:
        key, _start, end = month_period(now)
        return {
            "_id": org_id,
            "org_id": org_id,
            "subscription_id": new_id("sub"),
            "plan_id": plan.id,
            "status": "active",
            "interval": "monthly",
            "period_start": ms(now),
            "period_end": ms(end),
            "period": key,
            "trial_end": None,
            "trial_used": 0,
            "cancel_at_period_end": 0,
            "scheduled_plan_id": None,
            "canceled_at": None,
            "version": 1,
            "quotas": quota_docs(plan),
            "res": {},
            "charges": {},
            "periods": {key: {"plan_id": plan.id, "trial": 0, "start": now, "end": end}},
            "created_at": ms(now),
        }

    async def open_subscription(
        self, org_id: str, now: datetime | None = None, plan_id: str = FREE
    ) -> Doc:
        """Open the org's subscription (Free) once; a repeat returns the existing one."""
        now = now or self.clock()
        plan = get_plan(plan_id)
        doc = self._new_subscription(org_id, plan, now)
        ev = bev.SubscriptionActivated(
            org_id=org_id,
            subscription_id=doc["subscription_id"],
            plan_id=plan.id,
            interval=bt.BILLING_INTERVAL_MONTHLY,
            price=money(plan.price),
            quotas=quota_limits(plan),
            current_period_start=ts(now),
            current_period_end=ts(dt(doc["period_end"])),
            activated_at=ts(now),
            actor=SYSTEM,
        )
        await self.store.ensure_wallet(org_id)
        if await self.store.insert_subscription(doc, [out(ev, org_id, doc["subscription_id"])]):
            log.info("subscription opened", org_id=org_id, plan=plan.id)
            return doc
        existing = await self.store.get_subscription(org_id)
        assert existing is not None
        return existing

    async def subscription(self, org_id: str) -> Doc:
        sub = await self.store.get_subscription(org_id, light=True)
        if sub is None:
            sub = await self.open_subscription(org_id)
        now = self.clock()
        if dt(sub["period_end"]) <= now or (
            sub.get("status") == "trialing" and dt(sub["trial_end"]) <= now
        ):
            sub = await self.roll(sub, now) or sub
        return sub

    async def change_plan(
        self,
        org_id: str,
        plan_id: str,
        *,
        trial: bool = False,
        actor_kind: str = "user",
        actor_id: str = "",
        require_payment: bool = False,
    ) -> Doc:
        """Change the org's plan: upgrades now (prorated), downgrades at the period end,
        ``trial`` starts a 14-day trial. ``require_payment``: an upgrade whose amount
        due now neither the prepaid balance nor a payment method on file can pay is
        refused (:class:`PaymentRequired`) before anything changes."""
        new = get_plan(plan_id)
        for _ in range(10):
            now = self.clock()
            sub = await self.subscription(org_id)
            cur = get_plan(sub["plan_id"])
            trialing = sub.get("status") == "trialing"
            who = ts(now)
            # proration is a fraction of the whole billing period, not of the time
            # since the subscription opened
            p_start, p_end = M.period_bounds(sub["period"])
            charges: list[pricing.Charge] = []
            if trial:
                if sub.get("trial_used") or trialing:
                    raise Conflict("the org has already used its trial")
                if new.id == FREE:
                    raise BillingError("a trial is for a paid plan")
                sets, incs = quota_change(cur, new, sub["quotas"])
                trial_end = now + timedelta(days=TRIAL_DAYS)
                sets[f"periods.{sub['period']}.usage_plan_id"] = new.id
                # the trial is free: the unused time of a paid plan is credited; the
                # new plan is charged from the trial's end (see roll)
                charges = pricing.change_charges(
                    old_name=cur.name,
                    old_price=cur.price.amount,
                    new_name=new.name,
                    new_price=0,
                    at=now,
                    period_start=p_start,
                    period_end=p_end,
                )
                sets.update(
                    {
                        "plan_id": new.id,
                        "status": "trialing",
                        "trial_end": ms(trial_end),
                        "trial_used": 1,
                        "trial_from_plan_id": cur.id,
                        "scheduled_plan_id": None,
                        "cancel_at_period_end": 0,
                    }
                )
            elif new.id == cur.id and not trialing:
                if sub.get("scheduled_plan_id") or sub.get("cancel_at_period_end"):
                    res = await self.store.update_subscription(
                        org_id,
                        {"version": sub["version"]},
                        {
                            "$set": {"scheduled_plan_id": None, "cancel_at_period_end": 0},
                            "$inc": {"version": 1},
                        },
                    )
                    if res is None:
                        continue
                    return res
                return sub
            elif new.rank > cur.rank or trialing:
                # upgrade (or a trial turned paid): now, prorated over the full period
                # (the trial's time is free: nothing of it is credited)
                old_price = 0 if trialing else cur.price.amount
                charges = pricing.change_charges(
                    old_name=cur.name,
                    old_price=old_price,
                    new_name=new.name,
                    new_price=new.price.amount,
                    at=now,
                    period_start=p_start,
                    period_end=p_end,
                )
                sets, incs = quota_change(cur, new, sub["quotas"])
                sets[f"periods.{sub['period']}.usage_plan_id"] = new.id
                sets.update(
                    {
                        "plan_id": new.id,
                        "status": "active",
                        "trial_end": None,
                        "scheduled_plan_id": None,
                        "cancel_at_period_end": 0,
                    }
                )
                if old_price == 0 and new.price.amount > 0 and not trialing:
                    # free -> paid: the paid period starts now (its first, partial
                    # period is the remaining-time line; the next ones are full)
                    sets["period_start"] = ms(now)
            else:
                # downgrade: at the end of the period
                res = await self.store.update_subscription(
                    org_id,
                    {"version": sub["version"]},
                    {
                        "$set": {"scheduled_plan_id": new.id, "cancel_at_period_end": 0},
                        "$inc": {"version": 1},
                    },
                )
                if res is None:
                    continue
                return res
            proration = sum(c.amount for c in charges)
            if require_payment and not trial:
                await self._require_payable(org_id, new, proration)
            chg_ids = []
            for n, c in enumerate(charges):
                chg_ids.append(new_id("chg"))
                sets[f"charges.{chg_ids[-1]}"] = {
                    "kind": c.kind,
                    "description": c.description,
                    "amount": c.amount,
                    "period": sub["period"],
                    "at": now,
                    "seq": n,
                }
            if trial:
                # what cancelling the trial takes back (see cancel)
                sets["trial_charge_ids"] = chg_ids
            ev = bev.SubscriptionChanged(
                org_id=org_id,
                subscription_id=sub["subscription_id"],
                old_plan_id=cur.id,
                new_plan_id=new.id,
                interval=bt.BILLING_INTERVAL_MONTHLY,
                price=money(new.price),
                quotas=quota_limits(new),
                proration=money(proration),
                effective_at=who,
                current_period_end=ts(dt(sub["period_end"])),
                actor=actor_of(actor_kind, actor_id, org_id),
            )
            update: Doc = {"$set": sets, "$inc": {"version": 1, **incs}}
            res = await self.store.update_subscription(
                org_id,
                {"version": sub["version"]},
                update,
                [out(ev, org_id, sub["subscription_id"])],
            )
            if res is not None:
                log.info("plan changed", org_id=org_id, old=cur.id, new=new.id)
                return res
        raise Conflict("the subscription changed concurrently; try again")

    async def set_custom_limits(self, org_id: str, limits: dict[str, int]) -> Doc:
        """Enterprise custom limits (platform admin): -1 is unlimited. Moves
        ``available`` by the change of the cap, so open reservations are kept."""
        for _ in range(10):
            now = self.clock()
            sub = await self.subscription(org_id)
            if sub["plan_id"] != "enterprise":
                raise Conflict("custom limits are for the Enterprise plan")
            try:
                sets, incs = custom_limit_change(sub["quotas"], limits)
            except BadLimit as exc:
                raise BillingError(str(exc)) from None
            plan = get_plan(sub["plan_id"])
            quotas = [
                bt.QuotaLimit(
                    meter=m,
                    limit=int(limits.get(m, q.get("limit", 0))),
                    overage_allowed=bool(q.get("overage_allowed")),
                )
                for m, q in sorted(sub["quotas"].items())
            ]
            ev = bev.SubscriptionChanged(
                org_id=org_id,
                subscription_id=sub["subscription_id"],
                old_plan_id=plan.id,
                new_plan_id=plan.id,
                interval=bt.BILLING_INTERVAL_MONTHLY,
                price=money(plan.price),
                quotas=quotas,
                proration=money(0),
                effective_at=ts(now),
                current_period_end=ts(dt(sub["period_end"])),
                actor=SYSTEM,
            )
            res = await self.store.update_subscription(
                org_id,
                {"version": sub["version"]},
                {"$set": sets, "$inc": {"version": 1, **incs}},
                [out(ev, org_id, sub["subscription_id"])],
            )
            if res is not None:
                return res
        raise Conflict("the subscription changed concurrently; try again")

    async def cancel(self, org_id: str, *, actor_kind: str = "user", actor_id: str = "") -> Doc:
        for _ in range(10):
            now = self.clock()
            sub = await self.subscription(org_id)
            if sub["plan_id"] == FREE:
                raise Conflict("the Free plan cannot be canceled")
            if sub.get("cancel_at_period_end"):
                return sub
            if sub.get("status") == "trialing":
                res = await self._cancel_trial(sub, now, actor_kind, actor_id)
                if res is not None:
                    return res
                continue
            ev = bev.SubscriptionCanceled(
                org_id=org_id,
                subscription_id=sub["subscription_id"],
                plan_id=sub["plan_id"],
                reason="requested",
                at_period_end=True,
                canceled_at=ts(now),
                ends_at=ts(dt(sub["period_end"])),
                actor=actor_of(actor_kind, actor_id, org_id),
            )
            res = await self.store.update_subscription(
                org_id,
                {"version": sub["version"]},
                {
                    "$set": {
                        "cancel_at_period_end": 1,
                        "scheduled_plan_id": FREE,
                        "canceled_at": ms(now),
                    },
                    "$inc": {"version": 1},
                },
                [out(ev, org_id, sub["subscription_id"])],
            )
            if res is not None:
                return res
        raise Conflict("the subscription changed concurrently; try again")

    async def _cancel_trial(
        self, sub: Doc, now: datetime, actor_kind: str, actor_id: str
    ) -> Doc | None:
        """Cancelling a trial ends it now and keeps what was paid for: the org returns
        to the plan it had before the trial (that plan's credit for the trial is taken
        back, so the period is billed as paid), which ends at the period end (Free).
        A trial started on Free returns to Free at once; nothing is ever charged for
        the trial plan. None when the document changed meanwhile."""
        org_id = sub["org_id"]
        trial_plan = get_plan(sub["plan_id"])
        prior = get_plan(str(sub.get("trial_from_plan_id") or FREE))
        sets, incs = quota_change(trial_plan, prior, sub["quotas"])
        sets[f"periods.{sub['period']}.usage_plan_id"] = prior.id
        paid = prior.price.amount > 0
        sets.update(
            {
                "plan_id": prior.id,
                "status": "active",
                "trial_end": None,
                "scheduled_plan_id": FREE if paid else None,
                "cancel_at_period_end": 1 if paid else 0,
                "canceled_at": ms(now),
            }
        )
        unset: Doc = {}
        credited = [
            cid
            for cid in sub.get("trial_charge_ids") or []
            if ((sub.get("charges") or {}).get(cid) or {}).get("period") == sub["period"]
        ]
        for cid in credited:
            unset[f"charges.{cid}"] = ""
        if paid and not credited and sub.get("trial_charge_ids"):
            # the trial began in an earlier (already invoiced) period: the rest of
            # this one on the prior plan is charged like an upgrade back to it
            p_start, p_end = M.period_bounds(sub["period"])
            for n, c in enumerate(
                pricing.change_charges(
                    old_name=trial_plan.name,
                    old_price=0,
                    new_name=prior.name,
                    new_price=prior.price.amount,
                    at=now,
                    period_start=p_start,
                    period_end=p_end,
                )
            ):
                sets[f"charges.{new_id('chg')}"] = {
                    "kind": c.kind,
                    "description": c.description,
                    "amount": c.amount,
                    "period": sub["period"],
                    "at": now,
                    "seq": n,
                }
        sets["trial_charge_ids"] = []
        events = [
            out(
                bev.SubscriptionChanged(
                    org_id=org_id,
                    subscription_id=sub["subscription_id"],
                    old_plan_id=trial_plan.id,
                    new_plan_id=prior.id,
                    interval=bt.BILLING_INTERVAL_MONTHLY,
                    price=money(prior.price),
                    quotas=quota_limits(prior),
                    proration=money(0),
                    effective_at=ts(now),
                    current_period_end=ts(dt(sub["period_end"])),
                    actor=actor_of(actor_kind, actor_id, org_id),
                ),
                org_id,
                sub["subscription_id"],
            )
        ]
        if paid:
            events.append(
                out(
                    bev.SubscriptionCanceled(
                        org_id=org_id,
                        subscription_id=sub["subscription_id"],
                        plan_id=prior.id,
                        reason="requested",
                        at_period_end=True,
                        canceled_at=ts(now),
                        ends_at=ts(dt(sub["period_end"])),
                        actor=actor_of(actor_kind, actor_id, org_id),
                    ),
                    org_id,
                    sub["subscription_id"],
                )
            )
        update: Doc = {"$set": sets, "$inc": {"version": 1, **incs}}
        if unset:
            update["$unset"] = unset
        res = await self.store.update_subscription(
            org_id, {"version": sub["version"]}, update, events
        )
        if res is not None:
            log.info("trial canceled", org_id=org_id, trial=trial_plan.id, back_to=prior.id)
        return res

    async def _require_payable(self, org_id: str, new: Plan, due_now: int) -> None:
        """Refuse a change the org cannot pay: the amount due now is above the prepaid
        balance and no payment method is on file."""
        if due_now <= 0:
            return
        w = await self.store.get_wallet(org_id) or {}
        balance = int((w.get("bal") or {}).get(L.CUSTOMER_BALANCE, 0))
        if balance >= due_now:
            return
        port = provider_for(self.settings.payment_provider, self.settings.stripe_api_key)
        try:
            on_file = await port.has_payment_method(org_id)
        except Exception as exc:  # the provider is down: say so, change nothing
            log.warning("payment method lookup failed", org_id=org_id, error=str(exc))
            raise ProviderUnavailable(
                "the payment provider did not answer whether a payment method is on file; "
                "try again shortly, or top up with POST /v1/billing/credits"
            ) from None
        if on_file:
            return
        short = due_now - balance
        raise PaymentRequired(
            f"upgrading to {new.name} costs {Money(due_now).format()} now and the prepaid "
            f"balance is {Money(balance).format()}: top up at least {Money(short).format()} "
            "with POST /v1/billing/credits"
            + (" or add a payment method" if port.name != "prepaid" else "")
            + ", then change the plan again",
            amount_due={"amount": due_now, "currency": "USD"},
            balance={"amount": balance, "currency": "USD"},
            shortfall={"amount": short, "currency": "USD"},
            top_up="POST /v1/billing/credits",
        )

    async def preview_change(self, org_id: str, plan_id: str, *, trial: bool = False) -> Doc:
        """What ``change_plan`` would do now, changing nothing: when it takes effect,
        its proration lines and the amount due now (billed on this period's invoice)."""
        new = get_plan(plan_id)
        now = self.clock()
        sub = await self.subscription(org_id)
        cur = get_plan(sub["plan_id"])
        trialing = sub.get("status") == "trialing"
        p_start, p_end = M.period_bounds(sub["period"])
        period_end = dt(sub["period_end"])
        charges: list[pricing.Charge] = []
        effective_at: datetime | None = now
        if trial:
            effect = "trial"
            if sub.get("trial_used") or trialing:
                raise Conflict("the org has already used its trial")
            if new.id == FREE:
                raise BillingError("a trial is for a paid plan")
            charges = pricing.change_charges(
                old_name=cur.name,
                old_price=cur.price.amount,
                new_name=new.name,
                new_price=0,
                at=now,
                period_start=p_start,
                period_end=p_end,
            )
        elif new.id == cur.id and not trialing:
            effect, effective_at = "unchanged", None
        elif new.rank > cur.rank or trialing:
            effect = "now"
            charges = pricing.change_charges(
                old_name=cur.name,
                old_price=0 if trialing else cur.price.amount,
                new_name=new.name,
                new_price=new.price.amount,
                at=now,
                period_start=p_start,
                period_end=p_end,
            )
        else:
            effect, effective_at = "period_end", period_end
        net = sum(c.amount for c in charges)
        w = await self.store.get_wallet(org_id) or {}
        balance = int((w.get("bal") or {}).get(L.CUSTOMER_BALANCE, 0))
        usd = "USD"
        return {
            "plan": new.id,
            "current_plan": cur.id,
            "effect": effect,
            "effective_at": effective_at,
            "lines": [
                {"kind": c.kind, "description": c.description, "amount": money_dict(c.amount)}
                for c in charges
            ],
            "amount_due_now": {"amount": max(net, 0), "currency": usd},
            "credit": {"amount": max(-net, 0), "currency": usd},
            "next_period_price": {"amount": new.price.amount, "currency": usd},
            "balance": {"amount": balance, "currency": usd},
            "payable": trial or net <= 0 or balance >= net,
            "current_period_end": period_end,
        }

    async def roll(self, sub: Doc, now: datetime) -> Doc | None:
        """Apply what is due by ``now``: trial end (turns paid, prorated) and period
        ends (quotas reset, scheduled downgrade/cancel applied). One guarded write."""
        org_id = sub["org_id"]
        for _ in range(10):
            plan = get_plan(sub["plan_id"])
            status = sub.get("status", "active")
            trial_end = dt(sub["trial_end"]) if sub.get("trial_end") else None
            start = dt(sub["period_start"])
            end = dt(sub["period_end"])
            period = sub["period"]
            scheduled = sub.get("scheduled_plan_id")
            gen = sub["quotas"].get(GENERATIONS, {})
            sets: Doc = {}
            incs: Doc = {}
            events = []
            new_plan = plan
            changed = False
            while True:
                if status == "trialing" and trial_end and trial_end <= now and trial_end < end:
                    status = "active"
                    p_start, p_end = M.period_bounds(period)
                    for c in pricing.change_charges(
                        old_name=plan.name,
                        old_price=0,
                        new_name=f"{plan.name} (trial ended)",
                        new_price=plan.price.amount,
                        at=trial_end,
                        period_start=p_start,
                        period_end=p_end,
                    ):
                        sets[f"charges.{new_id('chg')}"] = {
                            "kind": c.kind,
                            "description": c.description,
                            "amount": c.amount,
                            "period": period,
                            "at": trial_end,
                        }
                    trial_end = None
                    continue
                if end <= now:
                    if status == "trialing" and trial_end and trial_end <= end:
                        status = "active"
                        trial_end = None
                    if scheduled:
                        target = get_plan(scheduled)
                        s2, i2 = quota_change(new_plan, target, sub["quotas"])
                        sets.update(s2)
                        for k, v in i2.items():
                            incs[k] = incs.get(k, 0) + v
                        new_plan = target
                        scheduled = None
                        changed = True
                    key, s, e = M.period_of(end)
                    start, end, period = s, e, key
                    sets[f"periods.{key}"] = {
                        "plan_id": new_plan.id,
                        "trial": 1 if status == "trialing" else 0,
                        "start": s,
                        "end": e,
                    }
                    continue
                break
            used = int(gen.get("used", 0))
            sets.update(
                {
                    "plan_id": new_plan.id,
                    "status": status,
                    "trial_end": ms(trial_end) if trial_end else None,
                    "period_start": ms(start),
                    "period_end": ms(end),
                    "period": period,
                    "scheduled_plan_id": scheduled,
                }
            )
            guard: Doc = {"version": sub["version"]}
            if period != sub["period"]:
                # a new period: quotas reset (available gets back what was used)
                guard[f"quotas.{GENERATIONS}.used"] = used
                sets[f"quotas.{GENERATIONS}.used"] = 0
                incs[f"quotas.{GENERATIONS}.available"] = (
                    incs.get(f"quotas.{GENERATIONS}.available", 0) + used
                )
                sets["cancel_at_period_end"] = 0
            if changed:
                events.append(
                    out(
                        bev.SubscriptionChanged(
                            org_id=org_id,
                            subscription_id=sub["subscription_id"],
                            old_plan_id=plan.id,
                            new_plan_id=new_plan.id,
                            interval=bt.BILLING_INTERVAL_MONTHLY,
                            price=money(new_plan.price),
                            quotas=quota_limits(new_plan),
                            proration=money(0),
                            effective_at=ts(start),
                            current_period_end=ts(end),
                            actor=SYSTEM,
                        ),
                        org_id,
                        sub["subscription_id"],
                    )
                )
            res = await self.store.update_subscription(
                org_id, guard, {"$set": sets, "$inc": {"version": 1, **incs}}, events
            )
            if res is not None:
                return res
            fresh = await self.store.get_subscription(org_id, light=True)
            if fresh is None:
                return None
            sub = fresh
            if dt(sub["period_end"]) > now and not (
                sub.get("status") == "trialing" and dt(sub["trial_end"]) <= now
            ):
                return sub
        return None

    async def roll_due(self, now: datetime | None = None) -> int:
        now = now or self.clock()
        n = 0
        for sub in await self.store.subscriptions_due(
            now
        ) + await self.store.subscriptions_trial_due(now):
            if await self.roll(sub, now):
                n += 1
        return n
