"""The signing-key ring: keys live in MongoDB (private parts PKCS#8-encrypted), each
replica caches them and refreshes the cache every ``key_cache_s``.

Rotation creates generation N+1 (a unique index on ``generation`` lets exactly one
replica win a concurrent rotation), then retires every older key: it stops signing
at once and stays published in the JWKS until every token it could have signed has
expired (:class:`qlp_identity.tokens.RotationSchedule`). Expired keys are deleted.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog

from qlp_identity.repository import IdentityRepository
from qlp_identity.tokens import (
    RotationSchedule,
    SigningKey,
    current_signing_key,
    generate_key,
    jwks,
    load_private_key,
    newest_key,
    now_ms,
)

log = structlog.get_logger("qlp.identity.keys")


class KeyRing:
    def __init__(
        self,
        repo: IdentityRepository,
        schedule: RotationSchedule,
        *,
        encryption_secret: str,
        key_size: int = 2048,
        cache_s: float = 30.0,
    ) -> None:
        self.repo = repo
        self.schedule = schedule
        self.encryption_secret = encryption_secret
        self.key_size = key_size
        self.cache_s = cache_s
        self.keys: list[SigningKey] = []
        self._private: dict[str, Any] = {}
        self._loaded_at = 0.0
        self._lock = asyncio.Lock()
        self.rotations = 0

    async def load(self) -> None:
        docs = await self.repo.signing_keys()
        keys: list[SigningKey] = []
        for d in docs:
            retired = int(d.get("retired_ms") or 0) or None
            priv = None
            if retired is None or retired > now_ms():
                priv = self._private.get(d["_id"])
                if priv is None:
                    priv = await asyncio.to_thread(
                        load_private_key,
                        str(d["private_pem"]).encode(),
                        self.encryption_secret,
                        bool(d.get("encrypted")),
                    )
                    self._private[d["_id"]] = priv
            keys.append(
                SigningKey(
                    kid=d["_id"],
                    generation=int(d["generation"]),
                    created_ms=int(d["created_ms"]),
                    public_jwk=dict(d["public_jwk"]),
                    private_key=priv,
                    retired_ms=retired,
                    expires_ms=int(d.get("expires_ms") or 0) or None,
                    activate_ms=int(d.get("activate_ms") or 0),
                )
            )
        self.keys = keys
        self._loaded_at = time.monotonic()

    async def fresh(self) -> None:
        if time.monotonic() - self._loaded_at >= self.cache_s or not self.keys:
            await self.load()

    async def signing_key(self) -> SigningKey:
        await self.fresh()
        key = current_signing_key(self.keys, now_ms())
        if key is None:
            await self.load()
            key = current_signing_key(self.keys, now_ms())
        if key is None:
            await self.rotate(immediate=True)
            key = current_signing_key(self.keys, now_ms())
        if key is None:
            raise RuntimeError("no signing key available")
        return key

    async def jwks(self) -> dict[str, Any]:
        await self.fresh()
        return jwks(self.keys, now_ms())

    async def rotate_if_due(self) -> bool:
        await self.load()
        at = now_ms()
        newest = newest_key(self.keys)
        if self.schedule.due(newest, at):
            # the very first key signs at once; later ones are pre-published. The
            # generation is fixed by what was seen due, so of several replicas noticing
            # at once exactly one creates it (unique index).
            await self.rotate(
                immediate=current_signing_key(self.keys, at) is None,
                generation=(newest.generation if newest else 0) + 1,
            )
            return True
        await self.repo.delete_expired_signing_keys(now_ms())
        return False

    async def rotate(self, *, immediate: bool = True, generation: int | None = None) -> str:
        """Create the next generation and retire the older ones; returns the new kid.

        ``immediate``: the new key signs at once (a forced rotation, e.g. after a
        suspected compromise); otherwise it is pre-published and the current key
        keeps signing until it activates."""
        async with self._lock:
            await self.load()
            if generation is None:
                generation = max((k.generation for k in self.keys), default=0) + 1
            material = await asyncio.to_thread(generate_key, self.key_size, self.encryption_secret)
            at = now_ms()
            activate = at if immediate else at + self.schedule.prepublish_s * 1000
            created = await self.repo.insert_signing_key(
                {
                    "_id": material.kid,
                    "generation": generation,
                    "created_ms": at,
                    "activate_ms": activate,
                    "retired_ms": 0,
                    "expires_ms": 0,
                    "private_pem": material.private_pem.decode(),
                    "encrypted": 1 if material.encrypted else 0,
                    "public_jwk": material.public_jwk,
                }
            )
            if created:
                await self.repo.retire_signing_keys(
                    generation, activate, self.schedule.unpublish_at(activate)
                )
                await self.repo.delete_expired_signing_keys(at)
                self.rotations += 1
                log.info("signing key rotated", kid=material.kid, generation=generation)
            await self.load()
            newest = newest_key(self.keys)
            return newest.kid if newest else material.kid

    async def run_schedule(self, interval_s: float) -> None:
        while True:
            try:
                await self.rotate_if_due()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # database briefly unavailable: try next round
                log.warning("signing key check failed", error=str(exc))
            await asyncio.sleep(interval_s)
