"""Opaque, type-prefixed, time-ordered string ids (``org_…``, ``usr_…``, ``job_…``)."""

from __future__ import annotations

import os
import re
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case
_ID_RE = re.compile(r"^[a-z]{2,5}_[0-9a-hjkmnp-tv-z]{26}$")


def _b32(value: int, length: int) -> str:
    out = []
    for _ in range(length):
        out.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(out))


def new_id(prefix: str) -> str:
    """Return ``<prefix>_<26 chars>``: 48-bit millisecond time then 80 random bits.

    Ids sort by creation time, which keeps cursor pagination stable and cheap.
    """
    if not prefix.isalpha() or not prefix.islower() or not 2 <= len(prefix) <= 5:
        raise ValueError(f"id prefix must be 2-5 lower-case letters, got {prefix!r}")
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    return f"{prefix}_{_b32(ms, 10)}{_b32(rand, 16)}"


def new_event_id() -> str:
    """Event ids: no dots or dollars, so they are safe as document field names."""
    return new_id("evt")


def is_id(value: str, prefix: str | None = None) -> bool:
    if not _ID_RE.match(value):
        return False
    return prefix is None or value.startswith(prefix + "_")
