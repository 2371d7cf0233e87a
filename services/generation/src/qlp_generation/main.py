"""The generation service definition."""

from __future__ import annotations

from qlp_contracts import topics
from qlp_generation.api import router
from qlp_generation.handlers import consumers
from qlp_generation.repository import INDEXES, OUTBOX_COLLECTIONS, TENANT_COLLECTIONS
from qlp_generation.settings import GenerationSettings
from qlp_kit.app import ServiceDefinition

service = ServiceDefinition(
    name="generation",
    settings_cls=GenerationSettings,
    routers=[router],
    indexes=INDEXES,
    outbox_collections=list(OUTBOX_COLLECTIONS),
    tenant_collections=list(TENANT_COLLECTIONS),
    consumers=consumers,
    publishes=[topics.GENERATION.name],
    description="plain-language requests become tested, versioned applications",
)
