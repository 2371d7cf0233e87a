"""Billing's domain logic: subscriptions and quotas, metering, the wallet-committed
ledger (top-ups, escrow, marketplace sales, invoices, payouts, reversals) and
invoicing. No FastAPI here; every database call goes through :class:`Store`."""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from prometheus_client import Counter

from qlp_billing import ledger as L
from qlp_billing import metering as M
from qlp_billing import pricing
from qlp_billing.events import SYSTEM, bev, bt, money, out, quota_limits, ts
from qlp_billing.plans import (
    FREE,
    GENERATIONS,
    PLANS,
    PROJECTS,
    STORAGE_GB,
    TIERS,
    TRIAL_DAYS,
    UNLIMITED_AVAILABLE,
    Plan,
    get_plan,
    quota_meter,
)
from qlp_billing.quotas import BadLimit, custom_limit_change, quota_change, quota_docs
from qlp_billing.repository import Store, safe_key
from qlp_billing.settings import BillingSettings
from qlp_billing.timeutil import dt, ms
from qlp_kit.ids import new_id
from qlp_kit.money import Money
from qlp_kit.mongo import utcnow

log = structlog.get_logger("qlp.billing")

USAGE_REJECTED = Counter(
    "qlp_billing_usage_rejected_total", "usage events rejected by metering", ["reason"]
)
USAGE_ACCEPTED = Counter("qlp_billing_usage_accepted_total", "usage events counted once")

Doc = dict[str, Any]


class BillingError(Exception):
    status = 400
    type_ = "billing-error"


class Conflict(BillingError):
    status = 409
    type_ = "conflict"


class NotFound(BillingError):
    status = 404
    type_ = "not-found"


class PaymentRequired(BillingError):
    status = 402
    type_ = "insufficient-funds"


# ---- pure helpers over the subscription document --------------------------------


def month_period(now: datetime) -> tuple[str, datetime, datetime]:
    return M.period_of(now)


@dataclass
class ReserveResult:
    ok: bool
    duplicate: bool = False
    remaining: int = 0
    reason: str = ""


@dataclass
class CommitResult:
    status: str  # applied | duplicate | insufficient | guard
    wallet: Doc | None = None


