"""MongoDB access of the failover service (database ``qlp_failover``).

- ``liveness``: one document per provider (``_id`` = provider id): its verdict, when it
  was last heard from (written at most every ``persist_every_s`` while nothing
  changes), the leases its last heartbeat listed and the partition it arrives on.
  Verdicts are conditional single-document writes carrying their events (outbox), so
  two replicas that both think they own a provider declare it lost once.
- ``failovers``: one document per failover decision, ``_id`` = ``<job_id>:<epoch>``
  (the epoch being replaced; a lost standby adds ``:standby:<provider>``): the insert
  is the decision, and a second one (another replica, a redelivery, a restart) is a
  duplicate key, never a second failover. ``status``: ``started`` → ``promoted``
  (the scheduler promoted the standby) → ``completed`` (the job runs again: on the
  standby, re-placed from its checkpoint, or with a new standby) or ``ended`` (the job
  finished first).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.errors import DuplicateKeyError

from qlp_kit.mongo import CROSS_TENANT, IndexSpec
from qlp_kit.outbox import Staged, outbox_update, with_outbox

LIVENESS = "liveness"
FAILOVERS = "failovers"
OUTBOX_COLLECTIONS = (LIVENESS, FAILOVERS)
TENANT_COLLECTIONS = (LIVENESS, FAILOVERS)

INDEXES = [
    IndexSpec(LIVENESS, [("partition", ASCENDING)]),
    IndexSpec(LIVENESS, [("org_id", ASCENDING), ("state", ASCENDING)]),
    IndexSpec(FAILOVERS, [("job_id", ASCENDING), ("epoch", DESCENDING)]),
    IndexSpec(FAILOVERS, [("org_id", ASCENDING), ("decided_ms", DESCENDING)]),
    IndexSpec(FAILOVERS, [("decided_ms", DESCENDING)]),
]

Doc = dict[str, Any]

# The tenant guard lets a query through when its comment says why it spans tenants.
BY_PROVIDER = f"{CROSS_TENANT}: keyed by provider id; the verdict is the platform's"
REBALANCE = f"{CROSS_TENANT}: a rebalance hands over providers of every org"
BY_JOB = f"{CROSS_TENANT}: callers check the job's tenant (the scheduler owns jobs)"
ADMIN_READ = f"{CROSS_TENANT}: platform operators (platform:admin) see counts across tenants"


def failover_id(job_id: str, epoch: int, role: str = "", provider_id: str = "") -> str:
    """``<job>:<epoch>`` for the primary's lease (one failover per job and epoch); a lost
    standby keeps the epoch (the primary runs on), so its record also names the standby:
    ``<job>:<epoch>:standby:<provider>``."""
    base = f"{job_id}:{int(epoch)}"
    return f"{base}:standby:{provider_id}" if role == "standby" else base


#: Records still waiting for the scheduler to run the job again.
OPEN = ("started", "promoted")


class Store:
    def __init__(self, db: Any) -> None:
        self.db = db
        self.liveness = db[LIVENESS]
        self.failovers = db[FAILOVERS]

    # ----------------------------------------------------------------- liveness

    async def seen(self, provider_id: str, org_id: str, fields: Doc) -> None:
        """Record that a provider was heard from (first sight creates it as alive)."""
        # keyed by the provider id from the heartbeat; org_id comes with it
        await self.liveness.update_one(
            {"_id": provider_id},
            {
                "$set": {"org_id": org_id, **fields},
                "$setOnInsert": {"state": "alive", "losses": 0},
            },
            upsert=True,
            comment=BY_PROVIDER,
        )

    async def in_partitions(self, partitions: Sequence[int]) -> list[Doc]:
        cur = self.liveness.find({"partition": {"$in": list(partitions)}}, comment=REBALANCE)
        return [d async for d in cur]

    async def transition(
        self,
        provider_id: str,
        org_id: str,
        allowed_from: Sequence[str],
        sets: Doc,
        events: Sequence[Staged],
        inc: Doc | None = None,
    ) -> bool:
        """Move a provider's verdict when it is in one of ``allowed_from``; False when
        it was not (another replica or an earlier attempt already moved it)."""
        update: Doc = {"$set": dict(sets)}
        if inc:
            update["$inc"] = dict(inc)
        res = await self.liveness.update_one(
            {"_id": provider_id, "state": {"$in": list(allowed_from)}},
            outbox_update(events, update),
            comment=BY_PROVIDER,
        )
        return bool(res.modified_count)

    async def get(self, provider_id: str) -> Doc | None:
        doc: Doc | None = await self.liveness.find_one(
            {"_id": provider_id}, comment=f"{CROSS_TENANT}: an operator's view of one provider"
        )
        return doc

    # ---------------------------------------------------------------- failovers

    async def decide(self, doc: Doc, events: Sequence[Staged]) -> bool:
        """Insert the failover record; False when it already exists (decided before)."""
        try:
            await self.failovers.insert_one(with_outbox(doc, events))
        except DuplicateKeyError:
            return False
        return True

    async def mark(self, fid: str, allowed: Sequence[str], sets: Doc) -> bool:
        res = await self.failovers.update_one(
            {"_id": fid, "status": {"$in": list(allowed)}}, {"$set": sets}, comment=BY_JOB
        )
        return bool(res.modified_count)

    async def close(self, fid: str, sets: Doc, events: Sequence[Staged]) -> bool:
        """Move an open record to its outcome with its event; False when another replica
        or a redelivery closed it first."""
        res = await self.failovers.update_one(
            {"_id": fid, "status": {"$in": list(OPEN)}},
            outbox_update(events, {"$set": sets}),
            comment=BY_JOB,
        )
        return bool(res.modified_count)

    async def open_failovers_of_job(self, job_id: str) -> list[Doc]:
        cur = self.failovers.find({"job_id": job_id, "status": {"$in": list(OPEN)}}, comment=BY_JOB)
        return [d async for d in cur]

    async def decided_since(self, since_ms: int) -> list[Doc]:
        """Every failover decided since ``since_ms`` (operators' view, all tenants)."""
        cur = self.failovers.find(
            {"decided_ms": {"$gte": since_ms}},
            projection={"decided_ms": 1, "role": 1, "reason": 1, "status": 1, "recovery_ms": 1},
            comment=ADMIN_READ,
        )
        return [d async for d in cur]

    async def lost_now(self) -> int:
        return int(await self.liveness.count_documents({"state": "lost"}, comment=ADMIN_READ))

    async def failovers_of_job(self, job_id: str) -> list[Doc]:
        cur = self.failovers.find({"job_id": job_id}, comment=BY_JOB).sort("epoch", ASCENDING)
        return [d async for d in cur]
