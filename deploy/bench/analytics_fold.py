"""`python -m deploy.bench.analytics_fold`: the analytics live path in one process, without Kafka — the fold's own
cost, next to the algorithm it replaced, measured in the same run on the same batches.

A realistic history (`deploy.demo_year`, `--requests`) is decoded as the consumer decodes it, cut into poll batches
as a consumer of 4 topics × 3 partitions receives them (`--batch` records, taken round-robin from the partitions),
and applied to a fresh DuckDB file twice:
- *refold*: every touched request folded again from all its events at every recorded moment
  (`facts.fact_versions`, the definition) and its rows replaced — the live path before the incremental fold;
- *incremental*: `Projection.apply` as it runs (`fold.VersionTrail` resumed from the stored versions, a refold
  only for requests with a late event).
Then, on each file, one new request's events are applied one batch each (the 201 → visible path's part in
analytics), p50/p99. Wall and CPU seconds both: on a shared box the CPU figure is the steadier one.

`--small-batches` times what the 201 → visible path waits on in analytics instead: batches of a few events (as the
live consumer polls them at 100 requests/s) applied to a file that already holds a year of `--requests`, by this
checkout's `Projection.apply` and, alternately on a copy of the same file, by the projection module of `--baseline`
(a git revision; the other modules are this checkout's): new requests (received and triaged), and new events of
requests already stored (a triage recorded now, each request's versions closed and appended).

`--rebuild` times the rebuild's stages instead, on the same records as the replay reads them (no Kafka): decode,
append to the new generation, deduplicate and link jobs, read the events back sorted by request, fold every
request's versions, turn them into Arrow columns, insert them, index — where a rebuild's seconds go."""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
import zlib
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa

from deploy.demo_year import records
from services.analytics import facts
from services.analytics.collector import fewer_collections
from services.analytics.fold import version_rows
from services.analytics.projection import (
    _STRING,
    FactRows,
    Folded,
    Projection,
    Tables,
    _events_of_requests_sql,
    create_indexes,
    create_tables,
    fold_grouped,
    registered,
    run,
)
from services.analytics.records import AnalyticsEvent
from services.analytics.replay import _deduplicate, decode_record
from shared.contracts.intake import Customer, Product, ServiceRequestReceived, ServiceRequestTriaged
from shared.messaging.cloudevents import to_record
from shared.testing.kafka import envelope_for


class RefoldingProjection(Projection):
    """The live path before the incremental fold: each touched request refolded by the definition."""

    def fold_new(self, cur, tables: Tables, request_ids, fresh, linked, before=None) -> Folded:
        touched = pa.table({"request_id": pa.array(sorted(set(request_ids)), type=_STRING)})
        rows = FactRows()
        with registered(cur, "touched", touched):
            found = cur.execute(_events_of_requests_sql(tables, "touched") + " ORDER BY owner").fetchall()
            for owner, events in fold_grouped(found):
                rows.add(facts.fact_versions(owner, events))
        self._delete_facts(cur, tables, touched.column(0).to_pylist())
        self._append_facts(cur, tables, rows)
        return Folded(replaced=touched.num_rows)


def decoded(requests: int) -> list[tuple[tuple[str, int], AnalyticsEvent]]:
    out = []
    for topic, key, value, headers in records(requests):
        record = SimpleNamespace(topic=topic, key=key, value=value, headers=headers, offset=0)
        event, reason = decode_record(record)
        assert event is not None, reason
        out.append(((topic, zlib.crc32(key or b"") % 3), event))
    return out


