"""The double-entry ledger, pure: accounts, transactions and their rules.

Amounts are integer minor units. A leg's ``amount`` is signed: positive is a debit,
negative a credit; every transaction's legs sum to zero. An account's balance is
shown on its normal side (assets debit-normal, liabilities and revenue
credit-normal), so a customer's prepaid balance is a positive number.

A transaction is committed on exactly one org's *wallet* (the payer: the org whose
customer balance, escrow or receivable it moves). Those three accounts are cached in
the wallet and guarded there (never below zero); every other account a transaction
touches (another org's payable, platform accounts) is only credited by it, so needs
no guard. Corrections are reversal transactions with the legs negated.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from qlp_kit.money import Money

CUSTOMER_BALANCE = "customer_balance"
ESCROW = "escrow"
RECEIVABLE = "receivable"
PROVIDER_PAYABLE = "provider_payable"
CREATOR_PAYABLE = "creator_payable"
PLATFORM_REVENUE = "platform_revenue"
PAYMENT_CLEARING = "payment_clearing"
PLATFORM_ORG = "platform"

DEBIT_NORMAL = {RECEIVABLE, PAYMENT_CLEARING}
#: Accounts cached (and guarded) in the owning org's wallet.
WALLET_KINDS = (CUSTOMER_BALANCE, ESCROW, RECEIVABLE)
#: Accounts whose balance may never go below zero.
NON_NEGATIVE = {CUSTOMER_BALANCE, ESCROW, RECEIVABLE, PROVIDER_PAYABLE, CREATOR_PAYABLE}
KINDS = (
    CUSTOMER_BALANCE,
    ESCROW,
    RECEIVABLE,
    PROVIDER_PAYABLE,
    CREATOR_PAYABLE,
    PLATFORM_REVENUE,
    PAYMENT_CLEARING,
)


class LedgerError(ValueError):
    pass


class Unbalanced(LedgerError):
    pass


class InsufficientFunds(LedgerError):
    def __init__(self, account: str, needed: int, available: int) -> None:
        super().__init__(f"{account}: needs {needed}, has {available}")
        self.account = account
        self.needed = needed
        self.available = available


def account(kind: str, org_id: str = PLATFORM_ORG) -> str:
    if kind not in KINDS:
        raise LedgerError(f"unknown account kind {kind!r}")
    return f"{kind}:{org_id}"


def parse_account(acct: str) -> tuple[str, str]:
    kind, _, org = acct.partition(":")
    return kind, org


def sign(kind: str) -> int:
    """+1 when a debit raises the shown balance, -1 when a credit does."""
    return 1 if kind in DEBIT_NORMAL else -1


@dataclass(frozen=True)
class Leg:
    account: str
    amount: int  # + debit, - credit

    def to_doc(self) -> dict[str, Any]:
        return {"account": self.account, "amount": self.amount}


@dataclass(frozen=True)
class Txn:
    id: str  # the idempotency key, unique in the ledger
    kind: str
    org_id: str  # the wallet it commits on
    legs: tuple[Leg, ...]
    currency: str = "USD"
    memo: str = ""
    reverses: str | None = None
    refs: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        validate(self)

    def wallet_delta(self) -> dict[str, int]:
        """Change of the commit org's cached balances (shown side)."""
        delta: dict[str, int] = defaultdict(int)
        for leg in self.legs:
            kind, _org = parse_account(leg.account)
            if kind in WALLET_KINDS:
                delta[kind] += sign(kind) * leg.amount
        return {k: v for k, v in delta.items() if v}

    def to_doc(self) -> dict[str, Any]:
        return {
            "_id": self.id,
            "kind": self.kind,
            "org_id": self.org_id,
            "currency": self.currency,
            "legs": [leg.to_doc() for leg in self.legs],
            "memo": self.memo,
            "reverses": self.reverses,
            "refs": dict(self.refs),
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Txn:
        return cls(
            id=str(doc["_id"]),
            kind=str(doc["kind"]),
            org_id=str(doc["org_id"]),
            legs=tuple(Leg(str(x["account"]), int(x["amount"])) for x in doc["legs"]),
            currency=str(doc.get("currency", "USD")),
            memo=str(doc.get("memo") or ""),
            reverses=doc.get("reverses"),
            refs={str(k): str(v) for k, v in (doc.get("refs") or {}).items()},
        )


def validate(txn: Txn) -> None:
    if not txn.id or "." in txn.id or txn.id.startswith("$"):
        raise LedgerError("a transaction id must be non-empty and free of '.' and '$'")
    if len(txn.legs) < 2:
        raise Unbalanced("a transaction needs at least two legs")
    if sum(leg.amount for leg in txn.legs) != 0:
        raise Unbalanced(f"transaction {txn.id} does not balance")
    for leg in txn.legs:
        kind, org = parse_account(leg.account)
        if kind not in KINDS or not org:
            raise LedgerError(f"unknown account {leg.account!r}")
        if kind in WALLET_KINDS and org != txn.org_id:
            raise LedgerError(f"{leg.account} can only move in a transaction of its own org")
        if kind not in WALLET_KINDS and sign(kind) * leg.amount < 0 and kind in NON_NEGATIVE:
            # a payable is only reduced by its own org's payout, or by a reversal
            if org != txn.org_id and not txn.reverses:
                raise LedgerError(f"{leg.account} can only be reduced by its own org")


def _legs(*pairs: tuple[str, int]) -> tuple[Leg, ...]:
    return tuple(Leg(a, n) for a, n in pairs if n != 0)


def _positive(amount: Money) -> None:
    if amount.amount <= 0:
        raise LedgerError("amount must be positive")


# ---- builders ---------------------------------------------------------------------


def topup(org_id: str, payment_id: str, amount: Money, provider: str = "prepaid") -> Txn:
    _positive(amount)
    return Txn(
        f"topup-{payment_id}",
        "topup",
        org_id,
        _legs(
            (account(PAYMENT_CLEARING), amount.amount),
            (account(CUSTOMER_BALANCE, org_id), -amount.amount),
        ),
        amount.currency,
        memo=f"prepaid credits via {provider}",
        refs={"payment_id": payment_id, "provider": provider},
    )


def escrow_hold(org_id: str, escrow_id: str, job_id: str, amount: Money) -> Txn:
    _positive(amount)
    return Txn(
        f"escrow-hold-{escrow_id}",
        "escrow_hold",
        org_id,
        _legs(
            (account(CUSTOMER_BALANCE, org_id), amount.amount),
            (account(ESCROW, org_id), -amount.amount),
        ),
        amount.currency,
        memo=f"escrow for job {job_id}",
        refs={"escrow_id": escrow_id, "job_id": job_id},
    )


@dataclass(frozen=True)
class ProviderUse:
    provider_id: str
    provider_org_id: str
    gpu_minutes: int
    price_per_gpu_hour: int  # minor units
    gpu_model: str = ""
    gpu_count: int = 0


@dataclass(frozen=True)
class ShareOut:
    provider_id: str
    provider_org_id: str
    gpu_minutes: int
    gross: int
    net: int


@dataclass(frozen=True)
class Settlement:
    held: int
    charged: int
    platform_fee: int
    refunded: int
    shares: tuple[ShareOut, ...]
    #: Each provider's price per GPU-hour (minor units), in the order of ``shares``.
    rates: tuple[int, ...] = ()
    #: Each provider's (GPU model, GPU count), in the order of ``shares``.
    gpus: tuple[tuple[str, int], ...] = ()


def compute_settlement(held: Money, usage: Sequence[ProviderUse], fee_bps: int) -> Settlement:
    """Gross per provider from metered minutes; capped at the hold (proportionally);
    the platform keeps ``fee_bps`` of each provider's gross; the rest is refunded.
    Invariants: charged + refunded == held; sum(net) + platform_fee == charged."""
    grosses = [(u.gpu_minutes * u.price_per_gpu_hour * 2 + 60) // 120 for u in usage]
    grosses = [max(g, 0) for g in grosses]
    total = sum(grosses)
    if total > held.amount:
        grosses = (
            [m.amount for m in Money(held.amount).allocate(grosses)]
            if total
            else [0] * len(grosses)
        )
    shares = []
    fee_total = 0
    for u, g in zip(usage, grosses, strict=True):
        fee, net = Money(g, held.currency).split(fee_bps)
        fee_total += fee.amount
        shares.append(ShareOut(u.provider_id, u.provider_org_id, u.gpu_minutes, g, net.amount))
    charged = sum(grosses)
    return Settlement(
        held.amount,
        charged,
        fee_total,
        held.amount - charged,
        tuple(shares),
        tuple(u.price_per_gpu_hour for u in usage),
        tuple((u.gpu_model, u.gpu_count) for u in usage),
    )


def escrow_settle(org_id: str, escrow_id: str, job_id: str, currency: str, s: Settlement) -> Txn:
    pairs: list[tuple[str, int]] = [
        (account(ESCROW, org_id), s.held),
        (account(CUSTOMER_BALANCE, org_id), -s.refunded),
        (account(PLATFORM_REVENUE), -s.platform_fee),
    ]
    payable: dict[str, int] = defaultdict(int)
    for sh in s.shares:
        payable[sh.provider_org_id] += sh.net
    pairs += [(account(PROVIDER_PAYABLE, org), -net) for org, net in sorted(payable.items())]
    return Txn(
        f"escrow-settle-{escrow_id}",
        "escrow_settle",
        org_id,
        _legs(*pairs),
        currency,
        memo=f"GPU job {job_id} settled",
        refs={"escrow_id": escrow_id, "job_id": job_id, **_usage_refs(s)},
    )


def _usage_refs(s: Settlement) -> dict[str, str]:
    """What the invoice line says about the job: its GPU-minutes, the GPU model (and
    count) when every provider ran the same, and the rate per GPU-hour when every
    provider charged one rate."""
    minutes = sum(sh.gpu_minutes for sh in s.shares)
    refs = {"gpu_minutes": str(minutes)} if s.shares else {}
    rates = {r for r in s.rates if r}
    if len(rates) == 1:
        refs["price_per_gpu_hour"] = str(rates.pop())
    models = {m for m, _ in s.gpus if m}
    if len(models) == 1:
        refs["gpu_model"] = models.pop()
        counts = {c for _, c in s.gpus if c > 0}
        if len(counts) == 1:
            refs["gpu_count"] = str(counts.pop())
    return refs


def sale(
    buyer_org: str, purchase_id: str, seller_org: str, price: Money, platform_fee_bps: int
) -> tuple[Txn, Money, Money]:
    """Charge the buyer's balance; the creator gets the price minus the platform fee."""
    _positive(price)
    fee, creator = price.split(platform_fee_bps)
    txn = Txn(
        f"sale-{purchase_id}",
        "sale",
        buyer_org,
        _legs(
            (account(CUSTOMER_BALANCE, buyer_org), price.amount),
            (account(CREATOR_PAYABLE, seller_org), -creator.amount),
            (account(PLATFORM_REVENUE), -fee.amount),
        ),
        price.currency,
        memo=f"marketplace purchase {purchase_id}",
        refs={"purchase_id": purchase_id, "seller_org_id": seller_org},
    )
    return txn, creator, fee


def invoice_booking(org_id: str, invoice_id: str, amount: Money) -> Txn:
    _positive(amount)
    return Txn(
        f"invoice-{invoice_id}",
        "invoice",
        org_id,
        _legs(
            (account(RECEIVABLE, org_id), amount.amount),
            (account(PLATFORM_REVENUE), -amount.amount),
        ),
        amount.currency,
        memo=f"invoice {invoice_id}",
        refs={"invoice_id": invoice_id},
    )


def invoice_payment(org_id: str, invoice_id: str, amount: Money) -> Txn:
    _positive(amount)
    return Txn(
        f"invoice-payment-{invoice_id}",
        "invoice_payment",
        org_id,
        _legs(
            (account(CUSTOMER_BALANCE, org_id), amount.amount),
            (account(RECEIVABLE, org_id), -amount.amount),
        ),
        amount.currency,
        memo=f"invoice {invoice_id} paid from prepaid balance",
        refs={"invoice_id": invoice_id},
    )


def payout(payee_org: str, payout_id: str, kind: str, amount: Money) -> Txn:
    _positive(amount)
    if kind not in (PROVIDER_PAYABLE, CREATOR_PAYABLE):
        raise LedgerError("payouts come from provider or creator payables")
    return Txn(
        f"payout-{payout_id}",
        "payout",
        payee_org,
        _legs(
            (account(kind, payee_org), amount.amount), (account(PAYMENT_CLEARING), -amount.amount)
        ),
        amount.currency,
        memo=f"payout {payout_id}",
        refs={"payout_id": payout_id},
    )


def reversal(original: Txn, reason: str = "") -> Txn:
    if original.reverses:
        raise LedgerError("a reversal is not reversed; post a new transaction instead")
    return Txn(
        f"reversal-{original.id}",
        "reversal",
        original.org_id,
        tuple(Leg(leg.account, -leg.amount) for leg in original.legs),
        original.currency,
        memo=reason or f"reversal of {original.id}",
        reverses=original.id,
        refs=dict(original.refs),
    )


def payable_debits(txn: Txn) -> list[tuple[str, str, int]]:
    """(payee org, kind, amount) for each provider/creator payable ``txn`` reduces (a
    reversal of a sale or a settlement): payables are not cached in the committing
    wallet, so they are guarded in the payee's wallet first."""
    out: dict[tuple[str, str], int] = defaultdict(int)
    for leg in txn.legs:
        kind, org = parse_account(leg.account)
        if kind in (PROVIDER_PAYABLE, CREATOR_PAYABLE) and leg.amount > 0:
            out[(org, kind)] += leg.amount
    return [(org, kind, n) for (org, kind), n in sorted(out.items()) if n > 0]


# ---- balances and checks ----------------------------------------------------------


def balances(txns: Iterable[Txn]) -> dict[str, int]:
    """Shown balance per account."""
    raw: dict[str, int] = defaultdict(int)
    for t in txns:
        for leg in t.legs:
            raw[leg.account] += leg.amount
    return {a: sign(parse_account(a)[0]) * v for a, v in raw.items()}


def guard_violations(wallet: dict[str, int], txn: Txn) -> InsufficientFunds | None:
    """Would ``txn`` take a cached wallet balance below zero?"""
    for kind, d in txn.wallet_delta().items():
        have = int(wallet.get(kind, 0))
        if d < 0 and have + d < 0:
            return InsufficientFunds(account(kind, txn.org_id), -d, have)
    return None


@dataclass
class CheckReport:
    transactions: int = 0
    unbalanced: list[str] = field(default_factory=list)
    negative: dict[str, int] = field(default_factory=dict)
    wallet_mismatch: dict[str, dict[str, int]] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (self.unbalanced or self.negative or self.wallet_mismatch)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "transactions": self.transactions,
            "unbalanced": self.unbalanced,
            "negative_accounts": self.negative,
            "wallet_mismatch": self.wallet_mismatch,
            "totals_by_kind": self.totals,
        }


def check(docs: Iterable[dict[str, Any]], wallets: dict[str, dict[str, int]]) -> CheckReport:
    """Verify every transaction balances, no account is below what its rules allow and
    every wallet's cached balances equal the ledger's."""
    rep = CheckReport()
    raw: dict[str, int] = defaultdict(int)
    for d in docs:
        rep.transactions += 1
        legs = d.get("legs") or []
        if len(legs) < 2 or sum(int(x["amount"]) for x in legs) != 0:
            rep.unbalanced.append(str(d.get("_id")))
        for x in legs:
            raw[str(x["account"])] += int(x["amount"])
    shown = {a: sign(parse_account(a)[0]) * v for a, v in raw.items()}
    for a, v in shown.items():
        kind, _ = parse_account(a)
        rep.totals[kind] = rep.totals.get(kind, 0) + v
        if kind in NON_NEGATIVE and v < 0:
            rep.negative[a] = v
    for org, cached in wallets.items():
        for kind in WALLET_KINDS:
            want = shown.get(account(kind, org), 0)
            have = int(cached.get(kind, 0))
            if want != have:
                rep.wallet_mismatch.setdefault(org, {})[kind] = have - want
    return rep


class MemoryLedger:
    """The ledger's rules in memory (the property tests drive it): idempotent by
    transaction id, guarded like the wallet."""

    def __init__(self) -> None:
        self.txns: dict[str, Txn] = {}
        self.wallets: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    def post(self, txn: Txn) -> bool:
        if txn.id in self.txns:
            return False
        wallet = self.wallets[txn.org_id]
        err = guard_violations(wallet, txn)
        if err is not None:
            raise err
        # payables are not cached in a wallet: check the ledger itself
        for leg in txn.legs:
            kind, _org = parse_account(leg.account)
            if kind in (PROVIDER_PAYABLE, CREATOR_PAYABLE) and leg.amount > 0:
                have = self.balance(leg.account)
                if have - leg.amount < 0:
                    raise InsufficientFunds(leg.account, leg.amount, have)
        for kind, d in txn.wallet_delta().items():
            wallet[kind] += d
        self.txns[txn.id] = txn
        return True

    def balance(self, acct: str) -> int:
        return balances(self.txns.values()).get(acct, 0)

    def check(self) -> CheckReport:
        return check(
            (t.to_doc() for t in self.txns.values()),
            {o: dict(w) for o, w in self.wallets.items()},
        )
