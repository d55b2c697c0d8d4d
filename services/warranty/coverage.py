"""Warranty coverage, pure: month arithmetic, the policies of a product line, and the verdict for a unit on a
day (optionally for one part category). No web, database or Kafka here.

**The day coverage ends.** A unit sold on day S with an N-month warranty is covered from S through
`expires_on` *inclusive*, the day before the N-month anniversary of S. When the anniversary's day does not
exist in its month (the 29th-31st), the anniversary is the 1st of the following month, so coverage runs to
the end of the shorter month and never loses a day:

    sold 2025-03-01, 24 months → covered through 2027-02-28, not on 2027-03-01
    sold 2025-01-31,  1 month  → through 2025-02-28      sold 2024-01-31, 1 month → through 2024-02-29
    sold 2024-02-29, 12 months → through 2025-02-28      sold 2024-02-29, 48 months → through 2028-02-28

**Which policy.** A product line may have several policy versions, each for units sold on or after its
`effective_from` (null: any sale date). A unit follows the latest version in force on its sale date, so a
later policy change never takes coverage away from units already sold. A line without any policy falls back
to the configured default (its months may be 0: then nothing is covered), and the reason says so.

**Part categories** are case-insensitive (kept lower-case). An excluded category (a wear part) is never
covered; a category with its own months is covered for those months; any other follows the unit."""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta

from shared.contracts.warranty import CoverageBasis


def anniversary(start: date, months: int) -> date:
    """The day `months` months after `start`; a day that its month lacks rolls to the next month's 1st."""
    index = start.month - 1 + months
    year, month = start.year + index // 12, index % 12 + 1
    if start.day <= calendar.monthrange(year, month)[1]:
        return date(year, month, start.day)
    return date(year, month + 1, 1) if month < 12 else date(year + 1, 1, 1)


def coverage_end(start: date, months: int) -> date:
    """The last day (inclusive) of `months` months of coverage starting on `start`."""
    return anniversary(start, months) - timedelta(days=1)


def normalize_category(category: str) -> str:
    return category.strip().lower()


@dataclass(frozen=True)
class Policy:
    """The warranty terms of a product line for units sold from `effective_from` on."""

    product_line: str
    months: int
    part_months: Mapping[str, int] = field(default_factory=dict)
    excluded_categories: frozenset[str] = frozenset()
    effective_from: date | None = None
    is_default: bool = False

    def describe(self) -> str:
        if self.is_default:
            return f"default {self.months}-month warranty (no policy for product line {self.product_line})"
        return f"{self.months}-month warranty of product line {self.product_line}"


@dataclass(frozen=True)
class PolicyBook:
    """Every policy version of one product line, and the default for sales no version reaches."""

    product_line: str
    versions: tuple[Policy, ...] = ()
    default_months: int = 0

    def for_sale(self, sold_on: date) -> Policy:
        applicable = [p for p in self.versions if (p.effective_from or date.min) <= sold_on]
        if applicable:
            return max(applicable, key=lambda p: p.effective_from or date.min)
        return Policy(self.product_line, self.default_months, is_default=True)


@dataclass(frozen=True)
class Sale:
    """What coverage counts from: a registered sale, or the purchase date a request gives."""

    serial: str
    sold_on: date
    basis: CoverageBasis

    def describe(self) -> str:
        if self.basis == CoverageBasis.registered_sale:
            return f"the registered sale on {self.sold_on.isoformat()}"
        return (
            f"the purchase date {self.sold_on.isoformat()} given on the request "
            f"(serial {self.serial} is not registered)"
        )


@dataclass(frozen=True)
class Verdict:
    covered: bool
    expires_on: date | None
    reason: str
    basis: CoverageBasis
    category: str | None = None


@dataclass(frozen=True)
class UnitCoverage:
    """Coverage of a unit as the API shows it: the unit's end, each named category's, and the exclusions."""

    verdict: Verdict
    sale: Sale
    policy: Policy
    parts: dict[str, date | None]


def judge(sale: Sale | None, policy: Policy | None, on: date, category: str | None = None, serial: str = "") -> Verdict:
    """Is the unit (or its part `category`) covered on day `on`? Always with the reason."""
    if sale is None or policy is None:
        return Verdict(
            False,
            None,
            f"not covered: serial {serial or '?'} is not registered and the request gives no purchase date",
            CoverageBasis.none,
            category,
        )
    months, subject = policy.months, "the unit"
    if category is not None:
        category = normalize_category(category)
        if category in policy.excluded_categories:
            return Verdict(
                False,
                None,
                f"not covered: part category {category} is an excluded wear part of product line {policy.product_line}",
                sale.basis,
                category,
            )
        if category in policy.part_months:
            months, subject = policy.part_months[category], f"part category {category}"
    terms = policy.describe() if subject == "the unit" else f"{months}-month coverage of {subject}"
    if months <= 0:
        return Verdict(False, None, f"not covered: {policy.describe()}", sale.basis, category)
    expires_on = coverage_end(sale.sold_on, months)
    if on < sale.sold_on:
        return Verdict(
            False, expires_on, f"not covered: {on.isoformat()} is before {sale.describe()}", sale.basis, category
        )
    if on > expires_on:
        return Verdict(
            False,
            expires_on,
            f"not covered: the {terms} from {sale.describe()} ended on {expires_on.isoformat()}",
            sale.basis,
            category,
        )
    return Verdict(
        True,
        expires_on,
        f"covered: {on.isoformat()} is within the {terms} from {sale.describe()} (through {expires_on.isoformat()})",
        sale.basis,
        category,
    )


def unit_coverage(sale: Sale, policy: Policy, on: date) -> UnitCoverage:
    """The unit's verdict on `on` plus the last covered day of every category the policy names (None for an
    excluded wear part)."""
    parts: dict[str, date | None] = {
        c: coverage_end(sale.sold_on, m) if m > 0 else None for c, m in sorted(policy.part_months.items())
    }
    parts.update({c: None for c in sorted(policy.excluded_categories)})
    return UnitCoverage(judge(sale, policy, on, serial=sale.serial), sale, policy, parts)


def policy_from(
    product_line: str, months: int, part_months: Mapping[str, int], excluded: Iterable[str], effective_from: date | None
) -> Policy:
    return Policy(
        product_line,
        months,
        {normalize_category(c): m for c, m in part_months.items()},
        frozenset(normalize_category(c) for c in excluded),
        effective_from,
    )
