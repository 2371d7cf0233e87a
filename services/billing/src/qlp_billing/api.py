"""HTTP API under /v1/billing (thin: parse → service → response schema).

Tenant = the verified principal's org. Reading needs the ``billing:read`` permission,
changing anything ``billing:write`` (users by role: owner, admin, billing; API keys by
scope; see qlp_kit.permissions). Admin views need ``platform:admin`` (the
``platform_admin`` role).
"""

from __future__ import annotations

import hashlib
import time
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import HTMLResponse

from qlp_billing import metering as M
from qlp_billing import provider_events, webhooks
from qlp_billing.handlers import get_billing
from qlp_billing.ledger import CREATOR_PAYABLE, PROVIDER_PAYABLE
from qlp_billing.payments import provider_for
from qlp_billing.plans import PLANS, UnknownPlan, get_plan
from qlp_billing.schemas import (
    BalanceOut,
    CreditsIn,
    CreditsOut,
    CustomLimitsIn,
    InvoiceList,
    InvoiceOut,
    MoneyOut,
    PayoutIn,
    PayoutList,
    PayoutOut,
    PlanList,
    PlanOut,
    QuotaList,
    QuotaOut,
    RejectedUsageOut,
    ReversalIn,
    SubscriptionIn,
    SubscriptionOut,
    SubscriptionPreviewOut,
    UsageOut,
)
from qlp_billing.service import Billing, BillingError, PaymentRequired
from qlp_billing.settings import BillingSettings
from qlp_billing.timeutil import dt
from qlp_kit import permissions as perm
from qlp_kit.app import Ctx
from qlp_kit.auth import Principal
from qlp_kit.ids import new_id
from qlp_kit.money import Money
from qlp_kit.openapi_docs import problems
from qlp_kit.permissions import public, require
from qlp_kit.problems import NOT_EXECUTED, Problem, status_title

router = APIRouter(prefix="/v1/billing", tags=["billing"])
admin_router = APIRouter(prefix="/v1/billing/admin", tags=["billing admin"])
# Payment-provider webhooks: no principal, the provider's signature authenticates.
webhook_router = APIRouter(
    prefix="/v1/billing/webhooks", tags=["billing webhooks"], dependencies=[public()]
)

Reader = Annotated[Principal, require(perm.BILLING_READ)]
Writer = Annotated[Principal, require(perm.BILLING_WRITE)]
Admin = Annotated[Principal, require(perm.PLATFORM_ADMIN)]


def _billing(ctx: Any) -> Billing:
    return get_billing(ctx)


def _problem(exc: BillingError) -> Problem:
    return Problem(
        exc.status, status_title(exc.status), str(exc), type_=exc.type_, **exc.extensions
    )


def _unknown_plan(exc: UnknownPlan) -> Problem:
    return Problem(422, "Unknown plan", str(exc), type_="unknown-plan", plans=list(PLANS))


def _plan_out(plan_id: str) -> PlanOut:
    p = get_plan(plan_id)
    return PlanOut(
        id=p.id,
        name=p.name,
        price=MoneyOut(amount=p.price.amount, currency=p.price.currency),
        quotas=[
            QuotaOut(
                meter=q.meter,
                limit=None if q.unlimited else q.limit,
                unlimited=q.unlimited,
                overage_allowed=q.overage_allowed,
            )
            for q in p.quotas
        ],
        api_calls_included=p.api_calls_included,
        custom=p.custom,
    )


def _sub_out(sub: dict[str, Any]) -> SubscriptionOut:
    plan = get_plan(sub["plan_id"])
    quotas = []
    for meter, q in sorted(sub["quotas"].items()):
        limit = int(q.get("limit", 0))
        quotas.append(
            {"meter": meter, "limit": None if limit < 0 else limit, "unlimited": limit < 0}
        )
    return SubscriptionOut(
        id=sub["subscription_id"],
        org_id=sub["org_id"],
        plan=plan.id,
        status=sub.get("status", "active"),
        interval=sub.get("interval", "monthly"),
        price=MoneyOut(amount=plan.price.amount, currency=plan.price.currency),
        current_period=sub["period"],
        current_period_start=dt(sub["period_start"]),
        current_period_end=dt(sub["period_end"]),
        trial_end=dt(sub["trial_end"]) if sub.get("trial_end") else None,
        cancel_at_period_end=bool(sub.get("cancel_at_period_end")),
        scheduled_plan=sub.get("scheduled_plan_id"),
        quotas=quotas,
    )


