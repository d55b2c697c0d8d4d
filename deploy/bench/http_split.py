"""`python -m deploy.bench.http_split --file <a copy of a year's DuckDB file>`: where a view's time goes between
the HTTP request arriving at the analytics process and its answer leaving, stage by stage, and the same view
function timed in the same process at the same moments, so the HTTP path's own cost is what is left.

The real analytics app (`services.analytics.app.create_app`: its middleware, auth, dependencies, alert monitor
and consumer) is served on the file with a broker of its own (empty topics), as `deploy.bench.analytics_scale`
serves it, with three additions made by this module in the served process only (`--serve`), none in the app:

- every `/v1/views/*` request records monotonic times (`perf_counter`) at each stage: arrival at the outermost
  ASGI layer; `AnalyticsViews._query` entered (middleware, routing, auth and the dependencies are done); the
  worker thread started (`asyncio.to_thread`'s hand-off); the snapshot taken (`Projection.reading`: a cursor,
  `BEGIN`, the state read); the view function returned (its SQL and the rows it builds); the cursor closed; the
  coroutine resumed on the event loop; the response started (validation, serialization); its body sent. With
  the worker thread's CPU, the process's CPU and the garbage collector's pauses over the request;
- `/_bench/view`: the view function alone on a cursor kept open across calls, in a worker thread, timed inside
  that thread (what `deploy.bench.views_in_process` times), so each HTTP call is paired with a call of the same
  view at the same moment, in the same process, under the same load;
- nothing else: the spans are kept in memory and written to `$SPANS_OUT` as JSON lines after each response.

Prints the pairs (HTTP p50/max next to the function's) and the stages' p50 per view call; `--dashboard` also
issues the dashboard's eight calls together (`deploy.bench.analytics.measure_views`' page) and splits them."""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, MutableMapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx

SPAN = contextvars.ContextVar[dict]("span")
GROUPINGS = ("all", "dealer", "technician", "day")
VIEW_FUNCTIONS = {"throughput": "throughput_rows", "satisfaction": "satisfaction_rows", "scorecard": "scorecard_rows"}
STAGES = (
    ("before", "arrive", "entered"),  # middleware, routing, auth, query parameters, dependencies
    ("hand-off", "entered", "thread"),  # asyncio.to_thread: the worker thread picks the call up
    ("snapshot", "thread", "snapshot"),  # a cursor, BEGIN, the state read
    ("view fn", "snapshot", "rows"),  # the view's SQL and the rows it builds
    ("close", "rows", "closed"),
    ("resume", "closed", "resumed"),  # back on the event loop
    ("respond", "resumed", "start"),  # pydantic validation, JSON serialization
    ("send", "start", "sent"),
)


# --- the served process --------------------------------------------------------------------------------------


