from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from typing import ClassVar as _ClassVar

DESCRIPTOR: _descriptor.FileDescriptor

class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLE_UNSPECIFIED: _ClassVar[Role]
    ROLE_OWNER: _ClassVar[Role]
    ROLE_ADMIN: _ClassVar[Role]
    ROLE_MEMBER: _ClassVar[Role]
    ROLE_VIEWER: _ClassVar[Role]
    ROLE_BILLING: _ClassVar[Role]

class LockoutReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LOCKOUT_REASON_UNSPECIFIED: _ClassVar[LockoutReason]
    LOCKOUT_REASON_FAILED_LOGINS: _ClassVar[LockoutReason]
    LOCKOUT_REASON_ADMIN: _ClassVar[LockoutReason]
    LOCKOUT_REASON_SECURITY: _ClassVar[LockoutReason]
ROLE_UNSPECIFIED: Role
ROLE_OWNER: Role
ROLE_ADMIN: Role
ROLE_MEMBER: Role
ROLE_VIEWER: Role
ROLE_BILLING: Role
LOCKOUT_REASON_UNSPECIFIED: LockoutReason
LOCKOUT_REASON_FAILED_LOGINS: LockoutReason
LOCKOUT_REASON_ADMIN: LockoutReason
LOCKOUT_REASON_SECURITY: LockoutReason
