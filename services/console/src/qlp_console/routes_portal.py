"""The customer portal: overview, members and invitations, API keys, the audit log,
plans with the proration preview, usage and quotas, invoices, credits."""

from __future__ import annotations

import asyncio
import json
import uuid

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from qlp_console import format as fmt
from qlp_console.client import ApiError
from qlp_console.pdf import PdfUnavailable, html_to_pdf
from qlp_console.web import flash, page, redirect, render, signed_in, verified_form
from qlp_kit.permissions import ROLES, SCOPES, public

router = APIRouter(include_in_schema=False, dependencies=[public()])


@router.get("/app")
@page
async def overview(request: Request) -> Response:
    s = await signed_in(request)
    (sub, sub_err), (bal, bal_err), (quotas, _), (jobs, _) = await asyncio.gather(
        s.api.maybe("/v1/billing/subscription"),
        s.api.maybe("/v1/billing/balance"),
        s.api.maybe("/v1/billing/quotas"),
        s.api.maybe("/v1/gpu/jobs", limit=5),
    )
    return render(
        request,
        "overview.html",
        s,
        title="Overview",
        sub=sub,
        sub_err=sub_err,
        bal=bal,
        bal_err=bal_err,
        quotas=[
            {**q, "bar": fmt.quota_bar(q["used"], q["limit"])}
            for q in (quotas or {}).get("items", [])
        ],
        jobs=(jobs or {}).get("items", []),
        welcome=request.query_params.get("welcome") == "1",
    )


# -- members -------------------------------------------------------------------------


@router.get("/app/members")
@page
async def members(request: Request) -> Response:
    s = await signed_in(request)
    data = await s.api.get(f"/v1/orgs/{s.org_id}/members", limit=100)
    return render(
        request,
        "members.html",
        s,
        title="Members",
        members=data["items"],
        roles=ROLES,
        invited=None,
        problem=None,
    )


@router.post("/app/members/invite")
@page
async def invite(request: Request) -> Response:
    s = await signed_in(request)
    form = await verified_form(request, s)
    body = {
        "email": str(form.get("email") or "").strip(),
        "role": str(form.get("role") or "developer"),
    }
    data = await s.api.get(f"/v1/orgs/{s.org_id}/members", limit=100)
    try:
        inv = await s.api.post(f"/v1/orgs/{s.org_id}/invitations", body, idempotent=True)
    except ApiError as err:
        return render(
            request,
            "members.html",
            s,
            title="Members",
            members=data["items"],
            roles=ROLES,
            invited=None,
            problem=err.words,
            status=err.status,
        )
    return render(
        request,
        "members.html",
        s,
        title="Members",
        members=data["items"],
        roles=ROLES,
        invited=inv,
        problem=None,
    )


@router.post("/app/members/{user_id}/role")
@page
async def change_role(request: Request, user_id: str) -> Response:
    s = await signed_in(request)
    form = await verified_form(request, s)
    role = str(form.get("role") or "")
    await s.api.patch(f"/v1/orgs/{s.org_id}/members/{user_id}", {"role": role})
    await flash(s, request, f"Role changed to {role}.")
    return redirect("/app/members")


@router.post("/app/members/{user_id}/remove")
@page
async def remove_member(request: Request, user_id: str) -> Response:
    s = await signed_in(request)
    await verified_form(request, s)
    await s.api.delete(f"/v1/orgs/{s.org_id}/members/{user_id}")
    await flash(s, request, "Member removed.")
    return redirect("/app/members")


# -- API keys ------------------------------------------------------------------------


@router.get("/app/api-keys")
@page
async def api_keys(request: Request) -> Response:
    s = await signed_in(request)
    data = await s.api.get("/v1/api-keys", limit=100)
    return render(
        request,
        "api_keys.html",
        s,
        title="API keys",
        idem=uuid.uuid4().hex,
        keys=data["items"],
        scopes=SCOPES,
        created=None,
        problem=None,
    )


@router.post("/app/api-keys")
@page
async def create_key(request: Request) -> Response:
    s = await signed_in(request)
    form = await verified_form(request, s)
    scopes = [str(x) for x in form.getlist("scopes")]
    body = {"name": str(form.get("name") or "").strip() or "console key", "scopes": scopes}
    try:
        created = await s.api.post(
            "/v1/api-keys", body, idempotent=str(form.get("idem") or "") or True
        )
        problem = None
    except ApiError as err:
        created, problem = None, err.words
    data = await s.api.get("/v1/api-keys", limit=100)
    # The secret is in this one answer only (no-store): never stored by the console.
    return render(
        request,
        "api_keys.html",
        s,
        title="API keys",
        idem=uuid.uuid4().hex,
        keys=data["items"],
        scopes=SCOPES,
        created=created,
        problem=problem,
        status=201 if created else (problem or {}).get("status", 400),
    )


