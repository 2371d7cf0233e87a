"""The failover service definition."""

from __future__ import annotations

from qlp_contracts import topics
from qlp_failover.api import router
from qlp_failover.handlers import background, consumers
from qlp_failover.repository import INDEXES, OUTBOX_COLLECTIONS, TENANT_COLLECTIONS
from qlp_failover.settings import FailoverSettings
from qlp_kit.app import ServiceDefinition

service = ServiceDefinition(
    name="failover",
    settings_cls=FailoverSettings,
    routers=[router],
    indexes=INDEXES,
    outbox_collections=list(OUTBOX_COLLECTIONS),
    tenant_collections=list(TENANT_COLLECTIONS),
    consumers=consumers,
    publishes=[topics.FAILOVER.name],
    background=background,
    description="provider liveness from heartbeats; one failover decision per job and epoch",
)
