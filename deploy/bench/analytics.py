"""`python -m deploy.bench.analytics`: analytics at the scale of a large manufacturer (`make bench-analytics`).

A realistic history (`deploy.demo_year`: 12 months, 20 dealers, 200 technicians; `--requests`, 100k by default)
is published straight to the topics, then, in the same run:
1. a raw aiokafka consumer reads the four topics from their beginning (the baseline);
2. `python -m services.analytics.rebuild` replays them into a fresh DuckDB file (records/s, peak RSS);
3. a fresh analytics process catches up through its live batch consumer (records/s, peak RSS, file size);
4. every view (throughput, satisfaction, scorecard × group_by all/dealer/technician/day × 30 days/12 months,
   with and without `as_of`) and the dashboard's full set of calls are timed over HTTP against it (p50/p99);
5. the lag from intake's HTTP 201 to the request being visible in a view, under a steady load at intake.

Starts its own Kafka broker (deploy.kafka.launcher) unless KAFKA_BOOTSTRAP is set. Prints the numbers and writes
docs/bench-analytics.md."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer

from deploy.bench.kafka_util import bench_broker
from deploy.bench.workdirs import bench_workdir
from deploy.demo_year import _received, publish_year
from deploy.kafka.launcher import free_port
from services.analytics.records import CONSUMES
from shared.auth import mint_token
from shared.contracts.topics import ALL_TOPICS
from shared.messaging.cloudevents import to_record
from shared.messaging.kafka import ensure_topics, reliable_producer
from shared.settings import ServiceSettings
from shared.testing.kafka import envelope_for

ROOT = Path(__file__).resolve().parents[2]
SECRET = ServiceSettings().auth_secret


# --- a realistic history ---------------------------------------------------------------------------------

# --- replay ----------------------------------------------------------------------------------------------


async def raw_read(bootstrap: str) -> tuple[int, float]:
    """A bare aiokafka consumer reading the same topics from their beginning to their end: (records, seconds)."""
    started = time.perf_counter()
    consumer = AIOKafkaConsumer(
        *CONSUMES,
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    await consumer.start()
    count = 0
    try:
        partitions = sorted(consumer.assignment())
        end = await consumer.end_offsets(partitions)
        await consumer.seek_to_beginning(*partitions)
        remaining = {tp for tp in partitions if end[tp] > 0}
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000, max_records=5000)
            for tp, records in batches.items():
                count += sum(1 for r in records if r.offset < end[tp])
            for tp in list(remaining):
                if await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    return count, time.perf_counter() - started


# --- services as processes -------------------------------------------------------------------------------


class Service:
    """A service as a process of its own on a free port, with the bench's settings. `module` runs instead of the
    service's own (`-m module …`), or `argv` (the interpreter's arguments) from the tree `cwd`; `env` adds
    settings."""

    def __init__(
        self,
        name: str,
        workdir: Path,
        bootstrap: str,
        *,
        module: list[str] | None = None,
        argv: list[str] | None = None,
        cwd: Path = ROOT,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name, self.port = name, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.duckdb = workdir / f"{name}-{self.port}.duckdb"
        settings = {
            **os.environ,
            "PORT": str(self.port),
            "KAFKA_BOOTSTRAP": bootstrap,
            "LOG_JSON": "false",
            "LOG_LEVEL": "WARNING",
            "DATABASE_URL": f"sqlite+aiosqlite:///{workdir}/{name}-{self.port}.db",
            "ANALYTICS_DUCKDB_PATH": str(self.duckdb),
            "CONSUMER_GROUP": f"bench-{name}-{uuid.uuid4().hex[:6]}",
            **(env or {}),
        }
        self.log = open(workdir / f"{name}-{self.port}.log", "wb")
        self.process = subprocess.Popen(
            [sys.executable, *(argv or ["-m", *(module or [f"services.{name}"])])],
            cwd=cwd,
            env=settings,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    async def healthy(self, timeout: float = 60) -> Service:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"{self.name} exited; see {self.log.name}")
                try:
                    if (await client.get(f"{self.url}/healthz")).status_code == 200:
                        return self
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)
        raise RuntimeError(f"{self.name} did not start")

    def peak_rss_mb(self) -> float:
        """The process's high-water resident set (VmHWM), in MB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def file_mb(self) -> float:
        wal = self.duckdb.with_name(self.duckdb.name + ".wal")
        return sum(f.stat().st_size for f in (self.duckdb, wal) if f.exists()) / 1e6

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def _body(dealer: str) -> dict:
    return {
        "dealer_id": dealer,
        "channel": "dealer",
        "symptom": "noise",
        "purchase_date": "2025-01-01",
        "customer": {"name": "B", "phone": "+49 170 5550101", "region": "north"},
        "product": {"serial": f"SN-{uuid.uuid4().hex[:12]}", "model": "M", "product_line": "tractor"},
    }


