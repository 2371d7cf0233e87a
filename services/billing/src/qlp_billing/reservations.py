"""Quotas: the quota view and the reservation saga (reserve, commit, release, expiry),
each step one guarded write on the subscription document."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from qlp_billing.base import BillingBase, ReserveResult
from qlp_billing.events import bev, bt, out, ts
from qlp_billing.plans import GENERATIONS, UNLIMITED_AVAILABLE, quota_meter
from qlp_billing.repository import safe_key
from qlp_billing.timeutil import dt

Doc = dict[str, Any]


class Reservations(BillingBase):
    """Quota reservations against the subscription's counters."""

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
