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
    LISTING_KIND_WORKFLOW: _ClassVar[ListingKind]
    LISTING_KIND_MODEL: _ClassVar[ListingKind]

class ListingStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LISTING_STATUS_UNSPECIFIED: _ClassVar[ListingStatus]
    LISTING_STATUS_ACTIVE: _ClassVar[ListingStatus]
    LISTING_STATUS_UNLISTED: _ClassVar[ListingStatus]
    LISTING_STATUS_SUSPENDED: _ClassVar[ListingStatus]
    LISTING_STATUS_DRAFT: _ClassVar[ListingStatus]
    LISTING_STATUS_IN_REVIEW: _ClassVar[ListingStatus]
    LISTING_STATUS_DEPRECATED: _ClassVar[ListingStatus]
    LISTING_STATUS_DELISTED: _ClassVar[ListingStatus]

class ListingCategory(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LISTING_CATEGORY_UNSPECIFIED: _ClassVar[ListingCategory]
    LISTING_CATEGORY_WEB: _ClassVar[ListingCategory]
    LISTING_CATEGORY_API: _ClassVar[ListingCategory]
    LISTING_CATEGORY_DATA: _ClassVar[ListingCategory]
    LISTING_CATEGORY_ML: _ClassVar[ListingCategory]
    LISTING_CATEGORY_DEVOPS: _ClassVar[ListingCategory]
    LISTING_CATEGORY_SECURITY: _ClassVar[ListingCategory]
    LISTING_CATEGORY_PRODUCTIVITY: _ClassVar[ListingCategory]
    LISTING_CATEGORY_OTHER: _ClassVar[ListingCategory]

class PurchaseFailureReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PURCHASE_FAILURE_REASON_UNSPECIFIED: _ClassVar[PurchaseFailureReason]
    PURCHASE_FAILURE_REASON_PAYMENT_FAILED: _ClassVar[PurchaseFailureReason]
    PURCHASE_FAILURE_REASON_LISTING_UNAVAILABLE: _ClassVar[PurchaseFailureReason]
    PURCHASE_FAILURE_REASON_ALREADY_ENTITLED: _ClassVar[PurchaseFailureReason]
    PURCHASE_FAILURE_REASON_INTERNAL: _ClassVar[PurchaseFailureReason]
    PURCHASE_FAILURE_REASON_INSUFFICIENT_FUNDS: _ClassVar[PurchaseFailureReason]
LISTING_KIND_UNSPECIFIED: ListingKind
LISTING_KIND_COMPONENT: ListingKind
LISTING_KIND_TEMPLATE: ListingKind
LISTING_KIND_PATTERN_PACK: ListingKind
LISTING_KIND_SKILL: ListingKind
LISTING_KIND_WORKFLOW: ListingKind
LISTING_KIND_MODEL: ListingKind
LISTING_STATUS_UNSPECIFIED: ListingStatus
LISTING_STATUS_ACTIVE: ListingStatus
LISTING_STATUS_UNLISTED: ListingStatus
LISTING_STATUS_SUSPENDED: ListingStatus
LISTING_STATUS_DRAFT: ListingStatus
LISTING_STATUS_IN_REVIEW: ListingStatus
LISTING_STATUS_DEPRECATED: ListingStatus
LISTING_STATUS_DELISTED: ListingStatus
LISTING_CATEGORY_UNSPECIFIED: ListingCategory
LISTING_CATEGORY_WEB: ListingCategory
LISTING_CATEGORY_API: ListingCategory
LISTING_CATEGORY_DATA: ListingCategory
LISTING_CATEGORY_ML: ListingCategory
LISTING_CATEGORY_DEVOPS: ListingCategory
LISTING_CATEGORY_SECURITY: ListingCategory
LISTING_CATEGORY_PRODUCTIVITY: ListingCategory
LISTING_CATEGORY_OTHER: ListingCategory
PURCHASE_FAILURE_REASON_UNSPECIFIED: PurchaseFailureReason
PURCHASE_FAILURE_REASON_PAYMENT_FAILED: PurchaseFailureReason
PURCHASE_FAILURE_REASON_LISTING_UNAVAILABLE: PurchaseFailureReason
PURCHASE_FAILURE_REASON_ALREADY_ENTITLED: PurchaseFailureReason
PURCHASE_FAILURE_REASON_INTERNAL: PurchaseFailureReason
PURCHASE_FAILURE_REASON_INSUFFICIENT_FUNDS: PurchaseFailureReason