@router.post("/app/api-keys/{key_id}/revoke")
@page
async def revoke_key(request: Request, key_id: str) -> Response:
    s = await signed_in(request)
    await verified_form(request, s)
    await s.api.delete(f"/v1/api-keys/{key_id}")
    await flash(s, request, "API key revoked.")
    return redirect("/app/api-keys")


# -- audit ---------------------------------------------------------------------------


@router.get("/app/audit")
@page
async def audit(request: Request) -> Response:
    s = await signed_in(request)
    data = await s.api.get(
        f"/v1/orgs/{s.org_id}/audit-log", limit=50, cursor=request.query_params.get("cursor")
    )
    return render(
        request,
        "audit.html",
        s,
        title="Audit log",
        entries=data["items"],
        next_cursor=data.get("next_cursor"),
        as_json=lambda d: json.dumps(d, sort_keys=True)[:300],
    )


# -- plans ---------------------------------------------------------------------------


@router.get("/app/billing/plans")
@page
async def plans(request: Request) -> Response:
    s = await signed_in(request)
    plans_ = await s.api.get("/v1/billing/plans")
    sub = await s.api.get("/v1/billing/subscription")
    meters = sorted({q["meter"] for p in plans_["items"] for q in p["quotas"]})
    return render(
        request, "plans.html", s, title="Plans", plans=plans_["items"], sub=sub, meters=meters
    )


@router.get("/app/billing/plans/preview")
@page
async def plan_preview(request: Request) -> Response:
    """What changing to ``plan`` costs now (the proration), before confirming."""
    s = await signed_in(request)
    plan = request.query_params.get("plan", "")
    try:
        preview = await s.api.get("/v1/billing/subscription/preview", plan=plan)
        problem = None
    except ApiError as err:
        preview, problem = None, err.words
    hx = bool(request.headers.get("hx-request"))
    tpl = "partials/preview.html" if hx else "plan_preview.html"
    return render(
        request,
        tpl,
        s,
        title=f"Change to {plan}",
        plan=plan,
        preview=preview,
        problem=problem,
        # htmx swaps only 2xx answers: the partial says the problem in words
        status=200 if preview or hx else (problem or {}).get("status", 400),
    )


@router.post("/app/billing/plans")
@page
async def change_plan(request: Request) -> Response:
    s = await signed_in(request)
    form = await verified_form(request, s)
    plan = str(form.get("plan") or "")
    try:
        sub = await s.api.put("/v1/billing/subscription", {"plan": plan})
    except ApiError as err:
        preview, _ = await s.api.maybe("/v1/billing/subscription/preview", plan=plan)
        return render(
            request,
            "plan_preview.html",
            s,
            title=f"Change to {plan}",
            plan=plan,
            preview=preview,
            problem=err.words,
            status=err.status,
        )
    if sub.get("scheduled_plan"):
        await flash(
            s, request, f"Your plan changes to {sub['scheduled_plan']} at the end of this period."
        )
    else:
        await flash(s, request, f"You are now on the {sub['plan']} plan.")
    return redirect("/app/billing/plans")


@router.post("/app/billing/plans/cancel")
@page
async def cancel_plan(request: Request) -> Response:
    s = await signed_in(request)
    await verified_form(request, s)
    sub = await s.api.delete("/v1/billing/subscription")
    await flash(
        s,
        request,
        f"Canceled: {sub['plan']} stays until {fmt.when(sub['current_period_end'])}, then Free.",
    )
    return redirect("/app/billing/plans")


# -- billing profile -----------------------------------------------------------------

PROFILE_ADDRESS = ("line1", "line2", "city", "postal_code", "region", "country")


@router.get("/app/billing/profile")
@page
async def profile(request: Request) -> Response:
    s = await signed_in(request)
    prof, err = await s.api.maybe("/v1/billing/profile")
    if err is not None and err.status != 404:
        raise err
    return render(
        request, "profile.html", s, title="Billing profile", prof=prof or {}, problem=None
    )


@router.post("/app/billing/profile")
@page
async def save_profile(request: Request) -> Response:
    s = await signed_in(request)
    form = await verified_form(request, s)
    body = {
        "name": str(form.get("name") or "").strip(),
        "email": str(form.get("email") or "").strip(),
        "tax_id": str(form.get("tax_id") or "").strip(),
        "address": {k: str(form.get(k) or "").strip() for k in PROFILE_ADDRESS},
    }
    try:
        await s.api.put("/v1/billing/profile", body)
    except ApiError as err:
        shown = {**body, "address": body["address"]}
        return render(request, "profile.html", s, title="Billing profile", prof=shown,
                      problem=err.words, status=err.status)  # fmt: skip
    await flash(s, request, "Billing profile saved; invoices from now on carry it.")
    return redirect("/app/billing/profile")


# -- usage ---------------------------------------------------------------------------


