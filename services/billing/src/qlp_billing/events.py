"""Building billing's protobuf events (pure)."""

from __future__ import annotations

from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from qlp.billing.v1 import events_pb2 as bev
from qlp.billing.v1 import types_pb2 as bt
from qlp.common.v1 import actor_pb2, money_pb2
from qlp_billing.plans import Plan
from qlp_kit.money import Money
from qlp_kit.outbox import Staged, stage

SOURCE = "qlp/billing"


def ts(value: datetime) -> Timestamp:
    t = Timestamp()
    t.FromDatetime(value)
    return t


def money(m: Money | int, currency: str = "USD") -> money_pb2.Money:
    if isinstance(m, Money):
        return money_pb2.Money(amount=m.amount, currency=m.currency)
    return money_pb2.Money(amount=m, currency=currency)


def actor(kind: str, actor_id: str, org_id: str) -> actor_pb2.Actor:
    types = {
        "user": actor_pb2.ACTOR_TYPE_USER,
        "api_key": actor_pb2.ACTOR_TYPE_API_KEY,
        "service": actor_pb2.ACTOR_TYPE_SERVICE,
    }
    return actor_pb2.Actor(
        type=types.get(kind, actor_pb2.ACTOR_TYPE_SERVICE), id=actor_id, org_id=org_id
    )


SYSTEM = actor("service", "billing", "")


def quota_limits(plan: Plan) -> list[bt.QuotaLimit]:
    return [
        bt.QuotaLimit(meter=q.meter, limit=q.limit, overage_allowed=q.overage_allowed)
        for q in plan.quotas
    ]


def out(msg: object, org_id: str, key: str) -> Staged:
    return stage(msg, org_id=org_id, key=key, source=SOURCE)  # type: ignore[arg-type]


__all__ = ["SOURCE", "SYSTEM", "actor", "bev", "bt", "money", "out", "quota_limits", "ts"]
