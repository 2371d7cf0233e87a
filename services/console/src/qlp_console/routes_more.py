"""Provider dashboard, generations, marketplace, admin views, and the console's 404."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from qlp_console import format as fmt
from qlp_console.client import ApiError
from qlp_console.diffview import side_by_side
from qlp_console.routes_gpu import relay
from qlp_console.web import (
    current_session,
    flash,
    page,
    redirect,
    render,
    signed_in,
    verified_form,
)
from qlp_kit.consumer_admin import CONSUMER_SERVICES
from qlp_kit.permissions import public

router = APIRouter(include_in_schema=False, dependencies=[public()])


# -- provider ------------------------------------------------------------------------


@router.get("/app/provider")
@page
async def provider(request: Request) -> Response:
    s = await signed_in(request)
    data, problem = await s.api.maybe("/v1/providers", limit=100)
    machines = (data or {}).get("items", [])
    earnings = await asyncio.gather(
        *(s.api.maybe(f"/v1/providers/{m['id']}/earnings") for m in machines)
    )
    for m, (e, _) in zip(machines, earnings, strict=True):
        m["earnings"] = e
    payouts, _ = await s.api.maybe("/v1/billing/payouts", limit=20)
    bal, _ = await s.api.maybe("/v1/billing/balance")
    totals = {
        "jobs": sum((m["earnings"] or {}).get("jobs", 0) for m in machines),
        "gpu_minutes": sum((m["earnings"] or {}).get("gpu_minutes", 0) for m in machines),
        "net": {
            "amount": sum(
                ((m["earnings"] or {}).get("net") or {}).get("amount", 0) for m in machines
            ),
            "currency": "USD",
        },
        "gross": {
            "amount": sum(
                ((m["earnings"] or {}).get("gross") or {}).get("amount", 0) for m in machines
            ),
            "currency": "USD",
        },
    }
    return render(
        request,
        "provider.html",
        s,
        title="Provider dashboard",
        machines=machines,
        problem=problem.words if problem else None,
        totals=totals,
        payouts=(payouts or {}).get("items", []),
        bal=bal,
        agent_key=None,
        gateway=_public_base(request),
    )


@router.get("/app/provider/machines")
@page
async def provider_machines(request: Request) -> Response:
    """The machines table alone (htmx refreshes it every few seconds)."""
    s = await signed_in(request)
    data, problem = await s.api.maybe("/v1/providers", limit=100)
    machines = (data or {}).get("items", [])
    earnings = await asyncio.gather(
        *(s.api.maybe(f"/v1/providers/{m['id']}/earnings") for m in machines)
    )
    for m, (e, _) in zip(machines, earnings, strict=True):
        m["earnings"] = e
    if problem is not None:
        return render(request, "partials/problem.html", s, problem=problem.words)
    return render(request, "partials/machines.html", s, machines=machines)


def _public_base(request: Request) -> str:
    host = (
        request.headers.get("x-forwarded-host") or request.headers.get("host") or "127.0.0.1:8080"
    )
    proto = request.headers.get("x-forwarded-proto") or request.url.scheme
    return f"{proto}://{host}"


@router.post("/app/provider/agent-key")
@page
async def agent_key(request: Request) -> Response:
    """Mint a ``provider:agent`` key and show how to start the agent with it."""
    s = await signed_in(request)
    form = await verified_form(request, s)
    key = await s.api.post(
        "/v1/api-keys",
        {"name": str(form.get("name") or "provider agent")[:100], "scopes": ["provider:agent"]},
        idempotent=True,
    )
    data, _ = await s.api.maybe("/v1/providers", limit=100)
    return render(
        request,
        "provider.html",
        s,
        title="Provider dashboard",
        machines=(data or {}).get("items", []),
        problem=None,
        payouts=[],
        bal=None,
        totals=None,
        agent_key=key,
        gateway=_public_base(request),
        status=201,
    )


@router.post("/app/provider/payouts")
@page
async def request_payout(request: Request) -> Response:
    s = await signed_in(request)
    await verified_form(request, s)
    out = await s.api.post("/v1/billing/payouts", {"kind": "provider"}, idempotent=True)
    await flash(s, request, f"Payout of {fmt.money(out.get('amount'))} requested.")
    return redirect("/app/provider")


# -- generations ---------------------------------------------------------------------


@router.get("/app/generations")
@page
async def generations(request: Request) -> Response:
    s = await signed_in(request)
    data, problem = await s.api.maybe("/v1/projects", limit=50)
    return render(
        request,
        "generations.html",
        s,
        title="Generations",
        projects=(data or {}).get("items", []),
        problem=problem.words if problem else None,
        idem=uuid.uuid4().hex,
    )


@router.post("/app/generations")
@page
async def generate(request: Request) -> Response:
    s = await signed_in(request)
    form = await verified_form(request, s)
    body: dict[str, Any] = {
        "prompt": str(form.get("prompt") or "").strip(),
        "tier": str(form.get("tier") or "T1"),
    }
    try:
        gen = await s.api.post(
            "/v1/generations", body, idempotent=str(form.get("idem") or "") or True
        )
    except ApiError as err:
        data, _ = await s.api.maybe("/v1/projects", limit=50)
        return render(
            request,
            "generations.html",
            s,
            title="Generations",
            projects=(data or {}).get("items", []),
            problem=err.words,
            idem=uuid.uuid4().hex,
            status=err.status,
        )
    return redirect(f"/app/generations/{gen['id']}")


@router.get("/app/generations/{gen_id}")
@page
async def generation(request: Request, gen_id: str) -> Response:
    s = await signed_in(request)
    gen = await s.api.get(f"/v1/generations/{gen_id}")
    return render(
        request,
        "generation.html",
        s,
        title=f"Generation {gen_id}",
        gen=gen,
        done=gen["status"] in ("succeeded", "completed", "failed", "canceled"),
    )


def _gen_progress(data: Any) -> Any:
    if not isinstance(data, dict):
        return data
    keep = ("id", "status", "stage", "progress", "project_id", "version_id", "failure")
    return {k: data.get(k) for k in keep}


@router.get("/app/generations/{gen_id}/events")
@page
async def generation_events(request: Request, gen_id: str) -> Response:
    """The generation's progress, live (the API's event stream relayed)."""
    s = await signed_in(request)
    await s.api.get(f"/v1/generations/{gen_id}")  # 404 for another org's, before streaming
    return relay(s.api, f"/v1/generations/{gen_id}/events", _gen_progress)


@router.get("/app/projects/{project_id}")
@page
async def project(request: Request, project_id: str) -> Response:
    s = await signed_in(request)
    versions = await s.api.get(f"/v1/projects/{project_id}/versions")
    items = versions["items"]
    diff = None
    a, b = request.query_params.get("from"), request.query_params.get("to")
    if a and b:
        diff, err = await s.api.maybe(f"/v1/projects/{project_id}/diff", **{"from": a, "to": b})
        if err:
            diff = {"problem": err.words}
        else:
            for f in diff.get("files", []):
                f["rows"] = side_by_side(f.get("patch") or "")
    return render(
        request,
        "project.html",
        s,
        title=f"Project {project_id}",
        project_id=project_id,
        versions=items,
        diff=diff,
        a=a,
        b=b,
    )


@router.post("/app/projects/{project_id}/versions/{version_id}/{action}")
@page
async def version_action(
    request: Request, project_id: str, version_id: str, action: str
) -> Response:
    s = await signed_in(request)
    await verified_form(request, s)
    if action not in ("branch", "restore"):
        raise ApiError(404, {"title": "Not found", "detail": f"no action {action}"})
    out = await s.api.post(
        f"/v1/projects/{project_id}/versions/{version_id}/{action}", {}, idempotent=True
    )
    await flash(s, request, f"{action.capitalize()} done.")
    target = (out or {}).get("project_id") or project_id
    return redirect(f"/app/projects/{target}")


@router.get("/app/projects/{project_id}/versions/{version_id}/archive")
@page
async def archive(request: Request, project_id: str, version_id: str) -> Response:
    """The version as a zip, fetched with the session's token and passed on."""
    s = await signed_in(request)
    fmt_ = "tar.gz" if request.query_params.get("format") == "tar.gz" else "zip"
    resp = await s.api.request(
        "GET",
        f"/v1/projects/{project_id}/versions/{version_id}/archive",
        params={"format": fmt_},
        raw=True,
    )
    out = Response(resp.content, media_type=resp.headers.get("content-type", "application/zip"))
    out.headers["Content-Disposition"] = resp.headers.get(
        "content-disposition", f'attachment; filename="{version_id}.{fmt_}"'
    )
    return out