def percentile(values: list[float], pct: int) -> float:
    ordered = sorted(values)
    return ordered[max(0, (pct * len(ordered) + 99) // 100 - 1)]


async def measure_lag(intake_url: str, analytics_url: str, rate: float, seconds: float) -> dict:
    """Probe lags (ms) from intake's 201 to the probe's dealer row in analytics, under `rate` requests/s."""
    agent = {"Authorization": f"Bearer {mint_token(SECRET, subject='bench', roles=['agent'])}"}
    today = datetime.now(UTC).date()
    window = {"group_by": "all", "from": today.isoformat(), "to": (today + timedelta(days=1)).isoformat()}
    lags: list[float] = []
    load = {"created": 0, "failed": 0}
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def background(dealer_no: int) -> None:
            try:
                response = await client.post(
                    f"{intake_url}/v1/service-requests", json=_body(f"LOAD{dealer_no % 50}"), headers=agent
                )
            except httpx.TransportError:  # an overloaded intake dropping a connection is a failed request, no more
                load["failed"] += 1
                return
            load["created" if response.status_code == 201 else "failed"] += 1

        async def probe() -> None:
            dealer = f"PROBE-{uuid.uuid4().hex[:10]}"
            viewer = {
                "Authorization": f"Bearer {mint_token(SECRET, subject=dealer, roles=['dealer'], dealer_id=dealer)}"
            }
            response = await client.post(f"{intake_url}/v1/service-requests", json=_body(dealer), headers=agent)
            created = time.perf_counter()
            if response.status_code != 201:
                load["failed"] += 1
                return
            while time.perf_counter() - created < 10:
                rows = (await client.get(f"{analytics_url}/v1/views/throughput", params=window, headers=viewer)).json()[
                    "rows"
                ]
                if rows and rows[0]["received"] == 1:
                    lags.append((time.perf_counter() - created) * 1000)
                    return
                await asyncio.sleep(0.01)
            lags.append(10_000.0)

        async def steady_load() -> None:
            pending, n = [], 0
            while time.perf_counter() - started < seconds:
                pending.append(asyncio.create_task(background(n)))
                n += 1
                await asyncio.sleep(1 / rate)
            await asyncio.gather(*pending)

        async def probes() -> None:
            # One probe at a time, 100 ms apart: the polling itself stays a small load on analytics.
            while time.perf_counter() - started < seconds:
                await probe()
                await asyncio.sleep(0.1)

        started = time.perf_counter()
        await asyncio.gather(probes(), *([steady_load()] if rate else []))
        elapsed = time.perf_counter() - started
    return {
        "rate": rate,
        "achieved_rps": round(load["created"] / elapsed, 1),
        "failed": load["failed"],
        "probes": len(lags),
        "p50_ms": round(percentile(lags, 50), 1),
        "p99_ms": round(percentile(lags, 99), 1),
        "max_ms": round(max(lags), 1),
    }


async def wait_caught_up(analytics_url: str, bootstrap: str, timeout: float = 3600) -> float:
    """Publish markers (one dealer, many keys so every partition gets some) and wait until all show."""
    dealer = f"MARK-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    producer = reliable_producer(bootstrap, "bench-analytics-marker")
    await producer.start()
    try:
        for _ in range(24):
            data = _received(str(uuid.uuid4()), dealer, "north", "marker", "SN-MARK", False)
            topic, key, value, headers = to_record(envelope_for(data, source="bench", time=now))
            await producer.send_and_wait(topic, value=value, key=key, headers=headers)
    finally:
        await producer.stop()
    viewer = {"Authorization": f"Bearer {mint_token(SECRET, subject=dealer, roles=['dealer'], dealer_id=dealer)}"}
    params = {"group_by": "all", "from": now.date().isoformat(), "to": (now.date() + timedelta(days=1)).isoformat()}
    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=60) as client:
        while time.perf_counter() - started < timeout:
            try:
                rows = (await client.get(f"{analytics_url}/v1/views/throughput", params=params, headers=viewer)).json()
                if rows["rows"] and rows["rows"][0]["received"] == 24:
                    return time.perf_counter() - started
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.25)
    raise RuntimeError("analytics did not catch up")


