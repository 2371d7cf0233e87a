"""Generation: request → (quota) → build on a worker → quality gate → immutable version.

Every step is one guarded write on the job (``status``/``stage``), so a redelivered
event never runs a job to completion twice; the version id is derived from the job id,
so even a worker that dies between storing the version and finishing the job is
completed by the next delivery without a second version.
"""

from __future__ import annotations

import asyncio
import difflib
import io
import tarfile
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from google.protobuf.timestamp_pb2 import Timestamp
from jinja2 import TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from qlp.generation.v1 import events_pb2 as gev
from qlp.generation.v1 import types_pb2 as gt
from qlp.usage.v1 import events_pb2 as upb
from qlp_contracts import topics
from qlp_generation import gate as G
from qlp_generation.blueprint import Blueprint, Tier, extract, library
from qlp_generation.llm import LlmConfig, refine
from qlp_generation.render import builtin_templates, pack, render
from qlp_generation.render_limited import RenderLimits, render_pack
from qlp_generation.repository import Doc, Store
from qlp_generation.settings import GenerationSettings
from qlp_kit.aio import wait_event
from qlp_kit.ids import new_id
from qlp_kit.mongo import await_document
from qlp_kit.outbox import Staged, stage
from qlp_kit.packs import PackError, PackManifest, read_pack

log = structlog.get_logger("qlp.generation")

SOURCE = "qlp/generation"
TIERS: dict[str, Any] = {
    "T0": gt.GENERATION_TIER_T0,
    "T1": gt.GENERATION_TIER_T1,
    "T2": gt.GENERATION_TIER_T2,
    "T3": gt.GENERATION_TIER_T3,
}


class NotFound(LookupError):
    pass


class Invalid(ValueError):
    pass


class Unavailable(Exception):
    """The request is fine but cannot be served yet (409)."""


def _semver_key(v: str) -> tuple[int, ...]:
    core = v.split("-", 1)[0].split("+", 1)[0]
    try:
        return tuple(int(x) for x in core.split("."))
    except ValueError:
        return (0,)


#: Billing's rejection reasons (QuotaRejectionReason) → (HTTP status, problem type).
#: The period's cap reached is 429 (it comes back next period, or sooner on a larger
#: plan); a plan that does not include generations, no subscription or a suspended org
#: is 402 (only paying / upgrading helps).
QUOTA_ANSWERS: dict[str, tuple[int, str]] = {
    "exceeded": (429, "quota-exceeded"),
    "meter_not_in_plan": (402, "plan-upgrade-required"),
    "no_subscription": (402, "plan-upgrade-required"),
    "org_suspended": (402, "payment-required"),
    "unspecified": (402, "plan-upgrade-required"),
}
UPGRADE_HINT = (
    'upgrade the plan with PUT /v1/billing/subscription {"plan": "starter"} '
    "(plans: GET /v1/billing/plans)"
)


class QuotaRefused(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason
        self.status, self.type = QUOTA_ANSWERS.get(reason, QUOTA_ANSWERS["unspecified"])
        self.detail = detail or reason


def quota_detail(reason: str, tier: str, limit: int, remaining: int) -> str:
    """What billing's rejection means for the caller, and what to do about it."""
    meter = f"generations.{tier.lower()}"
    if reason == "exceeded":
        return (
            f"the organization's generation quota for this period is used up "
            f"({limit} included, {remaining} left; this {tier} generation meters {meter}); "
            f"it renews with the next billing period, or {UPGRADE_HINT}"
        )
    if reason == "org_suspended":
        return f"the organization is suspended: pay the open invoices (GET /v1/billing/invoices), then retry ({meter})"
    return f"the organization's plan does not include {tier} generations ({meter}); {UPGRADE_HINT}"


_REASONS = {
    "quality_gate_failed": gt.GENERATION_FAILURE_REASON_QUALITY_GATE_FAILED,
    "build_error": gt.GENERATION_FAILURE_REASON_INTERNAL,
}


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:900]


