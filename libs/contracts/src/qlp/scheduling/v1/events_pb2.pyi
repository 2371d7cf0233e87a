import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from qlp.common.v1 import actor_pb2 as _actor_pb2
from qlp.common.v1 import money_pb2 as _money_pb2
from qlp.scheduling.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ProviderRegistered(_message.Message):
    __slots__ = ("org_id", "provider_id", "display_name", "region", "gpus", "cpu_cores", "memory_mib", "agent_version", "simulated", "labels", "registered_at")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    CPU_CORES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MIB_FIELD_NUMBER: _ClassVar[int]
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    SIMULATED_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_AT_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    provider_id: str
    display_name: str
    region: str
    gpus: _containers.RepeatedCompositeFieldContainer[_types_pb2.GpuDevice]
    cpu_cores: int
    memory_mib: int
    agent_version: str
    simulated: bool
    labels: _containers.ScalarMap[str, str]
    registered_at: _timestamp_pb2.Timestamp
    def __init__(self, org_id: _Optional[str] = ..., provider_id: _Optional[str] = ..., display_name: _Optional[str] = ..., region: _Optional[str] = ..., gpus: _Optional[_Iterable[_Union[_types_pb2.GpuDevice, _Mapping]]] = ..., cpu_cores: _Optional[int] = ..., memory_mib: _Optional[int] = ..., agent_version: _Optional[str] = ..., simulated: _Optional[bool] = ..., labels: _Optional[_Mapping[str, str]] = ..., registered_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ProviderHeartbeat(_message.Message):
    __slots__ = ("org_id", "provider_id", "sequence", "gpus", "leases", "healthy", "simulated", "sent_at", "received_at")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    LEASES_FIELD_NUMBER: _ClassVar[int]
    HEALTHY_FIELD_NUMBER: _ClassVar[int]
    SIMULATED_FIELD_NUMBER: _ClassVar[int]
    SENT_AT_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    provider_id: str
    sequence: int
    gpus: _containers.RepeatedCompositeFieldContainer[_types_pb2.GpuStatus]
    leases: _containers.RepeatedCompositeFieldContainer[_types_pb2.LeaseStatus]
    healthy: bool
    simulated: bool
    sent_at: _timestamp_pb2.Timestamp
    received_at: _timestamp_pb2.Timestamp
    def __init__(self, org_id: _Optional[str] = ..., provider_id: _Optional[str] = ..., sequence: _Optional[int] = ..., gpus: _Optional[_Iterable[_Union[_types_pb2.GpuStatus, _Mapping]]] = ..., leases: _Optional[_Iterable[_Union[_types_pb2.LeaseStatus, _Mapping]]] = ..., healthy: _Optional[bool] = ..., simulated: _Optional[bool] = ..., sent_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., received_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class OfferPublished(_message.Message):
    __slots__ = ("org_id", "offer_id", "provider_id", "gpu_model", "gpu_count", "gpu_memory_mib", "region", "price_per_gpu_hour", "min_duration_minutes", "max_duration_minutes", "simulated", "available_until", "published_at", "available_gpus", "reliability_bps", "containers")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    OFFER_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_ID_FIELD_NUMBER: _ClassVar[int]
    GPU_MODEL_FIELD_NUMBER: _ClassVar[int]
    GPU_COUNT_FIELD_NUMBER: _ClassVar[int]
    GPU_MEMORY_MIB_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    PRICE_PER_GPU_HOUR_FIELD_NUMBER: _ClassVar[int]
    MIN_DURATION_MINUTES_FIELD_NUMBER: _ClassVar[int]
    MAX_DURATION_MINUTES_FIELD_NUMBER: _ClassVar[int]
    SIMULATED_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_UNTIL_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_AT_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_GPUS_FIELD_NUMBER: _ClassVar[int]
    RELIABILITY_BPS_FIELD_NUMBER: _ClassVar[int]
    CONTAINERS_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    offer_id: str
    provider_id: str
    gpu_model: str
    gpu_count: int
    gpu_memory_mib: int
    region: str
    price_per_gpu_hour: _money_pb2.Money
    min_duration_minutes: int
    max_duration_minutes: int
    simulated: bool
    available_until: _timestamp_pb2.Timestamp
    published_at: _timestamp_pb2.Timestamp
    available_gpus: int
    reliability_bps: int
    containers: bool
    def __init__(self, org_id: _Optional[str] = ..., offer_id: _Optional[str] = ..., provider_id: _Optional[str] = ..., gpu_model: _Optional[str] = ..., gpu_count: _Optional[int] = ..., gpu_memory_mib: _Optional[int] = ..., region: _Optional[str] = ..., price_per_gpu_hour: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., min_duration_minutes: _Optional[int] = ..., max_duration_minutes: _Optional[int] = ..., simulated: _Optional[bool] = ..., available_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., published_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., available_gpus: _Optional[int] = ..., reliability_bps: _Optional[int] = ..., containers: _Optional[bool] = ...) -> None: ...

class OfferAvailabilityChanged(_message.Message):
    __slots__ = ("org_id", "offer_id", "provider_id", "available_gpus", "gpu_count", "reliability_bps", "status", "revision", "changed_at")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    OFFER_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_ID_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_GPUS_FIELD_NUMBER: _ClassVar[int]
    GPU_COUNT_FIELD_NUMBER: _ClassVar[int]
    RELIABILITY_BPS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    CHANGED_AT_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    offer_id: str
    provider_id: str
    available_gpus: int
    gpu_count: int
    reliability_bps: int
    status: str
    revision: int
    changed_at: _timestamp_pb2.Timestamp
    def __init__(self, org_id: _Optional[str] = ..., offer_id: _Optional[str] = ..., provider_id: _Optional[str] = ..., available_gpus: _Optional[int] = ..., gpu_count: _Optional[int] = ..., reliability_bps: _Optional[int] = ..., status: _Optional[str] = ..., revision: _Optional[int] = ..., changed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class OfferWithdrawn(_message.Message):
    __slots__ = ("org_id", "offer_id", "provider_id", "reason", "withdrawn_at")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    OFFER_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    WITHDRAWN_AT_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    offer_id: str
    provider_id: str
    reason: str
    withdrawn_at: _timestamp_pb2.Timestamp
    def __init__(self, org_id: _Optional[str] = ..., offer_id: _Optional[str] = ..., provider_id: _Optional[str] = ..., reason: _Optional[str] = ..., withdrawn_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class JobSubmitted(_message.Message):
    __slots__ = ("org_id", "job_id", "offer_id", "requirements", "image", "command", "env", "max_duration_minutes", "hot_standby", "checkpoint_interval_seconds", "max_price_per_gpu_hour", "submitted_at", "actor")
    class EnvEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    OFFER_ID_FIELD_NUMBER: _ClassVar[int]
    REQUIREMENTS_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    MAX_DURATION_MINUTES_FIELD_NUMBER: _ClassVar[int]
    HOT_STANDBY_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_INTERVAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_PRICE_PER_GPU_HOUR_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_AT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    job_id: str
    offer_id: str
    requirements: _types_pb2.GpuRequirements
    image: str
    command: _containers.RepeatedScalarFieldContainer[str]
    env: _containers.ScalarMap[str, str]
    max_duration_minutes: int
    hot_standby: bool
    checkpoint_interval_seconds: int
    max_price_per_gpu_hour: _money_pb2.Money
    submitted_at: _timestamp_pb2.Timestamp
    actor: _actor_pb2.Actor
    def __init__(self, org_id: _Optional[str] = ..., job_id: _Optional[str] = ..., offer_id: _Optional[str] = ..., requirements: _Optional[_Union[_types_pb2.GpuRequirements, _Mapping]] = ..., image: _Optional[str] = ..., command: _Optional[_Iterable[str]] = ..., env: _Optional[_Mapping[str, str]] = ..., max_duration_minutes: _Optional[int] = ..., hot_standby: _Optional[bool] = ..., checkpoint_interval_seconds: _Optional[int] = ..., max_price_per_gpu_hour: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., submitted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actor: _Optional[_Union[_actor_pb2.Actor, _Mapping]] = ...) -> None: ...

class EscrowHoldRequested(_message.Message):
    __slots__ = ("org_id", "job_id", "escrow_id", "amount", "platform_fee_bps", "requested_at")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ESCROW_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FEE_BPS_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_AT_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    job_id: str
    escrow_id: str
    amount: _money_pb2.Money
    platform_fee_bps: int
    requested_at: _timestamp_pb2.Timestamp
    def __init__(self, org_id: _Optional[str] = ..., job_id: _Optional[str] = ..., escrow_id: _Optional[str] = ..., amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., platform_fee_bps: _Optional[int] = ..., requested_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class JobPlaced(_message.Message):
    __slots__ = ("org_id", "job_id", "primary", "standby", "epoch", "escrow_id", "lease_expires_at", "placed_at")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_FIELD_NUMBER: _ClassVar[int]
    STANDBY_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    ESCROW_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    PLACED_AT_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    job_id: str
    primary: _types_pb2.Assignment
    standby: _types_pb2.Assignment
    epoch: int
    escrow_id: str
    lease_expires_at: _timestamp_pb2.Timestamp
    placed_at: _timestamp_pb2.Timestamp
    def __init__(self, org_id: _Optional[str] = ..., job_id: _Optional[str] = ..., primary: _Optional[_Union[_types_pb2.Assignment, _Mapping]] = ..., standby: _Optional[_Union[_types_pb2.Assignment, _Mapping]] = ..., epoch: _Optional[int] = ..., escrow_id: _Optional[str] = ..., lease_expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., placed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class JobStarted(_message.Message):
    __slots__ = ("org_id", "job_id", "provider_id", "epoch", "checkpoint_id", "started_at")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    job_id: str
    provider_id: str
    epoch: int
    checkpoint_id: str
    started_at: _timestamp_pb2.Timestamp
    def __init__(self, org_id: _Optional[str] = ..., job_id: _Optional[str] = ..., provider_id: _Optional[str] = ..., epoch: _Optional[int] = ..., checkpoint_id: _Optional[str] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class JobProgress(_message.Message):
    __slots__ = ("org_id", "job_id", "provider_id", "epoch", "progress_bps", "step", "message", "reported_at")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_BPS_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REPORTED_AT_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    job_id: str
    provider_id: str
    epoch: int
    progress_bps: int
    step: int
    message: str
    reported_at: _timestamp_pb2.Timestamp
    def __init__(self, org_id: _Optional[str] = ..., job_id: _Optional[str] = ..., provider_id: _Optional[str] = ..., epoch: _Optional[int] = ..., progress_bps: _Optional[int] = ..., step: _Optional[int] = ..., message: _Optional[str] = ..., reported_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CheckpointWritten(_message.Message):
    __slots__ = ("org_id", "job_id", "checkpoint_id", "provider_id", "epoch", "step", "uri", "size_bytes", "sha256", "written_at")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    URI_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    WRITTEN_AT_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    job_id: str
    checkpoint_id: str
    provider_id: str
    epoch: int
    step: int
    uri: str
    size_bytes: int
    sha256: str
    written_at: _timestamp_pb2.Timestamp
    def __init__(self, org_id: _Optional[str] = ..., job_id: _Optional[str] = ..., checkpoint_id: _Optional[str] = ..., provider_id: _Optional[str] = ..., epoch: _Optional[int] = ..., step: _Optional[int] = ..., uri: _Optional[str] = ..., size_bytes: _Optional[int] = ..., sha256: _Optional[str] = ..., written_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class JobCompleted(_message.Message):
    __slots__ = ("org_id", "job_id", "provider_id", "epoch", "exit_code", "usage", "total_gpu_minutes", "escrow_id", "result_uri", "completed_at")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_GPU_MINUTES_FIELD_NUMBER: _ClassVar[int]
    ESCROW_ID_FIELD_NUMBER: _ClassVar[int]
    RESULT_URI_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    job_id: str
    provider_id: str
    epoch: int
    exit_code: int
    usage: _containers.RepeatedCompositeFieldContainer[_types_pb2.ProviderUsage]
    total_gpu_minutes: int
    escrow_id: str
    result_uri: str
    completed_at: _timestamp_pb2.Timestamp
    def __init__(self, org_id: _Optional[str] = ..., job_id: _Optional[str] = ..., provider_id: _Optional[str] = ..., epoch: _Optional[int] = ..., exit_code: _Optional[int] = ..., usage: _Optional[_Iterable[_Union[_types_pb2.ProviderUsage, _Mapping]]] = ..., total_gpu_minutes: _Optional[int] = ..., escrow_id: _Optional[str] = ..., result_uri: _Optional[str] = ..., completed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class JobFailed(_message.Message):
    __slots__ = ("org_id", "job_id", "provider_id", "epoch", "reason", "message", "exit_code", "usage", "total_gpu_minutes", "escrow_id", "failed_at")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_GPU_MINUTES_FIELD_NUMBER: _ClassVar[int]
    ESCROW_ID_FIELD_NUMBER: _ClassVar[int]
    FAILED_AT_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    job_id: str
    provider_id: str
    epoch: int
    reason: _types_pb2.JobFailureReason
    message: str
    exit_code: int
    usage: _containers.RepeatedCompositeFieldContainer[_types_pb2.ProviderUsage]
    total_gpu_minutes: int
    escrow_id: str
    failed_at: _timestamp_pb2.Timestamp
    def __init__(self, org_id: _Optional[str] = ..., job_id: _Optional[str] = ..., provider_id: _Optional[str] = ..., epoch: _Optional[int] = ..., reason: _Optional[_Union[_types_pb2.JobFailureReason, str]] = ..., message: _Optional[str] = ..., exit_code: _Optional[int] = ..., usage: _Optional[_Iterable[_Union[_types_pb2.ProviderUsage, _Mapping]]] = ..., total_gpu_minutes: _Optional[int] = ..., escrow_id: _Optional[str] = ..., failed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class JobCanceled(_message.Message):
    __slots__ = ("org_id", "job_id", "epoch", "reason", "usage", "total_gpu_minutes", "escrow_id", "canceled_at", "actor")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_GPU_MINUTES_FIELD_NUMBER: _ClassVar[int]
    ESCROW_ID_FIELD_NUMBER: _ClassVar[int]
    CANCELED_AT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    job_id: str
    epoch: int
    reason: str
    usage: _containers.RepeatedCompositeFieldContainer[_types_pb2.ProviderUsage]
    total_gpu_minutes: int
    escrow_id: str
    canceled_at: _timestamp_pb2.Timestamp
    actor: _actor_pb2.Actor
    def __init__(self, org_id: _Optional[str] = ..., job_id: _Optional[str] = ..., epoch: _Optional[int] = ..., reason: _Optional[str] = ..., usage: _Optional[_Iterable[_Union[_types_pb2.ProviderUsage, _Mapping]]] = ..., total_gpu_minutes: _Optional[int] = ..., escrow_id: _Optional[str] = ..., canceled_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actor: _Optional[_Union[_actor_pb2.Actor, _Mapping]] = ...) -> None: ...

class LeaseRevoked(_message.Message):
    __slots__ = ("org_id", "job_id", "lease_id", "provider_id", "epoch", "reason", "revoked_at")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REVOKED_AT_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    job_id: str
    lease_id: str
    provider_id: str
    epoch: int
    reason: _types_pb2.LeaseRevocationReason
    revoked_at: _timestamp_pb2.Timestamp
    def __init__(self, org_id: _Optional[str] = ..., job_id: _Optional[str] = ..., lease_id: _Optional[str] = ..., provider_id: _Optional[str] = ..., epoch: _Optional[int] = ..., reason: _Optional[_Union[_types_pb2.LeaseRevocationReason, str]] = ..., revoked_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
