"""The projection's rows as Arrow columns: the events table's columns (the fields of an event the facts read, each a
column) and the fact tables' (one per field of the fact dataclasses, with the version's `valid_from`/`valid_to`);
a batch of events to append, an event read back for a fold, and fact versions gathered column by column."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import fields
from operator import attrgetter

import pyarrow as pa

from services.analytics.facts import JobFact, RequestFact, RevisitFact, Versioned
from services.analytics.records import AnalyticsEvent

_STRING, _INT, _BOOL = pa.string(), pa.int64(), pa.bool_()
_SQL = {_STRING: "VARCHAR", _INT: "BIGINT", _BOOL: "BOOLEAN"}

# The fields of AnalyticsEvent.data the facts read, each a column of the events table.
FOLD_FIELDS: dict[str, pa.DataType] = {
    "dealer_id": _STRING,
    "region": _STRING,
    "product_line": _STRING,
    "mode": _STRING,
    "priority": _STRING,
    "center_id": _STRING,
    "technician_id": _STRING,
    "fixed": _BOOL,
    "reason": _STRING,
    "kind": _STRING,
    "satisfaction": _INT,
    "nps": _INT,
    "complaint_id": _STRING,
    # paid service and part requests (commerce_facts)
    "quote_id": _STRING,
    "total": _STRING,  # a decimal string, exact
    "currency": _STRING,
    "part_request_id": _STRING,
    "part_number": _STRING,
    "location_kind": _STRING,
}
EVENT_COLUMNS: dict[str, pa.DataType] = {
    "event_id": _STRING,
    "type": _STRING,
    "topic": _STRING,
    "subject": _STRING,
    "request_id": _STRING,
    "job_id": _STRING,
    "time": _INT,
    "recorded_at": _INT,
    "sequence": _INT,
    "stored_at": _INT,
    **FOLD_FIELDS,
    "data": _STRING,
}
_READ_BACK = ["event_id", "type", "request_id", "job_id", "time", "recorded_at", "sequence", *FOLD_FIELDS]
# The events' columns a fold reads back (`event_of`), as a select list over the events aliased `e`.
READ_BACK_SELECT = ", ".join(f'e."{c}"' for c in _READ_BACK)


def _arrow_type(annotation: str) -> pa.DataType:
    return _BOOL if annotation.startswith("bool") else _INT if annotation.startswith("int") else _STRING


def _fact_columns(cls) -> dict[str, pa.DataType]:
    return {"valid_from": _INT, "valid_to": _INT, **{f.name: _arrow_type(str(f.type)) for f in fields(cls)}}


REQUEST_COLUMNS = _fact_columns(RequestFact)
REVISIT_COLUMNS = _fact_columns(RevisitFact)
JOB_COLUMNS = _fact_columns(JobFact)  # `reasons` as JSON text: {"parts_unavailable": 2}


def event_batch(events: Sequence[AnalyticsEvent], stored_at: int) -> pa.Table:
    """The events as an Arrow table in `EVENT_COLUMNS` order, gathered column by column."""
    datas = [e.data for e in events]
    columns: dict[str, list] = {
        "event_id": [e.event_id for e in events],
        "type": [e.type for e in events],
        "topic": [e.topic for e in events],
        "subject": [e.subject for e in events],
        "request_id": [e.request_id for e in events],
        "job_id": [e.job_id for e in events],
        "time": [e.time for e in events],
        "recorded_at": [e.recorded_at for e in events],
        "sequence": [e.sequence for e in events],
    }
    # An event's data has the two or three fields its type reads: fill those, leave the other cells empty.
    fold_columns: dict[str, list] = {name: [None] * len(events) for name in FOLD_FIELDS}
    for row, data in enumerate(datas):
        for name, value in data.items():
            column = fold_columns.get(name)
            if column is not None:
                column[row] = value
    columns.update(fold_columns)
    columns["data"] = [_payload_text(e) for e in events]
    arrays = [
        pa.array(columns[name], type=kind) if name != "stored_at" else pa.array([stored_at] * len(events), type=kind)
        for name, kind in EVENT_COLUMNS.items()
    ]
    return pa.Table.from_arrays(arrays, names=list(EVENT_COLUMNS))


def _payload_text(e: AnalyticsEvent) -> str:
    payload = e.payload if e.payload is not None else e.data
    return payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))


def read_back_rows(batch: pa.Table) -> list[tuple]:
    """(owner, event…) for the events of `batch` (an `event_batch`) that name a request, the owner being that
    request: the rows a read of the stored events gives back (`projection.own_events`), taken from the very Arrow
    columns the batch is inserted from. pyarrow may change a value on the way in (a float in an int64 column is
    truncated): a fold resumed from the batch's own `data` could then see another value than a later refold reads
    from the table; read from the inserted columns, the two are the same by construction."""
    columns = [batch.column(name).to_pylist() for name in _READ_BACK]
    owners = columns[_READ_BACK.index("request_id")]
    return [row for row in zip(owners, *columns) if row[0] is not None]


def event_of(row: tuple) -> AnalyticsEvent:
    """An event read back (in `_READ_BACK` order) for a fold."""
    event_id, type_, request_id, job_id, time_, recorded_at, sequence, *folded = row
    data = {name: value for name, value in zip(FOLD_FIELDS, folded) if value is not None}
    return AnalyticsEvent(event_id, type_, request_id, job_id, time_, recorded_at, sequence, data)


_SPECS = (REQUEST_COLUMNS, REVISIT_COLUMNS, JOB_COLUMNS)
_VALUES = tuple(attrgetter(*list(spec)[2:]) for spec in _SPECS)  # a fact's fields as a tuple, in column order
_REASONS = list(JOB_COLUMNS).index("reasons")


class FactRows:
    """Versions of facts gathered as (valid_from, valid_to, the fact's field values) per kind, to be appended as
    Arrow tables (column by column)."""

    def __init__(self) -> None:
        self.rows: list[list[tuple]] = [[], [], []]
        self.size = 0

    def add(self, versions: tuple[list[Versioned], list[Versioned], list[Versioned]]) -> None:
        for rows, kind, values in zip(self.rows, versions, _VALUES):
            rows.extend((version.valid_from, version.valid_to, values(version.fact)) for version in kind)
            self.size += len(kind)

    def add_rows(self, versions: tuple[list[tuple], list[tuple], list[tuple]]) -> None:
        """Versions already as (valid_from, valid_to, values) (`fold.VersionTrail.rows`)."""
        for rows, kind in zip(self.rows, versions):
            rows.extend(kind)
            self.size += len(kind)

    def tables(self) -> tuple[pa.Table, pa.Table, pa.Table]:
        out = []
        for number, (rows, spec) in enumerate(zip(self.rows, _SPECS)):
            columns: list[Sequence]
            if rows:
                froms, tos, values = zip(*rows)
                columns = [froms, tos, *zip(*values)]
            else:
                columns = [() for _ in spec]
            if number == 2 and rows:  # a job's reasons as JSON text: {"parts_unavailable": 2}
                columns[_REASONS] = [json.dumps(dict(r), separators=(",", ":")) for r in columns[_REASONS]]
            out.append(pa.table({n: pa.array(v, type=spec[n]) for n, v in zip(spec, columns)}))
        requests, revisits, jobs = out
        return requests, revisits, jobs


def fold_grouped(rows: Iterable[tuple]) -> Iterator[tuple[str, list[AnalyticsEvent]]]:
    """(owner, events) per owner from rows sorted by owner."""
    owner: str | None = None
    events: list[AnalyticsEvent] = []
    for row in rows:
        if row[0] != owner:
            if owner is not None:
                yield owner, events
            owner, events = row[0], []
        events.append(event_of(row[1:]))
    if owner is not None:
        yield owner, events