# -- marketplace ---------------------------------------------------------------------


def _unavailable(err: ApiError | None) -> bool:
    return err is not None and err.status in (502, 503, 504)


SEARCH_KEYS = ("q", "kind", "category", "tags", "license", "min_rating", "sort")
#: Facets that are search parameters (price ranges are not).
LINKED_FACETS = ("kind", "category", "tags", "license")


@router.get("/app/marketplace")
@page
async def marketplace(request: Request) -> Response:
    s = await signed_in(request)
    q = {k: request.query_params.get(k) or None for k in SEARCH_KEYS}
    data, err = await s.api.maybe("/v1/marketplace/search", limit=24, **q)
    if err is not None and not _unavailable(err) and err.status != 422:
        raise err
    facets = {k: v for k, v in ((data or {}).get("facets") or {}).items() if k in LINKED_FACETS}
    return render(
        request, "marketplace.html", s, title="Marketplace", q=q,
        results=(data or {}).get("items", []), total=(data or {}).get("total", 0),
        facets=facets, unavailable=_unavailable(err),
        problem=err.words if err and not _unavailable(err) else None,
    )  # fmt: skip


@router.get("/app/marketplace/listings/{listing_id}")
@page
async def listing(request: Request, listing_id: str) -> Response:
    s = await signed_in(request)
    item, err = await s.api.maybe(f"/v1/marketplace/listings/{listing_id}")
    if err is not None and not _unavailable(err):
        raise err
    reviews: Any = None
    purchases: Any = None
    owned = False
    if item is not None:
        (reviews, _), (purchases, _) = await asyncio.gather(
            s.api.maybe(f"/v1/marketplace/listings/{listing_id}/reviews", limit=50),
            s.api.maybe("/v1/marketplace/purchases", limit=100),
        )
        owned = item.get("creator_org_id") == s.org_id or any(
            p.get("listing_id") == listing_id and p.get("entitled")
            for p in (purchases or {}).get("items", [])
        )
    return render(
        request, "listing.html", s, title=(item or {}).get("title") or "Listing", item=item,
        reviews=(reviews or {}).get("items", []), owned=owned, unavailable=item is None,
    )  # fmt: skip


