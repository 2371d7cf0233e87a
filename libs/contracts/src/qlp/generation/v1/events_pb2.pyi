import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from qlp.common.v1 import actor_pb2 as _actor_pb2
from qlp.generation.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GenerationRequested(_message.Message):
    __slots__ = ("org_id", "generation_id", "project_id", "tier", "prompt", "base_version_id", "template_listing_id", "parameters", "requested_at", "actor")
    class ParametersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    GENERATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    BASE_VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_LISTING_ID_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_AT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    generation_id: str
    project_id: str
    tier: _types_pb2.GenerationTier
    prompt: str
    base_version_id: str
    template_listing_id: str
    parameters: _containers.ScalarMap[str, str]
    requested_at: _timestamp_pb2.Timestamp
    actor: _actor_pb2.Actor
    def __init__(self, org_id: _Optional[str] = ..., generation_id: _Optional[str] = ..., project_id: _Optional[str] = ..., tier: _Optional[_Union[_types_pb2.GenerationTier, str]] = ..., prompt: _Optional[str] = ..., base_version_id: _Optional[str] = ..., template_listing_id: _Optional[str] = ..., parameters: _Optional[_Mapping[str, str]] = ..., requested_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actor: _Optional[_Union[_actor_pb2.Actor, _Mapping]] = ...) -> None: ...

class QuotaReservationRequested(_message.Message):
    __slots__ = ("org_id", "generation_id", "reservation_id", "meter", "quantity", "requested_at")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    GENERATION_ID_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    METER_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_AT_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    generation_id: str
    reservation_id: str
    meter: str
    quantity: int
    requested_at: _timestamp_pb2.Timestamp
    def __init__(self, org_id: _Optional[str] = ..., generation_id: _Optional[str] = ..., reservation_id: _Optional[str] = ..., meter: _Optional[str] = ..., quantity: _Optional[int] = ..., requested_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GenerationStarted(_message.Message):
    __slots__ = ("org_id", "generation_id", "project_id", "tier", "reservation_id", "started_at")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    GENERATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    generation_id: str
    project_id: str
    tier: _types_pb2.GenerationTier
    reservation_id: str
    started_at: _timestamp_pb2.Timestamp
    def __init__(self, org_id: _Optional[str] = ..., generation_id: _Optional[str] = ..., project_id: _Optional[str] = ..., tier: _Optional[_Union[_types_pb2.GenerationTier, str]] = ..., reservation_id: _Optional[str] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GenerationCompleted(_message.Message):
    __slots__ = ("org_id", "generation_id", "project_id", "version_id", "tier", "reservation_id", "artifact_id", "artifact_sha256", "artifact_size_bytes", "file_count", "quality", "duration_ms", "pattern_ids", "completed_at")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    GENERATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_ID_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_SHA256_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    FILE_COUNT_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    PATTERN_IDS_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    generation_id: str
    project_id: str
    version_id: str
    tier: _types_pb2.GenerationTier
    reservation_id: str
    artifact_id: str
    artifact_sha256: str
    artifact_size_bytes: int
    file_count: int
    quality: _types_pb2.QualityReport
    duration_ms: int
    pattern_ids: _containers.RepeatedScalarFieldContainer[str]
    completed_at: _timestamp_pb2.Timestamp
    def __init__(self, org_id: _Optional[str] = ..., generation_id: _Optional[str] = ..., project_id: _Optional[str] = ..., version_id: _Optional[str] = ..., tier: _Optional[_Union[_types_pb2.GenerationTier, str]] = ..., reservation_id: _Optional[str] = ..., artifact_id: _Optional[str] = ..., artifact_sha256: _Optional[str] = ..., artifact_size_bytes: _Optional[int] = ..., file_count: _Optional[int] = ..., quality: _Optional[_Union[_types_pb2.QualityReport, _Mapping]] = ..., duration_ms: _Optional[int] = ..., pattern_ids: _Optional[_Iterable[str]] = ..., completed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GenerationFailed(_message.Message):
    __slots__ = ("org_id", "generation_id", "project_id", "tier", "reservation_id", "reason", "message", "retryable", "quality", "failed_at")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    GENERATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RETRYABLE_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    FAILED_AT_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    generation_id: str
    project_id: str
    tier: _types_pb2.GenerationTier
    reservation_id: str
    reason: _types_pb2.GenerationFailureReason
    message: str
    retryable: bool
    quality: _types_pb2.QualityReport
    failed_at: _timestamp_pb2.Timestamp
    def __init__(self, org_id: _Optional[str] = ..., generation_id: _Optional[str] = ..., project_id: _Optional[str] = ..., tier: _Optional[_Union[_types_pb2.GenerationTier, str]] = ..., reservation_id: _Optional[str] = ..., reason: _Optional[_Union[_types_pb2.GenerationFailureReason, str]] = ..., message: _Optional[str] = ..., retryable: _Optional[bool] = ..., quality: _Optional[_Union[_types_pb2.QualityReport, _Mapping]] = ..., failed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ProjectVersionCreated(_message.Message):
    __slots__ = ("org_id", "project_id", "version_id", "number", "branch", "parent_version_id", "source", "generation_id", "artifact_id", "created_at", "actor")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    BRANCH_FIELD_NUMBER: _ClassVar[int]
    PARENT_VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    GENERATION_ID_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    project_id: str
    version_id: str
    number: int
    branch: str
    parent_version_id: str
    source: _types_pb2.VersionSource
    generation_id: str
    artifact_id: str
    created_at: _timestamp_pb2.Timestamp
    actor: _actor_pb2.Actor
    def __init__(self, org_id: _Optional[str] = ..., project_id: _Optional[str] = ..., version_id: _Optional[str] = ..., number: _Optional[int] = ..., branch: _Optional[str] = ..., parent_version_id: _Optional[str] = ..., source: _Optional[_Union[_types_pb2.VersionSource, str]] = ..., generation_id: _Optional[str] = ..., artifact_id: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actor: _Optional[_Union[_actor_pb2.Actor, _Mapping]] = ...) -> None: ...

class TemplateOutcomeRecorded(_message.Message):
    __slots__ = ("org_id", "listing_id", "template_version", "gate_passed", "projects_built", "projects_passed", "recorded_at")
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    LISTING_ID_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_VERSION_FIELD_NUMBER: _ClassVar[int]
    GATE_PASSED_FIELD_NUMBER: _ClassVar[int]
    PROJECTS_BUILT_FIELD_NUMBER: _ClassVar[int]
    PROJECTS_PASSED_FIELD_NUMBER: _ClassVar[int]
    RECORDED_AT_FIELD_NUMBER: _ClassVar[int]
    org_id: str
    listing_id: str
    template_version: str
    gate_passed: bool
    projects_built: int
    projects_passed: int
    recorded_at: _timestamp_pb2.Timestamp
    def __init__(self, org_id: _Optional[str] = ..., listing_id: _Optional[str] = ..., template_version: _Optional[str] = ..., gate_passed: _Optional[bool] = ..., projects_built: _Optional[int] = ..., projects_passed: _Optional[int] = ..., recorded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
