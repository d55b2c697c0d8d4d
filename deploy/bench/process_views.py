"""`python -m deploy.bench.process_views [--requests N]`: the process view's SQL (`process_sql`, over the versioned
facts in DuckDB) next to the baseline measured in the same run on the same DuckDB file — the Python fold it
replaces (the cohort's stored events read back, folded by `process.py` per query) — and the OCEL 2.0 JSON export
streamed from the same file (events/s).

No broker, no HTTP: a year of `deploy.bench.process_exports.history` is bulk-loaded into a DuckDB projection the
way a rebuild does it (store, index, fold every request's fact versions), then each view is called `--repeat`
times per group_by, live and `as_of`."""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from deploy.bench.process_exports import START, history
from services.analytics import exports, process, process_sql
from services.analytics.metrics import MICROS_PER_MINUTE, Window
from services.analytics.process_store import cohort_events, window_events
from services.analytics.projection import Projection, run
from services.analytics.views import GroupBy

DAY = 1440 * MICROS_PER_MINUTE
VIEWS = ("handoff_rows", "rework_rows", "variant_rows", "finding_rows")


def load(path: Path, requests: int) -> Projection:
    projection = Projection(path)
    cur = projection.reader()
    tables = projection.active_tables(cur)
    began, batch, stored = time.perf_counter(), [], 0
    for event in history(requests):
        batch.append(event)
        if len(batch) == 50_000:
            projection.append_events(cur, tables.events, batch)
            stored, batch = stored + len(batch), []
    projection.append_events(cur, tables.events, batch)
    stored += len(batch)
    run(
        cur,
        f"INSERT INTO {tables.job_requests} SELECT job_id, min(request_id) FROM {tables.events} "
        "WHERE job_id IS NOT NULL AND request_id IS NOT NULL AND type <> 'complaint.opened' GROUP BY 1",
    )
    requests_, versions = projection.fold_everything(cur, tables)
    print(
        f"loaded {stored:,} events, folded {requests_:,} requests into {versions:,} fact versions in "
        f"{time.perf_counter() - began:.0f} s",
        flush=True,
    )
    cur.close()
    return projection


def timed(call, repeat: int) -> tuple[float, float]:
    timings = []
    for _ in range(repeat):
        began = time.perf_counter()
        call()
        timings.append((time.perf_counter() - began) * 1000)
    return statistics.median(timings), max(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--baseline-repeat", type=int, default=1, help="calls of the Python fold per view")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        projection = load(Path(tmp) / "bench.duckdb", args.requests)
        cur = projection.reader()
        tables = projection.active_tables(cur)
        year, month = Window(START, START + 366 * DAY), Window(START + 300 * DAY, START + 330 * DAY)
        as_of = START + 200 * DAY
        print("| view | group_by | window | as_of | SQL p50 ms | SQL max ms | Python fold (baseline) ms |")
        print("|---|---|---|---|---|---|---|")
        for name in VIEWS:
            for group_by in (GroupBy.all, GroupBy.dealer, GroupBy.technician):
                for window_name, window in (("30 days", month), ("12 months", year)):
                    for moment in (None, as_of):
                        p50, worst = timed(
                            lambda: getattr(process_sql, name)(cur, tables, window, group_by, moment), args.repeat
                        )
                        base = ""
                        # The fold costs the same per key and as_of; over a year, hand-offs only (minutes each).
                        if (
                            group_by == GroupBy.dealer
                            and moment is None
                            and (window is month or name == "handoff_rows")
                        ):

                            def fold():
                                reader = projection.reader()
                                events = cohort_events(reader, tables, window, moment, None)
                                reader.close()
                                getattr(process, name)(process.process_trails(events), window, group_by)

                            base = f"{timed(fold, args.baseline_repeat)[0]:.0f}"
                        print(
                            f"| {name.removesuffix('_rows')} | {group_by.value} | {window_name} | "
                            f"{'yes' if moment else 'no'} | {p50:.0f} | {worst:.0f} | {base} |",
                            flush=True,
                        )
        events = cur.execute(f"SELECT count(*) FROM {tables.events}").fetchone()[0]
        began = time.perf_counter()
        size = sum(
            len(chunk)
            for chunk in exports.ocel_json_chunks(window_events(projection.reader(), tables, year, None, None))
        )
        seconds = time.perf_counter() - began
        print(
            f"OCEL 2.0 JSON export, 12 months from DuckDB: {events:,} events, {size / 1e6:.1f} MB in "
            f"{seconds:.1f} s = {events / seconds:,.0f} events/s (memory: python -m deploy.bench.process_exports)",
            flush=True,
        )
        cur.close()
        projection.close()


if __name__ == "__main__":
    main()
