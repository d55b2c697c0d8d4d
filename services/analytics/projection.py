"""analytics' projection in DuckDB: every event of the four topics, and the versioned facts folded from them.

One DuckDB file (`ANALYTICS_DUCKDB_PATH`, under `var/` by default) opened read-write by this process only. The
projection lives in a *generation* of tables (`g<N>_events`, `_job_requests`, `_requests`, `_jobs`,
`_revisits`); `analytics_state` names the active one and the one a rebuild is filling. Writes go through one
writer cursor under a lock, one transaction per batch; reads take a snapshot of their own per query (a cursor in
a read transaction, `Projection.reading`): DuckDB's MVCC lets them run while a batch is applied, and its versioned
catalog keeps the generation they started on readable even if a rebuild switches and drops it meanwhile.

A batch: read the stored events of the requests it names (`own_events`), insert its events not stored yet (a
redelivered event is no news: `Projection._stored_copies` finds it among those), find the requests the new events
belong to and fold the new ones in with the rows already read (`fold_new`): a request
whose new events were recorded after all its folded ones resumes its fold and closes/appends only the versions
that change; one with a late event is folded again from all its events and its versions replaced — all in one
transaction, so the facts never disagree with the stored events, whatever order the events came in."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path

import duckdb
import pyarrow as pa

from services.analytics.fact_rows import (  # noqa: F401 (re-exported: the projection's row layout)
    _BOOL,
    _INT,
    _READ_BACK,
    _SQL,
    _STRING,
    EVENT_COLUMNS,
    FOLD_FIELDS,
    JOB_COLUMNS,
    READ_BACK_SELECT,
    REQUEST_COLUMNS,
    REVISIT_COLUMNS,
    FactRows,
    event_batch,
    event_of,
    fold_grouped,
    read_back_rows,
)
from services.analytics.facts import FOREVER
from services.analytics.fold import FACT_KEYS, VersionTrail, by_moment, version_rows
from services.analytics.records import COMPLAINT_OPENED, HANDLED_TYPES, AnalyticsEvent

log = logging.getLogger(__name__)

# The version of a generation's tables and of what their rows mean. Raise it when either changes: an analytics
# started on a file written with another version rebuilds it from the topics (`Projection.needs_rebuild`).
SCHEMA_VERSION = 4  # 3: quotes and part requests (events columns, request facts); 4: events.data VARCHAR

# A batch of at most this many events (or requests) is looked up through the request index; a larger one (a
# catch-up's) by hash joins over the table (`own_events`, `complaints_by_job`, `Projection._end_versions`).
SMALL_BATCH = 100
# DuckDB's memory limit unless the settings say otherwise (ANALYTICS_DUCKDB_MEMORY_LIMIT): the process holds about this
# plus 250-400 MB of Python and its libraries, so that a caught-up analytics stays under 1 GB.
MEMORY_LIMIT = "450MB"

# When DuckDB answers a lookup (`one_of`) from an index: when fewer rows match than max(`index_scan_max_count`,
# `index_scan_percentage` × the table's rows); else it scans the table. A row fetched through the index costs
# ~30 µs at 20k requests (40–140 µs at 1M) against tens of ns a row scanned, so the default fixed 2,048 rows made a
# batch naming 100 stored requests fetch their 1,100 events one by one at 20k requests (35 ms; a scan 11 ms): the
# 0.1 % alone keeps the choice proportional to the table (from 2M rows up, as DuckDB's default: at 1M requests,
# ~10,800 of 10.8M events). On the tests' tiny tables this makes every lookup a table scan: the tests draw a large
# count too, which makes each one an index scan (`tests/histories.py`, INDEX_SCAN_COUNTS).
INDEX_SCANS = {"index_scan_max_count": 0, "index_scan_percentage": 0.001}


@dataclass(frozen=True)
class Tables:
    """The table names of one generation."""

    number: int

    def __getattr__(self, name: str) -> str:
        if name in ("events", "job_requests", "requests", "revisits", "jobs"):
            return f"g{self.number}_{name}"
        raise AttributeError(name)


def _ddl(table: str, columns: dict[str, pa.DataType]) -> str:
    # An event's `data` is JSON text, kept as VARCHAR: it was validated against its contract when decoded, and
    # DuckDB's JSON type would parse every payload again on insert (2-3x the CPU of a batch's append, measured) for
    # nothing the queries need — `json_extract_string` reads VARCHAR alike.
    return (
        f"CREATE TABLE IF NOT EXISTS {table} ("
        + ", ".join(f'"{name}" {_SQL[kind]}' for name, kind in columns.items())
        + ")"
    )


def create_tables(cur: duckdb.DuckDBPyConnection, tables: Tables, *, indexes: bool = True) -> None:
    """The generation's tables; `indexes=False` for a bulk load, which builds them afterwards (`create_indexes`)."""
    run(cur, _ddl(tables.events, EVENT_COLUMNS))
    run(
        cur,
        f"CREATE TABLE IF NOT EXISTS {tables.job_requests} (job_id VARCHAR PRIMARY KEY, request_id VARCHAR NOT NULL)",
    )
    run(cur, _ddl(tables.requests, REQUEST_COLUMNS))
    run(cur, _ddl(tables.revisits, REVISIT_COLUMNS))
    run(cur, _ddl(tables.jobs, JOB_COLUMNS))
    if indexes:
        create_indexes(cur, tables)