@router.post("/app/marketplace/listings/{listing_id}/buy")
@page
async def buy(request: Request, listing_id: str) -> Response:
    s = await signed_in(request)
    form = await verified_form(request, s)
    out = await s.api.post(
        "/v1/marketplace/purchases",
        {"listing_id": listing_id},
        idempotent=str(form.get("idem") or "") or True,
    )
    status = out.get("status", "pending")
    await flash(s, request, f"Purchase {status}: the download appears here once it is paid.")
    return redirect(f"/app/marketplace/listings/{listing_id}")


@router.get("/app/marketplace/listings/{listing_id}/download")
@page
async def listing_download(request: Request, listing_id: str) -> Response:
    s = await signed_in(request)
    resp = await s.api.request("GET", f"/v1/marketplace/listings/{listing_id}/download", raw=True)
    out = Response(
        resp.content, media_type=resp.headers.get("content-type", "application/octet-stream")
    )
    out.headers["Content-Disposition"] = resp.headers.get(
        "content-disposition", f'attachment; filename="{listing_id}"'
    )
    return out


@router.post("/app/marketplace/listings/{listing_id}/reviews")
@page
async def review(request: Request, listing_id: str) -> Response:
    s = await signed_in(request)
    form = await verified_form(request, s)
    try:
        rating = int(str(form.get("rating") or "0"))
    except ValueError:
        rating = 0
    await s.api.post(
        f"/v1/marketplace/listings/{listing_id}/reviews",
        {"rating": rating, "title": str(form.get("title") or "")[:200],
         "body": str(form.get("body") or "")[:4000]},
    )  # fmt: skip
    await flash(s, request, "Thanks for the review.")
    return redirect(f"/app/marketplace/listings/{listing_id}")


@router.get("/app/marketplace/creator")
@page
async def creator(request: Request) -> Response:
    s = await signed_in(request)
    (earnings, err), (listings, _) = await asyncio.gather(
        s.api.maybe("/v1/marketplace/creator/earnings"),
        s.api.maybe("/v1/marketplace/listings", limit=50),
    )
    if err is not None and not _unavailable(err):
        raise err
    return render(
        request, "creator.html", s, title="Creator dashboard", earnings=earnings,
        listings=(listings or {}).get("items", []), unavailable=_unavailable(err),
    )  # fmt: skip


# -- admin ---------------------------------------------------------------------------


