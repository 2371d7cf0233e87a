"""Money in integer minor units with an ISO currency; fees in basis points.

Splitting never creates or loses a minor unit: ``fee + rest == total`` always.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

BPS_DENOMINATOR = 10_000
# Minor units per major unit for the currencies the platform prices in.
CURRENCY_EXPONENT = {"USD": 2, "EUR": 2, "GBP": 2, "JPY": 0}


class CurrencyMismatch(ValueError):
    pass


@dataclass(frozen=True, order=True)
class Money:
    amount: int
    currency: str = "USD"

    def __post_init__(self) -> None:
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise TypeError("money amounts are integers in minor units")
        if self.currency not in CURRENCY_EXPONENT:
            raise ValueError(f"unsupported currency {self.currency!r}")

    @classmethod
    def zero(cls, currency: str = "USD") -> Money:
        return cls(0, currency)

    @classmethod
    def of(cls, major: str | int, currency: str = "USD") -> Money:
        """``Money.of("12.34")`` → 1234 minor units, exact (no floats)."""
        exp = CURRENCY_EXPONENT[currency]
        text = str(major).strip()
        neg = text.startswith("-")
        whole, _, frac = text.lstrip("+-").partition(".")
        if len(frac) > exp or not (whole or "0").isdigit() or (frac and not frac.isdigit()):
            raise ValueError(f"not an amount in {currency}: {major!r}")
        minor = int(whole or "0") * 10**exp + int((frac or "0").ljust(exp, "0") or "0")
        return cls(-minor if neg else minor, currency)

    def _check(self, other: Money) -> None:
        if other.currency != self.currency:
            raise CurrencyMismatch(f"{self.currency} vs {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._check(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._check(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def times(self, quantity: int) -> Money:
        return Money(self.amount * quantity, self.currency)

    def fee(self, bps: int) -> Money:
        """The fee at ``bps`` basis points, rounded half up on the absolute value."""
        if not 0 <= bps <= BPS_DENOMINATOR:
            raise ValueError("basis points must be within 0..10000")
        sign = -1 if self.amount < 0 else 1
        value = (abs(self.amount) * bps * 2 + BPS_DENOMINATOR) // (2 * BPS_DENOMINATOR)
        return Money(sign * value, self.currency)

    def split(self, bps: int) -> tuple[Money, Money]:
        """Return ``(fee, rest)`` with ``fee + rest == self`` exactly."""
        fee = self.fee(bps)
        return fee, self - fee

    def allocate(self, weights: list[int]) -> list[Money]:
        """Split proportionally to integer weights; remainders go to the largest
        fractional parts first, so the parts always sum to the whole."""
        total = sum(weights)
        if total <= 0 or any(w < 0 for w in weights):
            raise ValueError("weights must be non-negative and not all zero")
        base = [self.amount * w // total for w in weights]
        rema = [self.amount * w % total for w in weights]
        short = self.amount - sum(base)
        for i in sorted(range(len(weights)), key=lambda i: (-rema[i], i))[:short]:
            base[i] += 1
        return [Money(b, self.currency) for b in base]

    def to_dict(self) -> dict[str, Any]:
        return {"amount": self.amount, "currency": self.currency}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Money:
        return cls(int(data["amount"]), str(data.get("currency", "USD")))

    def format(self) -> str:
        exp = CURRENCY_EXPONENT[self.currency]
        sign = "-" if self.amount < 0 else ""
        whole, frac = divmod(abs(self.amount), 10**exp)
        return (
            f"{sign}{whole}.{frac:0{exp}d} {self.currency}"
            if exp
            else f"{sign}{whole} {self.currency}"
        )


# --- API models (every service's request/response money looks the same) -----------

from pydantic import (  # noqa: E402
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    field_validator,
)
from pydantic_core import PydanticCustomError  # noqa: E402

MAX_MINOR_UNITS = 10**12
#: The currencies the platform settles (collects, holds and pays out). Prices may be
#: computed in others (``CURRENCY_EXPONENT``) but the API accepts only these.
SETTLED_CURRENCIES: tuple[str, ...] = ("USD",)
#: What a client is told when an amount is not integer minor units.
AMOUNT_HINT = "amount is an integer in minor units (cents): 50.00 USD is 5000"
MONEY_EXAMPLE: dict[str, JsonValue] = {"amount": 5000, "currency": "USD"}


def _amount(v: object) -> int:
    """Integer minor units, and nothing else: no strings, fractions, floats or bools
    (the range is the field's own constraint)."""
    if isinstance(v, bool) or not isinstance(v, int):
        raise PydanticCustomError("money_amount", AMOUNT_HINT)
    return v


class MoneyIn(BaseModel):
    """Money in a request: integer minor units (cents) and a currency the platform
    settles. "50.00", 50.5 or 50.0 are refused: 50.00 USD is 5000."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [MONEY_EXAMPLE]})

    amount: int = Field(
        ge=0,
        le=MAX_MINOR_UNITS,
        description="integer minor units (cents): 50.00 USD is 5000",
        examples=[5000],
    )
    currency: str = Field(
        default="USD",
        description="ISO 4217 code of a currency the platform settles",
        json_schema_extra={"enum": list(SETTLED_CURRENCIES)},
        examples=["USD"],
    )

    @field_validator("amount", mode="before")
    @classmethod
    def _integer_minor_units(cls, v: object) -> int:
        return _amount(v)

    @field_validator("currency", mode="before")
    @classmethod
    def _settled(cls, v: object) -> str:
        if not isinstance(v, str) or v not in SETTLED_CURRENCIES:
            raise PydanticCustomError(
                "money_currency",
                "currency {given} is not accepted; the platform settles {settled}",
                {"given": repr(v), "settled": ", ".join(SETTLED_CURRENCIES)},
            )
        return v

    def to_money(self) -> Money:
        return Money(self.amount, self.currency)


class PositiveMoneyIn(MoneyIn):
    """Money above zero (top-ups, prices)."""

    amount: int = Field(
        gt=0,
        le=MAX_MINOR_UNITS,
        description="integer minor units (cents), above zero: 50.00 USD is 5000",
        examples=[5000],
    )


class MoneyOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [MONEY_EXAMPLE]})

    amount: int = Field(description="integer minor units (cents)", examples=[5000])
    currency: str = Field(default="USD", examples=["USD"])

    @classmethod
    def of(cls, money: Money) -> MoneyOut:
        return cls(amount=money.amount, currency=money.currency)
