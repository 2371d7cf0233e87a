"""The event catalogue and the conventions every event follows."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from qlp.common.v1 import money_pb2
from qlp.identity.v1 import events_pb2 as identity
from qlp.identity.v1 import types_pb2 as identity_types
from qlp.scheduling.v1 import events_pb2 as scheduling
from qlp.usage.v1 import events_pb2 as usage
from qlp_contracts import catalog
from qlp_contracts.catalog import EventDecodeError, UnknownEventType

EVENT_TYPES = catalog.event_types()

# The first cut every domain must offer (more may be added, none removed).
REQUIRED = {
    "identity": "OrgCreated UserCreated MemberAdded MemberRemoved RoleChanged ApiKeyCreated "
    "ApiKeyRevoked UserLockedOut",
    "billing": "SubscriptionActivated SubscriptionChanged SubscriptionCanceled QuotaReserved "
    "QuotaRejected QuotaReleased QuotaCommitted InvoiceIssued PaymentSucceeded PaymentFailed "
    "EscrowHeld EscrowRejected EscrowSettled EscrowRefunded PayoutIssued",
    "usage": "UsageRecorded",
    "generation": "GenerationRequested GenerationStarted GenerationCompleted GenerationFailed "
    "ProjectVersionCreated QuotaReservationRequested",
    "marketplace": "ListingPublished ListingUpdated PurchaseRequested PurchaseCompleted "
    "ReviewPosted EntitlementGranted",
    "scheduling": "ProviderRegistered ProviderHeartbeat OfferPublished OfferWithdrawn "
    "JobSubmitted EscrowHoldRequested JobPlaced JobStarted JobProgress CheckpointWritten "
    "JobCompleted JobFailed JobCanceled LeaseRevoked",
    "failover": "ProviderSuspected ProviderDead FailoverStarted StandbyPromoted "
    "FailoverCompleted FailoverFailed",
}


def _fill(message: Message, depth: int = 0) -> None:
    """Set every field of ``message`` (recursively) to a non-default value."""
    descriptor: Descriptor = message.DESCRIPTOR
    for field in descriptor.fields:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            target = getattr(message, field.name)
            if value_field.message_type is not None:
                _fill(target["k"], depth + 1)
            else:
                target["k"] = _scalar(value_field)
        elif field.is_repeated:
            target = getattr(message, field.name)
            if field.message_type is not None:
                _fill(target.add(), depth + 1)
            else:
                target.append(_scalar(field))
        elif field.message_type is not None:
            if depth < 4:
                _fill(getattr(message, field.name), depth + 1)
        else:
            setattr(message, field.name, _scalar(field))


def _scalar(field: FieldDescriptor) -> object:
    if field.type == FieldDescriptor.TYPE_STRING:
        return f"{field.name}-value"
    if field.type == FieldDescriptor.TYPE_BYTES:
        return b"\x01\x02"
    if field.type == FieldDescriptor.TYPE_BOOL:
        return True
    if field.type == FieldDescriptor.TYPE_ENUM:
        return field.enum_type.values[-1].number
    if field.type in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
        return 1.5
    return field.number + 1


def test_first_cut_events_exist() -> None:
    for domain, names in REQUIRED.items():
        for name in names.split():
            assert f"qlp.{domain}.v1.{name}" in EVENT_TYPES


def test_only_events_proto_messages_are_events() -> None:
    assert not catalog.is_event(money_pb2.Money)
    assert not catalog.is_event("qlp.scheduling.v1.GpuDevice")
    assert not catalog.is_event("qlp.usage.v1.UsageRecorded.AttributesEntry")
    assert all(not t.startswith("qlp.common.") for t in EVENT_TYPES)
    assert list(EVENT_TYPES) == sorted(EVENT_TYPES)


@pytest.mark.parametrize("ce_type", EVENT_TYPES)
def test_round_trip(ce_type: str) -> None:
    cls = catalog.message_class(ce_type)
    assert cls.DESCRIPTOR.full_name == ce_type
    message = cls()
    _fill(message)
    assert catalog.event_type(message) == ce_type
    assert catalog.event_type(cls) == ce_type
    data = message.SerializeToString(deterministic=True)
    decoded = catalog.decode(ce_type, data)
    assert type(decoded) is cls
    assert decoded == message
    assert decoded.SerializeToString(deterministic=True) == data


@pytest.mark.parametrize("ce_type", EVENT_TYPES)
def test_event_conventions(ce_type: str) -> None:
    descriptor = catalog.message_class(ce_type).DESCRIPTOR
    first = descriptor.fields_by_number[1]
    assert (first.name, first.type) == ("org_id", FieldDescriptor.TYPE_STRING)
    for field in descriptor.fields:
        where = f"{ce_type}.{field.name}"
        if field.name.endswith("_at") or field.name.endswith("_until"):
            assert field.message_type is not None, where
            assert field.message_type.full_name == "google.protobuf.Timestamp", where
        if field.name.endswith("_bps"):
            assert field.type == FieldDescriptor.TYPE_INT32, where
        assert field.type not in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE), where


def _all_descriptors(descriptor: Descriptor) -> list[Descriptor]:
    nested = [d for n in descriptor.nested_types for d in _all_descriptors(n)]
    return [descriptor, *nested]


def test_no_floating_point_and_enums_have_zero_unspecified(repo_root: Path) -> None:
    import importlib

    modules = sorted(
        p.relative_to(repo_root / "libs/contracts/src").with_suffix("").as_posix().replace("/", ".")
        for p in (repo_root / "libs/contracts/src/qlp").rglob("*_pb2.py")
    )
    for name in modules:
        file = importlib.import_module(name).DESCRIPTOR
        for message in file.message_types_by_name.values():
            for descriptor in _all_descriptors(message):
                for field in descriptor.fields:
                    assert field.cpp_type not in (
                        FieldDescriptor.CPPTYPE_FLOAT,
                        FieldDescriptor.CPPTYPE_DOUBLE,
                    ), f"{descriptor.full_name}.{field.name}: use integers (minor units, bps)"
        for enum in file.enum_types_by_name.values():
            zero = enum.values_by_number[0].name
            assert zero.endswith("_UNSPECIFIED"), enum.full_name
            assert all(v.name.startswith(zero.removesuffix("UNSPECIFIED")) for v in enum.values)


def test_money_field_shape() -> None:
    fields = money_pb2.Money.DESCRIPTOR.fields_by_number
    assert (fields[1].name, fields[1].type) == ("amount", FieldDescriptor.TYPE_INT64)
    assert (fields[2].name, fields[2].type) == ("currency", FieldDescriptor.TYPE_STRING)


def test_unknown_event_type() -> None:
    with pytest.raises(UnknownEventType, match=r"'qlp.nope.v1.Nothing'") as info:
        catalog.message_class("qlp.nope.v1.Nothing")
    assert info.value.ce_type == "qlp.nope.v1.Nothing"
    assert isinstance(info.value, LookupError)
    with pytest.raises(UnknownEventType):
        catalog.decode("qlp.nope.v1.Nothing", b"")
    with pytest.raises(UnknownEventType, match=r"qlp.common.v1.Money"):
        catalog.event_type(money_pb2.Money(amount=1, currency="USD"))


def test_decode_rejects_garbage() -> None:
    with pytest.raises(EventDecodeError, match=r"qlp.usage.v1.UsageRecorded"):
        catalog.decode("qlp.usage.v1.UsageRecorded", b"\xff\xff\xff")


def test_decode_keeps_fields_from_newer_producers() -> None:
    newer = usage.UsageRecorded(org_id="org_1", meter="api_calls").SerializeToString()
    newer += b"\xb8\x06\x07"  # field 103 (varint) = 7, unknown to this version
    decoded = catalog.decode("qlp.usage.v1.UsageRecorded", newer)
    assert decoded.SerializeToString() == newer


def test_partition_keys() -> None:
    job = scheduling.JobStarted(org_id="org_1", job_id="job_1", provider_id="prv_1")
    assert catalog.key_field(job) == "job_id"
    assert catalog.partition_key(job) == "job_1"
    org = identity.OrgCreated(org_id="org_1", name="Acme")
    assert catalog.key_field(org) == "org_id"
    assert catalog.partition_key(org) == "org_1"
    assert catalog.key_field("qlp.usage.v1.UsageRecorded") == "org_id"
    # An event without its aggregate id still stays with its tenant.
    assert catalog.partition_key(scheduling.JobStarted(org_id="org_1")) == "org_1"
    with pytest.raises(ValueError, match="no org_id"):
        catalog.partition_key(identity.RoleChanged(new_role=identity_types.ROLE_ADMIN))


@pytest.mark.parametrize("ce_type", EVENT_TYPES)
def test_aggregate_id_is_field_two_where_there_is_one(ce_type: str) -> None:
    descriptor = catalog.message_class(ce_type).DESCRIPTOR
    key = catalog.key_field(ce_type)
    if key != "org_id":
        assert descriptor.fields_by_name[key].number == 2


def test_package_of() -> None:
    assert catalog.package_of("qlp.billing.v1.EscrowHeld") == "qlp.billing.v1"
    assert set(map(catalog.package_of, EVENT_TYPES)) == {f"qlp.{d}.v1" for d in REQUIRED}