@router.get("/app/admin")
@page
async def admin(request: Request) -> Response:
    """Platform operators only: the API answers 403 to everyone else, and so does this page."""
    s = await signed_in(request)
    metrics, err = await s.api.maybe(
        "/v1/billing/admin/metrics", period=request.query_params.get("period")
    )
    if err is not None and err.status in (401, 403):
        return render(
            request,
            "error.html",
            s,
            status=403,
            problem=fmt.problem_words(
                403,
                {
                    "title": "Platform admins only",
                    "detail": (
                        "the admin views need the platform_admin role, which no organization "
                        "role grants; an operator grants it with `qlpctl admins grant <e-mail>`, "
                        "then sign out and in again"
                    ),
                },
            ),
        )
    (ledger, ledger_err), (failovers, failovers_err), *reports = await asyncio.gather(
        s.api.maybe("/v1/billing/admin/ledger/check"),
        s.api.maybe("/v1/admin/failovers", hours="24"),
        *(s.api.maybe(f"/v1/admin/consumers/{svc}") for svc in CONSUMER_SERVICES),
    )
    for h in (failovers or {}).get("hours", []):
        h["hour"] = datetime.fromtimestamp(int(h["hour_ms"]) / 1000, UTC).strftime("%d %b %H:00")
    return render(
        request,
        "admin.html",
        s,
        title="Admin",
        metrics=metrics,
        problem=err.words if err else None,
        ledger=ledger,
        ledger_problem=ledger_err.words if ledger_err else None,
        tiers=usage_per_tier(metrics),
        split=revenue_split(ledger),
        failovers=failovers,
        failovers_problem=failovers_err.words if failovers_err else None,
        consumers=consumer_rows(zip(CONSUMER_SERVICES, reports, strict=True)),
        flat=_flat,
    )


def consumer_rows(reports: Any) -> dict[str, Any]:
    """The six services' consumer reports as one table: a row per group (worst first:
    dead letters not replayed, then lag), a row per service that did not answer, and
    the totals."""
    rows: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    services: list[str] = []
    for service, (report, err) in reports:
        services.append(service)
        if err is not None:
            failed.append({"service": service, "problem": err.words})
            continue
        measured = datetime.fromtimestamp(int(report["measured_at_ms"]) / 1000, UTC)
        for g in report.get("groups") or []:
            rows.append(
                {
                    "service": service,
                    "replica": report.get("replica", ""),
                    "measured": measured.strftime("%H:%M:%S"),
                    **g,
                    "topics": sorted(g.get("topics") or [], key=lambda t: -int(t["lag"])),
                }
            )
    rows.sort(key=lambda r: (-int(r["not_replayed"]), -int(r["lag"]), r["service"], r["group"]))
    return {
        "services": services,
        "rows": rows,
        "failed": failed,
        "lag": sum(int(r["lag"]) for r in rows),
        "dead_letters": sum(int(r["dead_letters"]) for r in rows),
        "not_replayed": sum(int(r["not_replayed"]) for r in rows),
    }


#: Ledger account kinds that make up the revenue split, in the order shown.
SPLIT_KINDS = (
    ("platform_revenue", "Platform revenue"),
    ("provider_payable", "Owed to GPU providers"),
    ("creator_payable", "Owed to creators"),
    ("escrow", "Held in escrow"),
    ("customer_balance", "Customer credit balances"),
)


def usage_per_tier(metrics: Any) -> list[dict[str, Any]]:
    """Generations per tier (T0 to T3) from billing's per-meter usage (``generations.T1``)."""
    usage = (metrics or {}).get("usage_by_meter") or {}
    rows = []
    for meter, u in sorted(usage.items()):
        name, _, tier = str(meter).partition(".")
        if name == "generations" and tier:
            rows.append(
                {"tier": tier, "sum": int(u.get("sum") or 0), "count": int(u.get("count") or 0)}
            )
    return rows


def revenue_split(ledger: Any) -> list[dict[str, Any]]:
    """The ledger's balances per account kind that split the money (minor units, USD)."""
    totals = (ledger or {}).get("totals_by_kind") or {}
    return [
        {"kind": kind, "label": label, "amount": {"amount": int(totals[kind]), "currency": "USD"}}
        for kind, label in SPLIT_KINDS
        if kind in totals
    ]


def _flat(d: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """A nested metrics document as (dotted key, value) rows."""
    rows: list[tuple[str, Any]] = []
    if isinstance(d, dict):
        if set(d) == {"amount", "currency"}:
            return [(prefix, fmt.money(d))]
        for k, v in d.items():
            rows += _flat(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(d, list) and d and all(isinstance(x, dict) for x in d):
        for i, v in enumerate(d):
            rows += _flat(v, f"{prefix}[{i}]")
    else:
        rows.append((prefix, d))
    return rows


# -- everything else -----------------------------------------------------------------


@router.get("/app/{rest:path}")
@page
async def not_found(request: Request, rest: str) -> Response:
    sess = await current_session(request)
    return render(
        request,
        "error.html",
        sess,
        status=404,
        problem=fmt.problem_words(
            404, {"title": "Page not found", "detail": f"there is no console page at /app/{rest}"}
        ),
    )
