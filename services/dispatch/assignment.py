"""The auto-assignment rule (design.md, dispatch), on its own so that it reads like the contract.

Candidates are the active technicians of a center in the customer's region who have the product line's
skill (the query finds them); this module only ranks them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    technician_id: str
    center_id: str
    center_dealer_id: str | None
    open_jobs: int  # assigned and not yet completed fixed


def rank(candidate: Candidate, request_dealer_id: str | None) -> tuple[bool, int, str]:
    """Prefer a center of the request's dealer, then the fewest open jobs, then the smallest technician id."""
    own_dealer = request_dealer_id is not None and candidate.center_dealer_id == request_dealer_id
    return (not own_dealer, candidate.open_jobs, candidate.technician_id)


def choose_technician(candidates: Iterable[Candidate], request_dealer_id: str | None) -> Candidate | None:
    """The technician the job goes to, or None when nobody qualifies (the job waits unassigned)."""
    return min(candidates, key=lambda c: rank(c, request_dealer_id), default=None)
