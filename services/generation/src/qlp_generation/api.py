"""HTTP API (thin: parse, call the service, map). Reading needs ``generations:read``,
requesting and changing versions ``generations:write``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse

from qlp_generation import schemas as M
from qlp_generation import service as S
from qlp_generation.handlers import get_generation
from qlp_kit import permissions as perm
from qlp_kit.app import Ctx
from qlp_kit.auth import Principal
from qlp_kit.openapi_docs import problems
from qlp_kit.permissions import require
from qlp_kit.problems import Problem

T = TypeVar("T")
Reader = Annotated[Principal, require(perm.GENERATIONS_READ)]
Writer = Annotated[Principal, require(perm.GENERATIONS_WRITE)]

router = APIRouter(prefix="/v1", tags=["generation"])


async def call(aw: Awaitable[T]) -> T:
    try:
        return await aw
    except S.NotFound as exc:
        raise Problem(404, "Not found", f"{exc} not found") from None
    except S.Unavailable as exc:
        raise Problem(409, "Not available yet", str(exc), type_="conflict") from None
    except S.Invalid as exc:
        raise Problem(422, "Request is not valid", str(exc)) from None
    except S.QuotaRefused as exc:
        title = (
            "Generation quota exhausted"
            if exc.status == 429
            else "The plan does not cover this generation"
        )
        raise Problem(exc.status, title, exc.detail, type_=exc.type) from None


def gen_out(d: dict[str, Any]) -> M.GenerationOut:
    return M.GenerationOut(
        id=d["_id"],
        status=d["status"],
        stage=d["stage"],
        progress=int(d.get("progress", 0)),
        tier=d["tier"],
        project_id=d["project_id"],
        version_id=d.get("version_id"),
        blueprint=d["blueprint"],
        gate=d.get("gate"),
        failure=d.get("failure"),
        llm=d.get("llm"),
        template=(
            {"listing_id": d["template"]["listing_id"], "version": d["template"]["version"]}
            if d.get("template")
            else None
        ),
        created_at=d["created_at"],
        updated_at=d["updated_at"],
    )


def ver_out(d: dict[str, Any]) -> M.VersionOut:
    return M.VersionOut(
        id=d["_id"],
        project_id=d["project_id"],
        number=int(d["number"]),
        parent_version_id=d.get("parent_version_id", ""),
        source=d.get("source", "generation"),
        generation_id=d.get("generation_id", ""),
        branch=d.get("branch", "main"),
        file_count=len(d.get("files", {})),
        gate=d.get("gate"),
        pattern_id=d.get("pattern_id", ""),
        feedback=d.get("feedback"),
        created_at=d["created_at"],
    )


@router.post(
    "/generations",
    status_code=202,
    response_model=M.GenerationOut,
    summary="Generate a project from a description",
    responses=problems(
        **{
            "402": "the plan does not include generations or the org is suspended "
            "(problem type plan-upgrade-required / payment-required; says how to upgrade)",
            "429": "this period's generation quota is used up (problem type quota-exceeded)",
            "404": "template_listing_id names a template the org neither bought nor created",
            "409": "the template's pack has not reached generation yet (retry shortly)",
        }
    ),
)
async def create_generation(body: M.GenerationIn, ctx: Ctx, who: Writer) -> M.GenerationOut:
    """Queues a generation: the description becomes a blueprint, then a project built from
    a pattern pack, checked by lint and its own tests. Follow it at GET
    /v1/generations/{gen_id} or its event stream."""
    gen = get_generation(ctx)
    doc = await call(
        gen.request(
            who.org_id,
            who.subject,
            body.tier,
            body.prompt,
            body.blueprint,
            body.project_id,
            body.parent_version_id,
            body.template_listing_id,
        )
    )
    return gen_out(doc)


@router.get("/generations/{gen_id}", response_model=M.GenerationOut, summary="Read a generation")
async def get_gen(gen_id: str, ctx: Ctx, who: Reader) -> M.GenerationOut:
    """The generation's state, its blueprint, the quality gate's result and the project
    version it produced."""
    return gen_out(await call(get_generation(ctx).job(who.org_id, gen_id)))


@router.get(
    "/generations/{gen_id}/events",
    summary="Follow a generation live (server-sent events)",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "progress events, then end"}
    },
)
async def gen_events(gen_id: str, ctx: Ctx, who: Reader, request: Request) -> StreamingResponse:
    """Server-sent events: one ``progress`` event per change, ``end`` when it is over."""
    gen = get_generation(ctx)
    await call(gen.job(who.org_id, gen_id))

    async def stream() -> AsyncIterator[bytes]:
        last = None
        while not await request.is_disconnected():
            job = await gen.job(who.org_id, gen_id)
            now = (job["status"], job["stage"], job.get("progress"))
            if now != last:
                last = now
                body = gen_out(job).model_dump(mode="json")
                yield f"event: progress\ndata: {json.dumps(body)}\n\n".encode()
                if job["status"] in ("completed", "failed"):
                    yield b"event: end\ndata: {}\n\n"
                    return
            await gen.wait_change(gen_id, 1.0)
            await asyncio.sleep(0)

    return StreamingResponse(stream(), media_type="text/event-stream")


@router.get("/projects", response_model=M.ProjectList, summary="List generated projects")
async def list_projects(
    ctx: Ctx,
    who: Reader,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> M.ProjectList:
    """The organization's projects with their latest version; paginated with `limit` and
    `cursor`."""
    page = await get_generation(ctx).store.projects(who.org_id, limit, cursor)
    return M.ProjectList(
        items=[
            M.ProjectOut(
                id=d["_id"], name=d["name"], versions=int(d["versions"]), created_at=d["created_at"]
            )
            for d in page.items
        ],
        next_cursor=page.next_cursor,
    )


@router.get(
    "/projects/{project_id}/versions",
    response_model=M.VersionList,
    summary="List a project's versions",
)
async def list_versions(project_id: str, ctx: Ctx, who: Reader) -> M.VersionList:
    """Every version of the project (content-addressed), newest first, with what produced
    it."""
    gen = get_generation(ctx)
    if await gen.store.project(who.org_id, project_id) is None:
        raise Problem(404, "Not found", f"project {project_id} not found")
    return M.VersionList(
        items=[ver_out(v) for v in await gen.store.versions(who.org_id, project_id)]
    )


@router.get(
    "/projects/{project_id}/versions/{version_id}/archive",
    summary="Download a version as zip or tar.gz",
    response_class=Response,
    responses={
        200: {
            "content": {"application/zip": {}, "application/gzip": {}},
            "description": "the archive",
        }
    },
)
async def archive(
    project_id: str,
    version_id: str,
    ctx: Ctx,
    who: Reader,
    format: Annotated[Literal["zip", "tar.gz"], Query()] = "zip",
) -> Response:
    """The project's files at that version as an archive to unpack and run."""
    data, folder = await call(
        get_generation(ctx).archive(who.org_id, project_id, version_id, format)
    )
    media = "application/zip" if format == "zip" else "application/gzip"
    return Response(
        data,
        media_type=media,
        headers={"content-disposition": f'attachment; filename="{folder}-{version_id}.{format}"'},
    )


