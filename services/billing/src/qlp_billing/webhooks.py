"""Payment-provider webhook signatures (Stripe's scheme), pure.

Header ``Stripe-Signature: t=<unix ts>,v1=<hex>,v1=<hex>...``: each ``v1`` is
HMAC-SHA256 over ``"<t>.<raw body>"`` with a signing secret. Several ``v1`` values
(and several secrets) are accepted during a secret rotation; comparison is constant
time; a timestamp outside the tolerance is stale (a replay of an old delivery).
Deduplication of event ids (a replay within the tolerance) is the caller's job.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence


class SignatureError(ValueError):
    """The webhook is not authentic or not fresh."""


def sign(payload: bytes, secret: str, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256)
    return mac.hexdigest()


def signature_header(payload: bytes, secrets: Sequence[str], timestamp: int) -> str:
    return ",".join([f"t={timestamp}"] + [f"v1={sign(payload, s, timestamp)}" for s in secrets])


def verify(
    payload: bytes,
    header: str,
    secrets: Sequence[str],
    *,
    now: float,
    tolerance_s: int = 300,
) -> int:
    """Return the signed timestamp, or raise :class:`SignatureError`."""
    if not secrets:
        raise SignatureError("no webhook secret configured")
    ts: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        k, _, v = part.strip().partition("=")
        if k == "t":
            try:
                ts = int(v)
            except ValueError:
                raise SignatureError("malformed timestamp") from None
        elif k == "v1" and v:
            candidates.append(v)
    if ts is None or not candidates:
        raise SignatureError("no timestamp or v1 signature in the header")
    matched = False
    for secret in secrets:
        expected = sign(payload, secret, ts)
        for cand in candidates:
            # evaluate every comparison (no early exit on the secret material)
            matched |= hmac.compare_digest(expected, cand)
    if not matched:
        raise SignatureError("no signature matches")
    if abs(now - ts) > tolerance_s:
        raise SignatureError("timestamp outside the tolerance")
    return ts