# ---- public -------------------------------------------------------------------------


@router.get(
    "/plans",
    response_model=PlanList,
    dependencies=[public()],
    summary="List the plans and their prices (public)",
)
async def list_plans() -> PlanList:
    """Every plan with its monthly price in integer cents, included usage, quotas and rate
    limit. No token needed."""
    return PlanList(items=[_plan_out(pid) for pid in PLANS])


@router.get(
    "/plans/{plan_id}",
    response_model=PlanOut,
    dependencies=[public()],
    summary="Read one plan (public)",
)
async def get_plan_view(plan_id: str) -> PlanOut:
    """One plan by id (case-insensitive, e.g. `starter`); an unknown id is 404 and lists
    the valid ones. No token needed."""
    try:
        plan = get_plan(plan_id)
    except UnknownPlan as exc:
        raise Problem(404, "Not found", str(exc), plans=list(PLANS)) from None
    return _plan_out(plan.id)


@router.get(
    "/subscription",
    response_model=SubscriptionOut,
    summary="Read the organization's subscription",
)
async def get_subscription(ctx: Ctx, principal: Reader) -> SubscriptionOut:
    """The current plan, its state (active, trialing, canceled), the current period and a
    plan change scheduled for the period end, if any."""
    return _sub_out(await _billing(ctx).subscription(principal.org_id))


@router.put(
    "/subscription",
    response_model=SubscriptionOut,
    summary="Change plan",
    responses=problems(402, 409),
)
async def put_subscription(ctx: Ctx, principal: Writer, body: SubscriptionIn) -> SubscriptionOut:
    """Moves the organization to another plan. An upgrade is charged prorated at once from
    the prepaid balance (or the payment method on file); when neither can pay it is
    402 with the shortfall and what to do. See the price first at GET
    /v1/billing/subscription/preview."""
    try:
        sub = await _billing(ctx).change_plan(
            principal.org_id,
            body.plan,
            trial=body.trial,
            actor_kind=principal.kind,
            actor_id=principal.subject,
            require_payment=True,
        )
    except UnknownPlan as exc:
        raise _unknown_plan(exc) from None
    except PaymentRequired as exc:
        # refused before anything changed: a retry with the same Idempotency-Key
        # after a top-up runs the change instead of replaying this answer
        problem = _problem(exc)
        problem.headers.update(NOT_EXECUTED)
        raise problem from None
    except BillingError as exc:
        raise _problem(exc) from None
    return _sub_out(sub)


@router.get("/subscription/preview", response_model=SubscriptionPreviewOut)
async def preview_subscription(
    ctx: Ctx,
    principal: Reader,
    plan: Annotated[str, Query(min_length=1, max_length=64, examples=["starter"])],
    trial: bool = False,
) -> SubscriptionPreviewOut:
    """What ``PUT /subscription`` with this plan would do now, changing nothing."""
    try:
        res = await _billing(ctx).preview_change(principal.org_id, plan, trial=trial)
    except UnknownPlan as exc:
        raise _unknown_plan(exc) from None
    except BillingError as exc:
        raise _problem(exc) from None
    return SubscriptionPreviewOut.model_validate(res)


@router.delete(
    "/subscription",
    response_model=SubscriptionOut,
    summary="Cancel the subscription (back to Free at period end)",
    responses=problems(409),
)
async def cancel_subscription(ctx: Ctx, principal: Writer) -> SubscriptionOut:
    """Cancels the paid plan: the organization keeps what it paid for until the period
    ends, then moves to Free."""
    try:
        sub = await _billing(ctx).cancel(
            principal.org_id, actor_kind=principal.kind, actor_id=principal.subject
        )
    except BillingError as exc:
        raise _problem(exc) from None
    return _sub_out(sub)


