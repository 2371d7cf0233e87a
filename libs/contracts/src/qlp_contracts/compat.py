"""Wire-compatibility rules between two versions of the event contracts.

Both sides are ``FileDescriptorSet`` messages: the committed snapshot
(``proto/descriptor_snapshot.json``) and the descriptors compiled from ``proto/``
now. Types are matched by full name, so moving a message between files of the
same package is fine; changing its package is a removal.

Breaking (reported):

- removing a message, enum, field or enum value;
- reusing a field number (or enum value number) under another name;
- changing a field's type, its label (singular / repeated) or the message or
  enum type it refers to;
- moving a field into, out of or between oneofs;
- using a number or name the old version reserved.

Adding messages, enums, fields and enum values is compatible. To retire a field,
mark it ``[deprecated = true]`` and stop setting it; never delete it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from google.protobuf.descriptor_pb2 import (
    DescriptorProto,
    EnumDescriptorProto,
    FieldDescriptorProto,
    FileDescriptorSet,
)

__all__ = ["Violation", "compare"]


@dataclass(frozen=True, slots=True)
class Violation:
    """One breaking change: the element it concerns and what happened to it."""

    element: str
    message: str

    def __str__(self) -> str:
        return f"{self.element}: {self.message}"


_TYPE_NAMES = {
    value: name.removeprefix("TYPE_").lower() for name, value in FieldDescriptorProto.Type.items()
}
_LABEL_NAMES = {
    value: name.removeprefix("LABEL_").lower() for name, value in FieldDescriptorProto.Label.items()
}


def _messages(
    prefix: str, messages: list[DescriptorProto]
) -> Iterator[tuple[str, DescriptorProto]]:
    for message in messages:
        full_name = f"{prefix}.{message.name}"
        yield full_name, message
        yield from _messages(full_name, list(message.nested_type))


def _enums(
    prefix: str, enums: list[EnumDescriptorProto], messages: list[DescriptorProto]
) -> Iterator[tuple[str, EnumDescriptorProto]]:
    for enum in enums:
        yield f"{prefix}.{enum.name}", enum
    for message in messages:
        yield from _enums(
            f"{prefix}.{message.name}", list(message.enum_type), list(message.nested_type)
        )


def _index(
    fds: FileDescriptorSet,
) -> tuple[dict[str, DescriptorProto], dict[str, EnumDescriptorProto]]:
    messages: dict[str, DescriptorProto] = {}
    enums: dict[str, EnumDescriptorProto] = {}
    for file in fds.file:
        prefix = f".{file.package}" if file.package else ""
        messages.update(_messages(prefix, list(file.message_type)))
        enums.update(_enums(prefix, list(file.enum_type), list(file.message_type)))
    return messages, enums


def _type_of(field: FieldDescriptorProto) -> str:
    if field.type in (FieldDescriptorProto.TYPE_MESSAGE, FieldDescriptorProto.TYPE_ENUM):
        return field.type_name.lstrip(".")
    return _TYPE_NAMES.get(field.type, str(field.type))


def _oneof_of(message: DescriptorProto, field: FieldDescriptorProto) -> str | None:
    """The real oneof a field belongs to; None for plain fields and proto3 ``optional``."""
    if not field.HasField("oneof_index") or field.proto3_optional:
        return None
    return message.oneof_decl[field.oneof_index].name


def _is_reserved_number(message: DescriptorProto, number: int) -> bool:
    # DescriptorProto.ReservedRange.end is exclusive.
    return any(r.start <= number < r.end for r in message.reserved_range)


def _compare_message(name: str, old: DescriptorProto, new: DescriptorProto) -> Iterator[Violation]:
    new_by_number = {field.number: field for field in new.field}
    for old_field in old.field:
        where = f"{name} field {old_field.number} '{old_field.name}'"
        new_field = new_by_number.get(old_field.number)
        if new_field is None:
            yield Violation(where, "removed (deprecate it instead of deleting it)")
            continue
        if new_field.name != old_field.name:
            yield Violation(
                f"{name} field {old_field.number}",
                f"number reused with another name: was '{old_field.name}', now '{new_field.name}'",
            )
        if _type_of(new_field) != _type_of(old_field):
            yield Violation(
                where, f"type changed from {_type_of(old_field)} to {_type_of(new_field)}"
            )
        if new_field.label != old_field.label:
            yield Violation(
                where,
                f"label changed from {_LABEL_NAMES.get(old_field.label)} "
                f"to {_LABEL_NAMES.get(new_field.label)}",
            )
        old_oneof, new_oneof = _oneof_of(old, old_field), _oneof_of(new, new_field)
        if old_oneof != new_oneof:
            yield Violation(where, f"oneof membership changed from {old_oneof!r} to {new_oneof!r}")
    old_numbers = {field.number for field in old.field}
    old_reserved_names = set(old.reserved_name)
    for new_field in new.field:
        if new_field.number in old_numbers:
            continue
        where = f"{name} field {new_field.number} '{new_field.name}'"
        if _is_reserved_number(old, new_field.number):
            yield Violation(where, f"uses number {new_field.number}, which was reserved")
        if new_field.name in old_reserved_names:
            yield Violation(where, f"uses name '{new_field.name}', which was reserved")


def _compare_enum(
    name: str, old: EnumDescriptorProto, new: EnumDescriptorProto
) -> Iterator[Violation]:
    new_names_by_number: dict[int, set[str]] = {}
    for value in new.value:
        new_names_by_number.setdefault(value.number, set()).add(value.name)
    for value in old.value:
        names = new_names_by_number.get(value.number)
        if names is None:
            yield Violation(f"{name} value {value.number} '{value.name}'", "removed")
        elif value.name not in names:
            yield Violation(
                f"{name} value {value.number}",
                f"number reused with another name: was '{value.name}', "
                f"now {', '.join(sorted(repr(n) for n in names))}",
            )


def compare(old: FileDescriptorSet, new: FileDescriptorSet) -> list[Violation]:
    """Every breaking change from ``old`` to ``new``; an empty list means compatible."""
    old_messages, old_enums = _index(old)
    new_messages, new_enums = _index(new)
    violations: list[Violation] = []
    for name in sorted(old_messages):
        display = name.lstrip(".")
        if name not in new_messages:
            violations.append(Violation(display, "message removed"))
            continue
        violations.extend(_compare_message(display, old_messages[name], new_messages[name]))
    for name in sorted(old_enums):
        display = name.lstrip(".")
        if name not in new_enums:
            violations.append(Violation(display, "enum removed"))
            continue
        violations.extend(_compare_enum(display, old_enums[name], new_enums[name]))
    return violations
