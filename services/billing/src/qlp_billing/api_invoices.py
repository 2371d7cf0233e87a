"""HTTP API of invoices as documents: the HTML view (an issued invoice or the upcoming
one), signed expiring links that open it in a browser without a bearer header, and
the billing profile invoices are addressed to."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from qlp_billing.base import BillingError
from qlp_billing.handlers import get_billing
from qlp_billing.invoice_docs import (
    UPCOMING,
    LinkError,
    error_html,
    invoice_html,
    link_key,
    sign_link,
    verify_link,
)
from qlp_billing.schemas import BillingProfileIn, BillToOut, InvoiceLinkOut
from qlp_billing.service import Billing
from qlp_kit import permissions as perm
from qlp_kit.app import Ctx
from qlp_kit.auth import Principal
from qlp_kit.permissions import public, require
from qlp_kit.problems import Problem, status_title

router = APIRouter(prefix="/v1/billing", tags=["billing"])
#: Opened from a signed link: no principal, the link's HMAC and expiry authenticate.
shared_router = APIRouter(prefix="/v1/billing/shared", tags=["billing"], dependencies=[public()])

Reader = Annotated[Principal, require(perm.BILLING_READ)]
Writer = Annotated[Principal, require(perm.BILLING_WRITE)]


def _problem(exc: BillingError) -> Problem:
    return Problem(
        exc.status, status_title(exc.status), str(exc), type_=exc.type_, **exc.extensions
    )


def _key(billing: Billing) -> bytes:
    s = billing.settings
    if not (s.invoice_link_secret or s.internal_auth_secret):
        raise Problem(
            503,
            status_title(503),
            "invoice links need QLP_BILLING_INVOICE_LINK_SECRET (or the internal auth secret)",
        )
    return link_key(s.invoice_link_secret, s.internal_auth_secret)


async def _document(billing: Billing, org_id: str, invoice_id: str) -> dict[str, Any]:
    if invoice_id == UPCOMING:
        return await billing.upcoming_invoice(org_id)
    return await billing.invoice(org_id, invoice_id)


@router.post(
    "/invoices/{invoice_id}/link",
    response_model=InvoiceLinkOut,
    status_code=201,
    summary="Create a link that opens the invoice in a browser",
)
async def create_invoice_link(ctx: Ctx, principal: Reader, invoice_id: str) -> InvoiceLinkOut:
    """A signed link to the invoice's HTML view (``upcoming`` for the current period)
    that works without a bearer header until it expires (7 days by default). Anyone
    holding the link can open that one invoice; nothing else."""
    billing = get_billing(ctx)
    try:
        await _document(billing, principal.org_id, invoice_id)  # 404 before signing
    except BillingError as exc:
        raise _problem(exc) from None
    exp = int(time.time()) + billing.settings.invoice_link_ttl_s
    return InvoiceLinkOut(
        url=sign_link(_key(billing), principal.org_id, invoice_id, exp),
        expires_at=datetime.fromtimestamp(exp, UTC),
    )


@shared_router.get(
    "/invoices/{invoice_id}",
    response_class=HTMLResponse,
    summary="Open an invoice from a signed link",
    responses={403: {"description": "the link is not valid or has expired"}},
)
async def open_shared_invoice(
    ctx: Ctx,
    invoice_id: str,
    org: Annotated[str, Query(max_length=64)] = "",
    exp: Annotated[str, Query(max_length=20)] = "",
    sig: Annotated[str, Query(max_length=128)] = "",
) -> HTMLResponse:
    """The invoice's HTML view. A tampered, incomplete or expired link answers 403
    with a page that says so (ask the organization for a new link)."""
    billing = get_billing(ctx)
    try:
        verify_link(_key(billing), org, invoice_id, exp, sig, time.time())
    except LinkError as exc:
        return HTMLResponse(error_html(403, str(exc)), status_code=403)
    try:
        inv = await _document(billing, org, invoice_id)
    except BillingError as exc:
        return HTMLResponse(error_html(exc.status, str(exc)), status_code=exc.status)
    return HTMLResponse(invoice_html(inv), headers={"cache-control": "private, no-store"})


@router.get("/profile", response_model=BillToOut, summary="Read the billing profile")
async def get_profile(ctx: Ctx, principal: Reader) -> BillToOut:
    """Who the org's invoices are addressed to: name, e-mail, address and tax id."""
    return BillToOut.model_validate(await get_billing(ctx).billing_profile(principal.org_id))


@router.put("/profile", response_model=BillToOut, summary="Set the billing profile")
async def put_profile(ctx: Ctx, principal: Writer, body: BillingProfileIn) -> BillToOut:
    """Name, e-mail, address and tax id shown on invoices issued from now on (an issued
    invoice keeps what it was issued with)."""
    doc = await get_billing(ctx).set_billing_profile(principal.org_id, body.model_dump())
    return BillToOut.model_validate(doc)