def create_indexes(cur: duckdb.DuckDBPyConnection, tables: Tables) -> None:
    """Lookups by request: a batch finds its copies (`Projection._stored_copies`), reads back and replaces the
    touched requests' rows through them instead of scanning the tables (3× faster per batch at 100k requests).
    DuckDB scans an index only for a filter against constants (`IN ($r0, …)`, `one_of`; not `IN (SELECT …)`,
    which it joins by hash over the whole table) and no other filter on the table: the live path's statements are
    written so (`own_events`)."""
    run(cur, f"DROP INDEX IF EXISTS {tables.events}_id")  # kept by files written before `_stored_copies`
    for name in ("events", "requests", "revisits", "jobs"):
        table = getattr(tables, name)
        run(cur, f"CREATE INDEX IF NOT EXISTS {table}_request ON {table} (request_id)")


def drop_tables(cur: duckdb.DuckDBPyConnection, tables: Tables) -> None:
    for name in ("events", "job_requests", "requests", "revisits", "jobs"):
        run(cur, f"DROP TABLE IF EXISTS {getattr(tables, name)}")
    for name in FACT_TABLES:
        run(cur, f"DROP TABLE IF EXISTS {getattr(tables, name)}_clustered")  # left by a rebuild cut short


FACT_TABLES = ("requests", "revisits", "jobs")


def cluster_open_versions(cur: duckdb.DuckDBPyConnection, tables: Tables) -> None:
    """Write each fact table of a freshly folded generation again, the versions that stopped holding first and
    the ones that still hold last, before its indexes are built. The live views read only the versions that still
    hold (`valid_to` = FOREVER, one in ~8 at a year's history); stored together at the end, they fill row groups
    of their own, which DuckDB's zone maps on `valid_to` let those views skip the others' (measured at 500k
    requests: the 30-day throughput view scanned 28 of 28 row groups of the request facts for 4 of them).
    The versions that stopped holding are stored in the order they stopped (`valid_to`): an `as_of` T reads the
    versions with `valid_from <= T < valid_to`, and the zone maps skip every row group that stopped before T
    (measured at 1M requests, 12-month `as_of` 60 days back: throughput 202–248 → 124–216 ms, scorecard 43–67 →
    14–40 ms; 31 s more for the request facts' sort in the rebuild).
    The live path's new versions are appended at the end too; a version it closes later stays where it is."""
    for name in FACT_TABLES:
        table = getattr(tables, name)
        clustered = f"{table}_clustered"
        run(
            cur,
            f"CREATE OR REPLACE TABLE {clustered} AS SELECT * FROM {table} WHERE valid_to <> {FOREVER} "
            "ORDER BY valid_to",
        )
        run(cur, f"INSERT INTO {clustered} SELECT * FROM {table} WHERE valid_to = {FOREVER}")
        run(cur, f"DROP TABLE {table}")
        run(cur, f"ALTER TABLE {clustered} RENAME TO {table}")


def _events_of_requests_sql(tables: Tables, requests: str | None) -> str:
    """(owner, event…) for the stored events of some requests (`requests`: a relation with a request_id
    column; None: every request), including complaints that name only one of their jobs. For a rebuild's many
    requests; a batch's few are read by `stored_events`, through the indexes."""
    cols = READ_BACK_SELECT
    folded = _folded_types()
    if requests is None:
        return (
            f"SELECT e.request_id AS owner, {cols} FROM {tables.events} e WHERE e.request_id IS NOT NULL "
            f"AND e.type IN ({folded}) "
            f"UNION ALL SELECT j.request_id AS owner, {cols} FROM {tables.events} e "
            f"JOIN {tables.job_requests} j ON e.job_id = j.job_id "
            f"WHERE e.request_id IS NULL AND e.type = '{COMPLAINT_OPENED}'"
        )
    return (
        f"SELECT e.request_id AS owner, {cols} FROM {tables.events} e "
        f"WHERE e.request_id IN (SELECT request_id FROM {requests}) AND e.type IN ({folded}) "
        f"UNION ALL SELECT j.request_id AS owner, {cols} FROM {tables.events} e "
        f"JOIN {tables.job_requests} j ON e.job_id = j.job_id "
        f"WHERE e.request_id IS NULL AND e.type = '{COMPLAINT_OPENED}' "
        f"AND j.request_id IN (SELECT request_id FROM {requests})"
    )


