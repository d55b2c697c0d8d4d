"""How many examples a property test (Hypothesis) tries, in one place for both tiers."""

from __future__ import annotations

from hypothesis import settings

FULL_PROFILE_EXAMPLES = 100  # Hypothesis' default max_examples: the profile `make test` runs under


def examples(full: int) -> int:
    """`full` under Hypothesis' default profile (`make test`); scaled by the loaded profile's `max_examples`
    otherwise: `make test-fast` loads `fast` (root conftest.py), a tenth of every count and at least 3, so the
    fast tier still tries each property on several histories while the full suite keeps its depth."""
    return max(3, full * settings().max_examples // FULL_PROFILE_EXAMPLES)