def poll_batches(events: list[tuple[tuple[str, int], AnalyticsEvent]], batch: int) -> list[list[AnalyticsEvent]]:
    partitions: dict[tuple[str, int], list[AnalyticsEvent]] = defaultdict(list)
    for partition, event in events:
        partitions[partition].append(event)
    each = max(1, batch // len(partitions))
    out = []
    while any(partitions.values()):
        polled = []
        for queue in partitions.values():
            polled += queue[:each]
            del queue[:each]
        out.append(polled)
    return out


def probe_events(n: int) -> list[AnalyticsEvent]:
    """A new request received and triaged now (a dealer of its own), decoded like the consumer does."""
    rid, now = str(uuid.uuid4()), datetime.now(UTC)
    received = ServiceRequestReceived(
        request_id=rid,
        dealer_id=f"PROBE-{n}",
        channel="dealer",
        customer=Customer(name="Probe", phone="+49 170 0000000", region="north"),
        product=Product(serial=f"SN-P{n}", model="T-100", product_line="pump"),
        purchase_date=None,
        symptom="stalls",
        customer_tier="standard",
        urgent=False,
    )
    triaged = ServiceRequestTriaged(request_id=rid, mode="onsite", priority="P3")
    out = []
    for data, at in ((received, now), (triaged, now + timedelta(seconds=1))):
        topic, key, value, headers = to_record(envelope_for(data, source="bench", time=at))
        event, reason = decode_record(SimpleNamespace(topic=topic, key=key, value=value, headers=headers, offset=0))
        assert event is not None, reason
        out.append(event)
    return out


def measure(kind: type[Projection], path: Path, batches: list[list[AnalyticsEvent]], probes: int) -> dict:
    projection = kind(path)
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        for batch in batches:
            projection.apply(batch)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        lags = []
        for n in range(probes):
            for event in probe_events(n):
                started = time.perf_counter()
                projection.apply([event])
                lags.append((time.perf_counter() - started) * 1000)
        records_ = sum(len(b) for b in batches)
        return {
            "records_per_s": records_ / wall,
            "cpu_records_per_s": records_ / cpu,
            "folded": projection.folded,
            "apply_p50_ms": statistics.median(lags),
            "apply_p99_ms": sorted(lags)[max(0, (99 * len(lags) + 99) // 100 - 1)],
        }
    finally:
        projection.close()


def rebuild_stages(requests: int, batch: int) -> None:
    """The rebuild's stages in one process, CPU seconds each (DuckDB's threads included) and µs per record."""
    raw = [SimpleNamespace(topic=t, key=k, value=v, headers=h, offset=0) for t, k, v, h in records(requests)]
    spent: dict[str, float] = {}
    wall = time.perf_counter()
    clock = time.process_time()

    def stage(name: str) -> None:
        nonlocal clock
        now = time.process_time()
        spent[name] = spent.get(name, 0.0) + now - clock
        clock = now

    projection = Projection(Path(tempfile.mkdtemp(prefix="bench-rebuild-")) / "rebuild.duckdb")
    cur = projection.reader()
    try:
        with fewer_collections():
            tables = Tables(2)
            create_tables(cur, tables, indexes=False)
            clock = time.process_time()
            for start in range(0, len(raw), batch):
                events = [e for e, _ in (decode_record(r) for r in raw[start : start + batch]) if e is not None]
                stage("decode (CloudEvent, contract, stored form)")
                projection.append_events(cur, tables.events, events)
                stage("append (Arrow batch into DuckDB)")
            _deduplicate(cur, tables)
            run(
                cur,
                f"INSERT INTO {tables.job_requests} SELECT job_id, min(request_id) FROM {tables.events} "
                "WHERE job_id IS NOT NULL AND request_id IS NOT NULL AND type <> 'complaint.opened' GROUP BY job_id",
            )
            stage("deduplicate, link jobs (SQL)")
            rows = cur.execute(_events_of_requests_sql(tables, None) + " ORDER BY owner").fetchall()
            stage("read back sorted by request (SQL)")
            grouped = list(fold_grouped(rows))
            stage("events read back as objects")
            folded = FactRows()
            for owner, events in grouped:
                folded.add_rows(version_rows(owner, events))
            stage("fold every request's versions (Python)")
            arrow = folded.tables()
            stage("versions as Arrow columns")
            for table, facts_ in zip((tables.requests, tables.revisits, tables.jobs), arrow):
                with registered(cur, "fact_rows", facts_):
                    run(cur, f"INSERT INTO {table} SELECT * FROM fact_rows")
            stage("insert fact versions (SQL)")
            create_indexes(cur, tables)
            stage("indexes (SQL)")
    finally:
        cur.close()
        projection.close()
    wall = time.perf_counter() - wall
    total = sum(spent.values())
    print(f"{len(raw)} records of {requests} requests, {folded.size} fact versions")
    for name, seconds in spent.items():
        print(f"  {name:45} {seconds:6.2f} s CPU  {seconds / len(raw) * 1e6:6.1f} µs/record  {seconds / total:4.0%}")
    print(f"  {'total':45} {total:6.2f} s CPU  {len(raw) / total:6.0f} records/s CPU, {len(raw) / wall:.0f} wall")


def baseline_projection(revision: str) -> type[Projection]:
    """`Projection` as the projection module of `revision` defines it (loaded from git, not installed)."""
    from deploy.bench.revisions import module_at

    module = module_at(revision, "services/analytics/projection.py", "baseline_projection")
    return module.Projection


def small_batches(requests: int, baseline: str, rounds: int, size: int) -> None:
    """Small batches on a year of history, this checkout against `baseline`, alternately (see the docstring)."""
    import shutil

    from deploy.bench.analytics_scale import build

    workdir = Path(tempfile.mkdtemp(prefix="bench-small-"))
    history = workdir / "history.duckdb"
    built = build(history, requests)
    print(f"history: {built['requests']} requests, {built['records']} records, {built['fact_versions']} versions")
    kinds = {"baseline": baseline_projection(baseline), "now": Projection}
    projections = {}
    for name, kind in kinds.items():
        shutil.copy(history, workdir / f"{name}.duckdb")
        projections[name] = kind(workdir / f"{name}.duckdb")
    cur = projections["now"].reader()
    requests_table = projections["now"].active_tables(cur).requests
    stored = [r[0] for r in cur.execute(f"SELECT DISTINCT request_id FROM {requests_table} ORDER BY 1").fetchall()]
    cur.close()

    def new_requests(n: int) -> list[AnalyticsEvent]:
        return [e for k in range((size + 1) // 2) for e in probe_events(n * size + k)][:size]

    def stored_requests(n: int) -> list[AnalyticsEvent]:
        out = []
        for k in range(size):
            triage = probe_events(n * size + k)[1]
            rid = stored[(n * size + k) * 7919 % len(stored)]
            out.append(
                AnalyticsEvent(
                    str(uuid.uuid4()), triage.type, rid, None, triage.time, triage.recorded_at, 99, triage.data
                )
            )
        return out

    try:
        for label, batch_of in (("new requests", new_requests), ("stored requests", stored_requests)):
            spent: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in projections}
            for n in range(rounds + 5):
                batch = batch_of(n + (0 if label == "new requests" else 10_000))
                for name in list(projections)[:: 1 if n % 2 else -1]:  # alternately first
                    wall, cpu = time.perf_counter(), time.process_time()
                    projections[name].apply(batch)
                    if n >= 5:  # the first few warm the caches of both
                        spent[name][0].append((time.perf_counter() - wall) * 1000)
                        spent[name][1].append((time.process_time() - cpu) * 1000)
            for name, (walls, cpus) in spent.items():
                print(
                    f"{label:16} {size} events, {name:8} ({baseline if name == 'baseline' else 'this checkout'}): "
                    f"CPU p50 {statistics.median(cpus):5.1f} ms, wall p50 {statistics.median(walls):5.1f} ms, "
                    f"p90 {sorted(walls)[len(walls) * 9 // 10]:5.1f} ms"
                )
    finally:
        for projection in projections.values():
            projection.close()
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=10_000, help="records per poll batch (ANALYTICS_BATCH_SIZE)")
    parser.add_argument("--probes", type=int, default=30)
    parser.add_argument("--rebuild", action="store_true", help="time the rebuild's stages instead")
    parser.add_argument("--small-batches", action="store_true", help="time small batches on a year of history")
    parser.add_argument("--baseline", default="main", help="with --small-batches: the revision to compare with")
    parser.add_argument("--rounds", type=int, default=60, help="with --small-batches: batches of each kind")
    parser.add_argument("--size", type=int, default=5, help="with --small-batches: events per batch")
    args = parser.parse_args(argv)
    if args.small_batches:
        small_batches(args.requests, args.baseline, args.rounds, args.size)
        return 0
    if args.rebuild:
        rebuild_stages(args.requests, 5000)
        return 0
    started = time.perf_counter()
    events = decoded(args.requests)
    decode_s = time.perf_counter() - started
    batches = poll_batches(events, args.batch)
    print(
        f"{len(events)} records of {args.requests} requests decoded at {len(events) / decode_s:.0f}/s, {len(batches)} batches"
    )
    workdir = Path(tempfile.mkdtemp(prefix="bench-fold-"))
    results = {}
    for name, kind in (("refold (before)", RefoldingProjection), ("incremental (now)", Projection)):
        results[name] = r = measure(kind, workdir / f"{name.split()[0]}.duckdb", batches, args.probes)
        print(
            f"{name:18} {r['records_per_s']:8.0f} records/s (CPU {r['cpu_records_per_s']:.0f}/s)  "
            f"one-event batch p50 {r['apply_p50_ms']:.1f} ms p99 {r['apply_p99_ms']:.1f} ms  {r['folded']}"
        )
    before, now = results["refold (before)"], results["incremental (now)"]
    print(
        f"speed-up: {now['records_per_s'] / before['records_per_s']:.2f}x wall, "
        f"{now['cpu_records_per_s'] / before['cpu_records_per_s']:.2f}x CPU"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