def _folded_types() -> str:
    return ", ".join(f"'{t}'" for t in sorted(HANDLED_TYPES))  # the others change no fact


def one_of(values: Sequence[str], name: str) -> tuple[str, dict[str, str]]:
    """`IN ($name0, $name1, …)` and its parameters: a lookup of a batch's few keys that DuckDB answers from an index.

    Not `= ANY($list)`: DuckDB plans that as a semi join with the list, and pushes its keys down to the index
    only up to 50 of them (`dynamic_or_filter_threshold`); beyond, it scans the whole table (measured on a year of
    1M requests: the events of 100 new requests 237–281 ms against 5 ms, closing the versions of 100 requests
    49 ms against 17 ms). An `IN` list of constants is a filter DuckDB scans the index for, at any length, as
    long as few enough rows match (`index_scan_max_count`)."""
    keys = [f"{name}{n}" for n in range(len(values))]
    return "IN (" + ", ".join(f"${key}" for key in keys) + ")", dict(zip(keys, values))


_TYPE, _JOB = _READ_BACK.index("type") + 1, _READ_BACK.index("job_id") + 1  # in (owner, event…) rows


def own_events(cur: duckdb.DuckDBPyConnection, tables: Tables, request_ids: Sequence[str], few: int) -> list[tuple]:
    """(owner, event…) for every stored event naming one of `request_ids` (distinct), whatever its type: a batch
    finds its copies among them, and folds the ones of the types the facts read (`stored_events`). The request id
    is the only filter on the table (`select_among`), so DuckDB can scan the request index (a filter on `type`
    would make it scan the table)."""
    return select_among(
        cur,
        f"SELECT e.request_id AS owner, {READ_BACK_SELECT} FROM {tables.events} e WHERE",
        "e.request_id",
        request_ids,
        few,
    )


def select_among(cur: duckdb.DuckDBPyConnection, select: str, column: str, ids: Sequence[str], few: int) -> list[tuple]:
    """The rows of `select` (a statement ending in its WHERE, which this completes) whose `column` is one of `ids`
    (distinct). Up to `few`: against a list of bound parameters (`one_of`), which DuckDB answers from an index on
    `column` at any length (`= ANY($list)` only up to 50); more (a catch-up's batch): one hash join with the ids as a
    registered table, as a long list is planned as a constant."""
    if not ids:
        return []
    if len(ids) <= few:
        among, params = one_of(ids, "k")
        return cur.execute(f"{select} {column} {among}", params).fetchall()
    with registered(cur, "among", pa.table({"id": pa.array(list(ids), type=_STRING)})):
        return cur.execute(f"{select} {column} IN (SELECT id FROM among)").fetchall()


def complaints_by_job(
    cur: duckdb.DuckDBPyConnection,
    tables: Tables,
    owners: set[str],
    rows: Iterable[tuple],
    orphan_jobs: set[str] | None,
    few: int,
) -> list[tuple]:
    """(owner, complaint…) for the stored complaints that name only a job linked to one of `owners`; `rows`: every
    stored event of `owners` (`own_events`: any type).

    A job is linked (`job_requests`) from one of its own events naming a request (the first, or in a rebuild the
    least request id), and that event is stored: so the jobs linked to these requests are among the jobs their
    events name, and the links of those (a primary-key lookup) say which. Then the complaints themselves, when
    `orphan_jobs` (a superset of the jobs some complaint names without a request; None: unknown) says there can be
    any — a scan of the events, as no index is kept on `job_id`."""
    named = {row[_JOB] for row in rows if row[_JOB] is not None and row[_TYPE] != COMPLAINT_OPENED}
    if orphan_jobs is not None:
        named &= orphan_jobs
    if not named:
        return []
    owner_of = {job: owner for job, owner in job_links(cur, tables, named, few) if owner in owners}
    if not owner_of:
        return []
    # No index on `job_id`: a scan either way, so the few are a list parameter, not one bound name per job.
    complaint = f"e.request_id IS NULL AND e.type = '{COMPLAINT_OPENED}'"
    if len(owner_of) <= few:
        found = cur.execute(
            f"SELECT {READ_BACK_SELECT} FROM {tables.events} e WHERE e.job_id = ANY($jobs) AND {complaint}",
            {"jobs": sorted(owner_of)},
        ).fetchall()
    else:
        with registered(cur, "linked", pa.table({"job_id": pa.array(sorted(owner_of), type=_STRING)})):
            found = cur.execute(
                f"SELECT {READ_BACK_SELECT} FROM {tables.events} e WHERE e.job_id IN (SELECT job_id FROM linked) AND {complaint}"
            ).fetchall()
    return [(owner_of[row[_JOB - 1]], *row) for row in found]


