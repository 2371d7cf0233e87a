from qlp.common.v1 import money_pb2 as _money_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class BillingInterval(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BILLING_INTERVAL_UNSPECIFIED: _ClassVar[BillingInterval]
    BILLING_INTERVAL_MONTHLY: _ClassVar[BillingInterval]
    BILLING_INTERVAL_YEARLY: _ClassVar[BillingInterval]

class QuotaRejectionReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    QUOTA_REJECTION_REASON_UNSPECIFIED: _ClassVar[QuotaRejectionReason]
    QUOTA_REJECTION_REASON_EXCEEDED: _ClassVar[QuotaRejectionReason]
    QUOTA_REJECTION_REASON_NO_SUBSCRIPTION: _ClassVar[QuotaRejectionReason]
    QUOTA_REJECTION_REASON_METER_NOT_IN_PLAN: _ClassVar[QuotaRejectionReason]
    QUOTA_REJECTION_REASON_ORG_SUSPENDED: _ClassVar[QuotaRejectionReason]

class QuotaReleaseReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    QUOTA_RELEASE_REASON_UNSPECIFIED: _ClassVar[QuotaReleaseReason]
    QUOTA_RELEASE_REASON_FAILED: _ClassVar[QuotaReleaseReason]
    QUOTA_RELEASE_REASON_CANCELED: _ClassVar[QuotaReleaseReason]
    QUOTA_RELEASE_REASON_EXPIRED: _ClassVar[QuotaReleaseReason]

class InvoiceLineKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INVOICE_LINE_KIND_UNSPECIFIED: _ClassVar[InvoiceLineKind]
    INVOICE_LINE_KIND_SUBSCRIPTION: _ClassVar[InvoiceLineKind]
    INVOICE_LINE_KIND_USAGE: _ClassVar[InvoiceLineKind]
    INVOICE_LINE_KIND_PRORATION: _ClassVar[InvoiceLineKind]
    INVOICE_LINE_KIND_CREDIT: _ClassVar[InvoiceLineKind]
    INVOICE_LINE_KIND_TAX: _ClassVar[InvoiceLineKind]

class EscrowRejectionReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ESCROW_REJECTION_REASON_UNSPECIFIED: _ClassVar[EscrowRejectionReason]
    ESCROW_REJECTION_REASON_INSUFFICIENT_FUNDS: _ClassVar[EscrowRejectionReason]
    ESCROW_REJECTION_REASON_NO_PAYMENT_METHOD: _ClassVar[EscrowRejectionReason]
    ESCROW_REJECTION_REASON_LIMIT_EXCEEDED: _ClassVar[EscrowRejectionReason]
    ESCROW_REJECTION_REASON_ORG_SUSPENDED: _ClassVar[EscrowRejectionReason]

class EscrowRefundReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ESCROW_REFUND_REASON_UNSPECIFIED: _ClassVar[EscrowRefundReason]
    ESCROW_REFUND_REASON_JOB_FAILED: _ClassVar[EscrowRefundReason]
    ESCROW_REFUND_REASON_JOB_CANCELED: _ClassVar[EscrowRefundReason]
    ESCROW_REFUND_REASON_NOT_PLACED: _ClassVar[EscrowRefundReason]
    ESCROW_REFUND_REASON_EXPIRED: _ClassVar[EscrowRefundReason]

class PayeeKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PAYEE_KIND_UNSPECIFIED: _ClassVar[PayeeKind]
    PAYEE_KIND_GPU_PROVIDER: _ClassVar[PayeeKind]
    PAYEE_KIND_CREATOR: _ClassVar[PayeeKind]
BILLING_INTERVAL_UNSPECIFIED: BillingInterval
BILLING_INTERVAL_MONTHLY: BillingInterval
BILLING_INTERVAL_YEARLY: BillingInterval
QUOTA_REJECTION_REASON_UNSPECIFIED: QuotaRejectionReason
QUOTA_REJECTION_REASON_EXCEEDED: QuotaRejectionReason
QUOTA_REJECTION_REASON_NO_SUBSCRIPTION: QuotaRejectionReason
QUOTA_REJECTION_REASON_METER_NOT_IN_PLAN: QuotaRejectionReason
QUOTA_REJECTION_REASON_ORG_SUSPENDED: QuotaRejectionReason
QUOTA_RELEASE_REASON_UNSPECIFIED: QuotaReleaseReason
QUOTA_RELEASE_REASON_FAILED: QuotaReleaseReason
QUOTA_RELEASE_REASON_CANCELED: QuotaReleaseReason
QUOTA_RELEASE_REASON_EXPIRED: QuotaReleaseReason
INVOICE_LINE_KIND_UNSPECIFIED: InvoiceLineKind
INVOICE_LINE_KIND_SUBSCRIPTION: InvoiceLineKind
INVOICE_LINE_KIND_USAGE: InvoiceLineKind
INVOICE_LINE_KIND_PRORATION: InvoiceLineKind
INVOICE_LINE_KIND_CREDIT: InvoiceLineKind
INVOICE_LINE_KIND_TAX: InvoiceLineKind
ESCROW_REJECTION_REASON_UNSPECIFIED: EscrowRejectionReason
ESCROW_REJECTION_REASON_INSUFFICIENT_FUNDS: EscrowRejectionReason
ESCROW_REJECTION_REASON_NO_PAYMENT_METHOD: EscrowRejectionReason
ESCROW_REJECTION_REASON_LIMIT_EXCEEDED: EscrowRejectionReason
ESCROW_REJECTION_REASON_ORG_SUSPENDED: EscrowRejectionReason
ESCROW_REFUND_REASON_UNSPECIFIED: EscrowRefundReason
ESCROW_REFUND_REASON_JOB_FAILED: EscrowRefundReason
ESCROW_REFUND_REASON_JOB_CANCELED: EscrowRefundReason
ESCROW_REFUND_REASON_NOT_PLACED: EscrowRefundReason
ESCROW_REFUND_REASON_EXPIRED: EscrowRefundReason
PAYEE_KIND_UNSPECIFIED: PayeeKind
PAYEE_KIND_GPU_PROVIDER: PayeeKind
PAYEE_KIND_CREATOR: PayeeKind

class QuotaLimit(_message.Message):
    __slots__ = ("meter", "limit", "overage_allowed")
    METER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OVERAGE_ALLOWED_FIELD_NUMBER: _ClassVar[int]
    meter: str
    limit: int
    overage_allowed: bool
    def __init__(self, meter: _Optional[str] = ..., limit: _Optional[int] = ..., overage_allowed: _Optional[bool] = ...) -> None: ...

class InvoiceLine(_message.Message):
    __slots__ = ("kind", "description", "meter", "quantity", "amount")
    KIND_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    METER_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    kind: InvoiceLineKind
    description: str
    meter: str
    quantity: int
    amount: _money_pb2.Money
    def __init__(self, kind: _Optional[_Union[InvoiceLineKind, str]] = ..., description: _Optional[str] = ..., meter: _Optional[str] = ..., quantity: _Optional[int] = ..., amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ...) -> None: ...

class ProviderShare(_message.Message):
    __slots__ = ("provider_id", "provider_org_id", "gpu_minutes", "gross", "net")
    PROVIDER_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_ORG_ID_FIELD_NUMBER: _ClassVar[int]
    GPU_MINUTES_FIELD_NUMBER: _ClassVar[int]
    GROSS_FIELD_NUMBER: _ClassVar[int]
    NET_FIELD_NUMBER: _ClassVar[int]
    provider_id: str
    provider_org_id: str
    gpu_minutes: int
    gross: _money_pb2.Money
    net: _money_pb2.Money
    def __init__(self, provider_id: _Optional[str] = ..., provider_org_id: _Optional[str] = ..., gpu_minutes: _Optional[int] = ..., gross: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., net: _Optional[_Union[_money_pb2.Money, _Mapping]] = ...) -> None: ...
