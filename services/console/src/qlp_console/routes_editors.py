"""The blueprint editor (a generation's blueprint edited and regenerated as a "what
if" branch) and the creator's listing editor (create, edit, add a version from a
generation version, publish)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from qlp_console import editors
from qlp_console.client import ApiError
from qlp_console.web import Session, flash, page, redirect, render, signed_in, verified_form
from qlp_kit.permissions import public

router = APIRouter(include_in_schema=False, dependencies=[public()])

TIERS = ("T0", "T1", "T2", "T3")


# -- blueprint editor ----------------------------------------------------------------


async def _versions(s: Session, project_id: str) -> list[dict[str, Any]]:
    data, _ = await s.api.maybe(f"/v1/projects/{project_id}/versions")
    items: list[dict[str, Any]] = (data or {}).get("items", [])
    return items


def _blueprint_page(
    request: Request,
    s: Session,
    gen: dict[str, Any],
    versions: list[dict[str, Any]],
    *,
    text: str,
    tier: str,
    parent: str,
    problem: dict[str, Any] | None = None,
    errors: list[dict[str, str]] | None = None,
    status: int = 200,
) -> Response:
    return render(
        request, "blueprint.html", s, title=f"Blueprint of {gen['id']}", gen=gen,
        versions=versions, text=text, tier=tier, parent=parent, tiers=TIERS,
        problem=problem, errors=errors or [], idem=uuid.uuid4().hex, status=status,
    )  # fmt: skip


@router.get("/app/generations/{gen_id}/blueprint")
@page
async def blueprint(request: Request, gen_id: str) -> Response:
    s = await signed_in(request)
    gen = await s.api.get(f"/v1/generations/{gen_id}")
    versions = await _versions(s, gen["project_id"])
    return _blueprint_page(
        request, s, gen, versions, text=editors.blueprint_text(gen.get("blueprint")),
        tier=gen.get("tier") or "T1", parent=gen.get("version_id") or "",
    )  # fmt: skip


@router.post("/app/generations/{gen_id}/blueprint")
@page
async def regenerate(request: Request, gen_id: str) -> Response:
    """Regenerate from the edited blueprint: a new generation in the same project whose
    version branches from the chosen one ("what if")."""
    s = await signed_in(request)
    form = await verified_form(request, s)
    gen = await s.api.get(f"/v1/generations/{gen_id}")  # 404 for another org's
    text = str(form.get("blueprint") or "")
    tier = str(form.get("tier") or "T1")
    parent = str(form.get("parent_version_id") or "")
    try:
        bp = editors.parse_blueprint(text)
        new = await s.api.post(
            "/v1/generations",
            editors.what_if_body(bp, tier, gen["project_id"], parent),
            idempotent=str(form.get("idem") or "") or True,
        )
    except editors.EditorError as exc:
        errors = [{"field": k, "message": v} for k, v in exc.errors.items()]
        versions = await _versions(s, gen["project_id"])
        return _blueprint_page(
            request, s, gen, versions, text=text, tier=tier, parent=parent, errors=errors,
            status=422,
        )  # fmt: skip
    except ApiError as err:
        if err.status >= 500 or err.status in (401,):
            raise
        versions = await _versions(s, gen["project_id"])
        return _blueprint_page(
            request, s, gen, versions, text=text, tier=tier, parent=parent,
            problem=err.words, errors=editors.field_errors(err.problem, ("blueprint",)),
            status=err.status,
        )  # fmt: skip
    await flash(s, request, "What-if generation started from the edited blueprint.")
    return redirect(f"/app/generations/{new['id']}")


# -- listing editor ------------------------------------------------------------------


def _listing_page(
    request: Request, s: Session, listing: dict[str, Any] | None, **ctx: Any
) -> Response:
    return render(
        request, "listing_edit.html", s,
        title=f"Edit {listing['title']}" if listing else "New listing",
        listing=listing, kinds=editors.LISTING_KINDS, categories=editors.LISTING_CATEGORIES,
        licenses=editors.LISTING_LICENSES,
        state=editors.listing_state(listing) if listing else "",
        **{"form": {}, "problem": None, "errors": [], "versions": [], "gen_versions": [],
           "review": None, **ctx},
    )  # fmt: skip


async def _generation_versions(s: Session) -> list[dict[str, Any]]:
    """The org's generation versions (newest projects first), to add as a version."""
    projects, _ = await s.api.maybe("/v1/projects", limit=20)
    items = (projects or {}).get("items", [])
    answers = await asyncio.gather(
        *(s.api.maybe(f"/v1/projects/{p['id']}/versions") for p in items)
    )
    out = []
    for p, (data, _) in zip(items, answers, strict=True):
        for v in (data or {}).get("items", []):
            out.append({"id": v["id"], "label": f"{p['name']} v{v['number']} ({v['id']})"})
    return out


