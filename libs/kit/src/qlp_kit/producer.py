"""A thin aiokafka producer: idempotence off (the embedded broker lacks it; the
platform is designed for at-least-once with idempotent consumers)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer


@dataclass(frozen=True)
class Record:
    topic: str
    key: str
    value: bytes
    headers: dict[str, str]


class Producer:
    def __init__(self, bootstrap_servers: str, client_id: str = "qlp") -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers,
            client_id=client_id,
            enable_idempotence=False,
            acks="all",
            linger_ms=2,
            max_batch_size=256 * 1024,
            request_timeout_ms=15000,
        )
        self.started = False

    async def start(self) -> None:
        await self._producer.start()
        self.started = True

    async def stop(self) -> None:
        if self.started:
            await self._producer.stop()
            self.started = False

    async def send_many(self, records: Iterable[Record]) -> None:
        """Send all records and wait until the broker acknowledged every one."""
        futures = [
            await self._producer.send(
                r.topic,
                r.value,
                key=r.key.encode(),
                headers=[(k, v.encode()) for k, v in r.headers.items()],
            )
            for r in records
        ]
        if futures:
            await asyncio.gather(*futures)

    async def send(self, record: Record) -> None:
        await self.send_many([record])
