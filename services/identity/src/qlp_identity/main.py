"""The identity service definition."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import structlog

from qlp_contracts import topics
from qlp_identity.api import routers
from qlp_identity.keys import KeyRing
from qlp_identity.passwords import Argon2Params, Passwords
from qlp_identity.repository import (
    INDEXES,
    OUTBOX_COLLECTIONS,
    TENANT_COLLECTIONS,
    IdentityRepository,
)
from qlp_identity.service import IdentityService
from qlp_identity.settings import IdentitySettings
from qlp_identity.tokens import RotationSchedule
from qlp_kit.app import ServiceContext, ServiceDefinition

log = structlog.get_logger("qlp.identity")


def build(ctx: ServiceContext) -> IdentityService:
    settings = ctx.settings
    assert isinstance(settings, IdentitySettings)
    repo = IdentityRepository(ctx.db)
    schedule = RotationSchedule(
        settings.key_rotation_interval_s,
        settings.access_token_ttl_s,
        settings.key_cache_s,
        settings.key_publish_leeway_s,
        settings.key_prepublish_s,
    )
    keyring = KeyRing(
        repo,
        schedule,
        encryption_secret=settings.encryption_secret(),
        key_size=settings.rsa_key_size,
        cache_s=settings.key_cache_s,
    )
    passwords = Passwords(
        Argon2Params(
            settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism
        )
    )
    return IdentityService(repo, settings, passwords, keyring)


async def on_startup(ctx: ServiceContext) -> None:
    svc = build(ctx)
    ctx.extras["identity"] = svc
    if not svc.settings.encryption_secret():
        log.warning("no key encryption secret: signing keys are stored unencrypted")
    await svc.keyring.rotate_if_due()


def background(ctx: ServiceContext) -> Sequence[Callable[[], Coroutine[Any, Any, None]]]:
    settings = ctx.settings
    assert isinstance(settings, IdentitySettings)

    async def rotation() -> None:
        svc: IdentityService = ctx.extras["identity"]
        await svc.keyring.run_schedule(settings.key_check_interval_s)

    return [rotation]


service = ServiceDefinition(
    name="identity",
    settings_cls=IdentitySettings,
    routers=routers,
    indexes=INDEXES,
    outbox_collections=OUTBOX_COLLECTIONS,
    tenant_collections=TENANT_COLLECTIONS,
    publishes=[topics.IDENTITY.name],
    on_startup=on_startup,
    background=background,
    description="orgs, users, memberships, invitations, API keys; issues JWTs and serves JWKS",
)