class Billing:
    def __init__(
        self,
        store: Store,
        settings: BillingSettings,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock

    @property
    def grace(self) -> timedelta:
        return timedelta(seconds=self.settings.usage_grace_s)

    # ================================================================ subscriptions

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
    ) -> Doc:
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
            for n, c in enumerate(charges):
                sets[f"charges.{new_id('chg')}"] = {
                    "kind": c.kind,
                    "description": c.description,
                    "amount": c.amount,
                    "period": sub["period"],
                    "at": now,
                    "seq": n,
                }
            proration = sum(c.amount for c in charges)
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
                actor=_actor(actor_kind, actor_id, org_id),
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
            ev = bev.SubscriptionCanceled(
                org_id=org_id,
                subscription_id=sub["subscription_id"],
                plan_id=sub["plan_id"],
                reason="requested",
                at_period_end=True,
                canceled_at=ts(now),
                ends_at=ts(dt(sub["period_end"])),
                actor=_actor(actor_kind, actor_id, org_id),
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

    # ======================================================================== quotas

    async def quotas(self, org_id: str) -> list[Doc]:
        sub = await self.subscription(org_id)
        aggs = await self.store.aggregates(org_id, sub["period"])
        items = []
        for meter, q in sorted(sub["quotas"].items()):
            limit = int(q.get("limit", 0))
            if meter == GENERATIONS:
                used = int(q.get("used", 0))
                reserved = int(q.get("reserved", 0))
            else:
                # gauges (projects, storage_gb): the latest reported value this period
                used = aggs[meter].latest if meter in aggs else 0
                reserved = 0
            unlimited = limit < 0
            items.append(
                {
                    "meter": meter,
                    "limit": None if unlimited else limit,
                    "unlimited": unlimited,
                    "used": used,
                    "reserved": reserved,
                    "remaining": None if unlimited else max(limit - used - reserved, 0),
                    "period": sub["period"],
                    "period_end": dt(sub["period_end"]),
                }
            )
        return items

    async def reserve(
        self,
        org_id: str,
        reservation_id: str,
        meter: str,
        quantity: int,
        subject_id: str = "",
    ) -> ReserveResult:
        """Reserve quota with ONE conditional update (available ≥ quantity, the id not
        seen before); the reservation, the counters and QuotaReserved are one write."""
        now = self.clock()
        done = await self.store.reservation_outcome(org_id, reservation_id)
        if done is not None:  # a redelivered request for a reservation that ended
            state = str(done.get("state"))
            return ReserveResult(state != "rejected", duplicate=True, reason=state)
        sub = await self.subscription(org_id)
        qm = quota_meter(meter)
        key = safe_key(reservation_id)
        if quantity <= 0:
            return await self._reject(
                sub, key, reservation_id, meter, quantity, subject_id, "invalid", now
            )
        if qm not in sub["quotas"] or qm != GENERATIONS:
            return await self._reject(
                sub, key, reservation_id, meter, quantity, subject_id, "meter", now
            )
        q = sub["quotas"][qm]
        expires = now + timedelta(seconds=self.settings.reservation_ttl_s)
        remaining_hint = max(int(q.get("available", 0)) - quantity, 0)
        limit = int(q.get("limit", 0))
        ev = bev.QuotaReserved(
            org_id=org_id,
            reservation_id=reservation_id,
            meter=meter,
            quantity=quantity,
            subject_id=subject_id,
            remaining=remaining_hint if limit >= 0 else UNLIMITED_AVAILABLE,
            reserved_at=ts(now),
            expires_at=ts(expires),
        )
        guard = {
            f"quotas.{qm}.available": {"$gte": quantity},
            f"res.{key}": {"$exists": False},
        }
        update = {
            "$inc": {f"quotas.{qm}.available": -quantity, f"quotas.{qm}.reserved": quantity},
            "$set": {
                f"res.{key}": {
                    "reservation_id": reservation_id,
                    "meter": meter,
                    "quota": qm,
                    "quantity": quantity,
                    "subject_id": subject_id,
                    "reserved_at": now,
                    "expires_at": expires,
                }
            },
        }
        res = await self.store.update_subscription(
            org_id, guard, update, [out(ev, org_id, reservation_id)]
        )
        if res is not None:
            left = int(res["quotas"][qm]["available"])
            return ReserveResult(True, remaining=left)
        fresh = await self.store.get_subscription(org_id) or sub
        if key in (fresh.get("res") or {}):
            return ReserveResult(True, duplicate=True)
        return await self._reject(
            fresh, key, reservation_id, meter, quantity, subject_id, "exceeded", now
        )

    async def _reject(
        self,
        sub: Doc,
        key: str,
        reservation_id: str,
        meter: str,
        quantity: int,
        subject_id: str,
        why: str,
        now: datetime,
    ) -> ReserveResult:
        org_id = sub["org_id"]
        qm = quota_meter(meter)
        q = sub["quotas"].get(qm, {})
        limit = int(q.get("limit", 0))
        remaining = max(int(q.get("available", 0)), 0) if limit >= 0 else UNLIMITED_AVAILABLE
        reason = {
            "exceeded": bt.QUOTA_REJECTION_REASON_EXCEEDED,
            "meter": bt.QUOTA_REJECTION_REASON_METER_NOT_IN_PLAN,
        }.get(why, bt.QUOTA_REJECTION_REASON_UNSPECIFIED)
        ev = bev.QuotaRejected(
            org_id=org_id,
            reservation_id=reservation_id,
            meter=meter,
            quantity=quantity,
            subject_id=subject_id,
            reason=reason,
            remaining=remaining,
            limit=limit,
            rejected_at=ts(now),
        )
        state = await self.store.record_outcome(
            org_id, reservation_id, "rejected", [out(ev, org_id, reservation_id)]
        )
        return ReserveResult(False, duplicate=state != "rejected", remaining=remaining, reason=why)

    async def _finish_reservation(
        self, org_id: str, reservation_id: str, commit: bool, reason: Any, committed: int | None
    ) -> bool:
        sub = await self.store.get_subscription(org_id)
        key = safe_key(reservation_id)
        if sub is None:
            return False
        entry = (sub.get("res") or {}).get(key)
        if entry is None:
            return False  # unknown, or finished before: nothing to do
        now = self.clock()
        # the outcome is recorded first: a crash before the quota write below leaves
        # the entry, and the next attempt (redelivery or sweeper) adopts this outcome
        state = await self.store.record_outcome(
            org_id, reservation_id, "committed" if commit else "released"
        )
        commit = state == "committed"
        qm = entry["quota"]
        qty = int(entry["quantity"])
        used = min(qty, committed if committed is not None else qty) if commit else 0
        left = int(sub["quotas"][qm]["available"]) + (qty - used)
        if commit:
            ev: Any = bev.QuotaCommitted(
                org_id=org_id,
                reservation_id=reservation_id,
                meter=entry["meter"],
                reserved_quantity=qty,
                committed_quantity=used,
                subject_id=entry.get("subject_id", ""),
                remaining=left,
                committed_at=ts(now),
            )
        else:
            ev = bev.QuotaReleased(
                org_id=org_id,
                reservation_id=reservation_id,
                meter=entry["meter"],
                quantity=qty,
                subject_id=entry.get("subject_id", ""),
                reason=reason,
                remaining=left,
                released_at=ts(now),
            )
        res = await self.store.update_subscription(
            org_id,
            {f"res.{key}.quantity": qty},
            {
                "$unset": {f"res.{key}": ""},
                "$inc": {
                    f"quotas.{qm}.reserved": -qty,
                    f"quotas.{qm}.used": used,
                    f"quotas.{qm}.available": qty - used,
                },
            },
            [out(ev, org_id, reservation_id)],
        )
        return res is not None

    async def commit_reservation(
        self, org_id: str, reservation_id: str, quantity: int | None = None
    ) -> bool:
        return await self._finish_reservation(org_id, reservation_id, True, 0, quantity)

    async def release_reservation(
        self, org_id: str, reservation_id: str, reason: Any = bt.QUOTA_RELEASE_REASON_FAILED
    ) -> bool:
        return await self._finish_reservation(org_id, reservation_id, False, reason, None)

    async def sweep_reservations(self, now: datetime | None = None) -> int:
        """Release reservations nobody committed or released before they expired."""
        now = now or self.clock()
        n = 0
        for sub in await self.store.subscriptions_with_reservations():
            for entry in list((sub.get("res") or {}).values()):
                if dt(entry["expires_at"]) <= now and await self.release_reservation(
                    sub["org_id"], entry["reservation_id"], bt.QUOTA_RELEASE_REASON_EXPIRED
                ):
                    n += 1
        return n

    # ====================================================================== metering

    def usage_doc(self, ev: Any, now: datetime) -> Doc:
        msg = ev.message
        occurred = (
            dt(msg.occurred_at.ToDatetime(tzinfo=UTC))
            if msg.HasField("occurred_at")
            else dt(ev.time)
        )
        doc = M.usage_doc(
            source=ev.source,
            event_id=ev.id,
            org_id=msg.org_id or ev.org_id,
            meter=msg.meter,
            quantity=int(msg.quantity),
            occurred_at=occurred,
            subject_id=msg.subject_id,
            attributes=dict(msg.attributes),
            now=now,
            grace=self.grace,
        )
        return doc

    async def ingest_usage(self, events: Sequence[Any]) -> int:
        """Insert raw usage once each (``_id`` = source|id; a replay is a duplicate
        key and changes nothing). Aggregates are computed from these on read."""
        now = self.clock()
        docs = [self.usage_doc(ev, now) for ev in events]
        new = await self.store.insert_usage(docs)
        for d in docs:
            if d["status"] == M.REJECTED:
                USAGE_REJECTED.labels(d["reason"]).inc()
        USAGE_ACCEPTED.inc(sum(1 for d in docs if d["status"] == M.ACCEPTED))
        return new

    async def usage(self, org_id: str, period: str | None) -> Doc:
        key = period or M.period_key(self.clock())
        aggs = await self.store.aggregates(org_id, key)
        start, end = M.period_bounds(key)
        return {
            "period": key,
            "period_start": start,
            "period_end": end,
            "meters": [a.to_dict() for _, a in sorted(aggs.items())],
        }

    # ======================================================================== ledger

    async def _commit(
        self,
        txn: L.Txn,
        events: Sequence[Any] = (),
        *,
        guard: Doc | None = None,
        guard_ok: Callable[[Doc], bool] | None = None,
        extra_set: Doc | None = None,
        extra_inc: Doc | None = None,
    ) -> CommitResult:
        if await self.store.txn_exists(txn.id):
            return CommitResult("duplicate")
        now = self.clock()
        for _ in range(5):
            w = await self.store.commit_txn(
                txn, now, events, guard=guard, extra_set=extra_set, extra_inc=extra_inc
            )
            if w is not None:
                try:
                    await self.store.materialize(txn.org_id, [txn.id])
                except Exception as exc:  # the background flush finishes it
                    log.warning("ledger materialize deferred", txn=txn.id, error=str(exc))
                return CommitResult("applied", w)
            w = await self.store.get_wallet(txn.org_id) or {}
            if txn.id in (w.get("_applied") or []) or txn.id in (w.get("pending") or {}):
                return CommitResult("duplicate", w)
            if guard_ok is not None and not guard_ok(w):
                return CommitResult("guard", w)
            if L.guard_violations(w.get("bal") or {}, txn) is not None:
                return CommitResult("insufficient", w)
        raise RuntimeError(f"wallet {txn.org_id} contended; retry later")

    async def flush_ledger(self) -> int:
        n = 0
        for org in await self.store.wallets_with_pending():
            n += await self.store.materialize(org)
        return n

    async def balance(self, org_id: str) -> Doc:
        await self.store.ensure_wallet(org_id)
        w = await self.store.get_wallet(org_id) or {}
        bal = w.get("bal") or {}
        prov = -await self.store.account_balance(L.account(L.PROVIDER_PAYABLE, org_id))
        cre = -await self.store.account_balance(L.account(L.CREATOR_PAYABLE, org_id))
        return {
            "balance": {"amount": int(bal.get(L.CUSTOMER_BALANCE, 0)), "currency": "USD"},
            "escrow": {"amount": int(bal.get(L.ESCROW, 0)), "currency": "USD"},
            "receivable": {"amount": int(bal.get(L.RECEIVABLE, 0)), "currency": "USD"},
            "provider_payable": {"amount": prov, "currency": "USD"},
            "creator_payable": {"amount": cre, "currency": "USD"},
        }

    async def top_up(
        self, org_id: str, amount: Money, payment_id: str | None = None, provider: str = "prepaid"
    ) -> tuple[str, bool]:
        if amount.amount <= 0:
            raise BillingError("a top-up must be positive")
        if amount.amount > self.settings.max_topup and provider == "prepaid":
            raise BillingError("the top-up is above the limit")
        if amount.currency != "USD":
            raise BillingError("only USD is supported")
        payment_id = payment_id or new_id("pay")
        txn = L.topup(org_id, payment_id, amount, provider)
        now = self.clock()
        ev = bev.PaymentSucceeded(
            org_id=org_id,
            payment_id=payment_id,
            amount=money(amount),
            provider=provider,
            provider_payment_id=payment_id,
            succeeded_at=ts(now),
        )
        res = await self._commit(txn, [out(ev, org_id, payment_id)])
        # also on a duplicate: a retry after a failure past the commit finishes the job
        await self.pay_open_invoices(org_id)
        return payment_id, res.status == "applied"

    async def escrow_hold(
        self, org_id: str, escrow_id: str, job_id: str, amount: Money, fee_bps: int
    ) -> str:
        now = self.clock()
        key = f"escrow-hold-{safe_key(escrow_id)}"
        fee_bps = fee_bps or self.settings.gpu_platform_fee_bps

        def rejected(reason: Any, message: str) -> Any:
            return out(
                bev.EscrowRejected(
                    org_id=org_id,
                    escrow_id=escrow_id,
                    job_id=job_id,
                    amount=money(amount),
                    reason=reason,
                    message=message,
                    rejected_at=ts(now),
                ),
                org_id,
                escrow_id,
            )

        entry = {
            "escrow_id": escrow_id,
            "job_id": job_id,
            "amount": amount.amount,
            "currency": amount.currency,
            "fee_bps": fee_bps,
            "at": now,
        }
        if await self.store.get_decision(org_id, key) is not None:
            return "rejected"  # a redelivered request that was rejected before
        if amount.amount <= 0 or amount.amount > self.settings.escrow_max_hold:
            await self.store.record_decision(
                org_id,
                key,
                [
                    rejected(
                        bt.ESCROW_REJECTION_REASON_LIMIT_EXCEEDED,
                        "amount is not within the allowed range",
                    )
                ],
                detail={"escrow": {**entry, "status": "rejected"}},
            )
            return "rejected"
        txn = L.Txn(
            key,
            "escrow_hold",
            org_id,
            L.escrow_hold(org_id, escrow_id, job_id, amount).legs,
            amount.currency,
            memo=f"escrow for job {job_id}",
            refs={"escrow_id": escrow_id, "job_id": job_id},
        )
        held = bev.EscrowHeld(
            org_id=org_id,
            escrow_id=escrow_id,
            job_id=job_id,
            amount=money(amount),
            platform_fee_bps=fee_bps,
            held_at=ts(now),
        )
        res = await self._commit(
            txn,
            [out(held, org_id, escrow_id)],
            extra_set={f"escrows.{safe_key(escrow_id)}": {**entry, "status": "held"}},
        )
        if res.status == "insufficient":
            await self.store.record_decision(
                org_id,
                key,
                [
                    rejected(
                        bt.ESCROW_REJECTION_REASON_INSUFFICIENT_FUNDS,
                        "the prepaid balance does not cover the estimate",
                    )
                ],
                detail={"escrow": {**entry, "status": "rejected"}},
            )
            return "rejected"
        return "held" if res.status == "applied" else res.status

    async def escrow_settle(
        self,
        org_id: str,
        escrow_id: str,
        job_id: str,
        usage: Sequence[L.ProviderUse],
        refund_reason: Any = bt.ESCROW_REFUND_REASON_UNSPECIFIED,
    ) -> str:
        """Settle from metered minutes: providers net, platform fee, rest refunded.
        Settling twice is settling once (same transaction id, guarded status)."""
        ek = safe_key(escrow_id)
        w = await self.store.get_wallet(org_id) or {}
        entry = (w.get("escrows") or {}).get(ek)
        if entry is None:
            if await self.store.get_decision(org_id, f"escrow-hold-{ek}") is not None:
                return "rejected"  # the hold was refused: nothing to settle
            raise LookupError(f"no escrow {escrow_id} (yet)")
        if entry.get("status") != "held":
            return "duplicate"
        now = self.clock()
        held = Money(int(entry["amount"]), str(entry.get("currency", "USD")))
        s = L.compute_settlement(held, usage, int(entry.get("fee_bps", 0)))
        txn = L.escrow_settle(org_id, escrow_id, job_id, held.currency, s)
        if s.charged > 0:
            ev: Any = bev.EscrowSettled(
                org_id=org_id,
                escrow_id=escrow_id,
                job_id=job_id,
                held=money(s.held, held.currency),
                charged=money(s.charged, held.currency),
                platform_fee=money(s.platform_fee, held.currency),
                platform_fee_bps=int(entry.get("fee_bps", 0)),
                providers=[
                    bt.ProviderShare(
                        provider_id=sh.provider_id,
                        provider_org_id=sh.provider_org_id,
                        gpu_minutes=sh.gpu_minutes,
                        gross=money(sh.gross, held.currency),
                        net=money(sh.net, held.currency),
                    )
                    for sh in s.shares
                ],
                refunded=money(s.refunded, held.currency),
                settled_at=ts(now),
            )
        else:
            ev = bev.EscrowRefunded(
                org_id=org_id,
                escrow_id=escrow_id,
                job_id=job_id,
                amount=money(s.held, held.currency),
                reason=refund_reason,
                refunded_at=ts(now),
            )
        res = await self._commit(
            txn,
            [out(ev, org_id, escrow_id)],
            guard={f"escrows.{ek}.status": "held"},
            guard_ok=lambda doc: (doc.get("escrows") or {}).get(ek, {}).get("status") == "held",
            extra_set={
                f"escrows.{ek}.status": "settled" if s.charged else "refunded",
                f"escrows.{ek}.charged": s.charged,
                f"escrows.{ek}.refunded": s.refunded,
                f"escrows.{ek}.platform_fee": s.platform_fee,
                f"escrows.{ek}.settled_at": ms(now),
            },
        )
        return "settled" if res.status == "applied" else "duplicate"

    async def purchase(
        self,
        buyer_org: str,
        purchase_id: str,
        seller_org: str,
        price: Money,
        platform_fee_bps: int,
    ) -> str:
        now = self.clock()
        bps = platform_fee_bps or self.settings.marketplace_platform_fee_bps
        payment_id = new_id("pay")
        txn, _, _ = L.sale(buyer_org, purchase_id, seller_org, price, bps)
        ok = bev.PaymentSucceeded(
            org_id=buyer_org,
            payment_id=payment_id,
            amount=money(price),
            purchase_id=purchase_id,
            provider="prepaid",
            provider_payment_id=payment_id,
            succeeded_at=ts(now),
        )
        if await self.store.get_decision(buyer_org, txn.id) is not None:
            return "failed"  # a redelivered request that failed before
        res = await self._commit(txn, [out(ok, buyer_org, payment_id)])
        if res.status == "insufficient":
            failed = bev.PaymentFailed(
                org_id=buyer_org,
                payment_id=payment_id,
                amount=money(price),
                purchase_id=purchase_id,
                provider="prepaid",
                failure_code="insufficient_funds",
                failure_message="the prepaid balance does not cover the price",
                attempt=1,
                failed_at=ts(now),
            )
            await self.store.record_decision(
                buyer_org, txn.id, [out(failed, buyer_org, payment_id)]
            )
            return "failed"
        return "paid" if res.status == "applied" else res.status

    async def reverse(self, txn_id: str, reason: str) -> str:
        doc = await self.store.get_txn(txn_id)
        if doc is None:
            raise NotFound("no such transaction")
        original = L.Txn.from_doc(doc)
        try:
            rev = L.reversal(original, reason)
        except L.LedgerError as exc:
            raise Conflict(str(exc)) from None
        if await self.store.txn_committed(rev.org_id, rev.id):
            return rev.id  # reversed before: once
        # payables a reversal takes back (a creator's, a provider's) belong to other
        # orgs: each is debited first in its payee's wallet, guarded there (never below
        # zero, e.g. after a payout); then the reversal commits on the payer's wallet.
        # A refusal at either step undoes the holds; a crash between them leaves a hold
        # that the retry of the same reversal adopts (it is keyed by the reversal id).
        held: list[tuple[str, str, int]] = []
        for owner, kind, amount in L.payable_debits(rev):
            acct = L.account(kind, owner)
            got = await self.store.hold_payable(
                owner, kind, amount, rev.id, await self.store.payable_credits(acct)
            )
            if got == "insufficient":
                await self._release_holds(held, rev.id)
                raise PaymentRequired(
                    f"{acct} no longer holds {amount} (paid out?); the reversal would "
                    "take it below zero"
                )
            held.append((owner, kind, amount))
        try:
            res = await self._commit(rev)
        except L.LedgerError as exc:
            await self._release_holds(held, rev.id)
            raise Conflict(str(exc)) from None
        if res.status in ("insufficient", "guard"):
            await self._release_holds(held, rev.id)
            raise PaymentRequired("the balance no longer covers this reversal")
        return rev.id

    async def _release_holds(self, held: Sequence[tuple[str, str, int]], txn_id: str) -> None:
        for owner, kind, amount in held:
            await self.store.release_payable(owner, kind, amount, txn_id)

    # ======================================================================= payouts

    async def payout(self, org_id: str, kind: str) -> Doc | None:
        """Pay out the whole materialized payable of ``kind``. Exactly once: the
        wallet's payout sequence guards against a concurrent payout."""
        await self.store.ensure_wallet(org_id)
        await self.store.materialize(org_id)
        w = await self.store.get_wallet(org_id) or {}
        seq = int(w.get("payout_seq", 0))
        # what was credited minus what was ever debited (payouts, reversals: counted
        # in this wallet, so the guard below sees a concurrent reversal's hold)
        credited = await self.store.payable_credits(L.account(kind, org_id))
        debited = await self.store.payable_debits(org_id, kind)
        available = credited - debited
        if available <= 0:
            return None
        now = self.clock()
        payout_id = new_id("po")
        txn = L.payout(org_id, payout_id, kind, Money(available))
        ev = bev.PayoutIssued(
            org_id=org_id,
            payout_id=payout_id,
            payee_kind=bt.PAYEE_KIND_GPU_PROVIDER
            if kind == L.PROVIDER_PAYABLE
            else bt.PAYEE_KIND_CREATOR,
            amount=money(available),
            provider=self.settings.payment_provider,
            provider_payout_id=payout_id,
            issued_at=ts(now),
        )
        res = await self._commit(
            txn,
            [out(ev, org_id, payout_id)],
            guard={"payout_seq": seq, f"pdebit.{kind}": debited},
            guard_ok=lambda d: (
                int(d.get("payout_seq", 0)) == seq
                and int((d.get("pdebit") or {}).get(kind, 0)) == debited
            ),
            extra_inc={"payout_seq": 1, f"pdebit.{kind}": available},
        )
        if res.status != "applied":
            raise Conflict("another payout ran concurrently; try again")
        return {"payout_id": payout_id, "kind": kind, "amount": available, "issued_at": now}

    async def payouts(
        self, org_id: str, limit: int, cursor: str | None
    ) -> tuple[list[Doc], str | None]:
        docs, nxt = await self.store.page_txns(org_id, "payout", limit, cursor)
        items = []
        for d in docs:
            amount = sum(int(x["amount"]) for x in d["legs"] if int(x["amount"]) > 0)
            kind = next(
                (L.parse_account(x["account"])[0] for x in d["legs"] if int(x["amount"]) > 0), ""
            )
            items.append(
                {
                    "id": (d.get("refs") or {}).get("payout_id", d["_id"]),
                    "kind": kind,
                    "amount": {"amount": amount, "currency": d.get("currency", "USD")},
                    "status": "issued",
                    "issued_at": d.get("created_at"),
                }
            )
        return items, nxt

    # ====================================================================== invoices

    @staticmethod
    def _usage_plan(sub: Doc, period: str) -> Plan:
        info = (sub.get("periods") or {}).get(period) or {}
        plan_at_start = get_plan(str(info.get("plan_id") or sub["plan_id"]))
        # usage is priced by the plan in effect after the period's last upgrade
        return get_plan(str(info.get("usage_plan_id") or plan_at_start.id))

    async def _late_lines(
        self, sub: Doc, period: str, invoice_id: str | None
    ) -> list[pricing.Line]:
        """Usage of earlier, already invoiced periods that arrived after their invoice:
        billed on this one, each event once. Finalizing (``invoice_id``): the events
        this invoice tagged; a preview: those no invoice has tagged yet."""
        org_id = sub["org_id"]
        if invoice_id is None:
            untagged = set(await self.store.usage_periods(org_id, {"$exists": False}))
            periods = untagged & set(await self.store.closed_periods(org_id, "9999-99"))
        else:
            periods = set(await self.store.usage_periods(org_id, invoice_id)) - {period}
        lines: list[pricing.Line] = []
        for q in sorted(periods):
            if invoice_id is None:
                before = await self.store.aggregates(org_id, q, {"$exists": True})
                after = await self.store.aggregates(org_id, q)
            else:
                before = await self.store.aggregates(
                    org_id, q, {"$exists": True, "$ne": invoice_id}
                )
                after = await self.store.aggregates(org_id, q, {"$exists": True})
            lines += pricing.late_usage_lines(q, self._usage_plan(sub, q), before, after)
        return lines

    async def _lines(
        self, sub: Doc, period: str, invoice_id: str | None = None
    ) -> list[pricing.Line]:
        """An invoice's lines. ``invoice_id`` (finalizing): usage is what the invoice
        tagged as billed by it; otherwise (a draft, the upcoming invoice) all of it."""
        info = (sub.get("periods") or {}).get(period) or {}
        plan_at_start = get_plan(str(info.get("plan_id") or sub["plan_id"]))
        usage_plan = self._usage_plan(sub, period)
        charges = sorted(
            (c for c in (sub.get("charges") or {}).values() if c.get("period") == period),
            key=lambda c: (dt(c["at"]), int(c.get("seq", 0))),
        )
        aggs = await self.store.aggregates(sub["org_id"], period, invoice_id)
        late = await self._late_lines(sub, period, invoice_id)
        start, end = M.period_bounds(period)
        txns = await self.store.org_txns(sub["org_id"], start, end, ["sale", "escrow_settle"])
        return pricing.invoice_lines(
            plan_at_start=plan_at_start,
            trial=bool(info.get("trial")),
            plan_for_usage=usage_plan,
            charges=charges,
            aggs=aggs,
            ledger_txns=txns,
            late=late,
        )

    def _invoice_view(self, inv: Doc) -> Doc:
        view = {k: v for k, v in inv.items() if not k.startswith("_outbox")}
        # a claim in progress shows as the state it started from
        if view.get("status") == "paying":
            view["status"] = "finalized"
        elif view.get("status") == "finalizing":
            view["status"] = "draft"
        elif view.get("status") == "voiding":
            view["status"] = view.get("voiding_from") or "finalized"
        return view

    async def upcoming_invoice(self, org_id: str) -> Doc:
        sub = await self.subscription(org_id)
        lines = await self._lines(sub, sub["period"])
        total, due = pricing.totals(lines)
        start, end = M.period_bounds(sub["period"])
        return {
            "id": None,
            "org_id": org_id,
            "period": sub["period"],
            "period_start": start,
            "period_end": end,
            "status": "upcoming",
            "lines": [x.to_dict() for x in lines],
            "total": {"amount": total, "currency": "USD"},
            "amount_due": {"amount": due, "currency": "USD"},
        }

    async def run_invoicing(self, now: datetime | None = None) -> dict[str, int]:
        """Drafts for ended periods; finalized once the grace window has passed (usage is
        then frozen: later events are rejected); booked to the ledger; paid from the
        prepaid balance when it covers the amount due. Every step is idempotent."""
        now = now or self.clock()
        stats = {"drafted": 0, "finalized": 0, "booked": 0, "paid": 0}
        for sub in await self.store.all_subscriptions():
            for period, info in (sub.get("periods") or {}).items():
                end = dt(info["end"])
                if end > now:
                    continue
                if await self.store.invoice_for(sub["org_id"], period) is None:
                    doc = {
                        "_id": new_id("inv"),
                        "org_id": sub["org_id"],
                        "subscription_id": sub["subscription_id"],
                        "period": period,
                        "period_start": dt(info["start"]),
                        "period_end": end,
                        "status": "draft",
                        "booked": 0,
                        "payment_attempts": 0,
                        "created_at": now,
                    }
                    if await self.store.insert_invoice(doc):
                        stats["drafted"] += 1
        for inv in await self.store.invoices_in("draft"):
            if dt(inv["period_end"]) + self.grace <= now and await self._finalize(inv, now):
                stats["finalized"] += 1
        for inv in await self.store.invoices_unbooked():
            if await self._book(inv):
                stats["booked"] += 1
            if await self._try_pay(inv["org_id"], inv["_id"]):
                stats["paid"] += 1
        await self.resume_claims(now)
        return stats

    async def _finalize(self, inv: Doc, now: datetime, *, takeover: bool = False) -> bool:
        """Issue a draft: claim it (draft -> finalizing), tag the usage it bills (its
        period's, and late usage of earlier issued periods that no invoice billed
        yet), price exactly the tagged usage, and issue it under the claim. Usage
        arriving after the tagging is billed by the next invoice, never lost."""
        org_id, invoice_id, period = inv["org_id"], inv["_id"], inv["period"]
        sub = await self.store.get_subscription(org_id, light=True)
        if sub is None:
            return False
        token = new_id("clm")
        guard: Doc = (
            {"status": "finalizing", "claim": inv.get("claim")} if takeover else {"status": "draft"}
        )
        claimed = await self.store.update_invoice(
            org_id,
            invoice_id,
            guard,
            {"$set": {"status": "finalizing", "claim": token, "claimed_at": ms(now)}},
        )
        if claimed is None:
            return False
        await self.store.tag_usage(org_id, [period], invoice_id)
        await self.store.tag_usage(
            org_id, await self.store.closed_periods(org_id, period), invoice_id
        )
        lines = await self._lines(sub, period, invoice_id)
        total, due = pricing.totals(lines)
        number = f"QLP-{now.year}-{await self.store.next_number(f'invoice-{now.year}'):06d}"
        due_at = now + timedelta(days=14)
        ev = bev.InvoiceIssued(
            org_id=inv["org_id"],
            invoice_id=inv["_id"],
            number=number,
            subscription_id=inv.get("subscription_id", ""),
            period_start=ts(dt(inv["period_start"])),
            period_end=ts(dt(inv["period_end"])),
            lines=[
                bt.InvoiceLine(
                    kind=_line_kind(x.kind),
                    description=x.description,
                    meter=x.meter,
                    quantity=x.quantity,
                    amount=money(x.amount),
                )
                for x in lines
            ],
            subtotal=money(total),
            tax=money(0),
            total=money(total),
            issued_at=ts(now),
            due_at=ts(due_at),
        )
        status = "finalized" if due > 0 else "paid"
        res = await self.store.update_invoice(
            inv["org_id"],
            inv["_id"],
            {"status": "finalizing", "claim": token},
            {
                "$set": {
                    "status": status,
                    "number": number,
                    "lines": [x.to_dict() for x in lines],
                    "subtotal": {"amount": total, "currency": "USD"},
                    "tax": {"amount": 0, "currency": "USD"},
                    "total": {"amount": total, "currency": "USD"},
                    "amount_due": {"amount": due, "currency": "USD"},
                    "issued_at": ms(now),
                    "due_at": ms(due_at),
                    "booked": 0 if due > 0 else 1,
                    "paid_at": ms(now) if due <= 0 else None,
                }
            },
            [out(ev, inv["org_id"], inv["_id"])],
        )
        return res is not None

    async def _book(self, inv: Doc) -> bool:
        org_id, invoice_id = inv["org_id"], inv["_id"]
        due = int((inv.get("amount_due") or {}).get("amount", 0))
        if due > 0:
            await self._commit(L.invoice_booking(org_id, invoice_id, Money(due)))
        res = await self.store.update_invoice(
            org_id, invoice_id, {"booked": 0, "status": "finalized"}, {"$set": {"booked": 1}}
        )
        if res is None and due > 0:
            cur = await self.store.get_invoice(org_id, invoice_id)
            if cur is not None and cur.get("status") in ("voiding", "void"):
                # voided while this booking was in flight: take it back
                await self._reverse_booking(cur)
        return res is not None

    # An invoice's money moves only under a claim on the invoice: a payment moves it
    # finalized -> paying -> paid, a void (draft|finalized) -> voiding -> void. The
    # claims are guarded single-document writes, so a payment and a void of the same
    # invoice cannot both happen; one that fails midway hands the invoice back, and
    # one that crashed is finished by the invoicing sweep (every money move is
    # idempotent by its transaction id).
    CLAIM_STALE = timedelta(minutes=1)

    async def _try_pay(self, org_id: str, invoice_id: str, *, resume: bool = False) -> bool:
        inv = await self.store.get_invoice(org_id, invoice_id)
        if inv is None or not inv.get("booked"):
            return False
        now = self.clock()
        if resume:
            if inv.get("status") != "paying":
                return False
        else:
            if inv.get("status") != "finalized":
                return False
            claimed = await self.store.update_invoice(
                org_id,
                invoice_id,
                {"status": "finalized", "booked": 1},
                {"$set": {"status": "paying", "claimed_at": ms(now)}},
            )
            if claimed is None:
                return False  # paid, voided or being voided meanwhile
        due = int((inv.get("amount_due") or {}).get("amount", 0))
        txn = L.invoice_payment(org_id, invoice_id, Money(due))
        res = await self._commit(txn)
        if res.status in ("applied", "duplicate"):
            pid = new_id("pay")
            ev = bev.PaymentSucceeded(
                org_id=org_id,
                payment_id=pid,
                amount=money(due),
                invoice_id=invoice_id,
                provider="prepaid",
                provider_payment_id=pid,
                succeeded_at=ts(now),
            )
            done = await self.store.update_invoice(
                org_id,
                invoice_id,
                {"status": "paying"},
                {"$set": {"status": "paid", "paid_at": ms(now)}},
                [out(ev, org_id, invoice_id)],
            )
            return done is not None
        # not paid: hand the invoice back (a void may proceed, a top-up retries)
        update: Doc = {"$set": {"status": "finalized"}}
        events = []
        if res.status == "insufficient" and not inv.get("payment_attempts"):
            events.append(
                out(
                    bev.PaymentFailed(
                        org_id=org_id,
                        payment_id=new_id("pay"),
                        amount=money(due),
                        invoice_id=invoice_id,
                        provider="prepaid",
                        failure_code="insufficient_funds",
                        failure_message="top up credits to pay this invoice",
                        attempt=1,
                        failed_at=ts(now),
                    ),
                    org_id,
                    invoice_id,
                )
            )
            update["$inc"] = {"payment_attempts": 1}
        await self.store.update_invoice(org_id, invoice_id, {"status": "paying"}, update, events)
        return False

    async def pay_open_invoices(self, org_id: str) -> int:
        n = 0
        for inv in await self.store.open_invoices(org_id):
            if await self._try_pay(org_id, inv["_id"]):
                n += 1
        return n

    async def void_invoice(self, org_id: str, invoice_id: str) -> Doc:
        inv = await self.store.get_invoice(org_id, invoice_id)
        if inv is None:
            raise NotFound("invoice not found")
        status = str(inv.get("status"))
        if status in ("paid", "void"):
            raise Conflict(f"a {status} invoice cannot be voided")
        if status not in ("draft", "finalized"):
            raise Conflict("a payment or a void of this invoice is in progress; try again")
        claimed = await self.store.update_invoice(
            org_id,
            invoice_id,
            {"status": status},
            {"$set": {"status": "voiding", "voiding_from": status, "claimed_at": ms(self.clock())}},
        )
        if claimed is None:
            raise Conflict("the invoice changed concurrently (paid?); try again")
        return self._invoice_view(await self._finish_void(claimed))

    async def _reverse_booking(self, inv: Doc) -> str:
        """Reverse the invoice's booking if it was committed: ``none``, ``reversed``
        or ``refused`` (the receivable no longer holds it)."""
        org_id, invoice_id = inv["org_id"], inv["_id"]
        due = int((inv.get("amount_due") or {}).get("amount", 0))
        booking = L.invoice_booking(org_id, invoice_id, Money(due)) if due > 0 else None
        if booking is None or not await self.store.txn_committed(org_id, booking.id):
            return "none"
        res = await self._commit(L.reversal(booking, "invoice voided"))
        return "reversed" if res.status in ("applied", "duplicate") else "refused"

    async def _finish_void(self, inv: Doc) -> Doc:
        org_id, invoice_id = inv["org_id"], inv["_id"]
        if await self._reverse_booking(inv) == "refused":
            await self.store.update_invoice(
                org_id,
                invoice_id,
                {"status": "voiding"},
                {"$set": {"status": inv.get("voiding_from") or "finalized"}},
            )
            raise PaymentRequired("the invoice's receivable is no longer there; not voided")
        res = await self.store.update_invoice(
            org_id,
            invoice_id,
            {"status": "voiding"},
            {"$set": {"status": "void", "voided_at": ms(self.clock())}},
        )
        if res is None:
            raise Conflict("the invoice changed concurrently; try again")
        return res

    async def resume_claims(self, now: datetime | None = None) -> int:
        """Finish payments and voids that stopped midway (a crash after the claim)."""
        now = now or self.clock()
        n = 0
        for status in ("finalizing", "paying", "voiding"):
            for inv in await self.store.invoices_in(status):
                if dt(inv.get("claimed_at") or 0) + self.CLAIM_STALE > now:
                    continue  # still in progress, probably
                try:
                    if status == "finalizing":
                        await self._finalize(inv, now, takeover=True)
                    elif status == "paying":
                        await self._try_pay(inv["org_id"], inv["_id"], resume=True)
                    else:
                        await self._finish_void(inv)
                    n += 1
                except BillingError as exc:
                    log.warning("claim not finished", invoice=inv["_id"], error=str(exc))
        return n

    async def invoice(self, org_id: str, invoice_id: str) -> Doc:
        inv = await self.store.get_invoice(org_id, invoice_id)
        if inv is None:
            raise NotFound("invoice not found")
        if inv.get("status") in ("draft", "finalizing"):
            sub = await self.store.get_subscription(org_id, light=True)
            if sub is not None:
                lines = await self._lines(sub, inv["period"])
                total, due = pricing.totals(lines)
                inv = {
                    **inv,
                    "lines": [x.to_dict() for x in lines],
                    "total": {"amount": total, "currency": "USD"},
                    "amount_due": {"amount": due, "currency": "USD"},
                }
        return self._invoice_view(inv)

    # ======================================================================== admin

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

    async def ledger_check(self) -> L.CheckReport:
        await self.flush_ledger()
        wallets = {
            str(w["_id"]): {k: int(v) for k, v in (w.get("bal") or {}).items()}
            for w in await self.store.all_wallets()
            if not w.get("pending_n")
        }
        docs = [d async for d in await self.store.all_txns()]
        return L.check(docs, wallets)


def _actor(kind: str, actor_id: str, org_id: str) -> Any:
    from qlp_billing.events import actor

    return actor(kind, actor_id, org_id) if actor_id else SYSTEM


def _line_kind(kind: str) -> Any:
    return {
        pricing.SUBSCRIPTION: bt.INVOICE_LINE_KIND_SUBSCRIPTION,
        pricing.PRORATION: bt.INVOICE_LINE_KIND_PRORATION,
        pricing.USAGE: bt.INVOICE_LINE_KIND_USAGE,
        pricing.CREDIT: bt.INVOICE_LINE_KIND_CREDIT,
        pricing.MARKETPLACE: bt.INVOICE_LINE_KIND_USAGE,
        pricing.GPU_COMPUTE: bt.INVOICE_LINE_KIND_USAGE,
    }.get(kind, bt.INVOICE_LINE_KIND_UNSPECIFIED)


def invoice_html(inv: Doc) -> str:
    """A printable HTML rendering of an invoice."""
    esc = html.escape

    def fmt(m: Doc | None) -> str:
        m = m or {"amount": 0, "currency": "USD"}
        return Money(int(m["amount"]), str(m.get("currency", "USD"))).format()

    rows = "".join(
        f"<tr><td>{esc(str(x['kind']))}</td><td>{esc(str(x['description']))}</td>"
        f"<td style='text-align:right'>{int(x['quantity'])}</td>"
        f"<td style='text-align:right'>{esc(fmt(x['amount']))}"
        f"{' (prepaid)' if x.get('prepaid') else ''}</td></tr>"
        for x in inv.get("lines") or []
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>Invoice {esc(str(inv.get('number') or inv.get('_id')))}</title>"
        "<style>body{font-family:sans-serif}td,th{padding:4px 8px;border-bottom:1px solid #ddd}</style>"
        "</head><body>"
        f"<h1>Invoice {esc(str(inv.get('number') or '(draft)'))}</h1>"
        f"<p>Organization: {esc(str(inv['org_id']))}<br>Period: {esc(str(inv['period']))}"
        f"<br>Status: {esc(str(inv['status']))}</p>"
        "<table><tr><th>Kind</th><th>Description</th><th>Qty</th><th>Amount</th></tr>"
        f"{rows}</table>"
        f"<p>Total: {esc(fmt(inv.get('total')))}<br>"
        f"Amount due: {esc(fmt(inv.get('amount_due')))}</p>"
        "</body></html>"
    )


__all__ = [
    "PROJECTS",
    "STORAGE_GB",
    "Billing",
    "BillingError",
    "Conflict",
    "NotFound",
    "PaymentRequired",
    "invoice_html",
]
