from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from typing import ClassVar as _ClassVar

DESCRIPTOR: _descriptor.FileDescriptor

class ListingKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LISTING_KIND_UNSPECIFIED: _ClassVar[ListingKind]
    LISTING_KIND_COMPONENT: _ClassVar[ListingKind]
    LISTING_KIND_TEMPLATE: _ClassVar[ListingKind]
    LISTING_KIND_PATTERN_PACK: _ClassVar[ListingKind]
    LISTING_KIND_SKILL: _ClassVar[ListingKind]

class ListingStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LISTING_STATUS_UNSPECIFIED: _ClassVar[ListingStatus]
    LISTING_STATUS_ACTIVE: _ClassVar[ListingStatus]
    LISTING_STATUS_UNLISTED: _ClassVar[ListingStatus]
    LISTING_STATUS_SUSPENDED: _ClassVar[ListingStatus]

class PurchaseFailureReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PURCHASE_FAILURE_REASON_UNSPECIFIED: _ClassVar[PurchaseFailureReason]
    PURCHASE_FAILURE_REASON_PAYMENT_FAILED: _ClassVar[PurchaseFailureReason]
    PURCHASE_FAILURE_REASON_LISTING_UNAVAILABLE: _ClassVar[PurchaseFailureReason]
    PURCHASE_FAILURE_REASON_ALREADY_ENTITLED: _ClassVar[PurchaseFailureReason]
    PURCHASE_FAILURE_REASON_INTERNAL: _ClassVar[PurchaseFailureReason]
LISTING_KIND_UNSPECIFIED: ListingKind
LISTING_KIND_COMPONENT: ListingKind
LISTING_KIND_TEMPLATE: ListingKind
LISTING_KIND_PATTERN_PACK: ListingKind
LISTING_KIND_SKILL: ListingKind
LISTING_STATUS_UNSPECIFIED: ListingStatus
LISTING_STATUS_ACTIVE: ListingStatus
LISTING_STATUS_UNLISTED: ListingStatus
LISTING_STATUS_SUSPENDED: ListingStatus
PURCHASE_FAILURE_REASON_UNSPECIFIED: PurchaseFailureReason
PURCHASE_FAILURE_REASON_PAYMENT_FAILED: PurchaseFailureReason
PURCHASE_FAILURE_REASON_LISTING_UNAVAILABLE: PurchaseFailureReason
PURCHASE_FAILURE_REASON_ALREADY_ENTITLED: PurchaseFailureReason
PURCHASE_FAILURE_REASON_INTERNAL: PurchaseFailureReason
