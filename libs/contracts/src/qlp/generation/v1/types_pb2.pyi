from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class GenerationTier(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GENERATION_TIER_UNSPECIFIED: _ClassVar[GenerationTier]
    GENERATION_TIER_T0: _ClassVar[GenerationTier]
    GENERATION_TIER_T1: _ClassVar[GenerationTier]
    GENERATION_TIER_T2: _ClassVar[GenerationTier]
    GENERATION_TIER_T3: _ClassVar[GenerationTier]

class GenerationFailureReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GENERATION_FAILURE_REASON_UNSPECIFIED: _ClassVar[GenerationFailureReason]
    GENERATION_FAILURE_REASON_QUOTA_REJECTED: _ClassVar[GenerationFailureReason]
    GENERATION_FAILURE_REASON_QUALITY_GATE_FAILED: _ClassVar[GenerationFailureReason]
    GENERATION_FAILURE_REASON_TIMEOUT: _ClassVar[GenerationFailureReason]
    GENERATION_FAILURE_REASON_INVALID_REQUEST: _ClassVar[GenerationFailureReason]
    GENERATION_FAILURE_REASON_CANCELED: _ClassVar[GenerationFailureReason]
    GENERATION_FAILURE_REASON_NOT_ENTITLED: _ClassVar[GenerationFailureReason]
    GENERATION_FAILURE_REASON_INTERNAL: _ClassVar[GenerationFailureReason]

class VersionSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERSION_SOURCE_UNSPECIFIED: _ClassVar[VersionSource]
    VERSION_SOURCE_GENERATION: _ClassVar[VersionSource]
    VERSION_SOURCE_ROLLBACK: _ClassVar[VersionSource]
    VERSION_SOURCE_BRANCH: _ClassVar[VersionSource]
GENERATION_TIER_UNSPECIFIED: GenerationTier
GENERATION_TIER_T0: GenerationTier
GENERATION_TIER_T1: GenerationTier
GENERATION_TIER_T2: GenerationTier
GENERATION_TIER_T3: GenerationTier
GENERATION_FAILURE_REASON_UNSPECIFIED: GenerationFailureReason
GENERATION_FAILURE_REASON_QUOTA_REJECTED: GenerationFailureReason
GENERATION_FAILURE_REASON_QUALITY_GATE_FAILED: GenerationFailureReason
GENERATION_FAILURE_REASON_TIMEOUT: GenerationFailureReason
GENERATION_FAILURE_REASON_INVALID_REQUEST: GenerationFailureReason
GENERATION_FAILURE_REASON_CANCELED: GenerationFailureReason
GENERATION_FAILURE_REASON_NOT_ENTITLED: GenerationFailureReason
GENERATION_FAILURE_REASON_INTERNAL: GenerationFailureReason
VERSION_SOURCE_UNSPECIFIED: VersionSource
VERSION_SOURCE_GENERATION: VersionSource
VERSION_SOURCE_ROLLBACK: VersionSource
VERSION_SOURCE_BRANCH: VersionSource

class QualityReport(_message.Message):
    __slots__ = ("tests_passed", "tests_failed", "tests_skipped", "coverage_bps", "passed")
    TESTS_PASSED_FIELD_NUMBER: _ClassVar[int]
    TESTS_FAILED_FIELD_NUMBER: _ClassVar[int]
    TESTS_SKIPPED_FIELD_NUMBER: _ClassVar[int]
    COVERAGE_BPS_FIELD_NUMBER: _ClassVar[int]
    PASSED_FIELD_NUMBER: _ClassVar[int]
    tests_passed: int
    tests_failed: int
    tests_skipped: int
    coverage_bps: int
    passed: bool
    def __init__(self, tests_passed: _Optional[int] = ..., tests_failed: _Optional[int] = ..., tests_skipped: _Optional[int] = ..., coverage_bps: _Optional[int] = ..., passed: _Optional[bool] = ...) -> None: ...
