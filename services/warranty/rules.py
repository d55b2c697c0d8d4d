"""warranty's configurable limits and money (one object the composition root provides to handlers by type)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from services.warranty.domain import ReturnLimits


@dataclass(frozen=True)
class WarrantyRules:
    """The configurable limits and money of the business rules."""

    return_limits: ReturnLimits = ReturnLimits()
    claim_days: int = 30
    labour_rate_per_hour: Decimal = Decimal("60.00")
    currency: str = "EUR"
    default_months: int = 12
    # Part categories whose defective part must come back before a claim for their swap is paid.
    return_required_categories: frozenset[str] = field(default_factory=frozenset)
