"""What billing's domain modules share: errors, results, and the base every part of
:class:`qlp_billing.service.Billing` builds on (the store, settings and clock, and
the few operations one part calls on another, implemented where they belong)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from qlp_billing import ledger as L
from qlp_billing import metering as M
from qlp_billing.events import SYSTEM, actor
from qlp_billing.repository import Store
from qlp_billing.settings import BillingSettings
from qlp_kit.mongo import utcnow

Doc = dict[str, Any]


class BillingError(Exception):
    status = 400
    type_ = "billing-error"

    def __init__(self, message: str = "", **extensions: Any) -> None:
        super().__init__(message)
        #: Extra members of the problem document (amounts, what to do).
        self.extensions = extensions


class Conflict(BillingError):
    status = 409
    type_ = "conflict"


class NotFound(BillingError):
    status = 404
    type_ = "not-found"


class PaymentRequired(BillingError):
    status = 402
    type_ = "insufficient-funds"


class ProviderUnavailable(BillingError):
    status = 503
    type_ = "payment-provider-unavailable"


def month_period(now: datetime) -> tuple[str, datetime, datetime]:
    return M.period_of(now)


def actor_of(kind: str, actor_id: str, org_id: str) -> Any:
    return actor(kind, actor_id, org_id) if actor_id else SYSTEM


@dataclass
class ReserveResult:
    ok: bool
    duplicate: bool = False
    remaining: int = 0
    reason: str = ""


@dataclass
class CommitResult:
    status: str  # applied | duplicate | insufficient | guard
    wallet: Doc | None = None


class BillingBase:
    def __init__(
        self,
        store: Store,
        settings: BillingSettings,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock

    @property
    def grace(self) -> timedelta:
        return timedelta(seconds=self.settings.usage_grace_s)

    # ---- operations one part calls on another (implemented in subscriptions.py,
    # wallet.py and invoicing.py; Billing composes them ahead of this base) ----------

    async def subscription(self, org_id: str) -> Doc:
        """The org's subscription, rolled forward to now (subscriptions.py)."""
        raise NotImplementedError

    async def _commit(
        self,
        txn: L.Txn,
        events: Sequence[Any] = (),
        *,
        guard: Doc | None = None,
        guard_ok: Callable[[Doc], bool] | None = None,
        extra_set: Doc | None = None,
        extra_inc: Doc | None = None,
    ) -> CommitResult:
        """Commit a ledger transaction on its org's wallet (wallet.py)."""
        raise NotImplementedError

    async def pay_open_invoices(self, org_id: str) -> int:
        """Pay what the prepaid balance covers (invoicing.py)."""
        raise NotImplementedError
