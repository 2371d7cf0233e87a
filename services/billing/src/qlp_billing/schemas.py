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


class ChangeLineOut(BaseModel):
    kind: str
    description: str
    amount: MoneyOut


class SubscriptionPreviewOut(BaseModel):
    """A plan change before it happens."""

    plan: str
    current_plan: str
    #: ``now`` (upgrade), ``period_end`` (downgrade), ``trial`` or ``unchanged``.
    effect: str
    effective_at: datetime | None = None
    lines: list[ChangeLineOut]
    #: Net of the proration lines when it is a charge (billed on this period's invoice).
    amount_due_now: MoneyOut
    #: Net of the proration lines when it is a credit.
    credit: MoneyOut
    next_period_price: MoneyOut
    balance: MoneyOut
    #: False when ``PUT /subscription`` would answer 402 (top up first).
    payable: bool
    current_period_end: datetime


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


class AddressModel(BaseModel):
    line1: str = Field(default="", max_length=200, examples=["1 Main Street"])
    line2: str = Field(default="", max_length=200)
    city: str = Field(default="", max_length=100, examples=["Berlin"])
    postal_code: str = Field(default="", max_length=20, examples=["10115"])
    region: str = Field(default="", max_length=100)
    country: str = Field(default="", max_length=100, examples=["Germany"])


class BillingProfileIn(BaseModel):
    """Who invoices are addressed to."""

    name: str = Field(default="", max_length=200, examples=["Acme Robotics GmbH"])
    email: str = Field(default="", max_length=320, examples=["billing@acme.example"])
    address: AddressModel = Field(default_factory=AddressModel)
    tax_id: str = Field(default="", max_length=64, examples=["DE123456789"])


class BillToOut(BaseModel):
    org_id: str
    name: str
    email: str = ""
    address: AddressModel
    tax_id: str = ""


class IssuerOut(BaseModel):
    name: str
    address: list[str]
    email: str = ""


class InvoiceOut(BaseModel):
    id: str | None
    org_id: str
    number: str | None = None
    period: str
    period_start: datetime
    period_end: datetime
    #: ``upcoming``, ``draft``, ``finalized`` (open), ``paid`` or ``void``.
    status: str
    bill_to: BillToOut | None = None
    issuer: IssuerOut | None = None
    lines: list[InvoiceLineOut] = []
    subtotal: MoneyOut | None = None
    tax: MoneyOut | None = None
    total: MoneyOut | None = None
    #: The total minus what was already paid from the prepaid balance.
    amount_due: MoneyOut | None = None
    issued_at: datetime | None = None
    due_at: datetime | None = None
    paid_at: datetime | None = None


class InvoiceLinkOut(BaseModel):
    """A link that opens the invoice in a browser, without a bearer token, until
    ``expires_at``."""

    url: str
    expires_at: datetime


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
