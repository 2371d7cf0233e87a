import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from qlp.billing.v1 import types_pb2 as _types_pb2
from qlp.common.v1 import actor_pb2 as _actor_pb2
from qlp.common.v1 import money_pb2 as _money_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SubscriptionActivated(_message.Message):
    __slots__ = ("org_id", "subscription_id", "plan_id", "interval", "price", "quotas", "current_period_start", "current_period_end", "activated_at", "actor")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_ID_FIELD_NUMBER: _ClassVar[int]
    PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    QUOTAS_FIELD_NUMBER: _ClassVar[int]
    CURRENT_PERIOD_START_FIELD_NUMBER: _ClassVar[int]
    CURRENT_PERIOD_END_FIELD_NUMBER: _ClassVar[int]
    ACTIVATED_AT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    subscription_id: str
    plan_id: str
    interval: _types_pb2.BillingInterval
    price: _money_pb2.Money
    quotas: _containers.RepeatedCompositeFieldContainer[_types_pb2.QuotaLimit]
    current_period_start: _timestamp_pb2.Timestamp
    current_period_end: _timestamp_pb2.Timestamp
    activated_at: _timestamp_pb2.Timestamp
    actor: _actor_pb2.Actor
    def __init__(self, org_id: _Optional[str] = ..., subscription_id: _Optional[str] = ..., plan_id: _Optional[str] = ..., interval: _Optional[_Union[_types_pb2.BillingInterval, str]] = ..., price: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., quotas: _Optional[_Iterable[_Union[_types_pb2.QuotaLimit, _Mapping]]] = ..., current_period_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., current_period_end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., activated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actor: _Optional[_Union[_actor_pb2.Actor, _Mapping]] = ...) -> None: ...

class SubscriptionChanged(_message.Message):
    __slots__ = ("org_id", "subscription_id", "old_plan_id", "new_plan_id", "interval", "price", "quotas", "proration", "effective_at", "current_period_end", "actor")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_ID_FIELD_NUMBER: _ClassVar[int]
    OLD_PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    NEW_PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    QUOTAS_FIELD_NUMBER: _ClassVar[int]
    PRORATION_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_AT_FIELD_NUMBER: _ClassVar[int]
    CURRENT_PERIOD_END_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    subscription_id: str
    old_plan_id: str
    new_plan_id: str
    interval: _types_pb2.BillingInterval
    price: _money_pb2.Money
    quotas: _containers.RepeatedCompositeFieldContainer[_types_pb2.QuotaLimit]
    proration: _money_pb2.Money
    effective_at: _timestamp_pb2.Timestamp
    current_period_end: _timestamp_pb2.Timestamp
    actor: _actor_pb2.Actor
    def __init__(self, org_id: _Optional[str] = ..., subscription_id: _Optional[str] = ..., old_plan_id: _Optional[str] = ..., new_plan_id: _Optional[str] = ..., interval: _Optional[_Union[_types_pb2.BillingInterval, str]] = ..., price: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., quotas: _Optional[_Iterable[_Union[_types_pb2.QuotaLimit, _Mapping]]] = ..., proration: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., effective_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., current_period_end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actor: _Optional[_Union[_actor_pb2.Actor, _Mapping]] = ...) -> None: ...

class SubscriptionCanceled(_message.Message):
    __slots__ = ("org_id", "subscription_id", "plan_id", "reason", "at_period_end", "canceled_at", "ends_at", "actor")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_ID_FIELD_NUMBER: _ClassVar[int]
    PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    AT_PERIOD_END_FIELD_NUMBER: _ClassVar[int]
    CANCELED_AT_FIELD_NUMBER: _ClassVar[int]
    ENDS_AT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    subscription_id: str
    plan_id: str
    reason: str
    at_period_end: bool
    canceled_at: _timestamp_pb2.Timestamp
    ends_at: _timestamp_pb2.Timestamp
    actor: _actor_pb2.Actor
    def __init__(self, org_id: _Optional[str] = ..., subscription_id: _Optional[str] = ..., plan_id: _Optional[str] = ..., reason: _Optional[str] = ..., at_period_end: _Optional[bool] = ..., canceled_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ends_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actor: _Optional[_Union[_actor_pb2.Actor, _Mapping]] = ...) -> None: ...

