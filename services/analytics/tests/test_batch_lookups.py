"""How a batch reaches its rows: a small batch looks its requests and jobs up as lists of constants
(`projection.one_of`: `IN ($r0, …)`), which DuckDB answers from the request index when few enough rows match
(`index_scan_max_count`, `projection.INDEX_SCANS`), and no list bound to a statement is longer than the
projection's `small_batch` (a longer one is registered as a table and joined by hash).

The property tests take the lookups both ways (`histories.INDEX_SCAN_COUNTS`); here, that the large count really
gives index scans on the tests' tiny tables (and the projection's own setting table scans), read from the plans of
the statements the live path runs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import duckdb
import pytest

from services.analytics.projection import Projection
from services.analytics.records import AnalyticsEvent
from services.analytics.tests.histories import INDEX_SCAN_COUNTS, fresh_projection
from services.analytics.tests.test_facts import event, job, received
from services.analytics.tests.test_incremental_fold import definition, fact_tables

TABLE = re.compile(r"\b(?:FROM|UPDATE)\s+(g\d+_\w+)")  # the table a statement reads or changes


class Recording:
    """The projection's writer cursor, recording each statement it runs with its parameters, and the plan of each
    lookup of constants (`one_of`) as DuckDB ran it: EXPLAIN ANALYZE, as DuckDB picks an index scan or a table
    scan when the scan starts (a plain EXPLAIN shows a table scan either way)."""

    def __init__(self, cur: duckdb.DuckDBPyConnection) -> None:
        self.cur = cur
        self.statements: list[tuple[str, Any]] = []
        self.plans: list[tuple[str, str, str]] = []  # (verb, table, plan)

    def execute(self, sql: str, parameters: Any = None) -> duckdb.DuckDBPyConnection:
        self.statements.append((sql, parameters))
        if " IN ($" in sql:
            table = TABLE.search(sql)
            assert table is not None, sql
            verb = sql.split()[0]
            analyzed = self.cur.execute("EXPLAIN ANALYZE " + sql, parameters)
            self.plans.append(
                (verb, table.group(1), "\n".join(str(part) for row in analyzed.fetchall() for part in row))
            )
            if verb != "SELECT":  # an UPDATE or DELETE ran under EXPLAIN ANALYZE; the live path reads no result of it
                return analyzed
        return self.cur.execute(sql, parameters if parameters is not None else [])

    def __getattr__(self, name: str) -> Any:
        return getattr(self.cur, name)


@contextmanager
def recorded(projection: Projection) -> Iterator[Recording]:
    """The projection's batches applied through a `Recording` of its writer."""
    writer = projection.writer
    # `insert_arrow` names its Arrow table in its own frame, now two frames up from DuckDB's call.
    writer.execute("SET python_scan_all_frames = true")
    recording = Recording(writer)
    projection.writer = cast(duckdb.DuckDBPyConnection, recording)
    try:
        yield recording
    finally:
        projection.writer = writer


def a_request_stored_then_changed() -> list[list[AnalyticsEvent]]:
    """Batches that take every lookup of the live path: a request, its job and a revisit; a complaint naming only the job
    (its link looked up, the request's versions closed and appended); a triage (closed and appended); an
    escalation recorded before the triage (a late event: the request's versions deleted and folded again). With
    another request in every table: DuckDB scans the whole table for a lookup that matches each of its rows."""
    another = [
        received(request_id="R2"),
        job("job.created", 10, "job-2", "R2"),
        job("revisit.done", 150, "job-2", "R2", satisfaction=2, nps=3),
    ]
    return [
        [
            received(),
            job("job.created", 10),
            job("job.assigned", 11, center_id="C1", technician_id="T1"),
            job("revisit.done", 150, satisfaction=4, nps=9),
            *another,
        ],
        [event("complaint.opened", 200, None, "job-1", complaint_id="K1")],
        [event("service_request.triaged", 20, mode="onsite", priority="P2", recorded=300)],
        [event("service_request.escalated", 3, recorded=250)],
    ]


@pytest.mark.parametrize(
    "index_scan_max_count, scan",
    [(INDEX_SCAN_COUNTS[1], "Index Scan"), (INDEX_SCAN_COUNTS[0], "Sequential Scan")],
    ids=["index scans", "table scans"],
)
def test_a_small_batch_s_lookups_scan_the_request_index_when_the_count_allows_it(index_scan_max_count, scan):
    batches = a_request_stored_then_changed()
    projection = fresh_projection(index_scan_max_count=index_scan_max_count)
    try:
        with recorded(projection) as recording:
            for batch in batches:
                assert projection.apply(batch) == len(batch)
        # The scans the lookups ran, by statement and table (a lookup on a table still empty scans nothing).
        scans = [
            (verb, table.split("_", 1)[1], found)
            for verb, table, plan in recording.plans
            for found in re.findall(r"Type: (\w+ Scan)", plan)
        ]
        assert {(verb, table) for verb, table, _ in scans} >= {
            ("SELECT", "events"),
            ("SELECT", "job_requests"),
            ("UPDATE", "requests"),
            ("DELETE", "requests"),
            ("DELETE", "revisits"),
            ("DELETE", "jobs"),
        }
        assert {found for _, _, found in scans} == {scan}, scans
        assert fact_tables(projection) == fact_tables(expected := definition([e for b in batches for e in b]))
        expected.close()
    finally:
        projection.close()


def bound_lists(parameters: Any) -> list[int]:
    """The lengths of the lists a statement binds: each `one_of` list (`$r0, $r1, …` counted together), each list
    parameter."""
    if not isinstance(parameters, dict):
        return []
    constants: dict[str, int] = {}
    lengths = []
    for name, value in parameters.items():
        if isinstance(value, list):
            lengths.append(len(value))
        elif (listed := re.fullmatch(r"([a-z]+)\d+", name)) is not None:
            constants[listed.group(1)] = constants.get(listed.group(1), 0) + 1
    return lengths + list(constants.values())


@pytest.mark.parametrize("index_scan_max_count", INDEX_SCAN_COUNTS)
def test_a_batch_of_more_complaints_naming_only_a_job_than_a_small_batch_binds_no_longer_list(index_scan_max_count):
    small_batch = 3
    stored = [
        e
        for n in range(small_batch + 2)
        for e in (received(request_id=f"R{n}"), job("job.created", 10, f"job-{n}", f"R{n}"))
    ]
    complaints = [
        event("complaint.opened", 200 + n, None, f"job-{n}", complaint_id=f"K{n}") for n in range(small_batch + 2)
    ]
    projection = fresh_projection(small_batch, index_scan_max_count)
    try:
        with recorded(projection) as recording:
            assert projection.apply(stored) == len(stored)
            assert projection.apply(complaints) == len(complaints)
        for sql, parameters in recording.statements:
            assert all(length <= small_batch for length in bound_lists(parameters)), sql
        assert fact_tables(projection) == fact_tables(expected := definition([*stored, *complaints]))
        expected.close()
    finally:
        projection.close()
