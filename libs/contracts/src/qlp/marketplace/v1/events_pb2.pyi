import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from qlp.common.v1 import actor_pb2 as _actor_pb2
from qlp.common.v1 import money_pb2 as _money_pb2
from qlp.marketplace.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListingPublished(_message.Message):
    __slots__ = ("org_id", "listing_id", "kind", "title", "summary", "price", "creator_share_bps", "platform_fee_bps", "version", "artifact_id", "tags", "published_at", "actor")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    LISTING_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    CREATOR_SHARE_BPS_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FEE_BPS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_ID_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_AT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    listing_id: str
    kind: _types_pb2.ListingKind
    title: str
    summary: str
    price: _money_pb2.Money
    creator_share_bps: int
    platform_fee_bps: int
    version: str
    artifact_id: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    published_at: _timestamp_pb2.Timestamp
    actor: _actor_pb2.Actor
    def __init__(self, org_id: _Optional[str] = ..., listing_id: _Optional[str] = ..., kind: _Optional[_Union[_types_pb2.ListingKind, str]] = ..., title: _Optional[str] = ..., summary: _Optional[str] = ..., price: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., creator_share_bps: _Optional[int] = ..., platform_fee_bps: _Optional[int] = ..., version: _Optional[str] = ..., artifact_id: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., published_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actor: _Optional[_Union[_actor_pb2.Actor, _Mapping]] = ...) -> None: ...

