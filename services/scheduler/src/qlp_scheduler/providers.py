"""Providers: registration (and re-registration of the same machine), heartbeats
that keep offers live, drain, going offline, earnings."""

from __future__ import annotations

from datetime import datetime

from qlp_kit.ids import new_id
from qlp_kit.money import Money
from qlp_kit.mongo import utcnow
from qlp_kit.outbox import outbox_update, with_outbox
from qlp_scheduler import events as E
from qlp_scheduler import service as S
from qlp_scheduler.core import (
    RELIABILITY_STEP_BPS,
    Doc,
    SchedulerCore,
    containers_of,
)
from qlp_scheduler.repository import offer_changed
from qlp_scheduler.service import ms


class Providers(SchedulerCore):
    """Provider use cases."""

    def provider_doc(self, org_id: str, body: Doc, now: datetime) -> Doc:
        """A new provider document (the machine and its offer) with its first events."""
        machine = body["machine"]
        gpus = {
            g["uuid"]: {"index": int(g["index"]), "model": g["model"], "memory_gb": g["memory_gb"]}
            for g in machine["gpus"]
        }
        models = sorted({g["model"] for g in machine["gpus"]})
        price = body["price_per_gpu_hour"]
        doc: Doc = {
            "_id": new_id("prv"),
            "org_id": org_id,
            "offer_id": new_id("ofr"),
            "machine_id": new_id("mch"),
            "name": body["name"],
            "region": body["region"],
            "price_minor": int(price["amount"]),
            "currency": price["currency"],
            "fingerprint": machine["fingerprint"],
            "machine": {k: v for k, v in machine.items() if k not in ("gpus", "fingerprint")},
            "gpus": gpus,
            "gpu_model": models[0] if models else "",
            "gpu_memory_gb": min((float(g["memory_gb"]) for g in machine["gpus"]), default=0.0),
            "gpu_count": len(gpus),
            "available_gpus": len(gpus),
            "gpu_owner": dict.fromkeys(gpus, ""),
            "claims": {},
            "status": S.ACTIVE,
            "backend": body.get("backend", "agent"),
            "containers": containers_of(body),
            "kubernetes": body.get("kubernetes") if body.get("backend") == "kubernetes" else None,
            "stake_minor": int(body.get("stake_minor", 0) or 0),
            "created_at": now,
            "updated_ms": ms(now),
            "last_heartbeat_ms": ms(now),
            "hb_seq": 0,
            "registered_minute": S.minute_of(now),
            "uptime": {
                str(S.minute_of(now) % self.settings.reliability_window_min): S.minute_of(now)
            },
            "gpu_status": {},
        }
        return with_outbox(doc, E.provider_registered(doc, now))

    async def register_provider(self, org_id: str, body: Doc) -> tuple[Doc, bool]:
        machine = body["machine"]
        existing = await self.repo.provider_by_fingerprint(org_id, machine["fingerprint"])
        if existing is not None:
            return await self._reregister(existing, body), False
        now = utcnow()
        doc = self.provider_doc(org_id, body, now)
        if not await self.repo.insert_provider(doc):
            again = await self.repo.provider_by_fingerprint(org_id, machine["fingerprint"])
            if again is None:  # pragma: no cover - unique index says it exists
                raise S.DomainError("provider registration raced and vanished")
            return again, False
        self._index_doc(doc)
        return doc, True

    async def _reregister(self, doc: Doc, body: Doc) -> Doc:
        """The same machine again: the same provider; a changed name, region or price
        is taken over and the offer republished."""
        price = body["price_per_gpu_hour"]
        changes = {
            "name": body["name"],
            "region": body["region"],
            "price_minor": int(price["amount"]),
            "currency": price["currency"],
            "containers": containers_of(body),
        }
        if doc.get("status") == S.OFFLINE:  # the agent is back: offer again
            changes["status"] = S.ACTIVE
        if all(doc.get(k) == v for k, v in changes.items()):
            return doc
        now = utcnow()
        new = {**doc, **changes}
        update = outbox_update(
            [E.staged(E.offer_published(new, now), doc["org_id"], doc["offer_id"], now)],
            {"$set": {**changes, "updated_ms": ms(now)}},
        )
        after = await self.repo.update_provider(doc["_id"], doc["org_id"], {}, update)
        self._index_doc(after)
        return after or new

    async def provider(self, org_id: str, provider_id: str) -> Doc:
        doc = await self.repo.get_provider(provider_id, org_id)
        if doc is None:
            raise S.NotFound("provider")
        return doc

    async def heartbeat(self, org_id: str, provider_id: str, body: Doc) -> Doc:
        running = list(body.get("running", []))
        leases = sorted(
            f"{r['job_id']}@{int(r['epoch'])}:{r.get('status', 'running')}" for r in running
        )
        for _ in range(5):
            doc = await self.provider(org_id, provider_id)
            now = utcnow()
            minute = S.minute_of(now)
            slot = f"{minute % self.settings.reliability_window_min}"
            if self._heartbeat_changes_nothing(doc, leases, slot, minute, now):
                # coalesced: no write, no event; liveness stays within its resolution
                await self.repo.ack_from_heartbeat(
                    provider_id,
                    {(r["job_id"], int(r["epoch"])) for r in running},
                    now,
                    body.get("handled_through_ms"),
                )
                return doc
            seq = int(doc.get("hb_seq", 0)) + 1
            known = doc.get("gpus") or {}
            gpus = [g for g in body.get("gpus", []) if g["uuid"] in known]
            sets: Doc = {
                "last_heartbeat_ms": ms(now),
                "updated_ms": ms(now),
                "hb_seq": seq,
                "hb_leases": leases,
                f"uptime.{slot}": minute,
            }
            for g in gpus:
                sets[f"gpu_status.{g['uuid']}"] = {**g, "at_ms": ms(now)}
            staged = [E.heartbeat(doc, seq, gpus, running, now)]
            guard: Doc = {"hb_seq": doc.get("hb_seq", 0)}
            post = {**doc, "uptime": {**(doc.get("uptime") or {}), slot: minute}}
            bps = round(self.reliability_of(post) * 10_000)
            last_bps = doc.get("offer_rel_bps")
            # coalesced: the catalogue hears of reliability only when it moved by a step
            moved = last_bps is None or abs(bps - int(last_bps)) >= RELIABILITY_STEP_BPS
            if moved:
                sets["offer_rel_bps"] = bps
            change: Doc = {"$set": sets}
            update = outbox_update(staged, offer_changed(change) if moved else change)
            after = await self.repo.update_provider(provider_id, org_id, guard, update)
            if after is not None:
                if moved:
                    self.offer_feed.poke()
                break
        else:
            raise S.DomainError("heartbeat kept racing")
        self._index_doc(after)
        await self.repo.ack_from_heartbeat(
            provider_id,
            {(r["job_id"], int(r["epoch"])) for r in running},
            now,
            body.get("handled_through_ms"),
        )
        return after

    def _heartbeat_changes_nothing(
        self, doc: Doc, leases: list[str], slot: str, minute: int, now: datetime
    ) -> bool:
        """A heartbeat needs no write when the provider is active, holds the same
        leases as last written, this minute already counts for its reliability, and the
        last written one is younger than ``heartbeat_write_s`` (well inside the
        ``heartbeat_timeout_s`` liveness resolution)."""
        last = doc.get("last_heartbeat_ms")
        return (
            doc.get("status") == S.ACTIVE
            and isinstance(last, int | float)
            and ms(now) - int(last) < int(self.settings.heartbeat_write_s * 1000)
            and doc.get("hb_leases") == leases
            and (doc.get("uptime") or {}).get(slot) == minute
        )

    async def drain(self, org_id: str, provider_id: str) -> Doc:
        doc = await self.provider(org_id, provider_id)
        if doc["status"] == S.DRAINING:
            return doc
        now = utcnow()
        update = outbox_update(
            [E.offer_withdrawn(doc, "provider draining", now)],
            {"$set": {"status": S.DRAINING, "updated_ms": ms(now)}},
        )
        after = await self.repo.update_provider(provider_id, org_id, {"status": S.ACTIVE}, update)
        after = after or await self.provider(org_id, provider_id)
        self.index.remove(after["offer_id"])
        return after

    async def go_offline(self, org_id: str, provider_id: str) -> Doc:
        """The agent stopped on purpose: withdraw the offer at once (no waiting for
        missed heartbeats); registering again makes it active. A draining provider
        stays draining (an operator's decision)."""
        doc = await self.provider(org_id, provider_id)
        if doc["status"] != S.ACTIVE:
            return doc
        now = utcnow()
        update = outbox_update(
            [E.offer_withdrawn(doc, "provider went offline", now)],
            {"$set": {"status": S.OFFLINE, "updated_ms": ms(now)}},
        )
        after = await self.repo.update_provider(provider_id, org_id, {"status": S.ACTIVE}, update)
        after = after or await self.provider(org_id, provider_id)
        self.index.remove(after["offer_id"])
        return after

    async def earnings(self, org_id: str, provider_id: str) -> Doc:
        prov = await self.provider(org_id, provider_id)
        minutes = 0
        gross = 0
        jobs = 0
        for job in await self.repo.jobs_of_provider(provider_id):
            u = (job.get("usage") or {}).get(provider_id)
            if not u or job.get("status") not in S.TERMINAL:
                continue
            line = S.usage_lines({provider_id: u})[0]
            jobs += 1
            minutes += line.gpu_minutes
            gross += S.cost_minor(line.gpu_minutes, line.price_minor)
        fee = Money(gross, prov.get("currency", "USD")).fee(self.settings.platform_fee_bps).amount
        return {
            "provider_id": provider_id,
            "currency": prov.get("currency", "USD"),
            "jobs": jobs,
            "gpu_minutes": minutes,
            "gross": gross,
            "platform_fee": fee,
            "net": gross - fee,
            "platform_fee_bps": self.settings.platform_fee_bps,
        }
