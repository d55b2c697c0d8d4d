"""Rebuild: replay the four topics from their beginning into a fresh generation of tables in the same DuckDB
file, then switch the views to it. The views keep answering from the old generation meanwhile, and the live
consumer keeps applying events to it; at the switch, the events it stored since the rebuild began and the
replay did not read (they came after the replay's end offsets) are copied into the new generation and their
requests folded again, under the writer lock, so nothing published during the rebuild is missed.

The replay appends the decoded events in bulk (Arrow batches into the new generation's events table, with no index
yet), deduplicates them by event id, then folds every request once, streaming the events sorted by request."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import datetime

import duckdb
from aiokafka import ConsumerRecord
from pydantic import ValidationError

from services.analytics.collector import fewer_collections
from services.analytics.metrics import to_micros
from services.analytics.projection import (
    Projection,
    Tables,
    cluster_open_versions,
    create_indexes,
    create_tables,
    drop_tables,
    now_micros,
    run,
)
from services.analytics.records import COMPLAINT_OPENED, CONSUMES, AnalyticsEvent, analytics_event, stored_event
from shared.clock import as_utc
from shared.contracts.base import REGISTRY, Registry
from shared.messaging.cloudevents import UnreadableEvent, from_record
from shared.messaging.kafka import plain_consumer

log = logging.getLogger(__name__)

IDLE_LIMIT_SECONDS = 120.0  # no record for this long while partitions are still short of their end: give up


class RebuildRunning(Exception):
    """A rebuild is filling a generation right now."""


@dataclass(frozen=True)
class RebuildReport:
    generation: int
    records_read: int
    events_stored: int
    requests: int
    fact_versions: int
    late_requests: int
    seconds: float
    read_seconds: float
    fold_seconds: float

    @property
    def records_per_second(self) -> float:
        return self.records_read / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "records_per_second": round(self.records_per_second, 1)}


def decode_record(record: ConsumerRecord, registry: Registry = REGISTRY) -> tuple[AnalyticsEvent | None, str | None]:
    """(the stored form of a record, None) or (None, why it goes to the DLQ: not a CloudEvent, an unknown type
    or schema version, data that does not match its contract)."""
    event = _decode_plain(record, registry)
    if event is not None:
        return event, None
    return _decode_by_envelope(record, registry)


def _decode_by_envelope(
    record: ConsumerRecord, registry: Registry = REGISTRY
) -> tuple[AnalyticsEvent | None, str | None]:
    """The reference reading: `shared.messaging.cloudevents.from_record`, the contract, `analytics_event`."""
    try:
        envelope = from_record(record.topic, record.key, record.value, record.headers or ())
    except UnreadableEvent as exc:
        return None, f"unreadable: {exc}"
    model = registry.get(envelope.type, envelope.schema_version)
    if model is None:
        return None, f"unknown schema {envelope.dataschema}"
    try:
        return analytics_event(envelope, model.model_validate_json(envelope.data)), None
    except ValidationError as exc:
        return None, f"invalid data for {envelope.dataschema}: {exc.error_count()} error(s): {_short(exc)}"


def _time(raw: str) -> int:
    return to_micros(as_utc(datetime.fromisoformat(raw.replace("Z", "+00:00"))))


def _decode_plain(record: ConsumerRecord, registry: Registry) -> AnalyticsEvent | None:
    """The common case read without building an `EventEnvelope` (a frozen dataclass of 15 fields: a third of what
    `from_record` costs): the same attributes, read the same way, for a record whose headers and data are all in
    order. Anything else — None here — takes the reference reading, which says why the record goes to the DLQ.
    `tests/test_decode.py` holds the two equal on every record of a generated history and on broken ones."""
    try:
        attrs = {name: raw.decode("utf-8") for name, raw in record.headers or ()}
        event_id, type_, raw_time = attrs.get("ce_id"), attrs.get("ce_type"), attrs.get("ce_time")
        value = record.value
        if not (event_id and type_ and raw_time and attrs.get("ce_source")) or value is None:
            return None
        if attrs.get("ce_specversion") != "1.0":
            return None
        text = value.decode("utf-8")
        sequence = int(attrs.get("ce_sequence", "0"))
        time_ = _time(raw_time)
        raw_recorded = attrs.get("ce_recordedat")
        recorded_at = _time(raw_recorded) if raw_recorded else time_
        key = record.key
        subject = attrs.get("ce_subject") or (key.decode("utf-8", "replace") if key else "")
        parts = attrs.get("ce_dataschema", f"{type_}/1").rsplit("/", 1)
        model = registry.get(type_, int(parts[1]) if len(parts) == 2 else 0)  # EventEnvelope.schema_version
        if model is None:
            return None
        data = model.model_validate_json(text)
    except ValueError:  # not UTF-8, not a number, not a time, not the contract (pydantic's ValidationError)
        return None
    return stored_event(event_id, type_, subject, record.topic, time_, recorded_at, sequence, text, data)


def _short(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])


Progress = Callable[[str, str], Awaitable[None] | None]


def _claim(projection: Projection) -> tuple[Tables, int]:
    """Reserve the next generation; drop any other leftover (a rebuild that died with its process)."""
    with projection.lock:
        cur = projection.writer
        state = projection.state()
        for number in projection.generations(cur):
            if number != state.active:
                drop_tables(cur, Tables(number))
        tables = Tables(state.active + 1)
        create_tables(cur, tables, indexes=False)  # the indexes are built once, after the load
        projection.set_state(cur, active=state.active, building=tables.number)
        return tables, now_micros()


def _abandon(projection: Projection, tables: Tables) -> None:
    with projection.lock:
        cur = projection.writer
        state = projection.state()
        if state.active == tables.number:  # the switch did commit after all: never drop the live generation
            return
        drop_tables(cur, tables)
        run(cur, f"DROP TABLE IF EXISTS {tables.events}_load")  # left by a rebuild of an older version
        run(cur, f"DROP TABLE IF EXISTS {tables.events}_kept")  # left by a deduplication cut short
        if state.building == tables.number:
            projection.set_state(cur, active=state.active, building=None)


async def _replay_topics(
    projection: Projection, bootstrap: str, tables: Tables, registry: Registry, batch_size: int
) -> tuple[int, int]:
    """Read every partition from its beginning to its end offset at the start; append what decodes."""
    consumer = plain_consumer(
        bootstrap,
        *CONSUMES,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_partition_fetch_bytes=4 << 20,
        fetch_max_bytes=16 << 20,
        client_id=f"analytics-rebuild-g{tables.number}",
    )
    await consumer.start()
    loader = projection.reader()
    records = stored = 0
    storing: asyncio.Future | None = None  # one batch is appended while the next one is fetched and decoded
    try:
        partitions = sorted(consumer.assignment())
        if not partitions:
            raise RuntimeError(f"no partitions of {', '.join(CONSUMES)} found on {bootstrap}")
        end = await consumer.end_offsets(partitions)
        await consumer.seek_to_beginning(*partitions)
        remaining = {tp for tp in partitions if end[tp] > 0}
        for tp in list(remaining):
            if await consumer.position(tp) >= end[tp]:  # retention removed everything
                remaining.discard(tp)
        last_progress = time.monotonic()
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000, max_records=batch_size)
            if batches:
                last_progress = time.monotonic()
            elif time.monotonic() - last_progress > IDLE_LIMIT_SECONDS:
                raise RuntimeError(f"no records from {sorted(map(str, remaining))} for {IDLE_LIMIT_SECONDS:.0f}s")
            events = []
            for tp, batch in batches.items():
                for record in batch:
                    if record.offset < end[tp]:
                        records += 1
                        event, _ = decode_record(record, registry)
                        if event is not None:
                            events.append(event)
            for tp in list(remaining):
                if await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
                    consumer.pause(tp)
            if storing is not None:
                await storing
            stored += len(events)
            if events:
                storing = asyncio.ensure_future(
                    asyncio.to_thread(projection.append_events, loader, tables.events, events)
                )
            else:
                storing = None
        if storing is not None:
            await storing
    finally:
        if storing is not None and not storing.done():
            await asyncio.gather(storing, return_exceptions=True)
        loader.close()
        await consumer.stop()
    return records, stored


def _fold(projection: Projection, tables: Tables) -> tuple[int, int]:
    """Deduplicate the load, index it, link jobs to requests, fold every request."""
    cur = projection.reader()
    try:
        _deduplicate(cur, tables)
        run(
            cur,
            f"INSERT INTO {tables.job_requests} SELECT job_id, min(request_id) FROM {tables.events} "
            f"WHERE job_id IS NOT NULL AND request_id IS NOT NULL AND type <> '{COMPLAINT_OPENED}' "
            "GROUP BY job_id",
        )
        folded = projection.fold_everything(cur, tables)
        cluster_open_versions(cur, tables)
        create_indexes(cur, tables)
        return folded
    finally:
        cur.close()


def _deduplicate(cur: duckdb.DuckDBPyConnection, tables: Tables) -> int:
    """Keep one copy of each event the replay appended more than once (a producer's retry, a record written twice
    before its transaction committed); return how many copies were dropped. Counting is one pass over one column,
    so the common case — none — costs no copy of the table (a `SELECT DISTINCT ON` into a second table did, always).
    With copies, the table is written again without them: a `DELETE` would leave the deleted rows in place for
    any older snapshot still open (a view's reader)."""
    (copies,) = cur.execute(f"SELECT count(*) - count(DISTINCT event_id) FROM {tables.events}").fetchall()[0]
    if copies:
        kept = f"{tables.events}_kept"
        run(cur, f"CREATE OR REPLACE TABLE {kept} AS SELECT DISTINCT ON (event_id) * FROM {tables.events}")
        run(cur, f"DROP TABLE {tables.events}")
        run(cur, f"ALTER TABLE {kept} RENAME TO {tables.events}")
    return int(copies)


def _switch(projection: Projection, tables: Tables, started_at: int) -> tuple[int, int]:
    """Under the writer lock: take over what the live consumer stored since the start, then switch; return
    (previous generation, requests folded again)."""
    with projection.lock:
        cur = projection.writer
        old = Tables(projection.state().active)
        run(cur, "BEGIN TRANSACTION")
        try:
            copied = [
                r[0]
                for r in cur.execute(
                    f"INSERT INTO {tables.events} SELECT * FROM {old.events} o WHERE o.stored_at >= $since "
                    f"AND NOT EXISTS (SELECT 1 FROM {tables.events} n WHERE n.event_id = o.event_id) RETURNING event_id",
                    {"since": started_at},
                ).fetchall()
            ]
            touched: set[str] = set()
            if copied:
                run(
                    cur,
                    f"CREATE TEMP TABLE copied AS SELECT * FROM {tables.events} WHERE event_id IN "
                    f"(SELECT unnest($ids))",
                    {"ids": copied},
                )
                run(
                    cur,
                    f"INSERT INTO {tables.job_requests} SELECT job_id, min(request_id) FROM copied "
                    f"WHERE job_id IS NOT NULL AND request_id IS NOT NULL AND type <> '{COMPLAINT_OPENED}' "
                    "GROUP BY job_id ON CONFLICT DO NOTHING",
                )
                touched = {
                    r[0]
                    for r in cur.execute(
                        f"SELECT request_id FROM copied WHERE request_id IS NOT NULL UNION SELECT j.request_id FROM "
                        f"copied c JOIN {tables.job_requests} j ON c.job_id = j.job_id WHERE c.request_id IS NULL "
                        f"AND c.type = '{COMPLAINT_OPENED}'"
                    ).fetchall()
                }
                run(cur, "DROP TABLE copied")
                if touched:
                    projection.refold(cur, tables, touched)
            projection.set_state(cur, active=tables.number, building=None)
            projection.mark_current(cur)
            run(cur, "COMMIT")
        except BaseException:
            run(cur, "ROLLBACK")
            raise
        return old.number, len(touched)


def _retire(projection: Projection, previous: int) -> None:
    """After the switch: drop the previous generation and checkpoint. Only tidying — the switch has committed
    and the new generation is the live one whatever happens here. A snapshot still reading the previous
    generation keeps it (DuckDB's catalog is versioned); the checkpoint is refused while any read transaction is
    open, and DuckDB checkpoints on its own later, so a refusal is logged, not raised. Whatever is left behind
    is dropped by the next rebuild's claim."""
    with projection.lock:
        try:
            drop_tables(projection.writer, Tables(previous))
            run(projection.writer, "CHECKPOINT")
        except duckdb.Error as exc:
            log.info("rebuild: generation %d left for later (%s)", previous, str(exc).splitlines()[0])


async def rebuild(
    projection: Projection,
    bootstrap: str,
    *,
    registry: Registry = REGISTRY,
    batch_size: int = 5000,
    on_progress: Progress | None = None,
) -> RebuildReport:
    """Replay the topics into a new generation and make it the active one; return what it took.

    `on_progress(stage, message)` hears of each stage: claimed, replayed, switched."""

    async def say(stage: str, message: str) -> None:
        log.info("rebuild: %s", message)
        if on_progress is not None:
            outcome = on_progress(stage, message)
            if inspect.isawaitable(outcome):
                await outcome

    if projection.rebuilding:
        raise RebuildRunning("a rebuild is already running")
    projection.rebuilding = True
    started = time.perf_counter()
    try:
        tables, started_at = await asyncio.to_thread(_claim, projection)
    except BaseException:
        projection.rebuilding = False
        raise
    try:
        await say("claimed", f"replaying {', '.join(CONSUMES)} into generation {tables.number}")
        with fewer_collections():
            read, stored = await _replay_topics(projection, bootstrap, tables, registry, batch_size)
            read_done = time.perf_counter()
            await say("replayed", f"read {read} records ({stored} events); folding")
            requests, versions = await asyncio.to_thread(_fold, projection, tables)
        previous, late = await asyncio.to_thread(_switch, projection, tables, started_at)
    except BaseException:
        # Before the switch committed, the new generation is nobody's: drop it. After, it is the live one.
        await asyncio.to_thread(_abandon, projection, tables)
        projection.rebuilding = False
        raise
    try:
        await asyncio.to_thread(_retire, projection, previous)
        finished = time.perf_counter()
        await say("switched", f"generation {tables.number} is active (was {previous})")
        return RebuildReport(
            tables.number,
            read,
            stored,
            requests,
            versions,
            late,
            finished - started,
            read_done - started,
            finished - read_done,
        )
    finally:
        projection.rebuilding = False