async def _editor_data(s: Session, listing_id: str) -> dict[str, Any]:
    listing = await s.api.get(f"/v1/marketplace/listings/{listing_id}")
    if listing.get("creator_org_id") != s.org_id:
        raise ApiError(404, {"title": "Not found", "detail": "no such listing of yours"})
    versions, _ = await s.api.maybe(f"/v1/marketplace/listings/{listing_id}/versions")
    return {
        "listing": listing,
        "versions": (versions or {}).get("items", []),
        "gen_versions": await _generation_versions(s),
    }


@router.get("/app/marketplace/creator/listings/new")
@page
async def new_listing(request: Request) -> Response:
    s = await signed_in(request)
    return _listing_page(request, s, None, form={"kind": "template", "license": "MIT"})


@router.post("/app/marketplace/creator/listings")
@page
async def create_listing(request: Request) -> Response:
    s = await signed_in(request)
    form = await verified_form(request, s)
    try:
        listing = await s.api.post(
            "/v1/marketplace/listings", editors.listing_body(form, creating=True), idempotent=True
        )
    except editors.EditorError as exc:
        errors = [{"field": k, "message": v} for k, v in exc.errors.items()]
        return _listing_page(request, s, None, form=dict(form), errors=errors, status=422)
    except ApiError as err:
        if err.status >= 500:
            raise
        return _listing_page(
            request, s, None, form=dict(form), problem=err.words,
            errors=editors.field_errors(err.problem), status=err.status,
        )  # fmt: skip
    await flash(s, request, "Listing created as a draft.")
    return redirect(f"/app/marketplace/creator/listings/{listing['id']}")


@router.get("/app/marketplace/creator/listings/{listing_id}")
@page
async def edit_listing(request: Request, listing_id: str) -> Response:
    s = await signed_in(request)
    data = await _editor_data(s, listing_id)
    return _listing_page(request, s, data.pop("listing"), **data)


@router.post("/app/marketplace/creator/listings/{listing_id}")
@page
async def save_listing(request: Request, listing_id: str) -> Response:
    s = await signed_in(request)
    form = await verified_form(request, s)
    try:
        await s.api.patch(
            f"/v1/marketplace/listings/{listing_id}", editors.listing_body(form, creating=False)
        )
    except (editors.EditorError, ApiError) as exc:
        if isinstance(exc, ApiError) and (exc.status >= 500 or exc.status == 404):
            raise
        data = await _editor_data(s, listing_id)
        if isinstance(exc, editors.EditorError):
            errors = [{"field": k, "message": v} for k, v in exc.errors.items()]
            problem, status = None, 422
        else:
            errors, problem, status = editors.field_errors(exc.problem), exc.words, exc.status
        return _listing_page(
            request, s, data.pop("listing"), form=dict(form), errors=errors,
            problem=problem, status=status, **data,
        )  # fmt: skip
    await flash(s, request, "Listing saved.")
    return redirect(f"/app/marketplace/creator/listings/{listing_id}")


@router.post("/app/marketplace/creator/listings/{listing_id}/versions")
@page
async def add_listing_version(request: Request, listing_id: str) -> Response:
    s = await signed_in(request)
    form = await verified_form(request, s)
    version = str(form.get("version") or "").strip()
    try:
        await s.api.request(
            "POST",
            f"/v1/marketplace/listings/{listing_id}/versions",
            params={"version": version, "changelog": str(form.get("changelog") or "").strip()},
            json={"generation_version_id": str(form.get("generation_version_id") or "")},
            idempotency_key=uuid.uuid4().hex,
        )
    except ApiError as err:
        if err.status >= 500 or err.status == 404:
            raise
        data = await _editor_data(s, listing_id)
        return _listing_page(
            request, s, data.pop("listing"), problem=err.words,
            errors=editors.field_errors(err.problem, ("query",)), status=err.status, **data,
        )  # fmt: skip
    await flash(s, request, f"Version {version} added.")
    return redirect(f"/app/marketplace/creator/listings/{listing_id}")


@router.post("/app/marketplace/creator/listings/{listing_id}/publish")
@page
async def publish_listing(request: Request, listing_id: str) -> Response:
    s = await signed_in(request)
    await verified_form(request, s)
    try:
        out = await s.api.post(f"/v1/marketplace/listings/{listing_id}/publish", {})
    except ApiError as err:
        if err.status >= 500 or err.status == 404:
            raise
        data = await _editor_data(s, listing_id)
        return _listing_page(
            request, s, data.pop("listing"), problem=err.words,
            review=err.problem.get("reasons"), status=err.status, **data,
        )  # fmt: skip
    await flash(s, request, editors.listing_state(out))
    return redirect(f"/app/marketplace/creator/listings/{listing_id}")
