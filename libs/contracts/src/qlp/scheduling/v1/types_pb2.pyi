from qlp.common.v1 import money_pb2 as _money_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PlacementRole(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PLACEMENT_ROLE_UNSPECIFIED: _ClassVar[PlacementRole]
    PLACEMENT_ROLE_PRIMARY: _ClassVar[PlacementRole]
    PLACEMENT_ROLE_STANDBY: _ClassVar[PlacementRole]

class JobFailureReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_FAILURE_REASON_UNSPECIFIED: _ClassVar[JobFailureReason]
    JOB_FAILURE_REASON_NO_CAPACITY: _ClassVar[JobFailureReason]
    JOB_FAILURE_REASON_ESCROW_REJECTED: _ClassVar[JobFailureReason]
    JOB_FAILURE_REASON_WORKLOAD_ERROR: _ClassVar[JobFailureReason]
    JOB_FAILURE_REASON_PROVIDER_LOST: _ClassVar[JobFailureReason]
    JOB_FAILURE_REASON_TIMEOUT: _ClassVar[JobFailureReason]
    JOB_FAILURE_REASON_INTERNAL: _ClassVar[JobFailureReason]

class LeaseRevocationReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LEASE_REVOCATION_REASON_UNSPECIFIED: _ClassVar[LeaseRevocationReason]
    LEASE_REVOCATION_REASON_FAILOVER: _ClassVar[LeaseRevocationReason]
    LEASE_REVOCATION_REASON_JOB_CANCELED: _ClassVar[LeaseRevocationReason]
    LEASE_REVOCATION_REASON_EXPIRED: _ClassVar[LeaseRevocationReason]
    LEASE_REVOCATION_REASON_PROVIDER_WITHDRAWN: _ClassVar[LeaseRevocationReason]
PLACEMENT_ROLE_UNSPECIFIED: PlacementRole
PLACEMENT_ROLE_PRIMARY: PlacementRole
PLACEMENT_ROLE_STANDBY: PlacementRole
JOB_FAILURE_REASON_UNSPECIFIED: JobFailureReason
JOB_FAILURE_REASON_NO_CAPACITY: JobFailureReason
JOB_FAILURE_REASON_ESCROW_REJECTED: JobFailureReason
JOB_FAILURE_REASON_WORKLOAD_ERROR: JobFailureReason
JOB_FAILURE_REASON_PROVIDER_LOST: JobFailureReason
JOB_FAILURE_REASON_TIMEOUT: JobFailureReason
JOB_FAILURE_REASON_INTERNAL: JobFailureReason
LEASE_REVOCATION_REASON_UNSPECIFIED: LeaseRevocationReason
LEASE_REVOCATION_REASON_FAILOVER: LeaseRevocationReason
LEASE_REVOCATION_REASON_JOB_CANCELED: LeaseRevocationReason
LEASE_REVOCATION_REASON_EXPIRED: LeaseRevocationReason
LEASE_REVOCATION_REASON_PROVIDER_WITHDRAWN: LeaseRevocationReason

class GpuDevice(_message.Message):
    __slots__ = ("uuid", "model", "memory_mib", "compute_capability")
    UUID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MIB_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_CAPABILITY_FIELD_NUMBER: _ClassVar[int]
    uuid: str
    model: str
    memory_mib: int
    compute_capability: str
    def __init__(self, uuid: _Optional[str] = ..., model: _Optional[str] = ..., memory_mib: _Optional[int] = ..., compute_capability: _Optional[str] = ...) -> None: ...

class GpuStatus(_message.Message):
    __slots__ = ("uuid", "utilization_bps", "memory_used_mib", "temperature_c", "power_mw")
    UUID_FIELD_NUMBER: _ClassVar[int]
    UTILIZATION_BPS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_USED_MIB_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_C_FIELD_NUMBER: _ClassVar[int]
    POWER_MW_FIELD_NUMBER: _ClassVar[int]
    uuid: str
    utilization_bps: int
    memory_used_mib: int
    temperature_c: int
    power_mw: int
    def __init__(self, uuid: _Optional[str] = ..., utilization_bps: _Optional[int] = ..., memory_used_mib: _Optional[int] = ..., temperature_c: _Optional[int] = ..., power_mw: _Optional[int] = ...) -> None: ...

class LeaseStatus(_message.Message):
    __slots__ = ("job_id", "lease_id", "epoch")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    lease_id: str
    epoch: int
    def __init__(self, job_id: _Optional[str] = ..., lease_id: _Optional[str] = ..., epoch: _Optional[int] = ...) -> None: ...

class GpuRequirements(_message.Message):
    __slots__ = ("gpu_model", "gpu_count", "min_gpu_memory_mib", "region")
    GPU_MODEL_FIELD_NUMBER: _ClassVar[int]
    GPU_COUNT_FIELD_NUMBER: _ClassVar[int]
    MIN_GPU_MEMORY_MIB_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    gpu_model: str
    gpu_count: int
    min_gpu_memory_mib: int
    region: str
    def __init__(self, gpu_model: _Optional[str] = ..., gpu_count: _Optional[int] = ..., min_gpu_memory_mib: _Optional[int] = ..., region: _Optional[str] = ...) -> None: ...

class Assignment(_message.Message):
    __slots__ = ("provider_id", "provider_org_id", "offer_id", "lease_id", "role", "price_per_gpu_hour")
    PROVIDER_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_ORG_ID_FIELD_NUMBER: _ClassVar[int]
    OFFER_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    PRICE_PER_GPU_HOUR_FIELD_NUMBER: _ClassVar[int]
    provider_id: str
    provider_org_id: str
    offer_id: str
    lease_id: str
    role: PlacementRole
    price_per_gpu_hour: _money_pb2.Money
    def __init__(self, provider_id: _Optional[str] = ..., provider_org_id: _Optional[str] = ..., offer_id: _Optional[str] = ..., lease_id: _Optional[str] = ..., role: _Optional[_Union[PlacementRole, str]] = ..., price_per_gpu_hour: _Optional[_Union[_money_pb2.Money, _Mapping]] = ...) -> None: ...

class ProviderUsage(_message.Message):
    __slots__ = ("provider_id", "provider_org_id", "role", "gpu_minutes", "price_per_gpu_hour", "gpu_model", "gpu_count")
    PROVIDER_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_ORG_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    GPU_MINUTES_FIELD_NUMBER: _ClassVar[int]
    PRICE_PER_GPU_HOUR_FIELD_NUMBER: _ClassVar[int]
    GPU_MODEL_FIELD_NUMBER: _ClassVar[int]
    GPU_COUNT_FIELD_NUMBER: _ClassVar[int]
    provider_id: str
    provider_org_id: str
    role: PlacementRole
    gpu_minutes: int
    price_per_gpu_hour: _money_pb2.Money
    gpu_model: str
    gpu_count: int
    def __init__(self, provider_id: _Optional[str] = ..., provider_org_id: _Optional[str] = ..., role: _Optional[_Union[PlacementRole, str]] = ..., gpu_minutes: _Optional[int] = ..., price_per_gpu_hour: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., gpu_model: _Optional[str] = ..., gpu_count: _Optional[int] = ...) -> None: ...