class QuotaReserved(_message.Message):
    __slots__ = ("org_id", "reservation_id", "meter", "quantity", "subject_id", "remaining", "reserved_at", "expires_at")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    METER_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    REMAINING_FIELD_NUMBER: _ClassVar[int]
    RESERVED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    reservation_id: str
    meter: str
    quantity: int
    subject_id: str
    remaining: int
    reserved_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, org_id: _Optional[str] = ..., reservation_id: _Optional[str] = ..., meter: _Optional[str] = ..., quantity: _Optional[int] = ..., subject_id: _Optional[str] = ..., remaining: _Optional[int] = ..., reserved_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class QuotaRejected(_message.Message):
    __slots__ = ("org_id", "reservation_id", "meter", "quantity", "subject_id", "reason", "remaining", "limit", "rejected_at")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    METER_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REMAINING_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    REJECTED_AT_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    reservation_id: str
    meter: str
    quantity: int
    subject_id: str
    reason: _types_pb2.QuotaRejectionReason
    remaining: int
    limit: int
    rejected_at: _timestamp_pb2.Timestamp
    def __init__(self, org_id: _Optional[str] = ..., reservation_id: _Optional[str] = ..., meter: _Optional[str] = ..., quantity: _Optional[int] = ..., subject_id: _Optional[str] = ..., reason: _Optional[_Union[_types_pb2.QuotaRejectionReason, str]] = ..., remaining: _Optional[int] = ..., limit: _Optional[int] = ..., rejected_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class QuotaReleased(_message.Message):
    __slots__ = ("org_id", "reservation_id", "meter", "quantity", "subject_id", "reason", "remaining", "released_at")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    METER_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REMAINING_FIELD_NUMBER: _ClassVar[int]
    RELEASED_AT_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    reservation_id: str
    meter: str
    quantity: int
    subject_id: str
    reason: _types_pb2.QuotaReleaseReason
    remaining: int
    released_at: _timestamp_pb2.Timestamp
    def __init__(self, org_id: _Optional[str] = ..., reservation_id: _Optional[str] = ..., meter: _Optional[str] = ..., quantity: _Optional[int] = ..., subject_id: _Optional[str] = ..., reason: _Optional[_Union[_types_pb2.QuotaReleaseReason, str]] = ..., remaining: _Optional[int] = ..., released_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class QuotaCommitted(_message.Message):
    __slots__ = ("org_id", "reservation_id", "meter", "reserved_quantity", "committed_quantity", "subject_id", "remaining", "committed_at")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    METER_FIELD_NUMBER: _ClassVar[int]
    RESERVED_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    COMMITTED_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    REMAINING_FIELD_NUMBER: _ClassVar[int]
    COMMITTED_AT_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    reservation_id: str
    meter: str
    reserved_quantity: int
    committed_quantity: int
    subject_id: str
    remaining: int
    committed_at: _timestamp_pb2.Timestamp
    def __init__(self, org_id: _Optional[str] = ..., reservation_id: _Optional[str] = ..., meter: _Optional[str] = ..., reserved_quantity: _Optional[int] = ..., committed_quantity: _Optional[int] = ..., subject_id: _Optional[str] = ..., remaining: _Optional[int] = ..., committed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class InvoiceIssued(_message.Message):
    __slots__ = ("org_id", "invoice_id", "number", "subscription_id", "period_start", "period_end", "lines", "subtotal", "tax", "total", "issued_at", "due_at")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    INVOICE_ID_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_ID_FIELD_NUMBER: _ClassVar[int]
    PERIOD_START_FIELD_NUMBER: _ClassVar[int]
    PERIOD_END_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    SUBTOTAL_FIELD_NUMBER: _ClassVar[int]
    TAX_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    ISSUED_AT_FIELD_NUMBER: _ClassVar[int]
    DUE_AT_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    invoice_id: str
    number: str
    subscription_id: str
    period_start: _timestamp_pb2.Timestamp
    period_end: _timestamp_pb2.Timestamp
    lines: _containers.RepeatedCompositeFieldContainer[_types_pb2.InvoiceLine]
    subtotal: _money_pb2.Money
    tax: _money_pb2.Money
    total: _money_pb2.Money
    issued_at: _timestamp_pb2.Timestamp
    due_at: _timestamp_pb2.Timestamp
    def __init__(self, org_id: _Optional[str] = ..., invoice_id: _Optional[str] = ..., number: _Optional[str] = ..., subscription_id: _Optional[str] = ..., period_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., period_end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., lines: _Optional[_Iterable[_Union[_types_pb2.InvoiceLine, _Mapping]]] = ..., subtotal: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., tax: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., total: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., issued_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., due_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PaymentSucceeded(_message.Message):
    __slots__ = ("org_id", "payment_id", "amount", "invoice_id", "purchase_id", "provider", "provider_payment_id", "succeeded_at")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    INVOICE_ID_FIELD_NUMBER: _ClassVar[int]
    PURCHASE_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    SUCCEEDED_AT_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    payment_id: str
    amount: _money_pb2.Money
    invoice_id: str
    purchase_id: str
    provider: str
    provider_payment_id: str
    succeeded_at: _timestamp_pb2.Timestamp
    def __init__(self, org_id: _Optional[str] = ..., payment_id: _Optional[str] = ..., amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., invoice_id: _Optional[str] = ..., purchase_id: _Optional[str] = ..., provider: _Optional[str] = ..., provider_payment_id: _Optional[str] = ..., succeeded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PaymentFailed(_message.Message):
    __slots__ = ("org_id", "payment_id", "amount", "invoice_id", "purchase_id", "provider", "failure_code", "failure_message", "attempt", "next_retry_at", "failed_at")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    INVOICE_ID_FIELD_NUMBER: _ClassVar[int]
    PURCHASE_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    FAILURE_CODE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    NEXT_RETRY_AT_FIELD_NUMBER: _ClassVar[int]
    FAILED_AT_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    payment_id: str
    amount: _money_pb2.Money
    invoice_id: str
    purchase_id: str
    provider: str
    failure_code: str
    failure_message: str
    attempt: int
    next_retry_at: _timestamp_pb2.Timestamp
    failed_at: _timestamp_pb2.Timestamp
    def __init__(self, org_id: _Optional[str] = ..., payment_id: _Optional[str] = ..., amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., invoice_id: _Optional[str] = ..., purchase_id: _Optional[str] = ..., provider: _Optional[str] = ..., failure_code: _Optional[str] = ..., failure_message: _Optional[str] = ..., attempt: _Optional[int] = ..., next_retry_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., failed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class EscrowHeld(_message.Message):
    __slots__ = ("org_id", "escrow_id", "job_id", "amount", "platform_fee_bps", "held_at", "expires_at")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    ESCROW_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FEE_BPS_FIELD_NUMBER: _ClassVar[int]
    HELD_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    escrow_id: str
    job_id: str
    amount: _money_pb2.Money
    platform_fee_bps: int
    held_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, org_id: _Optional[str] = ..., escrow_id: _Optional[str] = ..., job_id: _Optional[str] = ..., amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., platform_fee_bps: _Optional[int] = ..., held_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class EscrowRejected(_message.Message):
    __slots__ = ("org_id", "escrow_id", "job_id", "amount", "reason", "message", "rejected_at")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    ESCROW_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REJECTED_AT_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    escrow_id: str
    job_id: str
    amount: _money_pb2.Money
    reason: _types_pb2.EscrowRejectionReason
    message: str
    rejected_at: _timestamp_pb2.Timestamp
    def __init__(self, org_id: _Optional[str] = ..., escrow_id: _Optional[str] = ..., job_id: _Optional[str] = ..., amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., reason: _Optional[_Union[_types_pb2.EscrowRejectionReason, str]] = ..., message: _Optional[str] = ..., rejected_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class EscrowSettled(_message.Message):
    __slots__ = ("org_id", "escrow_id", "job_id", "held", "charged", "platform_fee", "platform_fee_bps", "providers", "refunded", "settled_at")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    ESCROW_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    HELD_FIELD_NUMBER: _ClassVar[int]
    CHARGED_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FEE_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FEE_BPS_FIELD_NUMBER: _ClassVar[int]
    PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    REFUNDED_FIELD_NUMBER: _ClassVar[int]
    SETTLED_AT_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    escrow_id: str
    job_id: str
    held: _money_pb2.Money
    charged: _money_pb2.Money
    platform_fee: _money_pb2.Money
    platform_fee_bps: int
    providers: _containers.RepeatedCompositeFieldContainer[_types_pb2.ProviderShare]
    refunded: _money_pb2.Money
    settled_at: _timestamp_pb2.Timestamp
    def __init__(self, org_id: _Optional[str] = ..., escrow_id: _Optional[str] = ..., job_id: _Optional[str] = ..., held: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., charged: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., platform_fee: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., platform_fee_bps: _Optional[int] = ..., providers: _Optional[_Iterable[_Union[_types_pb2.ProviderShare, _Mapping]]] = ..., refunded: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., settled_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class EscrowRefunded(_message.Message):
    __slots__ = ("org_id", "escrow_id", "job_id", "amount", "reason", "refunded_at")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    ESCROW_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REFUNDED_AT_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    escrow_id: str
    job_id: str
    amount: _money_pb2.Money
    reason: _types_pb2.EscrowRefundReason
    refunded_at: _timestamp_pb2.Timestamp
    def __init__(self, org_id: _Optional[str] = ..., escrow_id: _Optional[str] = ..., job_id: _Optional[str] = ..., amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., reason: _Optional[_Union[_types_pb2.EscrowRefundReason, str]] = ..., refunded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PayoutIssued(_message.Message):
    __slots__ = ("org_id", "payout_id", "payee_kind", "amount", "period_start", "period_end", "source_ids", "provider", "provider_payout_id", "issued_at")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    PAYOUT_ID_FIELD_NUMBER: _ClassVar[int]
    PAYEE_KIND_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    PERIOD_START_FIELD_NUMBER: _ClassVar[int]
    PERIOD_END_FIELD_NUMBER: _ClassVar[int]
    SOURCE_IDS_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_PAYOUT_ID_FIELD_NUMBER: _ClassVar[int]
    ISSUED_AT_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    payout_id: str
    payee_kind: _types_pb2.PayeeKind
    amount: _money_pb2.Money
    period_start: _timestamp_pb2.Timestamp
    period_end: _timestamp_pb2.Timestamp
    source_ids: _containers.RepeatedScalarFieldContainer[str]
    provider: str
    provider_payout_id: str
    issued_at: _timestamp_pb2.Timestamp
    def __init__(self, org_id: _Optional[str] = ..., payout_id: _Optional[str] = ..., payee_kind: _Optional[_Union[_types_pb2.PayeeKind, str]] = ..., amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., period_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., period_end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., source_ids: _Optional[_Iterable[str]] = ..., provider: _Optional[str] = ..., provider_payout_id: _Optional[str] = ..., issued_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
