"""`python -m deploy.bench.analytics_scale --requests 1000000`: the views at a scale Kafka cannot feed here in a
session — a year of `--requests` built into a DuckDB file through the rebuild's own steps in one process, then
every view timed over HTTP against that file exactly as `deploy.bench.analytics` times them.

Feeding 10M records through the broker and the live consumer takes about an hour on the 2-core box; the views do
not care how their file was filled. So the history of `deploy.demo_year.records` (the generator `make demo-year`
publishes) is decoded as the consumer decodes each record (`replay.decode_record`: CloudEvent headers, the
contract, the stored form) and goes through the rebuild's steps as `replay.rebuild` runs them, without the broker:
claim a generation (`_claim`), append the decoded events in Arrow batches, deduplicate, link jobs, fold every
request, index (`_fold`), switch (`_switch`) and retire the old generation. The file is kept (`--file`): a second
run with the same file only times the views.

Then an analytics process (`python -m services.analytics`, the real app: its routes, its DuckDB settings, its
alert monitor) is started on the file with a broker of its own (empty topics: nothing else moves the file), and
the views, the dashboard's calls and (`--process`) the process views are timed as the analytics bench times them
(`measure_views`, `measure_process` without the export). Prints the table; `--out` writes it as markdown."""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from deploy.bench.analytics import SECRET, Service, measure_views
from deploy.bench.dashboard_open import dashboard_url, open_times, summary
from deploy.bench.kafka_util import bench_broker
from deploy.bench.workdirs import bench_workdir
from deploy.demo_year import records
from services.analytics import replay
from services.analytics.collector import fewer_collections
from services.analytics.projection import Projection
from shared.auth import mint_token
from shared.contracts.topics import ALL_TOPICS
from shared.messaging.kafka import ensure_topics


def build(path: Path, requests: int, batch: int = 10_000) -> dict:
    """The year of `requests` into a fresh generation of `path`, by the rebuild's steps; what it took."""
    projection = Projection(path)
    started, cpu = time.perf_counter(), time.process_time()
    try:
        tables, started_at = replay._claim(projection)
        loader = projection.reader()
        read = stored = 0
        try:
            with fewer_collections():
                events = []
                for topic, key, value, headers in records(requests):
                    record = SimpleNamespace(topic=topic, key=key, value=value, headers=headers, offset=read)
                    read += 1
                    event, _ = replay.decode_record(record)
                    if event is not None:
                        events.append(event)
                    if len(events) >= batch:
                        projection.append_events(loader, tables.events, events)
                        stored, events = stored + len(events), []
                        if stored % 500_000 < batch:
                            print(f"  {stored:,} events stored, {time.perf_counter() - started:.0f} s", flush=True)
                projection.append_events(loader, tables.events, events)
                stored += len(events)
        finally:
            loader.close()
        read_seconds = time.perf_counter() - started
        print(f"  read {read:,} records in {read_seconds:.0f} s; folding", flush=True)
        with fewer_collections():
            folded_requests, versions = replay._fold(projection, tables)
        previous, _ = replay._switch(projection, tables, started_at)
        replay._retire(projection, previous)
    finally:
        projection.close()
    return {
        "records": read,
        "events": stored,
        "requests": folded_requests,
        "fact_versions": versions,
        "read_seconds": read_seconds,
        "seconds": time.perf_counter() - started,
        "cpu_seconds": time.process_time() - cpu,
        "file_mb": sum(f.stat().st_size for f in path.parent.glob(path.name + "*")) / 1e6,
    }


async def serve_and_time(
    path: Path, bootstrap: str, workdir: Path, repeat: int, process_views: bool, open_dashboard: bool = False
) -> dict:
    await ensure_topics(bootstrap, ALL_TOPICS, partitions=3)
    service = Service("analytics", workdir, bootstrap, env={"ANALYTICS_DUCKDB_PATH": str(path)})
    try:
        await service.healthy(timeout=600)
        load_before = os.getloadavg()
        views, dashboard_calls = await measure_views(service.url, repeat)
        out: dict = {"views": views, "dashboard": dashboard_calls, "load_before": load_before}
        if process_views:
            out["process"] = await _process_views(service.url, repeat)
        if open_dashboard:  # in headless Chromium, only when asked (`--dashboard`)
            token = mint_token(SECRET, subject="bench", roles=["analyst"])
            out["dashboard_rounds"] = await open_times(dashboard_url(service.url, token), repeat)
        out["load_after"] = os.getloadavg()
        out["rss_mb"] = service.peak_rss_mb()
        return out
    finally:
        service.stop()