def _ts(when: datetime) -> Timestamp:
    t = Timestamp()
    t.FromDatetime(when)
    return t


def _quality(r: dict[str, Any]) -> gt.QualityReport:
    return gt.QualityReport(
        tests_passed=int(r.get("tests_passed", 0)),
        tests_failed=int(r.get("tests_failed", 0)),
        tests_skipped=int(r.get("tests_skipped", 0)),
        coverage_bps=int(r.get("coverage_bps", 0)),
        passed=bool(r.get("passed")),
    )


class Generation:
    def __init__(
        self,
        store: Store,
        settings: GenerationSettings,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self.llm = LlmConfig(
            settings.llm_url, settings.llm_model, settings.llm_api_key, settings.llm_timeout_s
        )
        #: job id → waiters for progress (SSE), this process only
        self._progress: dict[str, asyncio.Event] = {}

    def _stage(self, msg: Any, org_id: str, key: str) -> Staged:
        return stage(msg, org_id=org_id, key=key, source=SOURCE)

    async def evidence(self) -> dict[str, float]:
        """Pattern id → measured gate pass rate (counts across tenants)."""
        out = {}
        for pid, d in (await self.store.outcomes()).items():
            runs = int(d.get("gate_runs", 0))
            if runs:
                out[pid] = int(d.get("gate_passed", 0)) / runs
        return out

    # ------------------------------------------------------------ requests
    async def request(
        self,
        org_id: str,
        actor: str,
        tier: Tier,
        prompt: str | None,
        blueprint: Blueprint | None,
        project_id: str | None,
        parent_version_id: str | None,
        template_listing_id: str | None = None,
    ) -> Doc:
        template = (
            await self.template_for(org_id, template_listing_id) if template_listing_id else None
        )
        if blueprint is None:
            if not prompt or not prompt.strip():
                raise Invalid("give a prompt or a blueprint")
            blueprint = extract(prompt, tier, await self.evidence())
        if parent_version_id:
            if not project_id:
                raise Invalid("parent_version_id needs its project_id")
            if await self.store.version(org_id, project_id, parent_version_id) is None:
                raise NotFound(f"version {parent_version_id}")
        elif project_id and await self.store.project(org_id, project_id) is None:
            raise NotFound(f"project {project_id}")
        if template is not None:
            note = (
                f"Built from the marketplace template {template['listing_id']} "
                f"({template['manifest']['id']} {template['version']}) instead of the "
                f"built-in pack."
            )
            blueprint = blueprint.model_copy(
                update={"explanation": f"{note} {blueprint.explanation}".strip()[:500]}
            )
        now = self.clock()
        gen_id = new_id("gen")
        project_id = project_id or new_id("prj")
        reservation_id = f"res_{gen_id}" if self.settings.quota_enabled else ""
        doc: Doc = {
            "_id": gen_id,
            "org_id": org_id,
            "status": "queued",
            "stage": "quota" if reservation_id else "queued",
            "progress": 0,
            "tier": tier,
            "prompt": prompt or "",
            "blueprint": blueprint.model_dump(mode="json"),
            "project_id": project_id,
            "parent_version_id": parent_version_id or "",
            "reservation_id": reservation_id,
            "attempts": 0,
            "template": (
                {
                    "listing_id": template["listing_id"],
                    "version": template["version"],
                    "pack_id": template["_id"],
                    "creator_org_id": template["org_id"],
                }
                if template is not None
                else None
            ),
            "created_at": now,
            "updated_at": now,
            "actor": actor,
        }
        events = [
            self._stage(
                gev.GenerationRequested(
                    org_id=org_id,
                    generation_id=gen_id,
                    project_id=project_id,
                    tier=TIERS[tier],
                    prompt=(prompt or "")[:4000],
                    base_version_id=parent_version_id or "",
                    template_listing_id=template["listing_id"] if template else "",
                    requested_at=_ts(now),
                ),
                org_id,
                gen_id,
            )
        ]
        if reservation_id:
            events.append(
                self._stage(
                    gev.QuotaReservationRequested(
                        org_id=org_id,
                        generation_id=gen_id,
                        reservation_id=reservation_id,
                        meter=f"generations.{tier.lower()}",
                        quantity=1,
                        requested_at=_ts(now),
                    ),
                    org_id,
                    gen_id,
                )
            )
        else:
            events.append(self._started(doc))
        await self.store.insert_job(doc, events)
        if reservation_id and self.settings.quota_wait_s > 0:
            doc = await self._await_quota(org_id, gen_id)
        return doc

    def _started(self, job: Doc) -> Staged:
        return self._stage(
            gev.GenerationStarted(
                org_id=job["org_id"],
                generation_id=job["_id"],
                project_id=job["project_id"],
                tier=TIERS[job["tier"]],
                reservation_id=job["reservation_id"],
                started_at=_ts(self.clock()),
            ),
            job["org_id"],
            job["_id"],
        )

    async def _await_quota(self, org_id: str, gen_id: str) -> Doc:
        job = await await_document(
            lambda: self.store.job(org_id, gen_id),
            lambda j: j["stage"] != "quota" or j["status"] == "failed",
            self.settings.quota_wait_s,
        )
        failure = job.get("failure") or {}
        if failure.get("reason") == "quota_rejected":
            raise QuotaRefused(str(failure.get("code", "exceeded")), str(failure.get("detail", "")))
        return job

    async def on_quota(
        self,
        org_id: str,
        gen_id: str,
        reserved: bool,
        why: str = "exceeded",
        limit: int = 0,
        remaining: int = 0,
    ) -> None:
        """Billing's answer: reserved → the build is queued for a worker; rejected → the
        job ends (nothing was built, nothing to release)."""
        job = await self.store.job(org_id, gen_id)
        if job is None or job["stage"] != "quota":
            return
        now = self.clock()
        if reserved:
            await self.store.transition(
                org_id,
                gen_id,
                {"stage": "quota"},
                {"stage": "queued", "updated_at": now},
                [self._started(job)],
            )
        else:
            await self.store.transition(
                org_id,
                gen_id,
                {"stage": "quota"},
                {
                    "status": "failed",
                    "stage": "quota",
                    "updated_at": now,
                    "failure": {
                        "reason": "quota_rejected",
                        "code": why,
                        "status": QuotaRefused(why).status,
                        "detail": quota_detail(why, job["tier"], limit, remaining),
                    },
                },
            )
        self._notify(gen_id)

    # ------------------------------------------------------------ the worker
    async def build(self, org_id: str, gen_id: str) -> None:
        """Run one job (the worker consumer calls this for GenerationStarted)."""
        job = await self.store.job(org_id, gen_id)
        if job is None or job["status"] in ("completed", "failed"):
            return  # redelivered after the end: nothing runs twice
        now = self.clock()
        lease = now + timedelta(seconds=self.settings.lease_s)
        claimed = await self.store.transition(
            org_id,
            gen_id,
            {
                "$or": [
                    {"status": "queued", "stage": "queued"},
                    {"status": "running", "lease_until": {"$lt": now}},
                ]
            },
            {
                "status": "running",
                "stage": "rendering",
                "progress": 10,
                "lease_until": lease,
                "attempts": int(job.get("attempts", 0)) + 1,
                "updated_at": now,
            },
        )
        if claimed is None:
            from qlp_kit.transient import TransientError

            if job["status"] == "running":  # another worker holds it: look again later
                raise TransientError(f"{gen_id} is held by another worker")
            return
        self._notify(gen_id)
        # every later write is guarded by this attempt: a worker that lost its lease
        # (another took the job over) changes nothing
        mine = {"status": "running", "attempts": int(claimed["attempts"])}
        job = claimed
        # A render or gate that raises (a bug, a template that does not fit the
        # blueprint, a gate that could not start) ends the job as failed with its reason,
        # which releases the reservation: never a job left running or retried forever.
        # Database errors around it are not caught: the consumer retries those.
        bp = Blueprint.model_validate(job["blueprint"])
        if self.llm.enabled and job.get("prompt") and not job.get("llm"):
            # the optional LLM port; its answer is validated, and the gate still decides
            await self._progress_to(org_id, gen_id, mine, "refining", 20)
            refined = await refine(self.llm, str(job["prompt"]), bp)
            bp = refined.blueprint
            await self.store.transition(
                org_id,
                gen_id,
                mine,
                {"blueprint": bp.model_dump(mode="json"), "llm": refined.record()},
            )
        try:
            files = await self.render_files(bp, str(job["tier"]), job.get("template"))
        except Exception as exc:
            await self._fail(job, mine, "build_error", f"render: {_describe(exc)}", None)
            return
        await self._progress_to(org_id, gen_id, mine, "gate", 40)
        try:
            report = (
                await G.gate(
                    files,
                    G.Limits(
                        self.settings.gate_cpu_s,
                        self.settings.gate_memory_mb,
                        self.settings.gate_wall_s,
                    ),
                )
            ).as_dict()
        except Exception as exc:
            await self._fail(job, mine, "build_error", f"gate: {_describe(exc)}", None)
            return
        await self.store.record_outcome(bp.pattern_id, gen_id, "gate_runs")
        outcome = await self._template_outcome(job, bool(report["passed"]))
        if report["passed"]:
            await self.store.record_outcome(bp.pattern_id, gen_id, "gate_passed")
            await self._complete(job, mine, bp, files, report, outcome)
        else:
            await self._fail(
                job, mine, "quality_gate_failed", str(report["failure"]), report, outcome
            )

    async def render_files(
        self, bp: Blueprint, tier: str, template: Doc | None = None
    ) -> dict[str, bytes]:
        """The project's files from the built-in pack (in a thread: the event loop
        keeps serving), or from the template's pack (sandboxed, in a child process under
        CPU, memory and wall-clock limits). A seam: tests make it raise."""
        if not template:
            return await asyncio.to_thread(render, bp, tier)
        s = self.settings
        return await render_pack(
            bp,
            tier,
            await self._pack_templates(template["pack_id"]),
            RenderLimits(
                s.template_render_cpu_s, s.template_render_memory_mb, s.template_render_wall_s
            ),
        )

    async def _pack_templates(self, pack_id: str) -> dict[str, str]:
        listing_id = pack_id.split("@", 1)[0]
        doc = next((d for d in await self.store.packs_of(listing_id) if d["_id"] == pack_id), None)
        if doc is None:
            raise NotFound(f"template pack {pack_id}")
        files = await self.store.files(str(doc["org_id"]), doc["files"])
        return {p: data.decode("utf-8") for p, data in files.items()}

    async def _template_outcome(self, job: Doc, passed: bool) -> list[Staged]:
        """A project built from a template: the template's counts (once per generation)
        and the event the marketplace shows them from (counts only, to the creator)."""
        t = job.get("template")
        if not t:
            return []
        totals = await self.store.count_template_outcome(t["listing_id"], job["_id"], passed)
        msg = gev.TemplateOutcomeRecorded(
            org_id=t["creator_org_id"],
            listing_id=t["listing_id"],
            template_version=t["version"],
            gate_passed=passed,
            projects_built=int(totals.get("projects_built", 0)),
            projects_passed=int(totals.get("projects_passed", 0)),
            recorded_at=_ts(self.clock()),
        )
        return [self._stage(msg, t["creator_org_id"], t["listing_id"])]

    async def _progress_to(
        self, org_id: str, gen_id: str, mine: Doc, stage_: str, pct: int
    ) -> None:
        await self.store.transition(
            org_id,
            gen_id,
            mine,
            {"stage": stage_, "progress": pct, "updated_at": self.clock()},
        )
        self._notify(gen_id)

    async def _complete(
        self,
        job: Doc,
        mine: Doc,
        bp: Blueprint,
        files: dict[str, bytes],
        report: Doc,
        extra: list[Staged] | None = None,
    ) -> None:
        org_id, gen_id = job["org_id"], job["_id"]
        now = self.clock()
        await self.store.ensure_project(org_id, job["project_id"], bp.title, now)
        manifest = await self.store.put_files(org_id, files)
        version_id = "ver_" + gen_id.removeprefix("gen_")
        version = await self.store.add_version(
            org_id,
            {
                "_id": version_id,
                "org_id": org_id,
                "project_id": job["project_id"],
                "parent_version_id": job.get("parent_version_id", ""),
                "source": "generation",
                "generation_id": gen_id,
                "files": manifest,
                "gate": report,
                "blueprint": bp.model_dump(mode="json"),
                "pack": (
                    f"template:{job['template']['pack_id']}"
                    if job.get("template")
                    else f"{pack().id}@{pack().version}"
                ),
                "pattern_id": bp.pattern_id,
                "created_at": now,
            },
            [],
        )
        done = self._stage(
            gev.GenerationCompleted(
                org_id=org_id,
                generation_id=gen_id,
                project_id=job["project_id"],
                version_id=version_id,
                tier=TIERS[job["tier"]],
                reservation_id=job.get("reservation_id", ""),
                file_count=len(files),
                quality=_quality(report),
                duration_ms=int(report.get("duration_ms", 0)),
                pattern_ids=[bp.pattern_id],
                completed_at=_ts(now),
            ),
            org_id,
            gen_id,
        )
        created = self._stage(
            gev.ProjectVersionCreated(
                org_id=org_id,
                project_id=job["project_id"],
                version_id=version_id,
                number=int(version["number"]),
                parent_version_id=job.get("parent_version_id", ""),
                source=gt.VERSION_SOURCE_GENERATION,
                generation_id=gen_id,
                created_at=_ts(now),
            ),
            org_id,
            job["project_id"],
        )
        usage = upb.UsageRecorded(
            org_id=org_id,
            meter=f"generations.{str(job['tier']).lower()}",
            quantity=1,
            occurred_at=_ts(now),
            subject_id=gen_id,
        )
        usage.attributes["tier"] = str(job["tier"])
        usage.attributes["pattern_id"] = bp.pattern_id
        # one usage per generation: the event id is derived from the job, so a
        # redelivered completion is counted once by billing
        metered = stage(
            usage,
            org_id=org_id,
            key=org_id,
            source=SOURCE,
            topic=topics.USAGE.name,
            time_=now,
            event_id="use_" + gen_id.removeprefix("gen_"),
        )
        await self.store.transition(
            org_id,
            gen_id,
            mine,
            {
                "status": "completed",
                "stage": "done",
                "progress": 100,
                "version_id": version_id,
                "gate": report,
                "updated_at": now,
            },
            [done, created, metered, *(extra or [])],
        )
        self._notify(gen_id)

    async def _fail(
        self,
        job: Doc,
        mine: Doc,
        reason: str,
        detail: str,
        report: Doc | None,
        extra: list[Staged] | None = None,
    ) -> None:
        org_id, gen_id = job["org_id"], job["_id"]
        now = self.clock()
        ev = self._stage(
            gev.GenerationFailed(
                org_id=org_id,
                generation_id=gen_id,
                project_id=job["project_id"],
                tier=TIERS[job["tier"]],
                reservation_id=job.get("reservation_id", ""),
                reason=_REASONS.get(reason, gt.GENERATION_FAILURE_REASON_INTERNAL),
                message=detail[:1000],
                retryable=False,
                quality=_quality(report or {}),
                failed_at=_ts(now),
            ),
            org_id,
            gen_id,
        )
        await self.store.transition(
            org_id,
            gen_id,
            mine,
            {
                "status": "failed",
                "stage": "done",
                "progress": 100,
                "gate": report,
                "failure": {"reason": reason, "detail": detail},
                "updated_at": now,
            },
            [ev, *(extra or [])],
        )
        self._notify(gen_id)

    # ------------------------------------------------------------ progress (SSE)
    def _notify(self, gen_id: str) -> None:
        ev = self._progress.pop(gen_id, None)
        if ev is not None:
            ev.set()

    async def wait_change(self, gen_id: str, timeout: float) -> None:
        await wait_event(self._progress.setdefault(gen_id, asyncio.Event()), timeout)

    # ------------------------------------------------------------ versions
    async def job(self, org_id: str, gen_id: str) -> Doc:
        job = await self.store.job(org_id, gen_id)
        if job is None:
            raise NotFound(f"generation {gen_id}")
        return job

    async def version(self, org_id: str, project_id: str, version_id: str) -> Doc:
        v = await self.store.version(org_id, project_id, version_id)
        if v is None:
            raise NotFound(f"version {version_id}")
        return v

    async def copy_version(self, org_id: str, project_id: str, version_id: str, source: str) -> Doc:
        """Restore (a new version equal to an old one) or branch (a new version whose
        parent is the old one, on a new branch)."""
        old = await self.version(org_id, project_id, version_id)
        now = self.clock()
        new_vid = new_id("ver")
        branch = "main" if source == "restore" else new_vid
        doc = await self.store.add_version(
            org_id,
            {
                "_id": new_vid,
                "org_id": org_id,
                "project_id": project_id,
                "parent_version_id": version_id,
                "source": source,
                "generation_id": "",
                "files": old["files"],
                "gate": old.get("gate"),
                "blueprint": old["blueprint"],
                "pack": old.get("pack", ""),
                "pattern_id": old.get("pattern_id", ""),
                "branch": branch,
                "created_at": now,
            },
            [],
        )
        return doc

    async def diff(self, org_id: str, project_id: str, a: str, b: str) -> list[Doc]:
        va = await self.version(org_id, project_id, a)
        vb = await self.version(org_id, project_id, b)
        fa = await self.store.files(org_id, va["files"])
        fb = await self.store.files(org_id, vb["files"])
        out = []
        for path in sorted(set(fa) | set(fb)):
            if va["files"].get(path) == vb["files"].get(path):
                continue
            status = "added" if path not in fa else "removed" if path not in fb else "modified"
            lines = difflib.unified_diff(
                fa.get(path, b"").decode("utf-8", "replace").splitlines(keepends=True),
                fb.get(path, b"").decode("utf-8", "replace").splitlines(keepends=True),
                f"a/{path}",
                f"b/{path}",
            )
            out.append({"path": path, "status": status, "patch": "".join(lines)})
        return out

    async def archive(
        self, org_id: str, project_id: str, version_id: str, fmt: str
    ) -> tuple[bytes, str]:
        v = await self.version(org_id, project_id, version_id)
        files = await self.store.files(org_id, v["files"])
        folder = str(v["blueprint"]["name"])
        buf = io.BytesIO()
        if fmt == "zip":
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
                for path, data in sorted(files.items()):
                    z.writestr(f"{folder}/{path}", data)
        else:
            with tarfile.open(fileobj=buf, mode="w:gz") as t:
                for path, data in sorted(files.items()):
                    info = tarfile.TarInfo(f"{folder}/{path}")
                    info.size, info.mode, info.mtime = len(data), 0o644, 0
                    t.addfile(info, io.BytesIO(data))
        return buf.getvalue(), folder

    async def feedback(
        self, org_id: str, project_id: str, version_id: str, rating: int, comment: str
    ) -> None:
        v = await self.version(org_id, project_id, version_id)
        await self.store.set_feedback(org_id, version_id, rating, comment)
        if v.get("pattern_id"):
            field = (
                "feedback_up"
                if rating >= 4
                else "feedback_down"
                if rating <= 2
                else "feedback_neutral"
            )
            await self.store.record_outcome(str(v["pattern_id"]), f"{org_id}|{version_id}", field)

    async def on_review(self, review_id: str, listing_id: str, rating: int, at: Any) -> None:
        """A marketplace review: kept (stars only) when the listing is a template here."""
        if await self.store.packs_of(listing_id):
            await self.store.put_rating(review_id, listing_id, rating, at)

    async def _template_ratings(self) -> tuple[dict[str, Doc], dict[str, Doc]]:
        """The marketplace rating per template listing, and per library pattern (over the
        templates exported from it): ``{average, reviews}``, counts only."""
        ratings = await self.store.ratings()
        by_listing = {
            lid: {"average": round(total / n, 2), "reviews": n}
            for lid, (total, n) in ratings.items()
            if n
        }
        sums: dict[str, tuple[int, int]] = {}
        for lid, pid in (await self.store.pattern_of_packs()).items():
            total, n = ratings.get(lid, (0, 0))
            t0, n0 = sums.get(pid, (0, 0))
            sums[pid] = (t0 + total, n0 + n)
        by_pattern = {
            pid: {"average": round(total / n, 2), "reviews": n}
            for pid, (total, n) in sums.items()
            if n
        }
        return by_listing, by_pattern

    async def patterns(self, q: str, org_id: str = "") -> list[Doc]:
        """The library's patterns with their measured outcomes (gate runs, feedback, the
        marketplace rating of templates exported from them), then the org's own template
        packs (bought in the marketplace; no other org sees them)."""
        outcomes = await self.store.outcomes()
        by_listing, by_pattern = await self._template_ratings()
        words = [w for w in q.lower().split() if w]
        out = []
        for p in library().patterns:
            hay = " ".join([p.id, p.title, *p.keywords]).lower()
            if words and not all(w in hay for w in words):
                continue
            o = outcomes.get(p.id, {})
            runs = int(o.get("gate_runs", 0))
            out.append(
                {
                    "id": p.id,
                    "title": p.title,
                    "version": library().version,
                    "keywords": list(p.keywords),
                    "entities": [e["name"] for e in p.entities],
                    "gate_runs": runs,
                    "gate_passed": int(o.get("gate_passed", 0)),
                    "gate_pass_rate": (int(o.get("gate_passed", 0)) / runs) if runs else None,
                    "feedback_up": int(o.get("feedback_up", 0)),
                    "feedback_down": int(o.get("feedback_down", 0)),
                    "marketplace_rating": by_pattern.get(p.id),
                }
            )
        if org_id:
            out += await self.template_patterns(org_id, words, by_listing)
        return out

    # ------------------------------------------------------------ marketplace templates
    async def template_patterns(
        self, org_id: str, words: list[str], ratings: dict[str, Doc] | None = None
    ) -> list[Doc]:
        """The org's bought (or own) template packs, newest version each; their counts
        are shared across tenants as counts only."""
        listings = await self.store.entitled_listings(org_id)
        out: list[Doc] = []
        outcomes = await self.store.template_outcomes(listings) if listings else {}
        for lid in listings:
            packs = await self.store.packs_of(lid)
            if not packs:
                continue
            p = max(packs, key=lambda d: _semver_key(str(d["version"])))
            man = p["manifest"]
            hay = " ".join([lid, man["id"], man.get("description", ""), *man.get("keywords", [])])
            if words and not all(w in hay.lower() for w in words):
                continue
            o = outcomes.get(lid, {})
            built, passed = int(o.get("projects_built", 0)), int(o.get("projects_passed", 0))
            out.append(
                {
                    "id": f"template:{lid}",
                    "title": man.get("description") or man["id"],
                    "version": str(p["version"]),
                    "keywords": list(man.get("keywords", [])),
                    "entities": [],
                    "gate_runs": built,
                    "gate_passed": passed,
                    "gate_pass_rate": passed / built if built else None,
                    "feedback_up": 0,
                    "feedback_down": 0,
                    "marketplace_rating": (ratings or {}).get(lid),
                    "source": "template",
                    "listing_id": lid,
                    "pack": f"{man['id']}@{man['version']}",
                }
            )
        return out

    async def template_for(self, org_id: str, listing_id: str) -> Doc:
        """The newest pack of a template the org may use: its creator, or an org holding
        an entitlement. Anyone else learns nothing (not found)."""
        packs = await self.store.packs_of(listing_id)
        creator = packs[0]["org_id"] if packs else None
        if creator != org_id and not await self.store.entitled(org_id, listing_id):
            raise NotFound(f"template {listing_id}")
        if not packs:
            raise Unavailable(
                f"template {listing_id}: its pack has not reached generation yet; retry shortly"
            )
        return max(packs, key=lambda d: _semver_key(str(d["version"])))

    async def on_entitlement(
        self, org_id: str, entitlement_id: str, listing_id: str, active: bool, at: datetime
    ) -> None:
        await self.store.set_entitlement(org_id, entitlement_id, listing_id, active, at)

    async def keep_template(
        self,
        org_id: str,
        listing_id: str,
        version: str,
        archive: bytes,
        generation_version_id: str,
    ) -> Doc | None:
        """A creator's template version becomes a pack generation can render: the
        uploaded archive (checked again here, templates parsed in the sandbox), or the
        export of a generation version the creator owns. Anything invalid is logged and
        dropped (the marketplace checked uploads already). Idempotent per version."""
        pack_id = f"{listing_id}@{version}"
        if any(d["_id"] == pack_id for d in await self.store.packs_of(listing_id)):
            return None
        source: Doc
        if archive:
            try:
                p = read_pack(archive)
            except PackError as exc:
                log.warning("template pack refused", listing_id=listing_id, reason=str(exc))
                return None
            manifest, templates = p.manifest.as_dict(), p.templates
            source = {"kind": "upload"}
        elif generation_version_id:
            exported = await self.export_pack(org_id, generation_version_id)
            if exported is None:
                log.warning(
                    "template from a generation version the creator does not own",
                    listing_id=listing_id,
                )
                return None
            manifest, templates = exported
            source = {"kind": "generation_version", "version_id": generation_version_id}
        else:
            return None
        env = ImmutableSandboxedEnvironment()
        for path, src in templates.items():
            try:
                env.parse(src)
            except TemplateSyntaxError as exc:
                log.warning("template pack refused", listing_id=listing_id, path=path, err=str(exc))
                return None
        files = await self.store.put_files(
            org_id, {p: s.encode("utf-8") for p, s in templates.items()}
        )
        doc: Doc = {
            "_id": pack_id,
            "org_id": org_id,
            "listing_id": listing_id,
            "version": version,
            "manifest": manifest,
            "files": files,
            "source": source,
            "created_at": self.clock(),
        }
        await self.store.put_pack(doc)
        return doc

    async def export_pack(self, org_id: str, version_id: str) -> tuple[Doc, dict[str, str]] | None:
        """A generation version as a template: the pack it was rendered with (templates
        that render any buyer's blueprint, so every project built from it is gated on its
        own) and the version's blueprint and gate report as the manifest's provenance. A
        version built from someone else's template is not exported (no reselling)."""
        v = await self.store.version_by_id(org_id, version_id)
        if v is None:
            return None
        used = str(v.get("pack", ""))
        if used.startswith("template:"):
            pack_id = used.removeprefix("template:")
            owner = [
                d
                for d in await self.store.packs_of(pack_id.split("@", 1)[0])
                if d["_id"] == pack_id
            ]
            if not owner or owner[0]["org_id"] != org_id:
                return None
            templates = await self._pack_templates(pack_id)
        else:
            templates = builtin_templates()
        bp = v.get("blueprint") or {}
        man = PackManifest(
            id=str(bp.get("name") or "exported-pack")[:40],
            version="1.0.0",
            description=f"{bp.get('title', 'Generated project')} ({used or 'built-in pack'})"[:500],
            keywords=tuple(k for k in [str(bp.get("domain", ""))] if k),
            source={
                "pack": used,
                "pattern_id": v.get("pattern_id", ""),
                "blueprint": bp,
                "gate_passed": bool((v.get("gate") or {}).get("passed")),
            },
        )
        return man.as_dict(), templates
