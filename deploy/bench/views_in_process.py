"""`python -m deploy.bench.views_in_process --file <a copy of a year's DuckDB file> --baseline main`: each view's
SQL called in process on a built file, this checkout's `sqlviews`/`process_sql` against a baseline revision's,
alternately on the same cursor, every row of the two compared equal; p50 and max of each side printed next to
each other, with the CPU time each call took (the process's, DuckDB's threads included: steadier than the wall
time on a shared box).

No broker, no HTTP: what is timed is the view function the route awaits (its SQL and the Python that turns the
integers into rows), on a `Projection` opened as the service opens it (`threads`, `memory_limit`). The windows
and `as_of` are the analytics bench's (`deploy.bench.analytics.windows`: the last 30 days and 12 months up to
tomorrow, `as_of` 60 days ago), so a file built by `deploy.bench.analytics_scale` recently has a full year in
them. The file is opened read-write (DuckDB's lock): time a copy, never a file another process uses.

The baseline's `process_sql` imports its helpers from this checkout's `sqlviews` (`revisions.module_at`): those
(`_order_stats`, `_median`, `_params`, …) keep their meaning here."""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

from deploy.bench.analytics import windows
from deploy.bench.revisions import module_at
from services.analytics import process_sql, sqlviews
from services.analytics.metrics import Window, to_micros
from services.analytics.projection import Projection
from services.analytics.views import GroupBy

GROUPINGS = (GroupBy.all, GroupBy.dealer, GroupBy.technician, GroupBy.day)
VIEWS = {
    "throughput": ("sqlviews", "throughput_rows", GROUPINGS),
    "satisfaction": ("sqlviews", "satisfaction_rows", GROUPINGS),
    "scorecard": ("sqlviews", "scorecard_rows", GROUPINGS),
    "trend": ("sqlviews", "trend_rows", (None,)),
    "durations": ("sqlviews", "duration_histograms", (None,)),
    "handoffs": ("process_sql", "handoff_rows", GROUPINGS[:3]),
    "rework": ("process_sql", "rework_rows", GROUPINGS[:3]),
    "variants": ("process_sql", "variant_rows", GROUPINGS[:3]),
    "process-findings": ("process_sql", "finding_rows", GROUPINGS[:3]),
}


def _windows() -> dict[str, Window]:
    return {
        name: Window.of_dates(datetime.fromisoformat(w["from"]).date(), datetime.fromisoformat(w["to"]).date())
        for name, w in windows(datetime.now(UTC).date()).items()
    }


Timing = tuple[list[float], list[float]]  # wall ms, CPU ms (the process's: DuckDB's threads included)


def _pair(before: Callable[[], object], after: Callable[[], object], repeat: int) -> tuple[Timing, Timing]:
    """Each side `repeat` times, alternating (the side that goes first alternates too); the rows must agree."""
    timings: tuple[Timing, Timing] = (([], []), ([], []))
    for round_ in range(repeat):
        results: list[object] = [None, None]
        for side in (0, 1) if round_ % 2 == 0 else (1, 0):
            began, cpu = time.perf_counter(), time.process_time()
            results[side] = (before, after)[side]()
            timings[side][0].append((time.perf_counter() - began) * 1000)
            timings[side][1].append((time.process_time() - cpu) * 1000)
        if results[0] != results[1]:
            raise AssertionError(f"the rows differ:\nbaseline {results[0]!r:.2000}\nthis tree {results[1]!r:.2000}")
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, required=True, help="a DuckDB file built by analytics_scale (a copy)")
    parser.add_argument("--baseline", default="main", help="the git revision whose view SQL is the baseline")
    parser.add_argument("--repeat", type=int, default=5, help="calls per view and side")
    parser.add_argument("--views", default="throughput,satisfaction,scorecard,trend,durations", help="comma list")
    parser.add_argument("--windows", default="30 days,12 months", help="comma list")
    parser.add_argument("--threads", type=int, default=2, help="DuckDB threads (the service's default: 2)")
    args = parser.parse_args(argv)
    before = {
        "sqlviews": module_at(args.baseline, "services/analytics/sqlviews.py", "baseline_sqlviews"),
        "process_sql": module_at(args.baseline, "services/analytics/process_sql.py", "baseline_process_sql"),
    }
    after = {"sqlviews": sqlviews, "process_sql": process_sql}
    projection = Projection(args.file, threads=args.threads)
    cur = projection.reader()
    tables = projection.active_tables(cur)
    as_of = to_micros(datetime.now(UTC) - timedelta(days=60))
    chosen = [w.strip() for w in args.windows.split(",")]
    (live,) = cur.execute(
        f"SELECT count(*) FROM {tables.requests} WHERE valid_to > $t", {"t": sqlviews.LIVE}
    ).fetchone() or (0,)
    print(
        f"{args.file.name}: {live:,} "
        f"requests; baseline {args.baseline}; {args.repeat} calls per side, alternating; DuckDB threads {args.threads}; "
        f"load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    print(
        "| view | group_by | window | as_of | baseline p50 / max | this p50 / max | baseline CPU p50 | this CPU p50 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for window_name, window in _windows().items():
        if window_name not in chosen:
            continue
        for view in args.views.split(","):
            module, function, groupings = VIEWS[view.strip()]
            for group_by in groupings:
                for moment in (None, as_of):
                    grouped = () if group_by is None else (group_by,)
                    old, new = _pair(
                        partial(getattr(before[module], function), cur, tables, window, *grouped, moment),
                        partial(getattr(after[module], function), cur, tables, window, *grouped, moment),
                        args.repeat,
                    )
                    print(
                        f"| {view} | {group_by.value if group_by else '-'} | {window_name} | "
                        f"{'yes' if moment else 'no'} | {statistics.median(old[0]):.0f} / {max(old[0]):.0f} | "
                        f"**{statistics.median(new[0]):.0f}** / {max(new[0]):.0f} | {statistics.median(old[1]):.0f} | "
                        f"{statistics.median(new[1]):.0f} |",
                        flush=True,
                    )
    print(f"load {os.getloadavg()[0]:.1f}")
    cur.close()
    projection.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
