"""Event envelope: protobuf body plus CloudEvents binary-mode headers.

Headers: ``ce_id``, ``ce_type`` (the message's full proto name), ``ce_source``,
``ce_time`` (RFC 3339 UTC), ``ce_specversion``, ``ce_subject`` (aggregate id),
``qlp_tenant`` (org id), ``content-type`` and W3C ``traceparent``. The Kafka key is
the aggregate id so one aggregate's events stay ordered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from google.protobuf.message import Message

from qlp_contracts import catalog
from qlp_kit.ids import new_event_id
from qlp_kit.tracing import inject_headers

CONTENT_TYPE = "application/protobuf"
TENANT_HEADER = "qlp_tenant"


class EnvelopeError(ValueError):
    """A record that is not a valid platform event (it goes to the DLQ as is)."""


def rfc3339(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_headers(
    message: Message,
    *,
    org_id: str,
    source: str,
    subject: str,
    event_id: str | None = None,
    time: datetime | None = None,
) -> dict[str, str]:
    headers = {
        "ce_specversion": "1.0",
        "ce_id": event_id or new_event_id(),
        "ce_type": catalog.event_type(message),
        "ce_source": source,
        "ce_time": rfc3339(time or datetime.now(UTC)),
        "ce_subject": subject,
        "content-type": CONTENT_TYPE,
        TENANT_HEADER: org_id,
    }
    inject_headers(headers)
    return headers


@dataclass(frozen=True)
class Event:
    """A decoded event as handlers see it."""

    id: str
    type: str
    source: str
    time: datetime
    org_id: str
    subject: str
    message: Any
    headers: dict[str, str] = field(default_factory=dict)
    topic: str = ""
    partition: int = -1
    offset: int = -1
    key: str = ""


def decode_record(
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    raw_headers: list[tuple[str, bytes]] | tuple[tuple[str, bytes], ...],
) -> Event:
    headers = {k: v.decode("utf-8", "replace") for k, v in raw_headers}
    for required in ("ce_id", "ce_type", "ce_source", TENANT_HEADER):
        if not headers.get(required):
            raise EnvelopeError(f"missing header {required}")
    try:
        message = catalog.decode(headers["ce_type"], value or b"")
    except Exception as exc:  # unknown type or undecodable body
        raise EnvelopeError(f"cannot decode {headers['ce_type']}: {exc}") from exc
    try:
        when = datetime.fromisoformat(headers.get("ce_time", "").replace("Z", "+00:00"))
    except ValueError:
        when = datetime.now(UTC)
    return Event(
        id=headers["ce_id"],
        type=headers["ce_type"],
        source=headers["ce_source"],
        time=when,
        org_id=headers[TENANT_HEADER],
        subject=headers.get("ce_subject", ""),
        message=message,
        headers=headers,
        topic=topic,
        partition=partition,
        offset=offset,
        key=(key or b"").decode("utf-8", "replace"),
    )