@router.get("/app/billing/usage")
@page
async def usage(request: Request) -> Response:
    s = await signed_in(request)
    use, quotas = await asyncio.gather(
        s.api.get("/v1/billing/usage", period=request.query_params.get("period")),
        s.api.get("/v1/billing/quotas"),
    )
    by_meter = {q["meter"]: q for q in quotas["items"]}
    rows = []
    for m in use["meters"]:
        q = by_meter.get(m["meter"])
        rows.append({**m, "quota": q, "bar": fmt.quota_bar(m["sum"], q["limit"] if q else None)})
    for meter, q in by_meter.items():
        if meter not in {m["meter"] for m in use["meters"]}:
            rows.append(
                {
                    "meter": meter,
                    "sum": q["used"],
                    "count": 0,
                    "quota": q,
                    "bar": fmt.quota_bar(q["used"], q["limit"]),
                }
            )
    chart = {
        "labels": [r["meter"] for r in rows],
        "used": [r["sum"] for r in rows],
        "limit": [(r["quota"] or {}).get("limit") for r in rows],
    }
    return render(
        request,
        "usage.html",
        s,
        title="Usage",
        usage=use,
        rows=rows,
        chart=fmt.json_for_html(chart),
    )


# -- invoices ------------------------------------------------------------------------


@router.get("/app/billing/invoices")
@page
async def invoices(request: Request) -> Response:
    s = await signed_in(request)
    data = await s.api.get(
        "/v1/billing/invoices", limit=50, cursor=request.query_params.get("cursor")
    )
    upcoming, _ = await s.api.maybe("/v1/billing/invoices/upcoming")
    return render(
        request,
        "invoices.html",
        s,
        title="Invoices",
        invoices=data["items"],
        upcoming=upcoming,
        next_cursor=data.get("next_cursor"),
    )


@router.get("/app/billing/invoices/{invoice_id}")
@page
async def invoice(request: Request, invoice_id: str) -> Response:
    s = await signed_in(request)
    inv = await s.api.get(f"/v1/billing/invoices/{invoice_id}")
    return render(
        request, "invoice.html", s, title=f"Invoice {inv.get('number') or invoice_id}", inv=inv
    )


@router.post("/app/billing/invoices/{invoice_id}/download")
@page
async def invoice_download(request: Request, invoice_id: str) -> Response:
    """Billing's printable HTML document, through a signed, expiring link it issues
    (the link carries no API token)."""
    s = await signed_in(request)
    await verified_form(request, s)
    link = await s.api.post(f"/v1/billing/invoices/{invoice_id}/link", {})
    url = str(link.get("url") or link.get("href") or "")
    if "/v1/billing/shared/" in url:
        return redirect(url[url.index("/v1/billing/shared/") :])
    raise ApiError(502, {"title": "No link", "detail": "billing answered no invoice link"})


@router.get("/app/billing/invoices/{invoice_id}/pdf")
@page
async def invoice_pdf(request: Request, invoice_id: str) -> Response:
    """The invoice as a PDF file: billing's HTML document rendered here."""
    s = await signed_in(request)
    resp = await s.api.request("GET", f"/v1/billing/invoices/{invoice_id}/html", raw=True)
    try:
        data = await html_to_pdf(resp.text)
    except PdfUnavailable:
        raise ApiError(503, {"title": "PDF not available",
                             "detail": "this console cannot render PDFs (WeasyPrint or Pango is missing); open the printable document instead"}) from None  # fmt: skip
    out = Response(data, media_type="application/pdf")
    out.headers["Content-Disposition"] = f'attachment; filename="invoice-{invoice_id}.pdf"'
    out.headers["Cache-Control"] = "no-store"
    return out


# -- credits -------------------------------------------------------------------------


@router.get("/app/billing/credits")
@page
async def credits(request: Request) -> Response:
    s = await signed_in(request)
    bal = await s.api.get("/v1/billing/balance")
    return render(
        request, "credits.html", s, title="Credits", bal=bal, problem=None, idem=uuid.uuid4().hex
    )


@router.post("/app/billing/credits")
@page
async def top_up(request: Request) -> Response:
    s = await signed_in(request)
    form = await verified_form(request, s)
    try:
        amount = fmt.parse_money(str(form.get("amount") or ""))
        out = await s.api.post(
            "/v1/billing/credits",
            {"amount": {"amount": amount, "currency": "USD"}},
            idempotent=str(form.get("idem") or uuid.uuid4().hex),
        )
    except ValueError as exc:
        bal = await s.api.get("/v1/billing/balance")
        return render(
            request,
            "credits.html",
            s,
            title="Credits",
            bal=bal,
            status=422,
            idem=uuid.uuid4().hex,
            problem=fmt.problem_words(422, {"title": "Invalid amount", "detail": str(exc)}),
        )
    except ApiError as err:
        bal = await s.api.get("/v1/billing/balance")
        return render(
            request,
            "credits.html",
            s,
            title="Credits",
            bal=bal,
            status=err.status,
            idem=uuid.uuid4().hex,
            problem=err.words,
        )
    await flash(
        s, request, f"Added {fmt.money(out['amount'])}; balance {fmt.money(out['balance'])}."
    )
    return redirect("/app/billing/credits")
