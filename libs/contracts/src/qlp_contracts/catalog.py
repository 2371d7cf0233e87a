"""The event catalogue: CloudEvent type <-> generated protobuf message class.

An event is every top-level message declared in a file named ``events.proto``
under ``proto/qlp/<domain>/v1/``. Its CloudEvent type (the ``ce_type`` header)
is the message's full proto name, e.g. ``qlp.identity.v1.OrgCreated``.
Messages in other files (``types.proto``, ``qlp.common.v1``) are building
blocks, not events.

The catalogue is built once, on first use, by walking the generated ``qlp``
package, so a new event needs no registration here: edit the proto and run
``make proto``.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from types import MappingProxyType, ModuleType
from typing import TypeAlias

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message

__all__ = [
    "EVENTS_MODULE",
    "EventDecodeError",
    "EventRef",
    "UnknownEventType",
    "decode",
    "event_classes",
    "event_type",
    "event_types",
    "is_event",
    "key_field",
    "message_class",
    "package_of",
    "partition_key",
]

#: Generated module name that holds a domain's events (from ``events.proto``).
EVENTS_MODULE = "events_pb2"

#: Anything that names an event: a message, a message class, or a CloudEvent type.
EventRef: TypeAlias = Message | type[Message] | str


class UnknownEventType(LookupError):
    """The CloudEvent type (or message) is not an event of the catalogue."""

    def __init__(self, ce_type: str) -> None:
        self.ce_type = ce_type
        super().__init__(
            f"unknown event type {ce_type!r}: no top-level message of that name in any "
            f"proto/qlp/<domain>/v1/events.proto (is the producer newer than this "
            f"qlp-contracts, or is it not an event?)"
        )

    def __str__(self) -> str:
        # LookupError would quote the message like a KeyError does.
        return str(self.args[0])


class EventDecodeError(ValueError):
    """The payload is not a valid protobuf encoding of the announced event type."""

    def __init__(self, ce_type: str, reason: str) -> None:
        self.ce_type = ce_type
        super().__init__(f"cannot decode {ce_type}: {reason}")


def _events_modules() -> list[ModuleType]:
    import qlp

    modules = []
    for info in pkgutil.walk_packages(qlp.__path__, prefix="qlp."):
        if not info.ispkg and info.name.rsplit(".", 1)[-1] == EVENTS_MODULE:
            modules.append(importlib.import_module(info.name))
    return modules


@functools.cache
def _catalogue() -> MappingProxyType[str, type[Message]]:
    classes: dict[str, type[Message]] = {}
    for module in _events_modules():
        for name, descriptor in module.DESCRIPTOR.message_types_by_name.items():
            cls = getattr(module, name)
            if not (isinstance(cls, type) and issubclass(cls, Message)):
                raise TypeError(f"{module.__name__}.{name} is not a generated message class")
            classes[descriptor.full_name] = cls
    return MappingProxyType(dict(sorted(classes.items())))


def _name_of(event: EventRef) -> str:
    if isinstance(event, str):
        return event
    return event.DESCRIPTOR.full_name


def event_types() -> tuple[str, ...]:
    """Every CloudEvent type in the catalogue, sorted."""
    return tuple(_catalogue())


def event_classes() -> MappingProxyType[str, type[Message]]:
    """The whole catalogue: CloudEvent type -> message class (read-only, sorted by type)."""
    return _catalogue()


def is_event(event: EventRef) -> bool:
    """True for events (or their types / classes); False for other messages and names."""
    return _name_of(event) in _catalogue()


def event_type(event: Message | type[Message]) -> str:
    """The CloudEvent type of an event message or class, e.g. ``qlp.identity.v1.OrgCreated``.

    Raises UnknownEventType for messages that are not events (e.g. ``Money``).
    """
    name = _name_of(event)
    if name not in _catalogue():
        raise UnknownEventType(name)
    return name


def message_class(ce_type: str) -> type[Message]:
    """The generated class for a CloudEvent type; raises UnknownEventType."""
    try:
        return _catalogue()[ce_type]
    except KeyError:
        raise UnknownEventType(ce_type) from None


def decode(ce_type: str, data: bytes) -> Message:
    """Parse a Kafka message body into the event class named by its ``ce_type`` header.

    Raises UnknownEventType for unknown types and EventDecodeError for bodies that
    are not valid protobuf. Unknown fields (from a newer producer) are kept, not errors.
    """
    cls = message_class(ce_type)
    try:
        return cls.FromString(data)
    except DecodeError as exc:
        raise EventDecodeError(ce_type, str(exc) or "invalid protobuf encoding") from exc


def package_of(ce_type: str) -> str:
    """The proto package of an event type (``qlp.billing.v1.EscrowHeld``: ``qlp.billing.v1``)."""
    package, _, _ = message_class(ce_type).DESCRIPTOR.full_name.rpartition(".")
    return package


def key_field(event: EventRef) -> str:
    """Name of the field whose value is the event's Kafka key.

    The contract convention: field 2 when it is a singular string named ``*_id``
    (the aggregate id), otherwise field 1, ``org_id``.
    """
    descriptor = message_class(_name_of(event)).DESCRIPTOR
    second = descriptor.fields_by_number.get(2)
    if (
        second is not None
        and second.type == FieldDescriptor.TYPE_STRING
        and not second.is_repeated
        and second.name.endswith("_id")
    ):
        return second.name
    return "org_id"


def partition_key(message: Message) -> str:
    """The Kafka key of an event: its aggregate id (see key_field), else its org_id.

    One aggregate's events share a key, so they stay in order on one partition.
    Raises ValueError when the event carries neither (an event without a tenant
    is a contract violation).
    """
    field = key_field(message)
    key = getattr(message, field)
    if not key and field != "org_id":
        key = getattr(message, "org_id", "")
    if not isinstance(key, str) or not key:
        raise ValueError(f"{_name_of(message)} has no {field} and no org_id to key it by")
    return key
