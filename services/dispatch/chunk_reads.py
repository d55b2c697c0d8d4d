"""What dispatch's reactions read about a whole consumer chunk at once, kept for the chunk.

The consumer applies a partition's records in chunks, one transaction each, every event in a savepoint of its
own (`shared.messaging.consumer.Chunk`). A triage needs its request, whether its job exists and the ranked
candidates; read per event that was a trip to SQLite and ~25 B-tree searches per technician of the region.
Read per chunk, it is two trips for all of the chunk's requests (`queries.chunk_reads`), and the reactions of the
chunk keep it true with their own writes: a received request's row, a cancelled one, a job's row and its
technician's open jobs (`read_model.save_job`). The consumer empties it when an event's effect is undone, so
it is read afresh after a rollback. The ranking reads the same numbers as a read per event would: the same
assignment, the same SLA deadlines.

No statements here: queries.py reads, read_model.py writes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from services.dispatch.assignment import Candidate
from services.dispatch.domain import RequestFacts
from shared.eventstore.sqlite_driver import OneTripConnection
from shared.messaging.consumer import current_chunk

if TYPE_CHECKING:
    from sqlalchemy.engine import Dialect


@dataclass(frozen=True, slots=True)
class Later:
    """The chunk's lean driver and its dialect, looked up once per chunk: where its reactions leave their writes
    for the next trip to the writer (`read_model.LaterWrite`)."""

    driver: OneTripConnection
    dialect: Dialect


@dataclass(frozen=True)
class KnownRequest:
    facts: RequestFacts
    cancelled: bool


Pair = tuple[str, str]  # (region, product line): the requests that share it share their candidates


@dataclass
class ChunkReads:
    """The requests of one chunk's events as stored (None: not known), which of them have a job, the
    candidates of each (region, product line) seen and each candidate technician's open jobs.

    `later`: where the chunk's reactions leave their writes for the next trip to the writer; None off the lean
    path (PostgreSQL), where they run at once."""

    requests: dict[str, KnownRequest | None]
    jobs: set[str]  # request ids (of `requests`) whose job exists
    staff: dict[Pair, list[str]] = field(default_factory=dict)  # technician ids, as the query ranks them
    # Each technician of `staff` as a candidate now (their open jobs included): one object per technician, made
    # again only when their open jobs change, not one per candidate per triage.
    candidate_of: dict[str, Candidate] = field(default_factory=dict)
    later: Later | None = None

    def add_staff(self, pair: Pair, rows: list[tuple[str, str, str | None, int]]) -> None:
        """The candidates of `pair` as read now (technician, center, center's dealer, open jobs)."""
        self.staff[pair] = [technician_id for technician_id, _, _, _ in rows]
        for technician_id, center_id, dealer_id, open_jobs in rows:
            self.candidate_of[technician_id] = Candidate(technician_id, center_id, dealer_id, open_jobs)

    def candidates(self, pair: Pair) -> list[Candidate] | None:
        """None when `pair` was not read yet."""
        staff = self.staff.get(pair)
        if staff is None:
            return None
        candidate_of = self.candidate_of
        return [candidate_of[t] for t in staff]

    # --- the chunk's own writes, as they happen ------------------------------------------------------------

    def request_stored(self, request: KnownRequest) -> None:
        self.requests[request.facts.request_id] = request

    def request_cancelled(self, request_id: str) -> None:
        known = self.requests.get(request_id)
        if known is not None:
            self.requests[request_id] = replace(known, cancelled=True)

    def job_saved(self, request_id: str, load_changes: Mapping[str, int]) -> None:
        self.jobs.add(request_id)
        for technician_id, delta in load_changes.items():
            known = self.candidate_of.get(technician_id)
            if known is not None:
                self.candidate_of[technician_id] = Candidate(
                    technician_id, known.center_id, known.center_dealer_id, known.open_jobs + delta
                )


_MEMO_KEY = ChunkReads


def kept_reads() -> ChunkReads | None:
    """What this chunk has read so far, when the running reaction belongs to a chunk that read it."""
    chunk = current_chunk()
    found = chunk.memo.get(_MEMO_KEY) if chunk is not None else None
    return found if isinstance(found, ChunkReads) else None


def keep_reads(reads: ChunkReads) -> None:
    chunk = current_chunk()
    if chunk is not None:
        chunk.memo[_MEMO_KEY] = reads


__all__ = ["ChunkReads", "KnownRequest", "Later", "Pair", "keep_reads", "kept_reads"]
