"""The AsyncAPI document a service publishes names its topics, never the broker's
address: the gateway serves it to anyone at /asyncapi.json."""

from __future__ import annotations

import json

from faststream.kafka import KafkaBroker

from qlp_kit.app import ServiceDefinition, asyncapi_document
from qlp_kit.settings import ServiceSettings


def test_asyncapi_shows_no_broker_address() -> None:
    broker = KafkaBroker("10.20.30.40:9092,kafka-0.internal:19092", logger=None)

    @broker.subscriber("qlp.usage.v1", group_id="billing.metering")
    async def handle(msg: dict[str, object]) -> None: ...

    doc = asyncapi_document(
        broker, ServiceDefinition("billing", ServiceSettings, publishes=["qlp.invoices.v1"])
    )
    text = json.dumps(doc)
    for internal in ("10.20.30.40", "kafka-0.internal", "9092", "127.0.0.1", "localhost"):
        assert internal not in text, internal
    server = next(iter(doc["servers"].values()))
    assert server["protocol"] == "kafka"
    assert "{bootstrap}" in server["host"] and server["variables"]["bootstrap"]["description"]
    addresses = {c["address"] for c in doc["channels"].values()}
    assert {"qlp.usage.v1", "qlp.invoices.v1"} <= addresses