def job_links(cur: duckdb.DuckDBPyConnection, tables: Tables, job_ids: Iterable[str], few: int) -> list[tuple]:
    """(job, request) for those of `job_ids` linked to a request (`job_requests`): up to `few` by their primary key
    (`one_of`), more (a catch-up's) by a hash join, as for every other list of a batch."""
    return select_among(
        cur, f"SELECT job_id, request_id FROM {tables.job_requests} WHERE", "job_id", sorted(set(job_ids)), few
    )


def stored_events(
    cur: duckdb.DuckDBPyConnection,
    tables: Tables,
    request_ids: Iterable[str],
    orphan_jobs: set[str] | None = None,
    few: int = SMALL_BATCH,
) -> list[tuple]:
    """`_events_of_requests_sql` for the given requests: (owner, event…) rows of the types the facts read, sorted
    by owner — the requests' own events (`own_events`: through the request index for a batch's few, by a hash
    join for a catch-up's many) and the complaints naming only one of their jobs (`complaints_by_job`)."""
    ids = sorted(set(request_ids))
    rows = own_events(cur, tables, ids, few)
    return folded_rows(rows, complaints_by_job(cur, tables, set(ids), rows, orphan_jobs, few))


def folded_rows(own: Iterable[tuple], complaints: list[tuple]) -> list[tuple]:
    """The rows a fold reads (the types the facts are folded from; the others change no fact), sorted by owner."""
    rows = [row for row in own if row[_TYPE] in HANDLED_TYPES]
    rows += complaints
    rows.sort(key=itemgetter(0))
    return rows


def orphan_jobs(cur: duckdb.DuckDBPyConnection, tables: Tables) -> set[str]:
    """The jobs some stored complaint names without naming a request (one scan)."""
    return {
        r[0]
        for r in cur.execute(
            f"SELECT DISTINCT job_id FROM {tables.events} WHERE type = '{COMPLAINT_OPENED}' AND request_id IS NULL "
            "AND job_id IS NOT NULL"
        ).fetchall()
    }


def run(cur: duckdb.DuckDBPyConnection, sql: str, params: Sequence | dict | None = None) -> list[tuple]:
    """Execute a statement to its end (DuckDB 2 keeps a result open on the cursor until it is consumed)."""
    return cur.execute(sql, params if params is not None else []).fetchall()


