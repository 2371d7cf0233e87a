"""Create a service's MongoDB indexes and exit: ``python -m qlp_kit.indexes ensure <service>``.

Each service chart runs this in the service's own image as a Helm hook Job before
an upgrade rolls the pods (and before the first install when MongoDB is external),
so new pods never start against missing indexes. It creates exactly what the
service's startup creates: the definition's ``indexes`` and the outbox relay's
index on every outbox collection. ``createIndex`` with the same keys and options is
a no-op, so the command is idempotent; it exits 1 (and the hook retries) while the
database cannot be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from qlp_kit.app import ServiceDefinition
from qlp_kit.mongo import Mongo
from qlp_kit.outbox import OutboxRelay
from qlp_kit.producer import Producer
from qlp_kit.settings import ServiceSettings, load_settings


async def ensure(definition: ServiceDefinition, settings: ServiceSettings) -> list[str]:
    """Create every index of a service; returns ``collection: keys`` of each one."""
    mongo = Mongo(settings.mongodb_url, settings.database_name)
    try:
        await mongo.ensure_indexes(list(definition.indexes))
        # never started: the relay only needs the database to create its index
        producer = Producer(settings.kafka_bootstrap_servers, client_id=f"qlp-{definition.name}")
        relay = OutboxRelay(
            mongo.db, definition.outbox_collections, producer, service=definition.name
        )
        await relay.ensure_indexes()
        created = []
        for name in sorted(await mongo.db.list_collection_names()):
            async for index in await mongo.db[name].list_indexes():
                created.append(f"{name}: {dict(index['key'])}")
        return created
    finally:
        await mongo.close()


def main(argv: list[str] | None = None) -> int:
    from qlp_kit.serve import resolve

    parser = argparse.ArgumentParser(prog="python -m qlp_kit.indexes", description=__doc__)
    parser.add_argument("command", choices=["ensure"])
    parser.add_argument("service", help="entry-point name or module:attribute")
    args = parser.parse_args(argv)
    definition = resolve(args.service)
    settings = load_settings(definition.settings_cls, service_name=definition.name)
    try:
        created = asyncio.run(ensure(definition, settings))
    except Exception as exc:  # the hook Job retries; say why in its log
        print(f"indexes of {definition.name}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"{definition.name}: {len(created)} indexes in {settings.database_name}")
    for line in created:
        print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
