"""How much a property test (Hypothesis) tries — its examples, and the grid each example checks — in one place
for both tiers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

T = TypeVar("T")

FULL_PROFILE_EXAMPLES = 100  # Hypothesis' default max_examples: the profile `make test` runs under


def examples(full: int) -> int:
    """`full` under Hypothesis' default profile (`make test`); scaled by the loaded profile's `max_examples`
    otherwise: `make test-fast` loads `fast` (root conftest.py), a tenth of every count and at least 3, so the
    fast tier still tries each property on several histories while the full suite keeps its depth."""
    return max(3, full * settings().max_examples // FULL_PROFILE_EXAMPLES)


def every_or_some(items: Iterable[T], some: int) -> SearchStrategy[list[T]]:
    """Which of `items` one example checks: every one under Hypothesis' default profile (`make test`); under a
    reduced one (`make test-fast`), `some` of them drawn by Hypothesis, a different few each example (and a
    failure replays with the same few). For the properties whose examples check each item of a grid in turn
    (each grouping of a view): the fast tier samples the grid as it samples the histories. Called at import,
    like `examples`: the loaded profile is read then (inside a test, `settings()` is the test's own)."""
    every = list(items)
    if settings().max_examples >= FULL_PROFILE_EXAMPLES:
        return st.just(every)
    return st.lists(st.sampled_from(every), min_size=min(some, len(every)), max_size=some, unique=True)