async def _process_views(url: str, repeat: int) -> list[dict]:
    """`deploy.bench.analytics.measure_process`'s view calls, without the 12-month export."""
    from datetime import UTC, datetime, timedelta

    import httpx

    from deploy.bench.analytics import PROCESS_VIEWS, SECRET, time_view, windows
    from shared.auth import mint_token

    analyst = {"Authorization": f"Bearer {mint_token(SECRET, subject='bench', roles=['analyst'])}"}
    as_of = (datetime.now(UTC) - timedelta(days=60)).strftime("%Y-%m-%dT%H:%M:%SZ")
    rows = []
    async with httpx.AsyncClient(timeout=600) as client:
        for window_name, window in windows(datetime.now(UTC).date()).items():
            for view in PROCESS_VIEWS:
                for group_by in ("all", "dealer", "technician"):
                    for moment in (None, as_of):
                        rows.append(
                            await time_view(client, url, analyst, view, group_by, (window_name, window), moment, repeat)
                        )
    return rows


def table(rows: list[dict]) -> list[str]:
    return [
        "| view | group_by | window | as_of | p50 ms | p99 ms |",
        "|---|---|---|---|---|---|",
        *[
            f"| {x['view']} | {x['group_by']} | {x['window']} | {'yes' if x['as_of'] else 'no'} | {x['p50']:.0f} | "
            f"{x['p99']:.0f} |"
            for x in rows
        ],
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--file", type=Path, help="the DuckDB file (kept; built only when it does not exist)")
    parser.add_argument("--repeat", type=int, default=11, help="calls per view for the percentiles")
    parser.add_argument("--process", action="store_true", help="also time the process views")
    parser.add_argument("--dashboard", action="store_true", help="also open the dashboard in headless Chromium")
    parser.add_argument("--build-only", action="store_true", help="build the file and stop")
    parser.add_argument("--out", type=Path, help="write the tables as markdown here")
    args = parser.parse_args(argv)
    if args.build_only and args.file is None:
        parser.error("--build-only keeps the file it builds: name it with --file")
    with bench_workdir(Path(tempfile.mkdtemp(prefix="bench-analytics-scale-"))) as workdir:
        return _measure(args, args.file or workdir / f"year-{args.requests}.duckdb", workdir)


def _measure(args: argparse.Namespace, path: Path, workdir: Path) -> int:
    lines = []
    if not path.exists():
        print(f"building {args.requests:,} requests into {path} (load {os.getloadavg()[0]:.1f}) ...", flush=True)
        built = build(path, args.requests)
        print(f"built: {built} (load {os.getloadavg()[0]:.1f})", flush=True)
        lines.append(
            f"Built {built['requests']:,} requests ({built['records']:,} records, {built['fact_versions']:,} fact "
            f"versions) in {built['seconds']:.0f} s ({built['cpu_seconds']:.0f} s CPU); file {built['file_mb']:.0f} MB."
        )
    if args.build_only:
        return 0
    with bench_broker(workdir / "kafka") as (bootstrap, _):
        result = asyncio.run(serve_and_time(path, bootstrap, workdir, args.repeat, args.process, args.dashboard))
    worst = max(result["views"], key=lambda x: x["p99"])
    lines += [
        f"Load average {result['load_before'][0]:.1f} before the views, {result['load_after'][0]:.1f} after; "
        f"analytics peak RSS {result['rss_mb']:.0f} MB. Each call {args.repeat} times.",
        "",
        *table(result["views"]),
        "",
        f"Slowest p99: {worst['view']} by {worst['group_by']} over {worst['window']}"
        f"{' as_of' if worst['as_of'] else ''}: {worst['p99']:.0f} ms. The dashboard's eight calls issued "
        f"together: p50 {result['dashboard']['p50']:.0f} ms, p99 {result['dashboard']['p99']:.0f} ms.",
    ]
    if "process" in result:
        lines += ["", *table(result["process"])]
    if "dashboard_rounds" in result:
        lines += [
            "",
            "The dashboard opened in headless Chromium (`deploy.bench.dashboard_open`):",
            "",
            summary(result["dashboard_rounds"]),
        ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
