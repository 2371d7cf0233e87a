"""Provision Kafka topics from the registry in ``qlp_contracts.topics``.

Every service image has it: ``python -m qlp_kit.topics provision`` (the Helm hook job
and ``qlp topics provision`` both run this). Idempotent: existing topics are left alone.
"""

from __future__ import annotations

import argparse
import asyncio
import os

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from qlp_contracts.topics import Topic, all_topics


async def provision(
    bootstrap: str, topics: list[Topic] | None = None, attempts: int = 20
) -> list[str]:
    """Create every registry topic that does not exist yet; returns those created."""
    wanted = topics if topics is not None else list(all_topics())
    last: Exception | None = None
    for _ in range(attempts):
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="qlp-provision")
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            new = [
                NewTopic(
                    t.name, t.partitions, 1, topic_configs={"retention.ms": str(t.retention_ms)}
                )
                for t in wanted
                if t.name not in existing
            ]
            if new:
                await admin.create_topics(new)
            return [t.name for t in new]
        except Exception as exc:  # broker still starting
            last = exc
            await asyncio.sleep(0.25)
        finally:
            await admin.close()
    raise RuntimeError(f"could not provision topics on {bootstrap}: {last}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m qlp_kit.topics")
    parser.add_argument("action", choices=["provision"])
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"))
    args = parser.parse_args(argv)
    if not args.bootstrap:
        raise SystemExit("set KAFKA_BOOTSTRAP_SERVERS or pass --bootstrap")
    created = asyncio.run(provision(args.bootstrap))
    print(f"provisioned {len(created)} new topic(s): {', '.join(created) or '-'}")


if __name__ == "__main__":
    main()
