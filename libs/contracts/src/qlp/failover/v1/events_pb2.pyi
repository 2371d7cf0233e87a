import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from qlp.failover.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ProviderSuspected(_message.Message):
    __slots__ = ("org_id", "provider_id", "last_heartbeat_at", "missed_heartbeats", "affected_job_ids", "suspected_at")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARTBEAT_AT_FIELD_NUMBER: _ClassVar[int]
    MISSED_HEARTBEATS_FIELD_NUMBER: _ClassVar[int]
    AFFECTED_JOB_IDS_FIELD_NUMBER: _ClassVar[int]
    SUSPECTED_AT_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    provider_id: str
    last_heartbeat_at: _timestamp_pb2.Timestamp
    missed_heartbeats: int
    affected_job_ids: _containers.RepeatedScalarFieldContainer[str]
    suspected_at: _timestamp_pb2.Timestamp
    def __init__(self, org_id: _Optional[str] = ..., provider_id: _Optional[str] = ..., last_heartbeat_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., missed_heartbeats: _Optional[int] = ..., affected_job_ids: _Optional[_Iterable[str]] = ..., suspected_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ProviderDead(_message.Message):
    __slots__ = ("org_id", "provider_id", "last_heartbeat_at", "affected_job_ids", "declared_at")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARTBEAT_AT_FIELD_NUMBER: _ClassVar[int]
    AFFECTED_JOB_IDS_FIELD_NUMBER: _ClassVar[int]
    DECLARED_AT_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    provider_id: str
    last_heartbeat_at: _timestamp_pb2.Timestamp
    affected_job_ids: _containers.RepeatedScalarFieldContainer[str]
    declared_at: _timestamp_pb2.Timestamp
    def __init__(self, org_id: _Optional[str] = ..., provider_id: _Optional[str] = ..., last_heartbeat_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., affected_job_ids: _Optional[_Iterable[str]] = ..., declared_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class FailoverStarted(_message.Message):
    __slots__ = ("org_id", "job_id", "failover_id", "failed_provider_id", "standby_provider_id", "old_epoch", "reason", "started_at")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    FAILOVER_ID_FIELD_NUMBER: _ClassVar[int]
    FAILED_PROVIDER_ID_FIELD_NUMBER: _ClassVar[int]
    STANDBY_PROVIDER_ID_FIELD_NUMBER: _ClassVar[int]
    OLD_EPOCH_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    job_id: str
    failover_id: str
    failed_provider_id: str
    standby_provider_id: str
    old_epoch: int
    reason: str
    started_at: _timestamp_pb2.Timestamp
    def __init__(self, org_id: _Optional[str] = ..., job_id: _Optional[str] = ..., failover_id: _Optional[str] = ..., failed_provider_id: _Optional[str] = ..., standby_provider_id: _Optional[str] = ..., old_epoch: _Optional[int] = ..., reason: _Optional[str] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class StandbyPromoted(_message.Message):
    __slots__ = ("org_id", "job_id", "failover_id", "provider_id", "previous_provider_id", "new_epoch", "checkpoint_id", "checkpoint_step", "lease_id", "promoted_at")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    FAILOVER_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_ID_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_PROVIDER_ID_FIELD_NUMBER: _ClassVar[int]
    NEW_EPOCH_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_STEP_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    PROMOTED_AT_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    job_id: str
    failover_id: str
    provider_id: str
    previous_provider_id: str
    new_epoch: int
    checkpoint_id: str
    checkpoint_step: int
    lease_id: str
    promoted_at: _timestamp_pb2.Timestamp
    def __init__(self, org_id: _Optional[str] = ..., job_id: _Optional[str] = ..., failover_id: _Optional[str] = ..., provider_id: _Optional[str] = ..., previous_provider_id: _Optional[str] = ..., new_epoch: _Optional[int] = ..., checkpoint_id: _Optional[str] = ..., checkpoint_step: _Optional[int] = ..., lease_id: _Optional[str] = ..., promoted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class FailoverCompleted(_message.Message):
    __slots__ = ("org_id", "job_id", "failover_id", "primary_provider_id", "standby_provider_id", "epoch", "checkpoint_id", "duration_ms", "completed_at")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    FAILOVER_ID_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_PROVIDER_ID_FIELD_NUMBER: _ClassVar[int]
    STANDBY_PROVIDER_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    job_id: str
    failover_id: str
    primary_provider_id: str
    standby_provider_id: str
    epoch: int
    checkpoint_id: str
    duration_ms: int
    completed_at: _timestamp_pb2.Timestamp
    def __init__(self, org_id: _Optional[str] = ..., job_id: _Optional[str] = ..., failover_id: _Optional[str] = ..., primary_provider_id: _Optional[str] = ..., standby_provider_id: _Optional[str] = ..., epoch: _Optional[int] = ..., checkpoint_id: _Optional[str] = ..., duration_ms: _Optional[int] = ..., completed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class FailoverFailed(_message.Message):
    __slots__ = ("org_id", "job_id", "failover_id", "failed_provider_id", "epoch", "reason", "message", "failed_at")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    FAILOVER_ID_FIELD_NUMBER: _ClassVar[int]
    FAILED_PROVIDER_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FAILED_AT_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    job_id: str
    failover_id: str
    failed_provider_id: str
    epoch: int
    reason: _types_pb2.FailoverFailureReason
    message: str
    failed_at: _timestamp_pb2.Timestamp
    def __init__(self, org_id: _Optional[str] = ..., job_id: _Optional[str] = ..., failover_id: _Optional[str] = ..., failed_provider_id: _Optional[str] = ..., epoch: _Optional[int] = ..., reason: _Optional[_Union[_types_pb2.FailoverFailureReason, str]] = ..., message: _Optional[str] = ..., failed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ProviderAlive(_message.Message):
    __slots__ = ("org_id", "provider_id", "received_at", "leases", "receiver")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_ID_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_FIELD_NUMBER: _ClassVar[int]
    LEASES_FIELD_NUMBER: _ClassVar[int]
    RECEIVER_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    provider_id: str
    received_at: _timestamp_pb2.Timestamp
    leases: _containers.RepeatedCompositeFieldContainer[_types_pb2.HeldLease]
    receiver: str
    def __init__(self, org_id: _Optional[str] = ..., provider_id: _Optional[str] = ..., received_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., leases: _Optional[_Iterable[_Union[_types_pb2.HeldLease, _Mapping]]] = ..., receiver: _Optional[str] = ...) -> None: ...

class ProviderRecovered(_message.Message):
    __slots__ = ("org_id", "provider_id", "previous_state", "silent_ms", "recovered_at")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_ID_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_STATE_FIELD_NUMBER: _ClassVar[int]
    SILENT_MS_FIELD_NUMBER: _ClassVar[int]
    RECOVERED_AT_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    provider_id: str
    previous_state: str
    silent_ms: int
    recovered_at: _timestamp_pb2.Timestamp
    def __init__(self, org_id: _Optional[str] = ..., provider_id: _Optional[str] = ..., previous_state: _Optional[str] = ..., silent_ms: _Optional[int] = ..., recovered_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