def serve() -> None:
    """The analytics app as `python -m services.analytics` serves it, with the spans and `/_bench/view`."""
    from services.analytics import application, sqlviews
    from services.analytics.app import AnalyticsSettings, create_app
    from services.analytics.metrics import Window
    from services.analytics.views import GroupBy
    from shared.runtime import serve as serve_app

    out = open(os.environ["SPANS_OUT"], "a", buffering=1)  # noqa: SIM115 - the process's lifetime
    collected = {"seconds": 0.0, "began": 0.0}

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            collected["began"] = time.perf_counter()
        else:
            collected["seconds"] += time.perf_counter() - collected["began"]

    gc.callbacks.append(on_gc)

    async def query(self: Any, view: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        span = SPAN.get({})
        span["entered"] = time.perf_counter()

        def run() -> Any:
            span["thread"] = time.perf_counter()
            cpu = time.thread_time()
            with self.projection.reading() as (cur, tables):
                span["snapshot"] = time.perf_counter()
                rows = view(cur, tables, *args, **kwargs)
                span["rows"] = time.perf_counter()
            span["closed"] = time.perf_counter()
            span["thread_cpu"] = time.thread_time() - cpu
            return rows

        rows = await asyncio.to_thread(run)
        span["resumed"] = time.perf_counter()
        return rows

    application.AnalyticsViews._query = query  # type: ignore[method-assign]

    def factory(settings: Any) -> Any:
        app = create_app(settings)
        kept: dict[str, Any] = {}

        @app.get("/_bench/view")
        async def view_alone(view: str, group_by: str, first: date, end: date, as_of: int | None = None) -> dict:
            def run() -> dict:
                if "cur" not in kept:
                    kept["cur"] = app.state.projection.reader()
                    kept["tables"] = app.state.projection.active_tables(kept["cur"])
                rows = getattr(sqlviews, VIEW_FUNCTIONS[view])
                began, cpu = time.perf_counter(), time.process_time()
                rows(kept["cur"], kept["tables"], Window.of_dates(first, end), GroupBy(group_by), as_of, None)
                return {"ms": (time.perf_counter() - began) * 1000, "cpu_ms": (time.process_time() - cpu) * 1000}

            return await asyncio.to_thread(run)

        async def spans(scope: dict, receive: Any, send: Any) -> None:
            if scope["type"] != "http" or not scope["path"].startswith("/v1/views/"):
                await app(scope, receive, send)
                return
            span = {"path": scope["path"], "query": scope["query_string"].decode(), "arrive": time.perf_counter()}
            cpu, paused = time.process_time(), collected["seconds"]
            SPAN.set(span)

            async def sending(message: MutableMapping[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    span["start"] = time.perf_counter()
                await send(message)
                if message["type"] == "http.response.body" and not message.get("more_body"):
                    span["sent"] = time.perf_counter()

            await app(scope, receive, sending)
            span["cpu"], span["gc"] = time.process_time() - cpu, collected["seconds"] - paused
            out.write(json.dumps(span) + "\n")

        return spans

    serve_app(factory, AnalyticsSettings())


# --- the bench -----------------------------------------------------------------------------------------------


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values):.0f} / {max(values):.0f}"


async def _pairs(url: str, args: argparse.Namespace) -> list[dict]:
    from deploy.bench.analytics import analyst_headers, time_calls, windows
    from services.analytics.metrics import to_micros

    moment = datetime.now(UTC) - timedelta(days=60)
    as_of = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    headers = analyst_headers()
    rows = []
    async with httpx.AsyncClient(timeout=120) as client:
        await client.get(f"{url}/v1/views/throughput", headers=headers)  # the first call's imports and plans
        for window_name, bounds in windows(datetime.now(UTC).date()).items():
            if window_name not in args.windows:
                continue
            for view in args.views:
                for group_by in GROUPINGS:
                    for live in (True, False):
                        params = {**bounds, "group_by": group_by, **({} if live else {"as_of": as_of})}
                        alone = {
                            "view": view,
                            "group_by": group_by,
                            "first": bounds["from"],
                            "end": bounds["to"],
                            **({} if live else {"as_of": to_micros(moment.replace(microsecond=0))}),
                        }
                        http: list[float] = []
                        fn: list[float] = []
                        cpu: list[float] = []
                        for call in range(args.repeat):  # alternately, the side that goes first alternating
                            for side in (0, 1) if call % 2 == 0 else (1, 0):
                                if side == 0:
                                    http += await time_calls(client, url, [(f"/v1/views/{view}", params)], 1, headers)
                                else:
                                    timed = (await client.get(f"{url}/_bench/view", params=alone)).json()
                                    fn.append(timed["ms"])
                                    cpu.append(timed["cpu_ms"])
                        rows.append(
                            {"view": view, "group_by": group_by, "window": window_name, "as_of": not live}
                            | {"http": http, "fn": fn, "fn_cpu": cpu}
                        )
                        print(
                            f"| {view} | {group_by} | {window_name} | {'yes' if not live else 'no'} | {_ms(fn)} "
                            f"(CPU {statistics.median(cpu):.0f}) | {_ms(http)} | "
                            f"{statistics.median(http) - statistics.median(fn):+.0f} |",
                            flush=True,
                        )
    return rows


def _call_name(span: dict) -> str:
    query = parse_qs(span["query"])
    days = "-"
    if "from" in query:
        days = f"{(date.fromisoformat(query['to'][0]) - date.fromisoformat(query['from'][0])).days} d"
    moment = "as_of" if "as_of" in query else "live"
    return f"{span['path'].rsplit('/', 1)[-1]} {query.get('group_by', ['-'])[0]} {days} {moment}"


def stage_table(spans: list[dict]) -> list[str]:
    """p50 ms of each stage per view call (the spans of one name), and the whole and its CPU."""
    by_call: dict[str, list[dict]] = defaultdict(list)
    for span in spans:
        if all(mark in span for mark in ("entered", "rows", "resumed", "sent")):
            by_call[_call_name(span)].append(span)
    names = [name for name, _, _ in STAGES]
    lines = [
        "| call | " + " | ".join(names) + " | in the process | of it, outside the view fn | thread CPU | "
        "process CPU | GC |",
        "|---|" + "---|" * (len(names) + 5),
    ]
    for call, group in by_call.items():
        stage = {name: [(s[end] - s[begin]) * 1000 for s in group] for name, begin, end in STAGES}
        whole = [(s["sent"] - s["arrive"]) * 1000 for s in group]
        outside = [w - (s["rows"] - s["snapshot"]) * 1000 for w, s in zip(whole, group, strict=True)]
        extra = [whole, outside, [s["thread_cpu"] * 1000 for s in group], [s["cpu"] * 1000 for s in group]]
        extra.append([s["gc"] * 1000 for s in group])
        cells = [f"{statistics.median(stage[name]):.1f}" for name in names] + [
            f"{statistics.median(x):.1f}" for x in extra
        ]
        lines.append(f"| {call} | " + " | ".join(cells) + " |")
    return lines


async def _dashboard(url: str, repeat: int) -> list[float]:
    from deploy.bench.analytics import DASHBOARD_CALLS, analyst_headers, time_calls

    async with httpx.AsyncClient(timeout=120) as client:
        return await time_calls(client, url, DASHBOARD_CALLS, repeat, analyst_headers())


async def _run(path: Path, bootstrap: str, workdir: Path, spans: Path, args: argparse.Namespace) -> dict:
    from deploy.bench.analytics import Service
    from shared.contracts.topics import ALL_TOPICS
    from shared.messaging.kafka import ensure_topics

    await ensure_topics(bootstrap, ALL_TOPICS, partitions=3)
    env = {"ANALYTICS_DUCKDB_PATH": str(path), "SPANS_OUT": str(spans)}
    service = Service("analytics", workdir, bootstrap, module=["deploy.bench.http_split", "--serve"], env=env)
    try:
        await service.healthy(timeout=600)
        load = [os.getloadavg()[0]]
        pairs = await _pairs(service.url, args)
        page = await _dashboard(service.url, args.repeat) if args.dashboard else []
        load.append(os.getloadavg()[0])
        return {"pairs": pairs, "page": page, "load": load}
    finally:
        service.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help="a DuckDB file built by analytics_scale (a copy: it is opened)")
    parser.add_argument("--repeat", type=int, default=6, help="calls per view and side")
    parser.add_argument("--views", default="throughput,satisfaction,scorecard", help="comma list")
    parser.add_argument("--windows", default="30 days,12 months", help="comma list")
    parser.add_argument("--dashboard", action="store_true", help="also the dashboard's eight calls together")
    parser.add_argument("--spans", type=Path, help="keep the spans (JSON lines) here")
    args = parser.parse_args(argv)
    if args.serve:
        serve()
        return 0
    if args.file is None:
        parser.error("--file is required")
    args.views = [v.strip() for v in args.views.split(",")]
    args.windows = [w.strip() for w in args.windows.split(",")]
    from deploy.bench.analytics import percentile
    from deploy.bench.kafka_util import bench_broker
    from deploy.bench.workdirs import bench_workdir

    with bench_workdir(Path(tempfile.mkdtemp(prefix="bench-http-split-"))) as workdir:
        spans = args.spans or workdir / "spans.jsonl"
        print(
            "| view | group_by | window | as_of | view fn in the process p50 / max ms | over HTTP p50 / max | HTTP − fn |"
        )
        print("|---|---|---|---|---|---|---|")
        with bench_broker(workdir / "kafka") as (bootstrap, _):
            result = asyncio.run(_run(args.file, bootstrap, workdir, spans, args))
        print(f"\nload {result['load'][0]:.1f} -> {result['load'][1]:.1f}\n")
        if result["page"]:
            page = result["page"]
            print(f"The dashboard's eight calls together: p50 {percentile(page, 50):.0f} ms, max {max(page):.0f} ms\n")
        print("\n".join(stage_table([json.loads(line) for line in spans.read_text().splitlines()])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
