"""`python -m deploy.bench.analytics_catchup --file <a copy of a year>`: what a catch-up's large poll batch costs the
live path on a file that already holds a year of history — this checkout's `Projection` against the projection
module of `--baseline` (a git revision; the other modules are this checkout's), alternately, on the same batches.

Four kinds of batch of `--batch` records:
- *redelivered*: stored events read back from the file, a consecutive run of them as the history was appended (a
  consumer that re-reads its partitions after a crash between the batch's commit and its offsets');
- *new*: the records of requests the file does not hold (`deploy.demo_year.records` with another seed), decoded as
  the consumer decodes them;
- *mixed*: half of each;
- *stored requests*: a new event of each of `--batch` stored requests, recorded now (a triage: each request's fold
  resumed, its open versions closed and new ones appended) — with a small `--batch`, the live path's common case.
Each batch is applied by `Projection._apply` inside a transaction that is rolled back, so both projections see the
same file every time and nothing accumulates (they share one connection: each batch runs with the DuckDB settings
its projection module connects with); the commit (the WAL write) is not in the times. Wall and CPU ms, p50
and max over `--rounds` batches of each kind (each round a different run of stored events and new requests).

Never point it at a file another process benchmarks on: DuckDB lets one process open a file read-write."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

from deploy.bench.analytics_fold import baseline_projection, probe_events
from deploy.demo_year import records
from services.analytics.fact_rows import READ_BACK_SELECT, event_of
from services.analytics.projection import Projection, run
from services.analytics.records import AnalyticsEvent
from services.analytics.replay import decode_record


def stored_run(projection: Projection, start: int, size: int) -> list[AnalyticsEvent]:
    """`size` stored events from row `start` of the active generation's events, as the consumer would decode them."""
    cur = projection.reader()
    try:
        tables = projection.active_tables(cur)
        rows = cur.execute(
            f"SELECT {READ_BACK_SELECT}, e.topic, e.subject, e.data FROM {tables.events} e "
            "WHERE rowid >= $start AND rowid < $end",
            {"start": start, "end": start + size},
        ).fetchall()
    finally:
        cur.close()
    return [
        replace(event_of(row[:-3]), topic=row[-3], subject=row[-2], payload=row[-1])  # `data`: the JSON text
        for row in rows
    ]


def new_records(count: int, seed: int) -> list[AnalyticsEvent]:
    """`count` records of requests the year does not hold (their ids come from `seed`), decoded."""
    out: list[AnalyticsEvent] = []
    for topic, key, value, headers in records(count // 5 + 10, seed=seed):
        event, reason = decode_record(SimpleNamespace(topic=topic, key=key, value=value, headers=headers, offset=0))
        assert event is not None, reason
        out.append(event)
        if len(out) == count:
            break
    return out


def triaged_now(stored: list[AnalyticsEvent], count: int, seed: int) -> list[AnalyticsEvent]:
    """A triage recorded now for each of the first `count` distinct requests of `stored`."""
    requests = list(dict.fromkeys(e.request_id for e in stored if e.request_id is not None))[:count]
    template = probe_events(seed)[1]
    return [
        AnalyticsEvent(
            str(uuid.uuid4()), template.type, request, None, template.time, template.recorded_at, 99, template.data
        )
        for request in requests
    ]


# DuckDB's own, for a baseline that sets none (`projection.INDEX_SCANS`).
DEFAULT_INDEX_SCANS = {"index_scan_max_count": 2048, "index_scan_percentage": 0.001}


def timed_apply(
    projection: Projection, events: list[AnalyticsEvent], settings: dict | None = None
) -> tuple[float, float, int]:
    """(wall ms, CPU ms, new events) of one batch's `_apply`, rolled back; `settings`: DuckDB's, set before (the
    two projections share one connection, so each gets the settings its module connects with)."""
    with projection.lock:
        cur = projection.writer
        for name, value in (settings or {}).items():
            run(cur, f"SET {name} = {value}")
        tables = projection.active_tables(cur)
        run(cur, "BEGIN TRANSACTION")
        try:
            wall, cpu = time.perf_counter(), time.process_time()
            new, _ = projection._apply(cur, tables, events)
            return (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000, new
        finally:
            run(cur, "ROLLBACK")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, required=True, help="a copy of a year's file (it is not changed)")
    parser.add_argument("--baseline", default="main")
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)

    now = Projection(args.file)
    # The baseline's projection on the same connection (one process may hold the file once): its own caches.
    kind = baseline_projection(args.baseline)
    before = kind.__new__(kind)
    before.__dict__.update(now.__dict__)
    before._orphan_jobs = {}
    projections = {"baseline": before, "now": now}
    settings = {
        "baseline": getattr(sys.modules[kind.__module__], "INDEX_SCANS", DEFAULT_INDEX_SCANS),
        "now": getattr(sys.modules[Projection.__module__], "INDEX_SCANS", DEFAULT_INDEX_SCANS),
    }
    try:
        cur = now.reader()
        stored = cur.execute(f"SELECT count(*) FROM {now.active_tables(cur).events}").fetchall()[0][0]
        cur.close()
        print(f"{args.file}: {stored:,} stored events; load average {os.getloadavg()[0]:.1f}", flush=True)
        fresh = new_records(args.batch * (args.rounds + 1), seed=7)
        half = args.batch // 2
        spent: dict[tuple[str, str], list[tuple[float, float, int]]] = {}
        for n in range(args.rounds + 1):  # round 0 warms both
            start = (n * 7919 * args.batch) % max(1, stored - args.batch)
            kinds = {
                "redelivered": stored_run(now, start, args.batch),
                "new": fresh[n * args.batch : (n + 1) * args.batch],
                "mixed": stored_run(now, start + args.batch, half)
                + fresh[n * args.batch + half : (n + 1) * args.batch],
                "stored requests": triaged_now(stored_run(now, start, 20 * args.batch), args.batch, n),
            }
            for label, batch in kinds.items():
                for name in list(projections)[:: 1 if n % 2 else -1]:  # alternately first
                    result = timed_apply(projections[name], batch, settings[name])
                    if n:
                        spent.setdefault((label, name), []).append(result)
        print(f"load average {os.getloadavg()[0]:.1f}")
        for (label, name), results in spent.items():
            walls, cpus, news = zip(*results)
            print(
                f"{label:15} {args.batch} records, {name:8} "
                f"({args.baseline if name == 'baseline' else 'this checkout'}): new {min(news)}–{max(news)}, "
                f"wall p50 {statistics.median(walls):7.1f} ms (max {max(walls):7.1f}), "
                f"CPU p50 {statistics.median(cpus):7.1f} ms"
            )
    finally:
        now.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
