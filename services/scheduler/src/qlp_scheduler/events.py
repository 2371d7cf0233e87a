"""Protobuf events the scheduler stages into its documents' outboxes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from qlp.common.v1 import actor_pb2, money_pb2
from qlp.scheduling.v1 import events_pb2 as ev
from qlp.scheduling.v1 import types_pb2 as t
from qlp.usage.v1 import events_pb2 as usage_pb
from qlp_contracts import topics
from qlp_kit.auth import Principal
from qlp_kit.events import build_headers
from qlp_kit.outbox import Staged, stage
from qlp_kit.producer import Record
from qlp_scheduler.service import PRIMARY, STANDBY, UsageLine

SOURCE = "qlp/scheduler"
ROLE = {PRIMARY: t.PLACEMENT_ROLE_PRIMARY, STANDBY: t.PLACEMENT_ROLE_STANDBY}


def ts(value: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(value)
    return out


def money(amount: int, currency: str = "USD") -> money_pb2.Money:
    return money_pb2.Money(amount=amount, currency=currency)


def actor(principal: Principal) -> actor_pb2.Actor:
    kind = {
        "user": actor_pb2.ACTOR_TYPE_USER,
        "api_key": actor_pb2.ACTOR_TYPE_API_KEY,
        "service": actor_pb2.ACTOR_TYPE_SERVICE,
    }.get(principal.kind, actor_pb2.ACTOR_TYPE_UNSPECIFIED)
    return actor_pb2.Actor(type=kind, id=principal.subject, org_id=principal.org_id)


def staged(msg: Message, org_id: str, key: str, when: datetime) -> Staged:
    return stage(msg, org_id=org_id, key=key, source=SOURCE, time_=when)


def provider_registered(doc: dict[str, Any], now: datetime) -> list[Staged]:
    gpus = doc["gpus"]
    devices = [
        t.GpuDevice(uuid=u, model=g["model"], memory_mib=int(float(g["memory_gb"]) * 1024))
        for u, g in sorted(gpus.items(), key=lambda kv: int(kv[1].get("index", 0)))
    ]
    machine = doc["machine"]
    reg = ev.ProviderRegistered(
        org_id=doc["org_id"],
        provider_id=doc["_id"],
        display_name=doc["name"],
        region=doc["region"],
        gpus=devices,
        cpu_cores=int(machine.get("cpu_count", 0)),
        memory_mib=int(float(machine.get("ram_gb", 0)) * 1024),
        simulated=bool(machine.get("simulated")),
        registered_at=ts(now),
    )
    reg.labels["machine_id"] = doc["machine_id"]
    reg.labels["backend"] = doc.get("backend", "agent")
    return [
        staged(reg, doc["org_id"], doc["_id"], now),
        staged(offer_published(doc, now), doc["org_id"], doc["offer_id"], now),
    ]


def offer_published(doc: dict[str, Any], now: datetime) -> ev.OfferPublished:
    return ev.OfferPublished(
        org_id=doc["org_id"],
        offer_id=doc["offer_id"],
        provider_id=doc["_id"],
        gpu_model=doc["gpu_model"],
        gpu_count=int(doc["gpu_count"]),
        gpu_memory_mib=int(float(doc["gpu_memory_gb"]) * 1024),
        region=doc["region"],
        price_per_gpu_hour=money(int(doc["price_minor"]), doc["currency"]),
        simulated=bool(doc["machine"].get("simulated")),
        published_at=ts(now),
        available_gpus=int(doc.get("available_gpus", doc["gpu_count"])),
        containers=bool(doc.get("containers")),
    )


def offer_status(doc: dict[str, Any]) -> str:
    """The offer's status for the catalogue: lost while the failover service says so,
    withdrawn once the provider is no longer active."""
    if doc.get("liveness") == "lost":
        return "lost"
    return "active" if doc.get("status", "active") == "active" else "withdrawn"


def offer_availability(doc: dict[str, Any], reliability_bps: int, now: datetime) -> Record:
    """The offer as ``doc`` stands, at revision ``offer_rev``: the record the offer feed
    publishes (keyed by offer, so one offer's records stay in order)."""
    msg = ev.OfferAvailabilityChanged(
        org_id=doc["org_id"],
        offer_id=doc["offer_id"],
        provider_id=doc["_id"],
        available_gpus=int(doc.get("available_gpus", 0)),
        gpu_count=int(doc.get("gpu_count", 0)),
        reliability_bps=max(0, min(10_000, int(reliability_bps))),
        status=offer_status(doc),
        revision=int(doc.get("offer_rev", 0)),
        changed_at=ts(now),
    )
    headers = build_headers(
        msg, org_id=doc["org_id"], source=SOURCE, subject=doc["offer_id"], time=now
    )
    topic = topics.topic_for_event(msg).name
    return Record(topic, doc["offer_id"], msg.SerializeToString(deterministic=True), headers)


def offer_withdrawn(doc: dict[str, Any], reason: str, now: datetime) -> Staged:
    msg = ev.OfferWithdrawn(
        org_id=doc["org_id"],
        offer_id=doc["offer_id"],
        provider_id=doc["_id"],
        reason=reason,
        withdrawn_at=ts(now),
    )
    return staged(msg, doc["org_id"], doc["offer_id"], now)


def heartbeat(
    doc: dict[str, Any],
    seq: int,
    gpus: list[dict[str, Any]],
    running: list[dict[str, Any]],
    now: datetime,
) -> Staged:
    msg = ev.ProviderHeartbeat(
        org_id=doc["org_id"],
        provider_id=doc["_id"],
        sequence=seq,
        gpus=[
            t.GpuStatus(
                uuid=g["uuid"],
                utilization_bps=round(float(g.get("utilization_pct", 0)) * 100),
                memory_used_mib=int(g.get("memory_used_mb", 0)),
                temperature_c=int(g.get("temperature_c", 0)),
                power_mw=int(float(g.get("power_w", 0)) * 1000),
            )
            for g in gpus
        ],
        leases=[t.LeaseStatus(job_id=r["job_id"], epoch=int(r["epoch"])) for r in running],
        healthy=True,
        simulated=bool(doc.get("machine", {}).get("simulated")),
        sent_at=ts(now),
        received_at=ts(now),
    )
    return staged(msg, doc["org_id"], doc["_id"], now)


def _assignment(p: dict[str, Any], role: str) -> t.Assignment:
    return t.Assignment(
        provider_id=p["provider_id"],
        provider_org_id=p["provider_org_id"],
        offer_id=p["offer_id"],
        lease_id=p["lease_id"],
        role=ROLE[role],
        price_per_gpu_hour=money(int(p["price_minor"]), p.get("currency", "USD")),
    )


def job_submitted(job: dict[str, Any], principal: Principal, now: datetime) -> Staged:
    spec = job["spec"]
    msg = ev.JobSubmitted(
        org_id=job["org_id"],
        job_id=job["_id"],
        requirements=t.GpuRequirements(
            gpu_model=spec.get("gpu_model") or "",
            gpu_count=int(spec["gpu_count"]),
            min_gpu_memory_mib=int(float(spec.get("min_gpu_memory_gb") or 0) * 1024),
            region=spec.get("region") or "",
        ),
        image=spec.get("image") or "",
        command=list(spec["command"]),
        env=dict(spec.get("env") or {}),
        max_duration_minutes=-(-int(spec["max_duration_s"]) // 60),
        hot_standby=spec["redundancy"] == "hot_standby",
        checkpoint_interval_seconds=int(spec["checkpoint_interval_s"]),
        max_price_per_gpu_hour=money(int(spec["max_price_minor"]), spec.get("currency", "USD")),
        submitted_at=ts(now),
        actor=actor(principal),
    )
    return staged(msg, job["org_id"], job["_id"], now)


def escrow_hold_requested(job: dict[str, Any], fee_bps: int, now: datetime) -> Staged:
    amount = job["escrow_amount"]
    msg = ev.EscrowHoldRequested(
        org_id=job["org_id"],
        job_id=job["_id"],
        escrow_id=job["escrow_id"],
        amount=money(int(amount["amount"]), amount["currency"]),
        platform_fee_bps=fee_bps,
        requested_at=ts(now),
    )
    return staged(msg, job["org_id"], job["_id"], now)


def job_placed(
    job: dict[str, Any],
    primary: dict[str, Any],
    standby: dict[str, Any] | None,
    epoch: int,
    now: datetime,
) -> Staged:
    msg = ev.JobPlaced(
        org_id=job["org_id"],
        job_id=job["_id"],
        primary=_assignment(primary, PRIMARY),
        epoch=epoch,
        escrow_id=job.get("escrow_id") or "",
        placed_at=ts(now),
    )
    if standby:
        msg.standby.CopyFrom(_assignment(standby, STANDBY))
    return staged(msg, job["org_id"], job["_id"], now)


def job_started(job: dict[str, Any], provider_id: str, epoch: int, now: datetime) -> Staged:
    ck = job.get("latest_checkpoint") or {}
    msg = ev.JobStarted(
        org_id=job["org_id"],
        job_id=job["_id"],
        provider_id=provider_id,
        epoch=epoch,
        checkpoint_id=ck.get("checkpoint_id", "") if epoch > 1 else "",
        started_at=ts(now),
    )
    return staged(msg, job["org_id"], job["_id"], now)


def job_progress(
    job: dict[str, Any], provider_id: str, epoch: int, step: int, message: str, now: datetime
) -> Staged:
    msg = ev.JobProgress(
        org_id=job["org_id"],
        job_id=job["_id"],
        provider_id=provider_id,
        epoch=epoch,
        step=step,
        message=message[:500],
        reported_at=ts(now),
    )
    return staged(msg, job["org_id"], job["_id"], now)


def checkpoint_written(job: dict[str, Any], ck: dict[str, Any], uri: str, now: datetime) -> Staged:
    msg = ev.CheckpointWritten(
        org_id=job["org_id"],
        job_id=job["_id"],
        checkpoint_id=ck["checkpoint_id"],
        provider_id=ck["provider_id"],
        epoch=int(ck["epoch"]),
        step=int(ck["step"]),
        uri=uri,
        size_bytes=int(ck["size_bytes"]),
        sha256=ck["sha256"],
        written_at=ts(now),
    )
    return staged(msg, job["org_id"], job["_id"], now)


def _usage(lines: list[UsageLine], currency: str) -> list[t.ProviderUsage]:
    return [
        t.ProviderUsage(
            provider_id=u.provider_id,
            provider_org_id=u.provider_org_id,
            role=ROLE.get(u.role, t.PLACEMENT_ROLE_PRIMARY),
            gpu_minutes=u.gpu_minutes,
            price_per_gpu_hour=money(u.price_minor, currency),
            gpu_model=u.gpu_model,
            gpu_count=u.gpu_count,
        )
        for u in lines
    ]


def usage_recorded(job: dict[str, Any], lines: list[UsageLine], now: datetime) -> list[Staged]:
    out = []
    for u in lines:
        if u.gpu_minutes <= 0:
            continue
        msg = usage_pb.UsageRecorded(
            org_id=job["org_id"],
            meter="gpu_minutes",
            quantity=u.gpu_minutes,
            occurred_at=ts(now),
            subject_id=job["_id"],
        )
        msg.attributes["provider_id"] = u.provider_id
        msg.attributes["provider_org_id"] = u.provider_org_id
        msg.attributes["price_per_gpu_hour_minor"] = str(u.price_minor)
        out.append(
            stage(
                msg,
                org_id=job["org_id"],
                key=job["org_id"],
                source=SOURCE,
                time_=now,
                topic=topics.USAGE.name,
            )
        )
    return out


def job_completed(
    job: dict[str, Any],
    provider_id: str,
    epoch: int,
    exit_code: int,
    lines: list[UsageLine],
    now: datetime,
) -> Staged:
    currency = job["spec"].get("currency", "USD")
    msg = ev.JobCompleted(
        org_id=job["org_id"],
        job_id=job["_id"],
        provider_id=provider_id,
        epoch=epoch,
        exit_code=exit_code,
        usage=_usage(lines, currency),
        total_gpu_minutes=sum(u.gpu_minutes for u in lines),
        escrow_id=job.get("escrow_id") or "",
        result_uri=f"qlp://gpu/jobs/{job['_id']}/logs",
        completed_at=ts(now),
    )
    return staged(msg, job["org_id"], job["_id"], now)


def job_failed(
    job: dict[str, Any],
    provider_id: str,
    epoch: int,
    reason: int,
    message: str,
    exit_code: int,
    lines: list[UsageLine],
    now: datetime,
) -> Staged:
    currency = job["spec"].get("currency", "USD")
    msg = ev.JobFailed(
        org_id=job["org_id"],
        job_id=job["_id"],
        provider_id=provider_id,
        epoch=epoch,
        reason=reason,  # type: ignore[arg-type]
        message=message[:500],
        exit_code=exit_code,
        usage=_usage(lines, currency),
        total_gpu_minutes=sum(u.gpu_minutes for u in lines),
        escrow_id=job.get("escrow_id") or "",
        failed_at=ts(now),
    )
    return staged(msg, job["org_id"], job["_id"], now)


def job_canceled(
    job: dict[str, Any],
    reason: str,
    lines: list[UsageLine],
    principal: Principal | None,
    now: datetime,
) -> Staged:
    currency = job["spec"].get("currency", "USD")
    msg = ev.JobCanceled(
        org_id=job["org_id"],
        job_id=job["_id"],
        epoch=int(job.get("epoch", 0)),
        reason=reason,
        usage=_usage(lines, currency),
        total_gpu_minutes=sum(u.gpu_minutes for u in lines),
        escrow_id=job.get("escrow_id") or "",
        canceled_at=ts(now),
    )
    if principal is not None:
        msg.actor.CopyFrom(actor(principal))
    return staged(msg, job["org_id"], job["_id"], now)


def lease_revoked(
    job: dict[str, Any], placement: dict[str, Any], epoch: int, reason: int, now: datetime
) -> Staged:
    msg = ev.LeaseRevoked(
        org_id=job["org_id"],
        job_id=job["_id"],
        lease_id=placement["lease_id"],
        provider_id=placement["provider_id"],
        epoch=epoch,
        reason=reason,  # type: ignore[arg-type]
        revoked_at=ts(now),
    )
    return staged(msg, job["org_id"], job["_id"], now)