@router.get("/projects/{project_id}/diff", response_model=M.DiffOut, summary="Compare two versions")
async def diff(
    project_id: str,
    ctx: Ctx,
    who: Reader,
    from_: Annotated[str, Query(alias="from", max_length=64)],
    to: Annotated[str, Query(max_length=64)],
) -> M.DiffOut:
    """The files added, removed and changed between two versions of the project, with
    unified diffs."""
    files = await call(get_generation(ctx).diff(who.org_id, project_id, from_, to))
    return M.DiffOut(from_version=from_, to_version=to, files=[M.FileDiff(**f) for f in files])


@router.post(
    "/projects/{project_id}/versions/{version_id}/branch",
    status_code=201,
    response_model=M.VersionOut,
    summary="Branch a new project from a version",
)
async def branch(project_id: str, version_id: str, ctx: Ctx, who: Writer) -> M.VersionOut:
    """Starts a new project whose first version is this one."""
    return ver_out(
        await call(get_generation(ctx).copy_version(who.org_id, project_id, version_id, "branch"))
    )


@router.post(
    "/projects/{project_id}/versions/{version_id}/restore",
    status_code=201,
    response_model=M.VersionOut,
    summary="Restore a version",
)
async def restore(project_id: str, version_id: str, ctx: Ctx, who: Writer) -> M.VersionOut:
    """Makes this version the project's latest again (as a new version)."""
    return ver_out(
        await call(get_generation(ctx).copy_version(who.org_id, project_id, version_id, "restore"))
    )


@router.post(
    "/projects/{project_id}/versions/{version_id}/feedback",
    status_code=204,
    summary="Rate a version",
)
async def feedback(
    project_id: str, version_id: str, body: M.FeedbackIn, ctx: Ctx, who: Writer
) -> Response:
    """Records whether the version was useful, with an optional comment, to improve later
    generations."""
    await call(
        get_generation(ctx).feedback(who.org_id, project_id, version_id, body.rating, body.comment)
    )
    return Response(status_code=204)


@router.get("/patterns", response_model=M.PatternList, summary="Search the pattern library")
async def patterns(
    ctx: Ctx, who: Reader, q: Annotated[str, Query(max_length=200)] = ""
) -> M.PatternList:
    """The domains and patterns generation knows, matched against a query, and the
    template packs your org bought in the marketplace (`source: template`; use one with
    `template_listing_id` in POST /v1/generations)."""
    items = await get_generation(ctx).patterns(q, who.org_id)
    return M.PatternList(items=[M.PatternOut(**p) for p in items])