@router.get("/usage", response_model=UsageOut, summary="Read metered usage")
async def get_usage(
    ctx: Ctx, principal: Reader, period: Annotated[str | None, Query()] = None
) -> UsageOut:
    """Usage per meter for the current period (or the one asked for), with what is included
    in the plan and what is billed as overage."""
    if period is not None:
        try:
            period = M.parse_period(period)
        except ValueError as exc:
            raise Problem(
                422, status_title(422), f"query parameter period: {exc}", type_="bad-period"
            ) from None
    return UsageOut.model_validate(await _billing(ctx).usage(principal.org_id, period))


@router.get("/usage/rejected", summary="List usage records that were refused")
async def get_rejected_usage(
    ctx: Ctx, principal: Reader, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> dict[str, Any]:
    """Usage events billing refused (unknown meter, bad quantity, over quota), with why;
    for finding a metering bug."""
    docs = await _billing(ctx).store.rejected_usage(principal.org_id, limit)
    items = [
        RejectedUsageOut(
            id=d["_id"],
            meter=d["meter"],
            quantity=d["quantity"],
            occurred_at=dt(d["occurred_at"]),
            period=d["period"],
            reason=d.get("reason", ""),
            received_at=dt(d["received_at"]),
        ).model_dump(mode="json")
        for d in docs
    ]
    return {"items": items, "next_cursor": None}


@router.get("/quotas", response_model=QuotaList, summary="Read the organization's quotas")
async def get_quotas(ctx: Ctx, principal: Reader) -> QuotaList:
    """Each quota's limit, what is used and what is reserved in the current period."""
    return QuotaList.model_validate({"items": await _billing(ctx).quotas(principal.org_id)})


@router.get("/balance", response_model=BalanceOut, summary="Read the prepaid balance")
async def get_balance(ctx: Ctx, principal: Reader) -> BalanceOut:
    """The prepaid balance, what is held in escrow for running GPU jobs and, for providers,
    what is payable to the organization; integer cents."""
    return BalanceOut.model_validate(await _billing(ctx).balance(principal.org_id))


@router.post(
    "/credits",
    response_model=CreditsOut,
    status_code=201,
    summary="Add prepaid credits",
)
async def post_credits(
    ctx: Ctx,
    principal: Writer,
    body: CreditsIn,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> CreditsOut:
    """Tops up the prepaid balance by `amount` (integer cents: 50.00 USD is 5000). Locally
    the prepaid adapter applies it at once; with Stripe the answer carries a
    `client_secret` to confirm the payment. Send an Idempotency-Key to retry safely."""
    billing = _billing(ctx)
    payment_id = None
    if idempotency_key:
        digest = hashlib.sha256(f"{principal.org_id}|{idempotency_key}".encode()).hexdigest()
        payment_id = f"pay_{digest[:26]}"
    payment_id = payment_id or new_id("pay")
    amount = Money(body.amount.amount, body.amount.currency)
    port = provider_for(billing.settings.payment_provider, billing.settings.stripe_api_key)
    if port.name != "prepaid":
        started = await port.start_top_up(principal.org_id, amount, payment_id)
        bal = await billing.balance(principal.org_id)
        return CreditsOut(
            payment_id=started.provider_payment_id,
            status=started.status,
            amount=MoneyOut(amount=amount.amount, currency=amount.currency),
            balance=MoneyOut.model_validate(bal["balance"]),
            client_secret=started.client_secret,
        )
    try:
        pid, applied = await billing.top_up(principal.org_id, amount, payment_id, port.name)
    except (BillingError, ValueError) as exc:
        if isinstance(exc, BillingError):
            raise _problem(exc) from None
        raise Problem(422, status_title(422), str(exc)) from None
    bal = await billing.balance(principal.org_id)
    return CreditsOut(
        payment_id=pid,
        status="succeeded" if applied else "duplicate",
        amount=MoneyOut(amount=body.amount.amount, currency=body.amount.currency),
        balance=MoneyOut.model_validate(bal["balance"]),
    )


def _inv_out(inv: dict[str, Any]) -> InvoiceOut:
    data = dict(inv)
    data["id"] = data.pop("_id", data.get("id"))
    for k in ("period_start", "period_end", "issued_at", "due_at", "paid_at"):
        if data.get(k) is not None:
            data[k] = dt(data[k])
    return InvoiceOut.model_validate(data)


@router.get("/invoices", response_model=InvoiceList, summary="List invoices")
async def list_invoices(
    ctx: Ctx,
    principal: Reader,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: str | None = None,
) -> InvoiceList:
    """The organization's invoices with number, period, state and total; paginated with
    `limit` and `cursor`."""
    try:
        docs, nxt = await _billing(ctx).invoices(principal.org_id, limit, cursor)
    except ValueError:
        raise Problem(
            422,
            status_title(422),
            "query parameter cursor: malformed cursor; pass next_cursor of the previous page",
        ) from None
    return InvoiceList(items=[_inv_out(d) for d in docs], next_cursor=nxt)


@router.get("/invoices/upcoming", response_model=InvoiceOut, summary="Preview the upcoming invoice")
async def upcoming_invoice(ctx: Ctx, principal: Reader) -> InvoiceOut:
    """What the next invoice will say so far: plan, metered usage and GPU jobs of the
    current period, with totals."""
    return _inv_out(await _billing(ctx).upcoming_invoice(principal.org_id))


@router.get("/invoices/{invoice_id}", response_model=InvoiceOut, summary="Read an invoice")
async def get_invoice(ctx: Ctx, principal: Reader, invoice_id: str) -> InvoiceOut:
    """One invoice: issuer, bill-to, number, issue and due dates, lines in words (plan,
    meter and quantity, GPU job with model and minutes) and totals."""
    try:
        return _inv_out(await _billing(ctx).invoice(principal.org_id, invoice_id))
    except BillingError as exc:
        raise _problem(exc) from None


@router.get(
    "/invoices/{invoice_id}/html",
    response_class=HTMLResponse,
    summary="Open an invoice as HTML",
)
async def get_invoice_html(ctx: Ctx, principal: Reader, invoice_id: str) -> HTMLResponse:
    """The invoice as a printable HTML page; ``upcoming`` is the current period's."""
    from qlp_billing.service import invoice_html

    try:
        if invoice_id == "upcoming":
            inv = await _billing(ctx).upcoming_invoice(principal.org_id)
        else:
            inv = await _billing(ctx).invoice(principal.org_id, invoice_id)
    except BillingError as exc:
        raise _problem(exc) from None
    return HTMLResponse(
        invoice_html(inv),
        headers={"content-disposition": f'attachment; filename="{invoice_id}.html"'},
    )


@router.get("/payouts", response_model=PayoutList, summary="List payouts")
async def list_payouts(
    ctx: Ctx,
    principal: Reader,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: str | None = None,
) -> PayoutList:
    """Payouts of provider earnings to the organization, with amount and state; paginated
    with `limit` and `cursor`."""
    try:
        items, nxt = await _billing(ctx).payouts(principal.org_id, limit, cursor)
    except ValueError:
        raise Problem(
            422,
            status_title(422),
            "query parameter cursor: malformed cursor; pass next_cursor of the previous page",
        ) from None
    return PayoutList(items=[PayoutOut.model_validate(i) for i in items], next_cursor=nxt)


@router.post(
    "/payouts",
    response_model=PayoutOut,
    status_code=201,
    summary="Request a payout of provider earnings",
    responses=problems(409),
)
async def request_payout(ctx: Ctx, principal: Writer, body: PayoutIn) -> PayoutOut:
    """Pays out `amount` (integer cents) of what is payable to the organization. More than
    is payable is 409."""
    kind = PROVIDER_PAYABLE if body.kind == "provider" else CREATOR_PAYABLE
    try:
        res = await _billing(ctx).payout(principal.org_id, kind)
    except BillingError as exc:
        raise _problem(exc) from None
    if res is None:
        raise Problem(
            409, "Nothing to pay out", "the payable balance is zero", type_="nothing-to-pay"
        )
    return PayoutOut(
        id=res["payout_id"],
        kind=body.kind,
        amount=MoneyOut(amount=res["amount"]),
        status="issued",
        issued_at=res["issued_at"],
    )


# ---- admin (role platform_admin) -----------------------------------------------------


@admin_router.get("/metrics", summary="Platform billing metrics (operators)")
async def admin_metrics(
    ctx: Ctx, principal: Admin, period: Annotated[str | None, Query()] = None
) -> dict[str, Any]:
    """Revenue, balances and escrow across the platform. Platform administrators only."""
    if period is not None:
        try:
            period = M.parse_period(period)
        except ValueError as exc:
            raise Problem(
                422, status_title(422), f"query parameter period: {exc}", type_="bad-period"
            ) from None
    return await _billing(ctx).admin_metrics(period)


@admin_router.put(
    "/orgs/{org_id}/quotas",
    response_model=SubscriptionOut,
    summary="Set an organization's custom quotas (operators)",
    responses=problems(409),
)
async def admin_custom_limits(
    ctx: Ctx, principal: Admin, org_id: str, body: CustomLimitsIn
) -> SubscriptionOut:
    """Overrides an organization's quota limits. Platform administrators only."""
    try:
        return _sub_out(await _billing(ctx).set_custom_limits(org_id, body.limits))
    except BillingError as exc:
        raise _problem(exc) from None


@admin_router.get("/ledger/check", summary="Check the ledger balances (operators)")
async def admin_ledger_check(ctx: Ctx, principal: Admin) -> dict[str, Any]:
    """Verifies that every transaction of the double-entry ledger balances and reports any
    that do not. Platform administrators only."""
    return (await _billing(ctx).ledger_check()).to_dict()


@admin_router.post(
    "/transactions/{txn_id}/reversal",
    status_code=201,
    summary="Reverse a ledger transaction (operators)",
    responses=problems(402, 409),
)
async def admin_reverse(
    ctx: Ctx, principal: Admin, txn_id: str, body: ReversalIn
) -> dict[str, str]:
    """Posts the exact opposite of a transaction. One that cannot be reversed (a
    reversal itself) is 409; one the balance no longer covers is 402. Platform
    administrators only."""
    try:
        rid = await _billing(ctx).reverse(txn_id, body.reason)
    except BillingError as exc:
        raise _problem(exc) from None
    return {"id": rid, "reverses": txn_id}


@admin_router.post(
    "/orgs/{org_id}/invoices/{invoice_id}/void",
    response_model=InvoiceOut,
    summary="Void an invoice (operators)",
    responses=problems(409),
)
async def admin_void(ctx: Ctx, principal: Admin, org_id: str, invoice_id: str) -> InvoiceOut:
    """Voids an issued, unpaid invoice; a paid one is 409. Platform administrators only."""
    try:
        return _inv_out(await _billing(ctx).void_invoice(org_id, invoice_id))
    except BillingError as exc:
        raise _problem(exc) from None


# ---- payment provider webhooks (no principal: the signature authenticates) --------


@webhook_router.post("/stripe", summary="Receive Stripe events", responses=problems(400))
async def stripe_webhook(
    request: Request,
    ctx: Ctx,
    stripe_signature: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    """Stripe posts payment events here, signed with the webhook secret in the Stripe-
    Signature header; each event is applied once (a redelivery answers `duplicate`).
    A bad or stale signature is 400."""
    settings = ctx.settings
    assert isinstance(settings, BillingSettings)
    payload = await request.body()
    secrets = [s for s in settings.stripe_webhook_secrets.split(",") if s]
    try:
        webhooks.verify(
            payload,
            stripe_signature or "",
            secrets,
            now=time.time(),
            tolerance_s=settings.stripe_webhook_tolerance_s,
        )
    except webhooks.SignatureError as exc:
        raise Problem(400, "Bad signature", str(exc), type_="bad-webhook-signature") from None
    try:
        event = provider_events.parse(payload)
    except provider_events.BadEvent as exc:
        raise Problem(400, "Bad payload", str(exc)) from None
    outcome = await provider_events.handle_stripe_event(_billing(ctx), event)
    return {"received": True, "duplicate": outcome.duplicate}
