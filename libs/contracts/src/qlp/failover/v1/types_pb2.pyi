from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class FailoverFailureReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FAILOVER_FAILURE_REASON_UNSPECIFIED: _ClassVar[FailoverFailureReason]
    FAILOVER_FAILURE_REASON_NO_STANDBY: _ClassVar[FailoverFailureReason]
    FAILOVER_FAILURE_REASON_STANDBY_UNAVAILABLE: _ClassVar[FailoverFailureReason]
    FAILOVER_FAILURE_REASON_NO_CHECKPOINT: _ClassVar[FailoverFailureReason]
    FAILOVER_FAILURE_REASON_TIMEOUT: _ClassVar[FailoverFailureReason]
    FAILOVER_FAILURE_REASON_INTERNAL: _ClassVar[FailoverFailureReason]
FAILOVER_FAILURE_REASON_UNSPECIFIED: FailoverFailureReason
FAILOVER_FAILURE_REASON_NO_STANDBY: FailoverFailureReason
FAILOVER_FAILURE_REASON_STANDBY_UNAVAILABLE: FailoverFailureReason
FAILOVER_FAILURE_REASON_NO_CHECKPOINT: FailoverFailureReason
FAILOVER_FAILURE_REASON_TIMEOUT: FailoverFailureReason
FAILOVER_FAILURE_REASON_INTERNAL: FailoverFailureReason

class HeldLease(_message.Message):
    __slots__ = ("job_id", "epoch", "status", "role")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    epoch: int
    status: str
    role: str
    def __init__(self, job_id: _Optional[str] = ..., epoch: _Optional[int] = ..., status: _Optional[str] = ..., role: _Optional[str] = ...) -> None: ...