# --- rebuild in its own process --------------------------------------------------------------------------


def rebuild_process(bootstrap: str, workdir: Path) -> dict:
    """`python -m services.analytics.rebuild` into a fresh file: its report, peak RSS and file size."""
    path = workdir / f"rebuild-{uuid.uuid4().hex[:6]}.duckdb"
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP": bootstrap,
        "ANALYTICS_DUCKDB_PATH": str(path),
        "LOG_JSON": "false",
        "LOG_LEVEL": "WARNING",
    }
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result = subprocess.run(
        [sys.executable, "-m", "services.analytics.rebuild"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=7200,
    )
    if result.returncode != 0:
        raise RuntimeError(f"rebuild failed: {result.stdout}{result.stderr}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    report = json.loads(result.stdout[result.stdout.index("{") :])
    report["peak_rss_mb"] = round(max(peak, before) / 1024, 0) if peak > before else None
    report["file_mb"] = round(sum(f.stat().st_size for f in workdir.glob(path.name + "*")) / 1e6, 1)
    return report


# --- views -----------------------------------------------------------------------------------------------


def windows(today) -> dict[str, dict]:
    end = today + timedelta(days=1)
    return {
        "30 days": {"from": (end - timedelta(days=30)).isoformat(), "to": end.isoformat()},
        "12 months": {"from": (end - timedelta(days=365)).isoformat(), "to": end.isoformat()},
    }


async def time_calls(
    client: httpx.AsyncClient, url: str, calls: list[tuple[str, dict]], repeat: int, headers: dict
) -> list[float]:
    """Milliseconds per round of `calls` (issued together, as a page does), `repeat` rounds."""
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        responses = await asyncio.gather(
            *(client.get(f"{url}{path}", params=params, headers=headers) for path, params in calls)
        )
        timings.append((time.perf_counter() - started) * 1000)
        for response in responses:
            if response.status_code != 200:
                raise RuntimeError(f"{response.request.url}: {response.status_code} {response.text[:200]}")
    return timings


async def time_view(
    client: httpx.AsyncClient,
    analytics_url: str,
    headers: dict[str, str],
    view: str,
    group_by: str,
    window: tuple[str, dict[str, str]],
    as_of: str | None,
    repeat: int,
) -> dict:
    """One view's row of the table: p50 and p99 of `repeat` calls over the named window, as of a moment or live."""
    window_name, bounds = window
    params = {**bounds, "group_by": group_by, **({"as_of": as_of} if as_of else {})}
    timings = await time_calls(client, analytics_url, [(f"/v1/views/{view}", params)], repeat, headers)
    return {
        "view": view,
        "group_by": group_by,
        "window": window_name,
        "as_of": bool(as_of),
        "p50": percentile(timings, 50),
        "p99": percentile(timings, 99),
    }


def analyst_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(SECRET, subject='bench', roles=['analyst'])}"}


async def time_views(
    client: httpx.AsyncClient,
    analytics_url: str,
    headers: dict[str, str],
    views: Sequence[str],
    groupings: Sequence[str],
    repeat: int,
) -> list[dict]:
    """`time_view` of each view × grouping × window (30 days, 12 months), live and `as_of` 60 days ago."""
    today = datetime.now(UTC).date()
    as_of = (datetime.now(UTC) - timedelta(days=60)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [
        await time_view(client, analytics_url, headers, view, group_by, (window_name, window), moment, repeat)
        for window_name, window in windows(today).items()
        for view in views
        for group_by in groupings
        for moment in (None, as_of)
    ]


# The dashboard's calls, issued together as the page does (dealer grouping, default 30-day window).
DASHBOARD_CALLS: list[tuple[str, dict]] = [
    ("/v1/views/throughput", {"group_by": "dealer"}),
    ("/v1/views/throughput", {"group_by": "all"}),
    ("/v1/views/satisfaction", {"group_by": "dealer"}),
    ("/v1/views/satisfaction", {"group_by": "all"}),
    ("/v1/views/scorecard", {"group_by": "dealer"}),
    ("/v1/views/trend", {}),
    ("/v1/views/durations", {}),
    ("/v1/views/alerts", {"limit": 100}),
]


async def measure_views(analytics_url: str, repeat: int) -> tuple[list[dict], dict]:
    analyst = analyst_headers()
    async with httpx.AsyncClient(timeout=120) as client:
        views = ("throughput", "satisfaction", "scorecard")
        rows = await time_views(client, analytics_url, analyst, views, ("all", "dealer", "technician", "day"), repeat)
        timings = await time_calls(client, analytics_url, DASHBOARD_CALLS, repeat, analyst)
    return rows, {"p50": percentile(timings, 50), "p99": percentile(timings, 99)}


# --- the process view and the exports (issue 11) ------------------------------------------------------------

PROCESS_VIEWS = ("handoffs", "rework", "variants", "process-findings")


async def measure_process(analytics_url: str, repeat: int) -> dict:
    """Each process view over HTTP (group_by all/dealer/technician × 30 days/12 months, live and `as_of`),
    p50/p99; then the 12-month OCEL 2.0 JSON export streamed once (MB, seconds)."""
    analyst = analyst_headers()
    today = datetime.now(UTC).date()
    async with httpx.AsyncClient(timeout=600) as client:
        rows = await time_views(client, analytics_url, analyst, PROCESS_VIEWS, ("all", "dealer", "technician"), repeat)
        started, size = time.perf_counter(), 0
        async with client.stream(
            "GET", f"{analytics_url}/v1/exports/ocel", params=windows(today)["12 months"], headers=analyst
        ) as response:
            async for chunk in response.aiter_bytes():
                size += len(chunk)
        seconds = time.perf_counter() - started
    return {"views": rows, "ocel_seconds": seconds, "ocel_mb": size / 1e6}


def process_report(r: dict) -> list[str]:
    p = r["process"]
    ocel_rate = r["records"] / p["ocel_seconds"]
    return [
        "## The process view and the exports over HTTP",
        "",
        f"Each call {r['repeat']} times, as above. Aims at 1M requests: every process view p50 ≤ 150 ms; a 12-month "
        "OCEL export ≥ 50k events/s with flat memory. Baseline (before this run's code, the Python fold per "
        "query): hand-offs ~180 ms at 5k requests, seconds at a year's scale.",
        "",
        "| view | group_by | window | as_of | p50 ms | p99 ms |",
        "|---|---|---|---|---|---|",
        *[
            f"| {x['view']} | {x['group_by']} | {x['window']} | {'yes' if x['as_of'] else 'no'} | {x['p50']:.0f} | "
            f"{x['p99']:.0f} |"
            for x in p["views"]
        ],
        "",
        f"OCEL 2.0 JSON, 12 months: {p['ocel_mb']:.1f} MB in {p['ocel_seconds']:.1f} s, ~{ocel_rate:.0f} "
        "records/s (the topics' record count over the export's time).",
        "",
    ]


# --- report ----------------------------------------------------------------------------------------------


def report(r: dict, out: Path) -> str:
    views = r["views"]
    worst = max(views, key=lambda x: x["p99"])
    lines = [
        "# Analytics benchmark",
        "",
        f"`python -m deploy.bench.analytics --requests {r['requests']}` on {platform.node()} ({os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}), {r['when']}. Kafka: {r['broker']}, 3 partitions per topic. The "
        "load generator, the services and the broker share the machine's cores with other work (load average "
        f"{r['load_before']:.1f} at the start, {r['load_after']:.1f} at the end).",
        "",
        f"History: {r['requests']} service requests over 12 months (`deploy/demo_year.py`: 20 dealers and direct "
        f"customers, 200 technicians), **{r['records']} records** in the four topics, published in "
        f"{r['publish_seconds']:.0f} s.",
        "",
        "## Reading the topics from the beginning",
        "",
        "| reader | records/s | ratio to raw | peak RSS | DuckDB file |",
        "|---|---|---|---|---|",
        f"| raw aiokafka consumer (read only, baseline) | {r['raw_rate']:.0f} | 1.00 | | |",
        f"| rebuild (`python -m services.analytics.rebuild`) | {r['rebuild']['records_per_second']:.0f} | "
        f"{r['rebuild']['records_per_second'] / r['raw_rate']:.2f} | {r['rebuild']['peak_rss_mb']} MB | "
        f"{r['rebuild']['file_mb']} MB |",
        f"| live catch-up (a fresh analytics process, batch consumer) | {r['catchup_rate']:.0f} | "
        f"{r['catchup_rate'] / r['raw_rate']:.2f} | {r['catchup_rss_mb']:.0f} MB | {r['catchup_file_mb']:.1f} MB |",
        "",
        f"Rebuild: read and stored {r['rebuild']['read_seconds']:.1f} s, deduplicated, indexed and folded "
        f"{r['rebuild']['requests']} requests into {r['rebuild']['fact_versions']} fact versions in "
        f"{r['rebuild']['fold_seconds']:.1f} s. Aims at 1M requests: catch-up ≥ 0.3 of raw, rebuild ≥ 0.5, "
        "RSS ≤ 1 GB.",
        "",
        "## Views over HTTP (analyst token, the caught-up process)",
        "",
        f"Each call {r['repeat']} times; `as_of` = 60 days ago (the versions that held then). Aims at 1M requests: "
        "p50 ≤ 100 ms, p99 ≤ 300 ms.",
        "",
        "| view | group_by | window | as_of | p50 ms | p99 ms |",
        "|---|---|---|---|---|---|",
        *[
            f"| {x['view']} | {x['group_by']} | {x['window']} | {'yes' if x['as_of'] else 'no'} | {x['p50']:.0f} | "
            f"{x['p99']:.0f} |"
            for x in views
        ],
        "",
        f"Slowest p99: {worst['view']} by {worst['group_by']} over {worst['window']}"
        f"{' as_of' if worst['as_of'] else ''}: {worst['p99']:.0f} ms. The dashboard's eight calls issued together "
        f"(as the page does): p50 {r['dashboard']['p50']:.0f} ms, p99 {r['dashboard']['p99']:.0f} ms.",
        "",
        "## Lag from intake's HTTP 201 to the change being visible in a view",
        "",
        "Probe requests (one dealer each, one at a time, 100 ms apart) opened at intake during a steady background",
        "load, with the history above in analytics; each probe polls the throughput view with its dealer's token",
        "every 10 ms until its request shows. Aim: p99 ≤ 250 ms at 100 requests/s.",
        "",
        "| background load (req/s asked → achieved) | probes | p50 | p99 | max |",
        "|---|---|---|---|---|",
        *[
            f"| {x['rate']} → {x['achieved_rps']} | {x['probes']} | {x['p50_ms']} ms | {x['p99_ms']} ms | "
            f"{x['max_ms']} ms |"
            for x in r["lag"]
        ],
        "",
        *(process_report(r) if "process" in r else []),
    ]
    text = "\n".join(lines)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(with_run(out.read_text() if out.exists() else "", text))
    return text


RUN_BEGIN = "<!-- deploy.bench.analytics: the last run, written by it; edit outside these marks -->"
RUN_END = "<!-- deploy.bench.analytics: end of the last run -->"


def with_run(document: str, run_text: str) -> str:
    """`document` with its last run's part (between `RUN_BEGIN` and `RUN_END`) replaced by `run_text`; what the
    team wrote around it (the before/after sections of each change) is kept. A document without the marks gets the
    run at its top, the rest below it."""
    marked = f"{RUN_BEGIN}\n{run_text.rstrip()}\n{RUN_END}\n"
    if RUN_BEGIN in document and RUN_END in document.split(RUN_BEGIN, 1)[1]:
        before, rest = document.split(RUN_BEGIN, 1)
        after = rest.split(RUN_END, 1)[1].lstrip("\n")
        return before + marked + ("\n" + after if after else "")
    return marked + ("\n" + document if document else "")


async def run(args, bootstrap: str, broker_name: str, workdir: Path) -> dict:
    await ensure_topics(bootstrap, ALL_TOPICS, partitions=3)
    results: dict = {
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "broker": broker_name,
        "requests": args.requests,
        "repeat": args.repeat,
        "load_before": os.getloadavg()[0],
    }
    print(f"publishing {args.requests} requests ...", flush=True)
    started = time.perf_counter()
    await publish_year(bootstrap, args.requests, progress=True)
    results["publish_seconds"] = time.perf_counter() - started
    raws = [await raw_read(bootstrap) for _ in range(2)]
    results["records"], seconds = min(raws, key=lambda r: r[1])
    results["raw_rate"] = results["records"] / seconds
    print(f"raw consumer: {[round(r[1], 2) for r in raws]} s for {results['records']} records", flush=True)
    results["rebuild"] = rebuild_process(bootstrap, workdir)
    print(f"rebuild: {results['rebuild']}", flush=True)
    print("live catch-up: a fresh analytics process ...", flush=True)
    services_ = [Service("analytics", workdir, bootstrap)]
    try:
        fresh = await services_[0].healthy()
        started = time.perf_counter()
        await wait_caught_up(fresh.url, bootstrap)
        results["catchup_rate"] = results["records"] / (time.perf_counter() - started)
        results["catchup_rss_mb"] = fresh.peak_rss_mb()
        results["catchup_file_mb"] = fresh.file_mb()
        print(f"  {results['catchup_rate']:.0f} records/s, peak RSS {results['catchup_rss_mb']:.0f} MB", flush=True)
        print("views ...", flush=True)
        results["views"], results["dashboard"] = await measure_views(fresh.url, args.repeat)
        print("process views and exports ...", flush=True)
        results["process"] = await measure_process(fresh.url, args.repeat)
        intake_svc = await Service("intake", workdir, bootstrap).healthy()
        services_.append(intake_svc)
        results["lag"] = []
        for rate in args.rates:
            result = await measure_lag(intake_svc.url, fresh.url, rate, args.seconds)
            print(f"  lag at {rate}/s: {result}", flush=True)
            results["lag"].append(result)
        results["catchup_rss_mb"] = max(results["catchup_rss_mb"], fresh.peak_rss_mb())
    finally:
        for service in services_:
            service.stop()
    results["load_after"] = os.getloadavg()[0]
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=11, help="calls per view for the percentiles")
    parser.add_argument(
        "--rates",
        type=float,
        nargs="+",
        default=[100],
        help="background requests per second at intake during the lag probes",
    )
    parser.add_argument("--seconds", type=float, default=20, help="length of each lag run")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "bench-analytics.md")
    args = parser.parse_args(argv)
    # The broker's log and the DuckDB files: ~1.3 GB at 100k requests.
    with bench_workdir(Path(tempfile.mkdtemp(prefix="bench-analytics-"))) as workdir:
        with bench_broker(workdir / "kafka") as (bootstrap, local):
            results = asyncio.run(
                run(args, bootstrap, "local single-node Apache Kafka (KRaft)" if local else bootstrap, workdir)
            )
    print()
    print(report(results, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