class ListingUpdated(_message.Message):
    __slots__ = ("org_id", "listing_id", "kind", "title", "summary", "price", "creator_share_bps", "platform_fee_bps", "version", "artifact_id", "tags", "status", "changed_fields", "updated_at", "actor", "category", "license", "private_to_org_id", "sponsored")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    LISTING_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    CREATOR_SHARE_BPS_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FEE_BPS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_ID_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELDS_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    LICENSE_FIELD_NUMBER: _ClassVar[int]
    PRIVATE_TO_ORG_ID_FIELD_NUMBER: _ClassVar[int]
    SPONSORED_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    listing_id: str
    kind: _types_pb2.ListingKind
    title: str
    summary: str
    price: _money_pb2.Money
    creator_share_bps: int
    platform_fee_bps: int
    version: str
    artifact_id: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    status: _types_pb2.ListingStatus
    changed_fields: _containers.RepeatedScalarFieldContainer[str]
    updated_at: _timestamp_pb2.Timestamp
    actor: _actor_pb2.Actor
    category: _types_pb2.ListingCategory
    license: str
    private_to_org_id: str
    sponsored: bool
    def __init__(self, org_id: _Optional[str] = ..., listing_id: _Optional[str] = ..., kind: _Optional[_Union[_types_pb2.ListingKind, str]] = ..., title: _Optional[str] = ..., summary: _Optional[str] = ..., price: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., creator_share_bps: _Optional[int] = ..., platform_fee_bps: _Optional[int] = ..., version: _Optional[str] = ..., artifact_id: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., status: _Optional[_Union[_types_pb2.ListingStatus, str]] = ..., changed_fields: _Optional[_Iterable[str]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actor: _Optional[_Union[_actor_pb2.Actor, _Mapping]] = ..., category: _Optional[_Union[_types_pb2.ListingCategory, str]] = ..., license: _Optional[str] = ..., private_to_org_id: _Optional[str] = ..., sponsored: _Optional[bool] = ...) -> None: ...

class PurchaseRequested(_message.Message):
    __slots__ = ("org_id", "purchase_id", "listing_id", "listing_version", "seller_org_id", "price", "creator_share_bps", "platform_fee_bps", "requested_at", "actor")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    PURCHASE_ID_FIELD_NUMBER: _ClassVar[int]
    LISTING_ID_FIELD_NUMBER: _ClassVar[int]
    LISTING_VERSION_FIELD_NUMBER: _ClassVar[int]
    SELLER_ORG_ID_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    CREATOR_SHARE_BPS_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FEE_BPS_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_AT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    purchase_id: str
    listing_id: str
    listing_version: str
    seller_org_id: str
    price: _money_pb2.Money
    creator_share_bps: int
    platform_fee_bps: int
    requested_at: _timestamp_pb2.Timestamp
    actor: _actor_pb2.Actor
    def __init__(self, org_id: _Optional[str] = ..., purchase_id: _Optional[str] = ..., listing_id: _Optional[str] = ..., listing_version: _Optional[str] = ..., seller_org_id: _Optional[str] = ..., price: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., creator_share_bps: _Optional[int] = ..., platform_fee_bps: _Optional[int] = ..., requested_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actor: _Optional[_Union[_actor_pb2.Actor, _Mapping]] = ...) -> None: ...

class PurchaseCompleted(_message.Message):
    __slots__ = ("org_id", "purchase_id", "listing_id", "seller_org_id", "price", "creator_amount", "platform_fee", "payment_id", "completed_at")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    PURCHASE_ID_FIELD_NUMBER: _ClassVar[int]
    LISTING_ID_FIELD_NUMBER: _ClassVar[int]
    SELLER_ORG_ID_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    CREATOR_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FEE_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    purchase_id: str
    listing_id: str
    seller_org_id: str
    price: _money_pb2.Money
    creator_amount: _money_pb2.Money
    platform_fee: _money_pb2.Money
    payment_id: str
    completed_at: _timestamp_pb2.Timestamp
    def __init__(self, org_id: _Optional[str] = ..., purchase_id: _Optional[str] = ..., listing_id: _Optional[str] = ..., seller_org_id: _Optional[str] = ..., price: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., creator_amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., platform_fee: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., payment_id: _Optional[str] = ..., completed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PurchaseFailed(_message.Message):
    __slots__ = ("org_id", "purchase_id", "listing_id", "reason", "message", "payment_id", "failed_at")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    PURCHASE_ID_FIELD_NUMBER: _ClassVar[int]
    LISTING_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    FAILED_AT_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    purchase_id: str
    listing_id: str
    reason: _types_pb2.PurchaseFailureReason
    message: str
    payment_id: str
    failed_at: _timestamp_pb2.Timestamp
    def __init__(self, org_id: _Optional[str] = ..., purchase_id: _Optional[str] = ..., listing_id: _Optional[str] = ..., reason: _Optional[_Union[_types_pb2.PurchaseFailureReason, str]] = ..., message: _Optional[str] = ..., payment_id: _Optional[str] = ..., failed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ReviewPosted(_message.Message):
    __slots__ = ("org_id", "review_id", "listing_id", "purchase_id", "rating", "title", "body", "posted_at", "actor")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    REVIEW_ID_FIELD_NUMBER: _ClassVar[int]
    LISTING_ID_FIELD_NUMBER: _ClassVar[int]
    PURCHASE_ID_FIELD_NUMBER: _ClassVar[int]
    RATING_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    POSTED_AT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    review_id: str
    listing_id: str
    purchase_id: str
    rating: int
    title: str
    body: str
    posted_at: _timestamp_pb2.Timestamp
    actor: _actor_pb2.Actor
    def __init__(self, org_id: _Optional[str] = ..., review_id: _Optional[str] = ..., listing_id: _Optional[str] = ..., purchase_id: _Optional[str] = ..., rating: _Optional[int] = ..., title: _Optional[str] = ..., body: _Optional[str] = ..., posted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actor: _Optional[_Union[_actor_pb2.Actor, _Mapping]] = ...) -> None: ...

class EntitlementGranted(_message.Message):
    __slots__ = ("org_id", "entitlement_id", "listing_id", "kind", "listing_version", "purchase_id", "granted_at", "expires_at")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    ENTITLEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    LISTING_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    LISTING_VERSION_FIELD_NUMBER: _ClassVar[int]
    PURCHASE_ID_FIELD_NUMBER: _ClassVar[int]
    GRANTED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    entitlement_id: str
    listing_id: str
    kind: _types_pb2.ListingKind
    listing_version: str
    purchase_id: str
    granted_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, org_id: _Optional[str] = ..., entitlement_id: _Optional[str] = ..., listing_id: _Optional[str] = ..., kind: _Optional[_Union[_types_pb2.ListingKind, str]] = ..., listing_version: _Optional[str] = ..., purchase_id: _Optional[str] = ..., granted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListingVersionAdded(_message.Message):
    __slots__ = ("org_id", "listing_id", "version", "changelog", "artifact_id", "size_bytes", "content_type", "generation_version_id", "sha256", "added_at", "actor", "kind", "template_archive")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    LISTING_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CHANGELOG_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    GENERATION_VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    ADDED_AT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_ARCHIVE_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    listing_id: str
    version: str
    changelog: str
    artifact_id: str
    size_bytes: int
    content_type: str
    generation_version_id: str
    sha256: str
    added_at: _timestamp_pb2.Timestamp
    actor: _actor_pb2.Actor
    kind: _types_pb2.ListingKind
    template_archive: bytes
    def __init__(self, org_id: _Optional[str] = ..., listing_id: _Optional[str] = ..., version: _Optional[str] = ..., changelog: _Optional[str] = ..., artifact_id: _Optional[str] = ..., size_bytes: _Optional[int] = ..., content_type: _Optional[str] = ..., generation_version_id: _Optional[str] = ..., sha256: _Optional[str] = ..., added_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actor: _Optional[_Union[_actor_pb2.Actor, _Mapping]] = ..., kind: _Optional[_Union[_types_pb2.ListingKind, str]] = ..., template_archive: _Optional[bytes] = ...) -> None: ...

class RefundRequested(_message.Message):
    __slots__ = ("org_id", "purchase_id", "listing_id", "seller_org_id", "price", "reason", "requested_at", "actor")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    PURCHASE_ID_FIELD_NUMBER: _ClassVar[int]
    LISTING_ID_FIELD_NUMBER: _ClassVar[int]
    SELLER_ORG_ID_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_AT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    purchase_id: str
    listing_id: str
    seller_org_id: str
    price: _money_pb2.Money
    reason: str
    requested_at: _timestamp_pb2.Timestamp
    actor: _actor_pb2.Actor
    def __init__(self, org_id: _Optional[str] = ..., purchase_id: _Optional[str] = ..., listing_id: _Optional[str] = ..., seller_org_id: _Optional[str] = ..., price: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., reason: _Optional[str] = ..., requested_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actor: _Optional[_Union[_actor_pb2.Actor, _Mapping]] = ...) -> None: ...

class PurchaseRefunded(_message.Message):
    __slots__ = ("org_id", "purchase_id", "listing_id", "seller_org_id", "amount", "creator_amount", "platform_fee", "reversal_id", "refunded_at")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    PURCHASE_ID_FIELD_NUMBER: _ClassVar[int]
    LISTING_ID_FIELD_NUMBER: _ClassVar[int]
    SELLER_ORG_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CREATOR_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FEE_FIELD_NUMBER: _ClassVar[int]
    REVERSAL_ID_FIELD_NUMBER: _ClassVar[int]
    REFUNDED_AT_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    purchase_id: str
    listing_id: str
    seller_org_id: str
    amount: _money_pb2.Money
    creator_amount: _money_pb2.Money
    platform_fee: _money_pb2.Money
    reversal_id: str
    refunded_at: _timestamp_pb2.Timestamp
    def __init__(self, org_id: _Optional[str] = ..., purchase_id: _Optional[str] = ..., listing_id: _Optional[str] = ..., seller_org_id: _Optional[str] = ..., amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., creator_amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., platform_fee: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., reversal_id: _Optional[str] = ..., refunded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PurchaseRefundFailed(_message.Message):
    __slots__ = ("org_id", "purchase_id", "listing_id", "message", "failed_at")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    PURCHASE_ID_FIELD_NUMBER: _ClassVar[int]
    LISTING_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FAILED_AT_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    purchase_id: str
    listing_id: str
    message: str
    failed_at: _timestamp_pb2.Timestamp
    def __init__(self, org_id: _Optional[str] = ..., purchase_id: _Optional[str] = ..., listing_id: _Optional[str] = ..., message: _Optional[str] = ..., failed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class EntitlementRevoked(_message.Message):
    __slots__ = ("org_id", "entitlement_id", "listing_id", "purchase_id", "revoked_at")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    ENTITLEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    LISTING_ID_FIELD_NUMBER: _ClassVar[int]
    PURCHASE_ID_FIELD_NUMBER: _ClassVar[int]
    REVOKED_AT_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    entitlement_id: str
    listing_id: str
    purchase_id: str
    revoked_at: _timestamp_pb2.Timestamp
    def __init__(self, org_id: _Optional[str] = ..., entitlement_id: _Optional[str] = ..., listing_id: _Optional[str] = ..., purchase_id: _Optional[str] = ..., revoked_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
