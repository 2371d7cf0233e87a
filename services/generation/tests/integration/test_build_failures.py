"""A build that raises (render or gate) fails the job with its reason and stages
GenerationFailed with the reservation (billing releases it on that event); billing's
rejection reasons become 429 or 402 with what to do; a completed build meters its
tier once; the optional LLM port (a local stand-in server) refines before the gate
decides. The service runs on the real database; the events are read from its outbox."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from qlp.generation.v1 import events_pb2 as gev
from qlp.generation.v1 import types_pb2 as gt
from qlp.usage.v1 import events_pb2 as upb
from qlp_generation import gate as G
from qlp_generation import service as S
from qlp_generation.repository import Store
from qlp_testing.infra import TestInfra

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def _events(job: dict[str, Any], type_: str) -> list[Any]:
    out = []
    for entry in (job.get("_outbox") or {}).values():
        if entry["headers"]["ce_type"] == type_:
            cls = {
                "qlp.generation.v1.GenerationFailed": gev.GenerationFailed,
                "qlp.generation.v1.GenerationCompleted": gev.GenerationCompleted,
                "qlp.usage.v1.UsageRecorded": upb.UsageRecorded,
            }[type_]
            msg = cls.FromString(base64.b64decode(entry["data"]))
            out.append((entry, msg))
    return out


def _gen(infra: TestInfra, db: Any, h: Any, **kw: Any) -> S.Generation:
    settings = h.gen_settings(infra, db.name, quota_enabled=True, quota_wait_s=0, **kw)
    return S.Generation(Store(db), settings)


async def _reserved_job(
    gen: S.Generation, org: str, prompt: str = "a CRM", tier: Any = "T0"
) -> str:
    doc = await gen.request(org, "usr_1", tier, prompt, None, None, None)
    await gen.on_quota(org, doc["_id"], True)
    return str(doc["_id"])


@pytest.mark.parametrize("where", ["render", "gate"])
async def test_a_build_that_raises_fails_the_job_and_releases_the_reservation(
    qlp_infra: TestInfra, mongo_db: Any, h: Any, where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    gen = _gen(qlp_infra, mongo_db, h)
    org = "org_boom"
    gen_id = await _reserved_job(gen, org)

    async def boom(*_: Any, **__: Any) -> Any:
        raise RuntimeError(f"{where} exploded")

    if where == "render":
        monkeypatch.setattr(gen, "render_files", boom)
    else:
        monkeypatch.setattr(G, "gate", boom)
    await gen.build(org, gen_id)  # no exception reaches the consumer
    job = await mongo_db["generations"].find_one({"_id": gen_id})
    assert (job["status"], job["stage"]) == ("failed", "done")
    assert job["failure"]["reason"] == "build_error"
    assert f"{where} exploded" in job["failure"]["detail"]
    ((_, failed),) = _events(job, "qlp.generation.v1.GenerationFailed")
    assert failed.reservation_id == f"res_{gen_id}"
    assert failed.reason == gt.GENERATION_FAILURE_REASON_INTERNAL
    assert await mongo_db["versions"].count_documents({"generation_id": gen_id}) == 0
    await gen.build(org, gen_id)  # a redelivery changes nothing
    again = await mongo_db["generations"].find_one({"_id": gen_id})
    assert again["attempts"] == 1 and len(_events(again, "qlp.generation.v1.GenerationFailed")) == 1


@pytest.mark.parametrize(
    ("why", "status", "type_", "hint"),
    [
        ("exceeded", 429, "quota-exceeded", "renews with the next billing period"),
        ("meter_not_in_plan", 402, "plan-upgrade-required", "PUT /v1/billing/subscription"),
        ("org_suspended", 402, "payment-required", "pay the open invoices"),
    ],
)
async def test_billings_rejections_are_429_or_402_at_request_time(
    qlp_infra: TestInfra, mongo_db: Any, h: Any, why: str, status: int, type_: str, hint: str
) -> None:
    settings = h.gen_settings(qlp_infra, mongo_db.name, quota_enabled=True, quota_wait_s=5)
    gen = S.Generation(Store(mongo_db), settings)
    org = f"org_{why}"
    real_insert = gen.store.insert_job

    async def insert_then_answer(doc: dict[str, Any], events: Any) -> None:
        await real_insert(doc, events)
        await gen.on_quota(org, doc["_id"], False, why, 10, 0)  # billing's answer

    gen.store.insert_job = insert_then_answer  # type: ignore[method-assign]
    with pytest.raises(S.QuotaRefused) as err:
        await gen.request(org, "usr_1", "T2", "helpdesk tickets", None, None, None)
    assert (err.value.status, err.value.type) == (status, type_)
    assert hint in err.value.detail and "generations.t2" in err.value.detail


async def test_a_completed_build_meters_its_tier_once_and_the_llm_port_refines_first(
    qlp_infra: TestInfra, mongo_db: Any, h: Any, llm_standin: Any
) -> None:
    from qlp_generation.blueprint import extract

    bp = extract("a CRM for a sales team", "T0")
    proposal = bp.model_dump(mode="json")
    proposal["features"] = ["exports"]
    proposal["rules"] = ["a contact is exported only by its owner's team"]
    llm_standin.answer(proposal)
    gen = _gen(qlp_infra, mongo_db, h, llm_url=llm_standin.url, llm_model="stand-in-model")
    org = "org_meter"
    gen_id = await _reserved_job(gen, org, "a CRM for a sales team", "T0")
    await gen.build(org, gen_id)
    job = await mongo_db["generations"].find_one({"_id": gen_id})
    assert job["status"] == "completed", (
        job.get("failure"),
        (job.get("gate") or {}).get("output_tail"),
    )
    assert job["llm"] == {"used": True, "note": "refined by stand-in-model"}
    assert job["blueprint"]["features"] == ["exports"] and job["gate"]["passed"]
    version = await mongo_db["versions"].find_one({"_id": job["version_id"]})
    files = await Store(mongo_db).files(org, version["files"])
    assert "app/features.py" in files and b"exports" in files["app/features.py"]
    assert b"a contact is exported only by its owner's team" in files["README.md"]
    ((entry, usage),) = _events(job, "qlp.usage.v1.UsageRecorded")
    assert (usage.meter, usage.quantity, usage.subject_id) == ("generations.t0", 1, gen_id)
    assert entry["topic"] == "qlp.usage.v1" and entry["headers"]["ce_id"] == "use_" + gen_id[4:]
    ((_, done),) = _events(job, "qlp.generation.v1.GenerationCompleted")
    assert done.reservation_id == f"res_{gen_id}"
    assert len(llm_standin.requests) == 1
