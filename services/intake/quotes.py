"""Pricing a paid-service quote (design.md, intake, "Paid service"): labour at the hourly rate, parts at the
catalogue's price (intake's copy of warranty's `part.registered`), in one currency, exact to the cent.

Pure: no web, database or Kafka here. Money is `Decimal` end to end; each line is rounded to the cent (half up,
as an invoice does) and the total is the sum of the rounded lines, so the lines always add up to the total."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from shared.contracts.intake import QuoteLine, QuoteLineKind
from shared.domain import RuleViolation

CENT = Decimal("0.01")
MINUTES_PER_HOUR = Decimal(60)


def to_cents(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class QuoteTerms:
    """The service's pricing settings: `LABOUR_RATE_PER_HOUR`, `CURRENCY`, `QUOTE_VALID_DAYS`."""

    labour_rate_per_hour: Decimal
    currency: str
    valid_days: float

    def valid_until(self, issued_at: datetime) -> datetime:
        return issued_at + timedelta(days=self.valid_days)


@dataclass(frozen=True)
class CataloguePrice:
    """What intake knows of a part from warranty's catalogue (the last registration wins)."""

    part_number: str
    name: str
    unit_price: Decimal
    currency: str


@dataclass(frozen=True)
class PartWanted:
    part_number: str
    quantity: int


@dataclass(frozen=True)
class PricedQuote:
    lines: tuple[QuoteLine, ...]
    labour_minutes: int
    total: Decimal
    currency: str


def price_quote(
    labour_minutes: int,
    parts: Sequence[PartWanted],
    catalogue: Mapping[str, CataloguePrice],
    terms: QuoteTerms,
) -> PricedQuote:
    """The quote's lines and total. A part the catalogue does not know, or prices in another currency, and a
    quantity or a labour time that is not positive, are 422s naming the field (`parts.<i>.part_number`)."""
    if labour_minutes < 0:
        raise RuleViolation("labour_minutes may not be negative", field="labour_minutes")
    if labour_minutes == 0 and not parts:
        raise RuleViolation("a quote needs labour or at least one part", field="parts")
    lines: list[QuoteLine] = []
    if labour_minutes:
        lines.append(
            QuoteLine(
                kind=QuoteLineKind.labour,
                description=f"Labour, {labour_minutes} min",
                quantity=labour_minutes,
                unit_price=terms.labour_rate_per_hour,
                amount=to_cents(terms.labour_rate_per_hour * labour_minutes / MINUTES_PER_HOUR),
            )
        )
    for index, wanted in enumerate(parts):
        if wanted.quantity <= 0:
            raise RuleViolation(f"quantity must be at least 1, not {wanted.quantity}", field=f"parts.{index}.quantity")
        price = catalogue.get(wanted.part_number)
        if price is None:
            raise RuleViolation(
                f"part {wanted.part_number} is not in the parts catalogue", field=f"parts.{index}.part_number"
            )
        if price.currency != terms.currency:
            raise RuleViolation(
                f"part {wanted.part_number} is priced in {price.currency}; quotes are in {terms.currency}",
                field=f"parts.{index}.part_number",
            )
        lines.append(
            QuoteLine(
                kind=QuoteLineKind.part,
                part_number=price.part_number,
                description=price.name,
                quantity=wanted.quantity,
                unit_price=price.unit_price,
                amount=to_cents(price.unit_price * wanted.quantity),
            )
        )
    return PricedQuote(
        tuple(lines), labour_minutes, sum((line.amount for line in lines), Decimal("0.00")), terms.currency
    )
