"""The offer feed: OfferAvailabilityChanged events for the marketplace's catalogue,
published off the placement path.

A claim, a release, a liveness verdict or a reliability step changes the provider
document in one conditional write that also bumps its ``offer_rev`` and sets
``offer_dirty`` (:func:`qlp_scheduler.repository.offer_changed`); nothing else is read
or written on the claim path. That mark is this feed's outbox: it is written atomically
with the change, and it is cleared only after the broker acknowledged an event carrying
the revision it was read at.

The feed wakes shortly after a change in this process (each replica's repository
pokes its own feed; a slow sweep finds marks a crashed process left), reads the marked
offers, publishes one record per offer built from the document as read, and then
clears each mark in a write guarded by that revision: a change that landed meanwhile
keeps its mark and goes out next round. A burst of changes on one offer becomes one
event carrying the newest revision. A crash between the publish and the clear publishes
the same revision again; the catalogue applies an event only above the revision it
holds, so a repeat or an older event (another replica's, overtaken) changes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from qlp_kit.producer import Record
from qlp_scheduler.repository import Repository

Doc = dict[str, Any]
Send = Callable[[Sequence[Record]], Awaitable[None]]


class OfferFeed:
    def __init__(
        self,
        repo: Repository,
        build: Callable[[Doc], Record],
        send: Send | None = None,
        batch: int = 500,
        chunk: int = 16,
    ) -> None:
        self.repo = repo
        self.build = build
        #: the broker's send (the service's producer), set once it runs
        self.send = send
        self.batch = batch
        self.chunk = chunk
        #: set after a change in this process: the feed's next round runs at once
        self.changed = asyncio.Event()
        self.published = 0
        repo.on_offer_changed = self.poke

    def poke(self) -> None:
        self.changed.set()

    async def publish(self) -> int:
        """Publish every marked offer's availability; how many marks were cleared.
        In chunks, yielding between them, so that claims in this process never wait
        behind a whole round."""
        if self.send is None:
            return 0
        total = 0
        while True:
            docs = await self.repo.changed_offers(self.batch)
            for i in range(0, len(docs), self.chunk):
                part = docs[i : i + self.chunk]
                await self.send([self.build(d) for d in part])
                self.published += len(part)
                total += await self.repo.clear_offer_marks(part)
                await asyncio.sleep(0)
            if len(docs) < self.batch:
                return total
