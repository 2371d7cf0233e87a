import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from qlp.common.v1 import actor_pb2 as _actor_pb2
from qlp.identity.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class OrgCreated(_message.Message):
    __slots__ = ("org_id", "name", "slug", "owner_user_id", "billing_email", "created_at", "actor")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SLUG_FIELD_NUMBER: _ClassVar[int]
    OWNER_USER_ID_FIELD_NUMBER: _ClassVar[int]
    BILLING_EMAIL_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    name: str
    slug: str
    owner_user_id: str
    billing_email: str
    created_at: _timestamp_pb2.Timestamp
    actor: _actor_pb2.Actor
    def __init__(self, org_id: _Optional[str] = ..., name: _Optional[str] = ..., slug: _Optional[str] = ..., owner_user_id: _Optional[str] = ..., billing_email: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actor: _Optional[_Union[_actor_pb2.Actor, _Mapping]] = ...) -> None: ...

class UserCreated(_message.Message):
    __slots__ = ("org_id", "user_id", "email", "display_name", "email_verified", "created_at", "actor")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    EMAIL_VERIFIED_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    user_id: str
    email: str
    display_name: str
    email_verified: bool
    created_at: _timestamp_pb2.Timestamp
    actor: _actor_pb2.Actor
    def __init__(self, org_id: _Optional[str] = ..., user_id: _Optional[str] = ..., email: _Optional[str] = ..., display_name: _Optional[str] = ..., email_verified: _Optional[bool] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actor: _Optional[_Union[_actor_pb2.Actor, _Mapping]] = ...) -> None: ...

class MemberAdded(_message.Message):
    __slots__ = ("org_id", "user_id", "role", "invitation_id", "added_at", "actor")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    INVITATION_ID_FIELD_NUMBER: _ClassVar[int]
    ADDED_AT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    user_id: str
    role: _types_pb2.Role
    invitation_id: str
    added_at: _timestamp_pb2.Timestamp
    actor: _actor_pb2.Actor
    def __init__(self, org_id: _Optional[str] = ..., user_id: _Optional[str] = ..., role: _Optional[_Union[_types_pb2.Role, str]] = ..., invitation_id: _Optional[str] = ..., added_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actor: _Optional[_Union[_actor_pb2.Actor, _Mapping]] = ...) -> None: ...

class MemberRemoved(_message.Message):
    __slots__ = ("org_id", "user_id", "role", "reason", "removed_at", "actor")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REMOVED_AT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    user_id: str
    role: _types_pb2.Role
    reason: str
    removed_at: _timestamp_pb2.Timestamp
    actor: _actor_pb2.Actor
    def __init__(self, org_id: _Optional[str] = ..., user_id: _Optional[str] = ..., role: _Optional[_Union[_types_pb2.Role, str]] = ..., reason: _Optional[str] = ..., removed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actor: _Optional[_Union[_actor_pb2.Actor, _Mapping]] = ...) -> None: ...

class RoleChanged(_message.Message):
    __slots__ = ("org_id", "user_id", "old_role", "new_role", "changed_at", "actor")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    OLD_ROLE_FIELD_NUMBER: _ClassVar[int]
    NEW_ROLE_FIELD_NUMBER: _ClassVar[int]
    CHANGED_AT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    user_id: str
    old_role: _types_pb2.Role
    new_role: _types_pb2.Role
    changed_at: _timestamp_pb2.Timestamp
    actor: _actor_pb2.Actor
    def __init__(self, org_id: _Optional[str] = ..., user_id: _Optional[str] = ..., old_role: _Optional[_Union[_types_pb2.Role, str]] = ..., new_role: _Optional[_Union[_types_pb2.Role, str]] = ..., changed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actor: _Optional[_Union[_actor_pb2.Actor, _Mapping]] = ...) -> None: ...

class PlatformAdminChanged(_message.Message):
    __slots__ = ("org_id", "user_id", "platform_admin", "changed_at", "actor")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_ADMIN_FIELD_NUMBER: _ClassVar[int]
    CHANGED_AT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    user_id: str
    platform_admin: bool
    changed_at: _timestamp_pb2.Timestamp
    actor: _actor_pb2.Actor
    def __init__(self, org_id: _Optional[str] = ..., user_id: _Optional[str] = ..., platform_admin: _Optional[bool] = ..., changed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actor: _Optional[_Union[_actor_pb2.Actor, _Mapping]] = ...) -> None: ...

class ApiKeyCreated(_message.Message):
    __slots__ = ("org_id", "api_key_id", "name", "prefix", "scopes", "user_id", "created_at", "expires_at", "actor")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    API_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    api_key_id: str
    name: str
    prefix: str
    scopes: _containers.RepeatedScalarFieldContainer[str]
    user_id: str
    created_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    actor: _actor_pb2.Actor
    def __init__(self, org_id: _Optional[str] = ..., api_key_id: _Optional[str] = ..., name: _Optional[str] = ..., prefix: _Optional[str] = ..., scopes: _Optional[_Iterable[str]] = ..., user_id: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actor: _Optional[_Union[_actor_pb2.Actor, _Mapping]] = ...) -> None: ...

class ApiKeyRevoked(_message.Message):
    __slots__ = ("org_id", "api_key_id", "reason", "revoked_at", "actor")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    API_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REVOKED_AT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    api_key_id: str
    reason: str
    revoked_at: _timestamp_pb2.Timestamp
    actor: _actor_pb2.Actor
    def __init__(self, org_id: _Optional[str] = ..., api_key_id: _Optional[str] = ..., reason: _Optional[str] = ..., revoked_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actor: _Optional[_Union[_actor_pb2.Actor, _Mapping]] = ...) -> None: ...

class UserLockedOut(_message.Message):
    __slots__ = ("org_id", "user_id", "reason", "failed_attempts", "locked_at", "locked_until", "actor")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    FAILED_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    LOCKED_AT_FIELD_NUMBER: _ClassVar[int]
    LOCKED_UNTIL_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    user_id: str
    reason: _types_pb2.LockoutReason
    failed_attempts: int
    locked_at: _timestamp_pb2.Timestamp
    locked_until: _timestamp_pb2.Timestamp
    actor: _actor_pb2.Actor
    def __init__(self, org_id: _Optional[str] = ..., user_id: _Optional[str] = ..., reason: _Optional[_Union[_types_pb2.LockoutReason, str]] = ..., failed_attempts: _Optional[int] = ..., locked_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., locked_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actor: _Optional[_Union[_actor_pb2.Actor, _Mapping]] = ...) -> None: ...
