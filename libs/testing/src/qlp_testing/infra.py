"""Where the tests' broker and database come from, chosen by ``QLP_TEST_INFRA``:

- ``embedded`` (default): start Tansu and nx-27017 once per session on free ports;
- ``external``: use ``KAFKA_BOOTSTRAP_SERVERS`` and ``MONGODB_URL`` (also chosen
  automatically when both are set);
- ``containers``: testcontainers' Kafka (KRaft) and MongoDB, when a Docker engine is
  reachable (``uv sync --extra containers`` / ``pip install qlp-testing[containers]``).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qlp_infra.embedded import Proc, start_kafka, start_mongodb


@dataclass
class TestInfra:
    __test__ = False  # a fixture value, not a test class

    kafka: str
    mongodb_url: str
    mode: str
    kafka_proc: Proc | None = None
    mongo_proc: Proc | None = None
    state_dir: Path | None = None
    _closers: list[Any] = field(default_factory=list)

    def close(self) -> None:
        for close in reversed(self._closers):
            close()


def infra_mode() -> str:
    mode = os.environ.get("QLP_TEST_INFRA", "").strip().lower()
    if mode:
        if mode not in ("embedded", "external", "containers"):
            raise ValueError(
                f"QLP_TEST_INFRA must be embedded, external or containers, not {mode!r}"
            )
        return mode
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS") and os.environ.get("MONGODB_URL"):
        return "external"
    return "embedded"


def start_embedded(base: Path | None = None) -> TestInfra:
    state = Path(tempfile.mkdtemp(prefix="qlp-test-", dir=base))
    kafka = start_kafka(state)
    try:
        mongo = start_mongodb(state)
    except Exception:
        kafka.stop()
        raise
    infra = TestInfra(
        f"127.0.0.1:{kafka.port}",
        f"mongodb://127.0.0.1:{mongo.port}",
        "embedded",
        kafka,
        mongo,
        state,
    )
    infra._closers += [kafka.stop, mongo.stop]
    return infra


def start_containers() -> TestInfra:
    from testcontainers.kafka import KafkaContainer
    from testcontainers.mongodb import MongoDbContainer

    kafka = KafkaContainer().with_kraft()
    kafka.start()
    mongo = MongoDbContainer("mongo:7")
    mongo.start()
    infra = TestInfra(kafka.get_bootstrap_server(), mongo.get_connection_url(), "containers")
    infra._closers += [kafka.stop, mongo.stop]
    return infra


def start_infra() -> TestInfra:
    mode = infra_mode()
    if mode == "external":
        return TestInfra(os.environ["KAFKA_BOOTSTRAP_SERVERS"], os.environ["MONGODB_URL"], mode)
    if mode == "containers":
        return start_containers()
    return start_embedded()
