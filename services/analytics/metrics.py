"""The arithmetic of the contract's Definitions, with no I/O: windows in UTC, medians, nearest-rank p90,
percentages, and rounding half away from zero to one decimal, applied last.

Every intermediate value is exact (`Fraction` of integer microseconds), so that rounding sees the true value:
a median of 12.25 minutes rounds to 12.3, never to 12.2 because a float stored 12.2499999."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

Number = int | Fraction

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROS_PER_MINUTE = 60_000_000
MICROS_PER_DAY = 86_400_000_000


# --- time ----------------------------------------------------------------------------------------------


def to_micros(value: datetime) -> int:
    """Microseconds since the epoch of an aware datetime (exact: no float on the way)."""
    delta = value - EPOCH  # aware arithmetic: any offset is accounted for
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)


def day_key(micros: int) -> str:
    """`YYYY-MM-DD` of the UTC day the instant falls in."""
    return from_micros(micros).date().isoformat()


def month_key(micros: int) -> str:
    return from_micros(micros).strftime("%Y-%m")


def date_micros(day: date) -> int:
    return (day - date(1970, 1, 1)).days * MICROS_PER_DAY


@dataclass(frozen=True, slots=True)
class Window:
    """A half-open interval `[start, end)` of instants, in microseconds since the epoch."""

    start: int
    end: int

    @classmethod
    def of_dates(cls, first: date, end: date) -> Window:
        """`[first 00:00Z, end 00:00Z)`: the contract's `from`/`to` dates."""
        return cls(date_micros(first), date_micros(end))

    def __contains__(self, micros: int | None) -> bool:
        return micros is not None and self.start <= micros < self.end

    def days(self) -> list[int]:
        """Start of every UTC day that begins inside the window."""
        first = -(-self.start // MICROS_PER_DAY) * MICROS_PER_DAY
        return list(range(first, self.end, MICROS_PER_DAY))


# --- statistics ----------------------------------------------------------------------------------------


def nearest_rank_90(count: int) -> int:
    """The 1-based rank of the 90th percentile by nearest rank, ⌈0.9·n⌉, in integers (floats say 64 for 70)."""
    return (9 * count + 9) // 10


def median(values: Sequence[Number]) -> Fraction | None:
    """The middle value, or the mean of the two middle ones for an even count; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return Fraction(ordered[middle])
    return Fraction(ordered[middle - 1] + ordered[middle], 2)


def p90(values: Sequence[Number]) -> Fraction | None:
    """Nearest-rank 90th percentile: the ⌈0.9·n⌉-th smallest value; None for no values."""
    if not values:
        return None
    return Fraction(sorted(values)[nearest_rank_90(len(values)) - 1])


def mean(values: Sequence[Number]) -> Fraction | None:
    return Fraction(sum(values), len(values)) if values else None


def percentage(part: int, whole: int) -> Fraction | None:
    """`part / whole × 100`, None where the denominator is 0 (it may exceed 100: complaints per request)."""
    return Fraction(100 * part, whole) if whole else None


def minutes(micros: Number | None) -> Fraction | None:
    return None if micros is None else Fraction(micros, MICROS_PER_MINUTE)


def weighted_score(
    sla_met_pct: Fraction | None, first_time_fix_pct: Fraction | None, csat_pct: Fraction | None
) -> Fraction | None:
    """0.2 × SLA met + 0.3 × first-time fix + 0.5 × CSAT from unrounded parts; a missing part counts as 0,
    and the score is None only when all three are missing."""
    parts = (sla_met_pct, first_time_fix_pct, csat_pct)
    if all(part is None for part in parts):
        return None
    weights = (Fraction(2, 10), Fraction(3, 10), Fraction(5, 10))
    return sum((w * (p or 0) for w, p in zip(weights, parts)), Fraction(0))


# --- presentation --------------------------------------------------------------------------------------


def round_half_away(value: Number) -> Decimal:
    """To one decimal, half away from zero (12.25 → 12.3, -12.25 → -12.3), from the exact value."""
    exact = Fraction(value)
    tenths = (abs(exact) * 10 + Fraction(1, 2)).__floor__()
    if exact < 0 and tenths:
        tenths = -tenths
    return Decimal(tenths).scaleb(-1)


def rounded(value: Number | None) -> float | None:
    """The JSON number the API shows: rounded half away from zero to 1 decimal, or None."""
    if value is None:
        return None
    return float(round_half_away(value))


def rounded_minutes(micros: Number | None) -> float | None:
    return rounded(minutes(micros))


def _kth_without(everyone: Sequence[int], mine: Sequence[int], rank: int) -> int:
    """The `rank`-th smallest (1-based) of `everyone` once `mine` (a sub-multiset) is taken out; both sorted.
    Binary search on `everyone`'s positions, counting with bisect: no copy of the others' values per key."""
    low, high = 0, len(everyone) - 1
    while low < high:
        middle = (low + high) // 2
        value = everyone[middle]
        if bisect_right(everyone, value) - bisect_right(mine, value) >= rank:
            high = middle
        else:
            low = middle + 1
    return everyone[low]


def median_without(everyone: Sequence[int], mine: Sequence[int]) -> Fraction:
    """The median of `everyone` once `mine` (a sorted sub-multiset) is taken out (the others' median)."""
    n = len(everyone) - len(mine)
    if n % 2:
        return Fraction(_kth_without(everyone, mine, n // 2 + 1))
    return Fraction(_kth_without(everyone, mine, n // 2) + _kth_without(everyone, mine, n // 2 + 1), 2)
