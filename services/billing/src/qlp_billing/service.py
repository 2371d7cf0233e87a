"""Billing's domain logic, one module per subdomain, composed here. No FastAPI in any
of them; every database call goes through :class:`~qlp_billing.repository.Store`.

- ``subscriptions.py``: plans, proration, trials, the period roll
- ``reservations.py``: the quota view and the reservation saga
- ``usage.py``: metering ingest and the usage view
- ``wallet.py``: the wallet-committed ledger (top-ups, escrow, sales, reversals,
  payouts, the ledger check)
- ``invoicing.py``: invoice lines, finalization, booking, payment and void
- ``profiles.py``: the billing profile invoices are addressed to
- ``reports.py``: platform admin metrics
"""

from __future__ import annotations

from qlp_billing.base import (
    BillingError,
    CommitResult,
    Conflict,
    NotFound,
    PaymentRequired,
    ReserveResult,
)
from qlp_billing.invoicing import Invoicing, invoice_html
from qlp_billing.plans import PROJECTS, STORAGE_GB
from qlp_billing.profiles import Profiles
from qlp_billing.reports import Reports
from qlp_billing.reservations import Reservations
from qlp_billing.subscriptions import Subscriptions
from qlp_billing.usage import Metering
from qlp_billing.wallet import Wallet


class Billing(Subscriptions, Reservations, Metering, Wallet, Invoicing, Profiles, Reports):
    """The billing service: every subdomain over one store, settings and clock."""


__all__ = [
    "PROJECTS",
    "STORAGE_GB",
    "Billing",
    "BillingError",
    "CommitResult",
    "Conflict",
    "NotFound",
    "PaymentRequired",
    "ReserveResult",
    "invoice_html",
]
