"""Request and response models of the public API (separate from stored documents)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from qlp_kit.money import MoneyOut
from qlp_kit.money import PositiveMoneyIn as MoneyIn

__all__ = ["MoneyIn", "MoneyOut"]


class QuotaOut(BaseModel):
    meter: str
    limit: int | None = Field(description="null when unlimited")
    unlimited: bool = False
    overage_allowed: bool = False


class PlanOut(BaseModel):
    id: str
    name: str
    price: MoneyOut
    interval: str = "monthly"
    quotas: list[QuotaOut]
    api_calls_included: int
    custom: bool = False


class PlanList(BaseModel):
    items: list[PlanOut]
    next_cursor: str | None = None


class SubscriptionIn(BaseModel):
    plan: str = Field(min_length=1, max_length=64)
    trial: bool = False


class SubscriptionOut(BaseModel):
    id: str
    org_id: str
    plan: str
    status: str
    interval: str
    price: MoneyOut
    current_period: str
    current_period_start: datetime
    current_period_end: datetime
    trial_end: datetime | None = None
    cancel_at_period_end: bool = False
    scheduled_plan: str | None = None
    quotas: list[dict[str, Any]]


class MeterUsageOut(BaseModel):
    meter: str
    sum: int
    count: int
    max: int
    latest: int
    premium_sum: int
    rejected_count: int
    rejected_sum: int


class UsageOut(BaseModel):
    period: str
    period_start: datetime
    period_end: datetime
    meters: list[MeterUsageOut]


class RejectedUsageOut(BaseModel):
    id: str
    meter: str
    quantity: int
    occurred_at: datetime
    period: str
    reason: str
    received_at: datetime


class QuotaUsageOut(BaseModel):
    meter: str
    limit: int | None
    unlimited: bool
    used: int
    reserved: int
    remaining: int | None
    period: str
    period_end: datetime


class QuotaList(BaseModel):
    items: list[QuotaUsageOut]
    next_cursor: str | None = None


class BalanceOut(BaseModel):
    balance: MoneyOut
    escrow: MoneyOut
    receivable: MoneyOut
    provider_payable: MoneyOut
    creator_payable: MoneyOut


class CreditsIn(BaseModel):
    amount: MoneyIn


class CreditsOut(BaseModel):
    payment_id: str
    status: str
    amount: MoneyOut
    balance: MoneyOut
    #: For providers that collect asynchronously (Stripe): confirm on the client.
    client_secret: str | None = None


class InvoiceLineOut(BaseModel):
    kind: str
    description: str
    meter: str = ""
    quantity: int
    amount: MoneyOut
    prepaid: bool = False


class InvoiceOut(BaseModel):
    id: str | None
    org_id: str
    number: str | None = None
    period: str
    period_start: datetime
    period_end: datetime
    status: str
    lines: list[InvoiceLineOut] = []
    total: MoneyOut | None = None
    amount_due: MoneyOut | None = None
    issued_at: datetime | None = None
    due_at: datetime | None = None
    paid_at: datetime | None = None


class InvoiceList(BaseModel):
    items: list[InvoiceOut]
    next_cursor: str | None = None


class PayoutIn(BaseModel):
    kind: str = Field(pattern="^(provider|creator)$")


class PayoutOut(BaseModel):
    id: str
    kind: str
    amount: MoneyOut
    status: str
    issued_at: datetime | None = None


class PayoutList(BaseModel):
    items: list[PayoutOut]
    next_cursor: str | None = None


class ReversalIn(BaseModel):
    reason: str = Field(default="", max_length=500)


class CustomLimitsIn(BaseModel):
    """Enterprise custom limits per meter (-1 = unlimited)."""

    limits: dict[str, int] = Field(min_length=1, max_length=10)