@contextmanager
def registered(cur: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> Iterator[None]:
    """An Arrow table visible to `cur`'s SQL as `name` (DuckDB reads it in place, column by column)."""
    cur.register(name, table)
    try:
        yield
    finally:
        cur.unregister(name)


def insert_arrow(cur: duckdb.DuckDBPyConnection, table: str, arrow_rows: pa.Table) -> None:
    """Append an Arrow table (in the table's column order) to `table`. DuckDB reads `arrow_rows` in place by its
    name in this frame (a replacement scan): per statement, ~1 ms of CPU less than `from_arrow(…).insert_into`
    and ~2 ms less than `registered` (register and unregister a view), measured on 5 rows of 52 columns."""
    cur.execute(f"INSERT INTO {table} SELECT * FROM arrow_rows").fetchall()  # here: the frame DuckDB looks in


def now_micros() -> int:
    return time.time_ns() // 1000


# --- the projection --------------------------------------------------------------------------------------


class LockedByAnotherProcess(RuntimeError):
    """The DuckDB file is open read-write in another process (DuckDB allows one)."""


@dataclass
class Folded:
    """How a batch's requests were folded: resumed from their stored versions, or replaced by a full refold."""

    resumed: int = 0
    replaced: int = 0
    refolded_moments: int = 0  # moments of resumed requests whose events came early in business order

    def add(self, other: Folded) -> None:
        self.resumed += other.resumed
        self.replaced += other.replaced
        self.refolded_moments += other.refolded_moments


@dataclass(frozen=True)
class State:
    active: int
    building: int | None


class Projection:
    """The DuckDB file and its writer. Thread-safe: writes are serialized by a lock; `reader()` gives a cursor
    of its own to each reading thread."""

    def __init__(self, path: str | Path, *, memory_limit: str = MEMORY_LIMIT, threads: int = 2) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self.con = duckdb.connect(
                self.path,
                config={
                    **INDEX_SCANS,
                    "threads": threads,
                    "memory_limit": memory_limit,
                    "preserve_insertion_order": False,
                },
            )
        except duckdb.IOException as exc:
            raise LockedByAnotherProcess(f"{self.path} is held by another process: {exc}") from exc
        self.lock = threading.RLock()
        self.rebuilding = False
        self.folded = Folded()  # how the live path folded its requests since the start (committed batches)
        self.writer = self.con.cursor()
        self._active: int | None = None  # the active generation, as last read by the writer (set_state clears it)
        # Per generation, a superset of the jobs a stored complaint names without a request (`stored_events`):
        # loaded by one scan when first needed, added to by each batch, forgotten by set_state (a claim, a switch).
        self._orphan_jobs: dict[int, set[str]] = {}
        self.needs_rebuild = False
        self.small_batch = SMALL_BATCH  # `_store_events`: the tests take both ways
        with self.lock:
            run(
                self.writer,
                "CREATE TABLE IF NOT EXISTS analytics_state (id INTEGER PRIMARY KEY, "
                "active_generation INTEGER NOT NULL, building_generation INTEGER)",
            )
            # A table of its own, not a column of analytics_state: an older build can still open the file.
            run(self.writer, "CREATE TABLE IF NOT EXISTS analytics_schema (id INTEGER PRIMARY KEY, version INTEGER)")
            fresh = not self.writer.execute("SELECT 1 FROM analytics_state WHERE id = 1").fetchall()
            if fresh:
                run(self.writer, "INSERT INTO analytics_state VALUES (1, 1, NULL)")
                self.mark_current(self.writer)
            elif self.schema_version() != SCHEMA_VERSION:
                self._start_over()
            create_tables(self.writer, Tables(self.state().active))

    def schema_version(self, cur: duckdb.DuckDBPyConnection | None = None) -> int | None:
        """The schema the file's active generation was written with (None: before versions were kept)."""
        rows = (cur or self.writer).execute("SELECT version FROM analytics_schema WHERE id = 1").fetchall()
        return rows[0][0] if rows else None

    def _start_over(self) -> None:
        """The file was written by another schema: its tables cannot be read by this code (a view would
        answer 500). Drop every generation and start an empty one with this schema's tables, to be filled by a
        rebuild from the topics (`needs_rebuild`; the app starts it). The file keeps its old version until that
        rebuild switches (`mark_current`), so a process stopped before then starts over again."""
        found = self.schema_version()
        state = self.state()
        for number in self.generations(self.writer):
            drop_tables(self.writer, Tables(number))
        number = max([state.active, *self.generations(self.writer)]) + 1
        self.set_state(self.writer, active=number, building=None)
        self.needs_rebuild = True
        log.warning(
            "analytics: %s was written with schema %s, this is %d: starting generation %d empty, to be rebuilt "
            "from the topics",
            self.path,
            found,
            SCHEMA_VERSION,
            number,
        )

    def mark_current(self, cur: duckdb.DuckDBPyConnection) -> None:
        """The active generation holds the whole history in this schema (a rebuild's switch)."""
        run(
            cur,
            "INSERT INTO analytics_schema VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET version = excluded.version",
            [SCHEMA_VERSION],
        )
        self.needs_rebuild = False

    def close(self) -> None:
        with self.lock:
            self.writer.close()
            self.con.close()

    def reader(self) -> duckdb.DuckDBPyConnection:
        return self.con.cursor()

    def snapshot(self) -> tuple[duckdb.DuckDBPyConnection, Tables]:
        """A reader cursor inside a read transaction, and the generation active when it began. Reading the state
        pins the snapshot, so every later query on the cursor sees that generation's tables as they were, even
        after a rebuild has switched to a new generation and dropped this one. Close the cursor when done."""
        cur = self.con.cursor()
        try:
            run(cur, "BEGIN TRANSACTION")
            return cur, Tables(self.state(cur).active)
        except BaseException:
            cur.close()
            raise

    @contextmanager
    def reading(self) -> Iterator[tuple[duckdb.DuckDBPyConnection, Tables]]:
        """`snapshot()` for one query: the cursor is closed (its read transaction ended) on the way out."""
        cur, tables = self.snapshot()
        try:
            yield cur, tables
        finally:
            cur.close()

    def state(self, cur: duckdb.DuckDBPyConnection | None = None) -> State:
        active, building = (
            (cur or self.writer)
            .execute("SELECT active_generation, building_generation FROM analytics_state WHERE id = 1")
            .fetchall()[0]
        )
        return State(active, building)

    def active_tables(self, cur: duckdb.DuckDBPyConnection) -> Tables:
        return Tables(self.state(cur).active)

    # --- the live path -------------------------------------------------------------------------------

    def apply(self, events: Sequence[AnalyticsEvent], tables: Tables | None = None) -> int:
        """Store and fold a batch in one transaction; return how many of its events were new."""
        if not events:
            return 0
        with self.lock:
            cur = self.writer
            if tables is None:
                if self._active is None:
                    self._active = self.state().active
                tables = Tables(self._active)
            run(cur, "BEGIN TRANSACTION")
            try:
                new, folded = self._apply(cur, tables, events)
                run(cur, "COMMIT")
            except BaseException:
                run(cur, "ROLLBACK")
                raise
            self.folded.add(folded)
            return new

    def _apply(
        self, cur: duckdb.DuckDBPyConnection, tables: Tables, events: Sequence[AnalyticsEvent]
    ) -> tuple[int, Folded]:
        """Store the batch's events not stored yet and fold them in.

        The stored events of the requests the batch names are read once, before the insert: the batch's copies
        are found among them (`_stored_copies`), and the fold reads them with the new events instead of reading
        them back after the insert (`fold_new`'s `before`)."""
        unique = list({e.event_id: e for e in events}.values())
        named = sorted({e.request_id for e in unique if e.request_id is not None})
        before = own_events(cur, tables, named, self.small_batch)
        stored = self._stored_copies(cur, tables, unique, before)
        new = [e for e in unique if e.event_id not in stored] if stored else unique
        if not new:
            return 0, Folded()
        batch = event_batch(new, now_micros())
        insert_arrow(cur, tables.events, batch)
        fresh = {e.event_id for e in new}
        linked = self._link_jobs(cur, tables, new)
        added = read_back_rows(batch)  # the new events as the fold reads them, from the very columns stored
        before += added
        touched = {row[0] for row in added}
        orphans = [
            e.job_id for e in new if e.request_id is None and e.type == COMPLAINT_OPENED and e.job_id is not None
        ]
        if orphans:
            self._orphans(cur, tables).update(orphans)
            touched.update(request for _, request in job_links(cur, tables, orphans, self.small_batch))
        folded = self.fold_new(cur, tables, touched, fresh, linked, before) if touched else Folded()
        return len(new), folded

    def _orphans(self, cur: duckdb.DuckDBPyConnection, tables: Tables) -> set[str]:
        known = self._orphan_jobs.get(tables.number)
        if known is None:
            known = self._orphan_jobs[tables.number] = orphan_jobs(cur, tables)
        return known

    def _stored_copies(
        self,
        cur: duckdb.DuckDBPyConnection,
        tables: Tables,
        events: Sequence[AnalyticsEvent],
        own: list[tuple],
    ) -> set[str]:
        """The ids of `events` (distinct) stored already: a redelivery, or a record its producer wrote twice;
        `own`: every stored event of the requests `events` name (`own_events`).

        No index keeps the event ids unique: DuckDB's ART indexes must fit in memory, and one over the ids of a
        year of 1M requests (10.8M events) did not fit the process's then 600 MB limit (it takes ~1.5 GB; ~490 MB even as
        the UUID type, ~400 MB as a 64-bit hash). A copy of an event is the same record, so it names the same
        request and was recorded at the same moment as the event: the copies of events naming a request are
        among that request's stored events, which the fold reads anyway (no scan of its own: a catch-up's batch
        of 10,000 joined its ids against the whole id column, ~35 µs per record at 10.8M events); those naming
        no request (a complaint naming only a job) are looked up by their ids among the events recorded within
        their span of recorded moments, so the zone maps skip the row groups of the rest of the history."""
        stored = {row[1] for row in own}
        loose = [e for e in events if e.request_id is None]
        if not loose:
            return stored
        ids = [e.event_id for e in loose]
        if len(ids) <= self.small_batch:
            return stored | self._ids_stored(cur, tables, loose, "event_id = ANY($ids)", {"ids": ids})
        with registered(cur, "batch_ids", pa.table({"event_id": pa.array(ids, type=_STRING)})):
            return stored | self._ids_stored(cur, tables, loose, "event_id IN (SELECT event_id FROM batch_ids)", {})

    @staticmethod
    def _ids_stored(
        cur: duckdb.DuckDBPyConnection,
        tables: Tables,
        events: Sequence[AnalyticsEvent],
        matching: str,
        params: dict,
    ) -> set[str]:
        """The stored event ids `matching` (an SQL condition), among the events recorded within `events`' span."""
        span = {"first": min(e.recorded_at for e in events), "last": max(e.recorded_at for e in events)}
        return {
            r[0]
            for r in cur.execute(
                f"SELECT event_id FROM {tables.events} WHERE recorded_at BETWEEN $first AND $last AND {matching}",
                {**params, **span},
            ).fetchall()
        }

    def _link_jobs(self, cur: duckdb.DuckDBPyConnection, tables: Tables, events: Sequence[AnalyticsEvent]) -> set[str]:
        """job id → request id, from the job's own events (a complaint's pairing is not authoritative); return
        the jobs linked for the first time."""
        pairs = {
            e.job_id: e.request_id
            for e in events
            if e.job_id is not None and e.request_id is not None and e.type != COMPLAINT_OPENED
        }
        if not pairs:
            return set()
        if len(pairs) <= self.small_batch:
            return {
                r[0]
                for r in cur.execute(
                    f"INSERT INTO {tables.job_requests} SELECT unnest($jobs), unnest($requests) "
                    "ON CONFLICT DO NOTHING RETURNING job_id",
                    {"jobs": list(pairs), "requests": list(pairs.values())},
                ).fetchall()
            }
        links = pa.table(
            {"job_id": pa.array(list(pairs), type=_STRING), "request_id": pa.array(list(pairs.values()), type=_STRING)}
        )
        with registered(cur, "links", links):  # a list parameter is planned as a constant: slow when long
            return {
                r[0]
                for r in cur.execute(
                    f"INSERT INTO {tables.job_requests} SELECT * FROM links ON CONFLICT DO NOTHING RETURNING job_id"
                ).fetchall()
            }

    def fold_new(
        self,
        cur: duckdb.DuckDBPyConnection,
        tables: Tables,
        request_ids: Iterable[str],
        fresh: set[str],
        linked: set[str],
        before: list[tuple] | None = None,
    ) -> Folded:
        """Fold a batch's new events (ids `fresh`) into the facts of the requests they touched; `before`: every
        own event (any type) of the requests the batch names, read before its insert, with the new events' rows
        (`_apply`) — each of those requests has a row there (an event of it is either stored or new) — so that
        only the rest is read here.

        A request whose new events were all recorded after every one of its events already folded keeps its
        stored versions: its fold resumes from them (`fold.VersionTrail`), its open versions that change are
        closed at the new moment and the new versions appended — the rows a full refold would give, without
        replacing the others. A request with an event recorded at or before its latest folded moment (a late
        sync, a redelivery to a rebuilt generation), or an older complaint that a new job link makes its own,
        is folded again from all its events and its versions replaced (`refold`)."""
        rows = self._rows_to_fold(cur, tables, request_ids, before)
        folded = Folded()
        facts = FactRows()
        ended: list[list[tuple[str, str, int]]] = [[], [], []]
        replaced: list[str] = []
        for owner, events in fold_grouped(rows):
            old = [e for e in events if e.event_id not in fresh]
            new = [e for e in events if e.event_id in fresh]
            if not new:
                continue
            latest = max((e.recorded_at for e in old), default=None)
            if (latest is not None and min(e.recorded_at for e in new) <= latest) or any(
                e.type == COMPLAINT_OPENED and e.request_id is None and e.job_id in linked for e in old
            ):
                replaced.append(owner)
                facts.add_rows(version_rows(owner, events))
                continue
            trail = VersionTrail(owner, old)
            for moment, group in by_moment(new):
                trail.record(moment, group)
            for kind, key, at in trail.ended:
                ended[kind].append((owner, key, at))
            facts.add_rows(trail.rows())
            folded.resumed += 1
            folded.refolded_moments += trail.refolds
        folded.replaced = len(replaced)
        if replaced:
            self._delete_facts(cur, tables, replaced)
        self._end_versions(cur, tables, ended)
        self._append_facts(cur, tables, facts)
        return folded

    def _rows_to_fold(
        self,
        cur: duckdb.DuckDBPyConnection,
        tables: Tables,
        request_ids: Iterable[str],
        before: list[tuple] | None,
    ) -> list[tuple]:
        """`stored_events` of the requests, those of their own events in `before` (see `fold_new`) not read again."""
        orphans = self._orphans(cur, tables)
        if before is None:
            return stored_events(cur, tables, request_ids, orphans, self.small_batch)
        rows = before
        read = {row[0] for row in rows}  # the requests the batch names (`fold_new`)
        ids = set(request_ids)
        known = ids & read
        own = [row for row in rows if row[0] in known] if known != read else rows
        rows = folded_rows(own, complaints_by_job(cur, tables, known, own, orphans, self.small_batch))
        rest = ids - read  # requests of jobs that the batch's complaints name, not named by the batch itself
        if rest:
            rows += stored_events(cur, tables, rest, orphans, self.small_batch)
            rows.sort(key=itemgetter(0))
        return rows

    def _end_versions(
        self, cur: duckdb.DuckDBPyConnection, tables: Tables, ended: list[list[tuple[str, str, int]]]
    ) -> None:
        """Close stored open versions: (request, key, at) per kind.

        A few (a small batch's): the only filter is the requests' list, so DuckDB finds their rows by the request
        index; each of their rows gets its own `valid_to` back unless it is an open version named here (a
        linear search in the short list). Many (a catch-up's): a join with them, over the whole table."""
        for table, key, rows in zip((tables.requests, tables.revisits, tables.jobs), FACT_KEYS, ended):
            if not rows:
                continue
            owners, keys, ats = zip(*rows)
            if len(rows) <= self.small_batch:
                among, params = one_of(sorted(set(owners)), "r")
                run(
                    cur,
                    f"UPDATE {table} SET valid_to = CASE WHEN valid_to = {FOREVER} THEN "
                    f"coalesce($ats[list_position($pairs, [request_id, {key}])], valid_to) ELSE valid_to END "
                    f"WHERE request_id {among}",
                    {"pairs": [list(pair) for pair in zip(owners, keys)], "ats": list(ats), **params},
                )
                continue
            closing = pa.table(
                {
                    "request_id": pa.array(owners, type=_STRING),
                    "key": pa.array(keys, type=_STRING),
                    "valid_to": pa.array(ats, type=_INT),
                }
            )
            with registered(cur, "ending", closing):
                run(
                    cur,
                    f"UPDATE {table} AS t SET valid_to = ending.valid_to FROM ending "
                    f"WHERE t.request_id = ending.request_id AND t.{key} = ending.key AND t.valid_to = {FOREVER} "
                    "AND t.request_id IN (SELECT request_id FROM ending)",
                )

    def _delete_facts(self, cur: duckdb.DuckDBPyConnection, tables: Tables, request_ids: Iterable[str]) -> None:
        ids = sorted(set(request_ids))
        if len(ids) <= self.small_batch:
            among, params = one_of(ids, "r")
            for table in (tables.requests, tables.revisits, tables.jobs):
                run(cur, f"DELETE FROM {table} WHERE request_id {among}", params)
            return
        with registered(cur, "gone", pa.table({"request_id": pa.array(ids, type=_STRING)})):
            for table in (tables.requests, tables.revisits, tables.jobs):
                run(cur, f"DELETE FROM {table} WHERE request_id IN (SELECT request_id FROM gone)")

    def refold(self, cur: duckdb.DuckDBPyConnection, tables: Tables, request_ids: Iterable[str]) -> None:
        """Fold the given requests again from all their stored events; replace their fact versions."""
        ids = sorted(set(request_ids))
        facts = FactRows()
        for owner, events in fold_grouped(
            stored_events(cur, tables, ids, self._orphans(cur, tables), self.small_batch)
        ):
            facts.add_rows(version_rows(owner, events))
        self._delete_facts(cur, tables, ids)
        self._append_facts(cur, tables, facts)

    @staticmethod
    def _append_facts(cur: duckdb.DuckDBPyConnection, tables: Tables, facts: FactRows) -> None:
        for table, rows in zip((tables.requests, tables.revisits, tables.jobs), facts.tables()):
            if rows.num_rows:
                insert_arrow(cur, table, rows)

    # --- the bulk path (rebuild) ---------------------------------------------------------------------

    def append_events(self, cur: duckdb.DuckDBPyConnection, table: str, events: Sequence[AnalyticsEvent]) -> None:
        """Append events as they are (a replay's load table: deduplicated afterwards)."""
        with registered(cur, "batch", event_batch(events, now_micros())):
            run(cur, f"INSERT INTO {table} SELECT * FROM batch")

    def fold_everything(self, cur: duckdb.DuckDBPyConnection, tables: Tables, chunk: int = 50_000) -> tuple[int, int]:
        """Fold every request of a freshly loaded generation into its (empty) fact tables; return (requests,
        fact versions). Streams the events sorted by request, so memory holds one chunk, not the history."""
        cur.execute(_events_of_requests_sql(tables, None) + " ORDER BY owner")
        requests = versions = 0
        facts = FactRows()
        pending: list[tuple] = []
        writer = self.con.cursor()  # the read stream stays open on `cur` while the facts are appended
        try:
            while batch := cur.fetchmany(chunk):
                rows = pending + batch
                # Keep the last owner's rows for the next chunk: its events may continue there.
                cut = len(rows)
                while cut > 0 and rows[cut - 1][0] == rows[-1][0]:
                    cut -= 1
                complete, pending = rows[:cut], rows[cut:]
                for owner, events in fold_grouped(complete):
                    facts.add_rows(version_rows(owner, events))
                    requests += 1
                if facts.size >= chunk:
                    versions += facts.size
                    self._append_facts(writer, tables, facts)
                    facts = FactRows()
            for owner, events in fold_grouped(pending):
                facts.add_rows(version_rows(owner, events))
                requests += 1
            versions += facts.size
            self._append_facts(writer, tables, facts)
        finally:
            writer.close()
        return requests, versions

    def set_state(self, cur: duckdb.DuckDBPyConnection, *, active: int, building: int | None) -> None:
        # The next batch reads the state again: this change may be rolled back, or committed.
        self._active = None
        self._orphan_jobs.clear()
        run(
            cur,
            "UPDATE analytics_state SET active_generation = ?, building_generation = ? WHERE id = 1",
            [active, building],
        )

    def generations(self, cur: duckdb.DuckDBPyConnection) -> list[int]:
        names = [
            r[0]
            for r in cur.execute(
                "SELECT table_name FROM duckdb_tables() WHERE table_name LIKE 'g%\\_events' ESCAPE '\\'"
            ).fetchall()
        ]
        return sorted(int(n[1:].split("_")[0]) for n in names if n[1:].split("_")[0].isdigit())

    def file_bytes(self) -> int:
        path = Path(self.path)
        wal = path.with_name(path.name + ".wal")
        return (path.stat().st_size if path.exists() else 0) + (wal.stat().st_size if wal.exists() else 0)
