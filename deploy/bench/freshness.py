"""`python -m deploy.bench.freshness`: where the time goes from intake's HTTP 201 to a view showing the request.

The same probe as the analytics bench (`deploy.bench.analytics`, "Lag from intake's HTTP 201"): under a steady
background load at intake, one probe request at a time (a dealer of its own) is opened and the throughput view is
polled with that dealer's token until the request shows. Here each probe is also followed through the stages in
between, with wall-clock times of this machine (the processes share its clock):

- `recorded`: the event's `ce_recordedat` header (the event store stamps it in the command's transaction);
- `201`: intake's answer arrives here (after the commit and its fsync);
- `appended`: the record's Kafka timestamp (CreateTime: set when the relay put it into a producer batch);
- `fetched`: a bare consumer in a process of its own, tailing `intake.events`, receives it (acknowledged by the broker,
  fetched; the analytics consumer can have it no earlier);
- `visible`: the first view answer that shows it (its GET started at `asked`).

Stages printed as p50/p99/max: 201→appended (the relay's pick-up: wake-up, read, hand-over), appended→fetched
(producer linger, the broker's acknowledgement, the fetch), fetched→visible (the analytics consumer's poll, its
DuckDB apply, the view's query), and the whole 201→visible, next to the view's own response time. Then where the
slowest tenth of the probes spent theirs, the 201→visible of the probes whose path an alert evaluation overlapped
against the others', and what analytics did meanwhile (its batch applies, commits, alert evaluations and view
queries as logged by the instrumented process; its CPU by thread: the event loop, the `to_thread` workers that
apply batches and run queries, DuckDB's own). The background load runs in a process of its own (`Load`).

Starts its own broker unless KAFKA_BOOTSTRAP is set; `--history` requests (12 months, published straight to the
topics) are in analytics before the probes start. `--before <rev>` runs intake (and so its relay and producer
settings) from that revision too, alternately with this checkout, against the same broker and analytics process.
Prints only; a run takes about a minute per intake plus the history."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer

from deploy.bench.analytics import ROOT, SECRET, Service, _body, percentile, wait_caught_up
from deploy.bench.kafka_util import bench_broker
from deploy.demo_year import publish_year
from deploy.kafka.launcher import free_port
from shared.auth import mint_token
from shared.contracts.topics import ALL_TOPICS, INTAKE
from shared.messaging.kafka import ensure_topics


@dataclass
class Probe:
    """One probe's moments (time.time() seconds); None when not seen."""

    dealer: str
    sent: float
    answered: float = 0.0
    recorded: float | None = None
    appended: float | None = None
    fetched: float | None = None
    applying: float | None = None  # the analytics batch with its event: apply started, ended
    applied: float | None = None
    asked: float | None = None
    visible: float | None = None


async def tail(bootstrap: str) -> None:
    """A bare consumer at the end of intake.events, in a process of its own (so that the load generator's CPU
    does not delay its clock readings): prints `ready`, then a JSON line per probe record (dealer, recorded,
    appended, fetched), until terminated."""
    consumer = AIOKafkaConsumer(
        INTAKE, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="latest", fetch_max_wait_ms=100
    )
    await consumer.start()
    try:
        while not consumer.assignment():
            await asyncio.sleep(0.05)
        for tp in consumer.assignment():
            await consumer.position(tp)  # resolve "latest" now, before any probe is sent
        print("ready", flush=True)
        while True:
            batches = await consumer.getmany(timeout_ms=100)
            fetched = time.time()
            for records in batches.values():
                for record in records:
                    if record.value is None or b"PROBE-" not in record.value:
                        continue
                    recorded = dict(record.headers)["ce_recordedat"].decode().replace("Z", "+00:00")
                    line = {
                        "dealer": json.loads(record.value)["dealer_id"],
                        "recorded": datetime.fromisoformat(recorded).timestamp(),
                        "appended": record.timestamp / 1000,
                        "fetched": fetched,
                    }
                    print(json.dumps(line), flush=True)
    finally:
        await consumer.stop()


async def steady_load(intake_url: str, rate: float, seconds: float) -> None:
    """`rate` requests/s at intake for `seconds`, each as its own task (an answer is not waited for before the
    next is sent); prints the counts as one JSON line at the end."""
    agent = {"Authorization": f"Bearer {mint_token(SECRET, subject='bench', roles=['agent'])}"}
    load = {"created": 0, "failed": 0}

    async def one(client: httpx.AsyncClient, number: int) -> None:
        try:
            response = await client.post(
                f"{intake_url}/v1/service-requests", json=_body(f"LOAD{number % 50}"), headers=agent
            )
        except httpx.TransportError:
            load["failed"] += 1
            return
        load["created" if response.status_code == 201 else "failed"] += 1

    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=64), timeout=30) as client:
        pending, number, started = [], 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            pending.append(asyncio.create_task(one(client, number)))
            number += 1
            await asyncio.sleep(1 / rate)
        await asyncio.gather(*pending)
    print(json.dumps(load), flush=True)


class Load:
    """`steady_load` in a process of its own, started at once: the probes' requests and their clock readings
    then do not queue in one event loop behind the background load's hundred requests a second."""

    def __init__(self, intake_url: str, rate: float, seconds: float) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "deploy.bench.freshness", "--load", intake_url, "--rate", str(rate)]
            + ["--seconds", str(seconds)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )

    def counts(self) -> dict[str, int]:
        """Wait for its end; its counts."""
        out, _ = self.process.communicate(timeout=120)
        lines = out.strip().splitlines()
        return json.loads(lines[-1]) if lines else {"created": 0, "failed": 0}


class Tail:
    """`tail` as a process: started before the probes, read after them."""

    def __init__(self, bootstrap: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "deploy.bench.freshness", "--tail", bootstrap],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )

    async def ready(self) -> None:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(self.process.stdout.readline), 60)
        if line.strip() != "ready":
            raise RuntimeError(f"the tail consumer did not start: {line!r}")

    def seen(self) -> dict[str, dict[str, float]]:
        """Stop it; the probe records it saw, by dealer."""
        self.process.terminate()
        out, _ = self.process.communicate(timeout=30)
        return {entry["dealer"]: entry for entry in map(json.loads, out.splitlines()) if entry}


STAGE_LOG = "FRESHNESS_STAGE_LOG"


def serve_instrumented_analytics() -> None:
    """`python -m services.analytics`, with the start and end of each batch apply, offset commit and alert
    evaluation written as JSON lines to $FRESHNESS_STAGE_LOG (wrapping the methods, not changing them)."""
    import threading
    from collections.abc import Callable
    from functools import wraps
    from typing import Any

    from services.analytics.app import AnalyticsSettings, create_app
    from services.analytics.application import AnalyticsViews
    from services.analytics.consumer import BatchProjectionConsumer
    from services.analytics.monitor import AlertMonitor
    from services.analytics.projection import Projection
    from shared.runtime import serve

    out = open(os.environ[STAGE_LOG], "a", buffering=1)  # for the process's life
    lock = threading.Lock()

    def write(kind: str, start: float, **more: Any) -> None:
        with lock:
            out.write(json.dumps({"kind": kind, "start": start, "end": time.time(), **more}) + "\n")

    apply = Projection.apply

    @wraps(apply)
    def timed_apply(self: Projection, events: Any, *args: Any, **kwargs: Any) -> int:
        start = time.time()
        try:
            return apply(self, events, *args, **kwargs)
        finally:
            probes = [e.data.get("dealer_id") for e in events if str(e.data.get("dealer_id", "")).startswith("PROBE-")]
            write("apply", start, n=len(events), probes=probes)

    def timed(kind: str, method: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(method)
        async def run(*args: Any, **kwargs: Any) -> Any:
            start = time.time()
            try:
                return await method(*args, **kwargs)
            finally:
                write(kind, start)

        return run

    Projection.apply = timed_apply  # type: ignore[method-assign]
    BatchProjectionConsumer._commit = timed("commit", BatchProjectionConsumer._commit)  # type: ignore[method-assign]
    AlertMonitor.evaluate = timed("alerts", AlertMonitor.evaluate)  # type: ignore[method-assign]
    AnalyticsViews._query = timed("view", AnalyticsViews._query)  # type: ignore[method-assign]

    def threads_cpu() -> None:  # each thread's CPU seconds so far, every second (`report` diffs them by name)
        ticks = os.sysconf("SC_CLK_TCK")
        while True:
            spent: dict[str, float] = {}
            named = {t.native_id: t.name for t in threading.enumerate()}
            for task in Path("/proc/self/task").iterdir():
                try:
                    values = (task / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                # the event loop is MainThread; asyncio.to_thread's workers asyncio_N; DuckDB's own have no name
                thread = named.get(int(task.name), "not Python (DuckDB's)").rstrip("0123456789_-")
                spent[thread] = spent.get(thread, 0.0) + (int(values[11]) + int(values[12])) / ticks
            write("threads", time.time(), cpu=spent)
            time.sleep(1)

    if Path("/proc/self/task").exists():
        threading.Thread(target=threads_cpu, daemon=True).start()
    serve(create_app, AnalyticsSettings())


class Analytics(Service):
    """analytics as a process, instrumented (`serve_instrumented_analytics` of this checkout), with the analytics
    bench's settings, running the services of `root` (this checkout, or the tree of `--analytics-before`: first on
    the path, its own code is what runs)."""

    def __init__(self, workdir: Path, bootstrap: str, root: Path = ROOT) -> None:
        self.stages = workdir / f"analytics-{uuid.uuid4().hex[:6]}.stages"
        here = str(Path(__file__).resolve())
        serve = f"import runpy, sys; sys.argv = [{here!r}, '--serve-analytics']; runpy.run_path({here!r}, run_name='__main__')"
        super().__init__(
            "analytics", workdir, bootstrap, argv=["-c", serve], cwd=root, env={STAGE_LOG: str(self.stages)}
        )

    def stage_lines(self, since: float) -> list[dict]:
        """What the instrumented process logged from `since` on."""
        if not self.stages.exists():
            return []
        lines = [json.loads(line) for line in self.stages.read_text().splitlines() if line.strip()]
        return [line for line in lines if line["start"] >= since]


def _stats(values: list[float]) -> str:
    if not values:
        return "n/a"
    ms = [v * 1000 for v in values]
    return f"p50 {percentile(ms, 50):7.1f}  p99 {percentile(ms, 99):7.1f}  max {max(ms):7.1f} ms"


async def measure(intake_url: str, analytics_urls: dict[str, str], bootstrap: str, rate: float, seconds: float) -> dict:
    """Probes under the background load; each probe watched in every analytics of `analytics_urls` (by name) at
    once. The result per analytics (`sides`), each as `report` takes it."""
    agent = {"Authorization": f"Bearer {mint_token(SECRET, subject='bench', roles=['agent'])}"}
    today = datetime.now(UTC).date()
    window = {"group_by": "all", "from": today.isoformat(), "to": (today + timedelta(days=1)).isoformat()}
    probes: dict[str, list[Probe]] = {side: [] for side in analytics_urls}
    view_seconds: dict[str, list[float]] = {side: [] for side in analytics_urls}
    idle_view_seconds: dict[str, list[float]] = {side: [] for side in analytics_urls}
    load = {"created": 0, "failed": 0}

    async def view(client: httpx.AsyncClient, side: str, dealer: str, into: list[float]) -> list[dict]:
        token = mint_token(SECRET, subject=dealer, roles=["dealer"], dealer_id=dealer)
        asked = time.time()
        answer = await client.get(
            f"{analytics_urls[side]}/v1/views/throughput",
            params=window,
            headers={"Authorization": f"Bearer {token}"},
        )
        into.append(time.time() - asked)
        rows: list[dict] = answer.json()["rows"]
        return rows

    async def watch(client: httpx.AsyncClient, side: str, sample: Probe) -> None:
        while time.time() - sample.answered < 10:
            asked = time.time()
            rows = await view(client, side, sample.dealer, view_seconds[side])
            if rows and rows[0]["received"] == 1:
                sample.asked, sample.visible = asked, time.time()
                return
            await asyncio.sleep(0.005)

    async def probe(client: httpx.AsyncClient) -> None:
        dealer = f"PROBE-{uuid.uuid4().hex[:10]}"
        sent = time.time()
        response = await client.post(f"{intake_url}/v1/service-requests", json=_body(dealer), headers=agent)
        answered = time.time()
        if response.status_code != 201:
            load["failed"] += 1
            return
        samples = {side: Probe(dealer, sent, answered) for side in analytics_urls}
        for side, sample in samples.items():
            probes[side].append(sample)
        await asyncio.gather(*(watch(client, side, sample) for side, sample in samples.items()))

    tailing = Tail(bootstrap)
    try:
        await tailing.ready()
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=64), timeout=30) as client:
            for _ in range(20):  # the view's own time on this machine, before the load
                for side in analytics_urls:
                    await view(client, side, "PROBE-idle", idle_view_seconds[side])

            background = Load(intake_url, rate, seconds) if rate else None
            started, started_at = time.perf_counter(), time.time()
            while time.perf_counter() - started < seconds:
                await probe(client)
                await asyncio.sleep(0.1)
            elapsed = time.perf_counter() - started
            if background is not None:
                counts = await asyncio.to_thread(background.counts)
                load["created"] += counts["created"]
                load["failed"] += counts["failed"]
        await asyncio.sleep(0.5)  # the last probe's record reaches the tail
    finally:
        seen = tailing.seen()
    for side_probes in probes.values():
        for sample in side_probes:
            if moments := seen.get(sample.dealer):
                sample.recorded, sample.appended, sample.fetched = (
                    moments["recorded"],
                    moments["appended"],
                    moments["fetched"],
                )
    common = {
        "rate": rate,
        "achieved": load["created"] / elapsed,
        "failed": load["failed"],
        "started": started_at,
        "elapsed": elapsed,
    }
    return {
        "sides": {
            side: {
                **common,
                "probes": probes[side],
                "view_seconds": view_seconds[side],
                "idle_view_seconds": idle_view_seconds[side],
            }
            for side in analytics_urls
        }
    }


def _gaps(probes: list[Probe], later: str, earlier: str) -> list[float]:
    """`later - earlier` (seconds) for the probes that have both moments."""
    pairs = [(getattr(p, later), getattr(p, earlier)) for p in probes]
    return [b - a for b, a in pairs if a is not None and b is not None]


def report(result: dict, stage_lines: list[dict]) -> str:
    """The stages of the probes, then what analytics spent its time on meanwhile (`stage_lines`)."""
    probes: list[Probe] = result["probes"]
    applies = [line for line in stage_lines if line["kind"] == "apply"]
    for line in applies:
        for sample in probes:
            if sample.dealer in line["probes"]:
                sample.applying, sample.applied = line["start"], line["end"]
    shown = sum(1 for p in probes if p.visible is not None)
    stages = [
        ("POST → 201 (client)", "answered", "sent"),
        ("recorded → 201", "answered", "recorded"),
        ("201 → appended (relay pick-up)", "appended", "answered"),
        ("appended → fetched (producer, broker)", "fetched", "appended"),
        ("fetched → apply starts (consumer)", "applying", "fetched"),
        ("its batch's apply (DuckDB)", "applied", "applying"),
        ("applied → visible (view polls)", "visible", "applied"),
        ("201 → visible (aim: p99 ≤ 250 ms)", "visible", "answered"),
    ]
    lines = [
        f"background load {result['rate']:.0f}/s asked, {result['achieved']:.1f}/s answered 201, "
        f"{result['failed']} failed; {len(probes)} probes, {shown} visible within 10 s"
    ]
    for name, later, earlier in stages:
        values = _gaps(probes, later, earlier)
        lines.append(f"  {name:40} {_stats(values)}  (n={len(values)})")
    for name, key in (("view GET, before the load", "idle_view_seconds"), ("view GET, every poll", "view_seconds")):
        lines.append(f"  {name:40} {_stats(result[key])}  (n={len(result[key])})")
    lines += _slowest(probes, stage_lines)
    elapsed = result["elapsed"]
    cpu = result.get("cpu", {})
    lines.append(
        f"  analytics meanwhile ({elapsed:.0f} s"
        + "".join(f"; {name} used {seconds / elapsed:.2f} CPU" for name, seconds in cpu.items())
        + "):"
    )
    samples = [line for line in stage_lines if line["kind"] == "threads"]
    if len(samples) >= 2:
        first, last = samples[0]["cpu"], samples[-1]["cpu"]
        span = samples[-1]["start"] - samples[0]["start"]
        used = {name: last[name] - first.get(name, 0.0) for name in last}
        lines.append(
            "    CPU by thread: "
            + ", ".join(f"{name} {seconds / span:.2f}" for name, seconds in sorted(used.items(), key=lambda i: -i[1]))
        )
    for kind, name in (
        ("apply", "batch applies"),
        ("commit", "offset commits"),
        ("alerts", "alert evaluations"),
        ("view", "view queries (in their thread)"),
    ):
        spans = [line["end"] - line["start"] for line in stage_lines if line["kind"] == kind]
        busy = sum(spans) / elapsed if elapsed else 0.0
        sizes = [line["n"] for line in stage_lines if line["kind"] == kind and "n" in line]
        size = f", events per batch p50 {percentile(sizes, 50)}" if sizes else ""
        lines.append(f"    {name:38} {_stats(spans)}  (n={len(spans)}, busy {busy:.0%} of the time{size})")
    return "\n".join(lines)


def _overlaps(spans: list[dict], start: float | None, end: float | None) -> bool:
    return start is not None and end is not None and any(s["start"] < end and s["end"] > start for s in spans)


def _slowest(probes: list[Probe], stage_lines: list[dict], share: float = 0.1) -> list[str]:
    """Where the slowest probes' 201 → visible went (the p99 of a run is its slowest probe or two), and the
    201 → visible of the probes whose path (fetched → visible) an alert evaluation overlapped, or not."""
    alerts = [line for line in stage_lines if line["kind"] == "alerts"]
    seen = sorted((p for p in probes if p.visible is not None), key=lambda p: p.visible - p.answered)  # type: ignore[operator]
    if not seen:
        return []
    lines = []
    overlapped = [p for p in seen if _overlaps(alerts, p.fetched, p.visible)]
    clear = [p for p in seen if p not in overlapped]
    for name, group in (("an alert evaluation on the path", overlapped), ("no alert evaluation on the path", clear)):
        lines.append(f"  201 → visible, {name:33}{_stats(_gaps(group, 'visible', 'answered'))}  (n={len(group)})")
    slow = seen[-max(1, round(len(seen) * share)) :]
    parts = [
        ("201 → fetched", "fetched", "answered"),
        ("fetched → apply", "applying", "fetched"),
        ("apply", "applied", "applying"),
        ("applied → visible", "visible", "applied"),
    ]
    lines.append(f"  the slowest {len(slow)} probe(s), ms:")
    for sample in slow:
        split = ", ".join(
            f"{name} {1000 * (getattr(sample, b) - getattr(sample, a)):.0f}"
            for name, b, a in parts
            if getattr(sample, a) is not None and getattr(sample, b) is not None
        )
        alert = " (alert evaluation on the path)" if sample in overlapped else ""
        lines.append(f"    201 → visible {1000 * (sample.visible - sample.answered):.0f}: {split}{alert}")  # type: ignore[operator]
    return lines


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Intake(Service):
    """intake as a process with the analytics bench's settings, run from `root` (this checkout, or the tree of
    `--before`: with it first on the path, its own code is what runs)."""

    def __init__(self, root: Path, workdir: Path, bootstrap: str) -> None:
        self.name, self.port = "intake", free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.duckdb = workdir / f"intake-{self.port}.duckdb"  # none: for Service.file_mb only
        env = {
            **os.environ,
            "PORT": str(self.port),
            "KAFKA_BOOTSTRAP": bootstrap,
            "LOG_JSON": "false",
            "LOG_LEVEL": "WARNING",
            "DATABASE_URL": f"sqlite+aiosqlite:///{workdir}/intake-{self.port}.db",
            "CONSUMER_GROUP": f"bench-intake-{uuid.uuid4().hex[:6]}",
        }
        self.log = open(workdir / f"intake-{self.port}.log", "wb")  # closed by stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "services.intake"], cwd=root, env=env, stdout=self.log, stderr=subprocess.STDOUT
        )


def _export(revision: str, into: Path) -> Path:
    """The tree of `revision`, as files (nothing is added to the repository)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


async def run(args: argparse.Namespace, bootstrap: str, workdir: Path) -> None:
    await ensure_topics(bootstrap, ALL_TOPICS, partitions=3)
    if args.history:
        started = time.perf_counter()
        await publish_year(bootstrap, args.history)
        print(f"published a history of {args.history} requests in {time.perf_counter() - started:.1f}s", flush=True)
    trees = [("now", ROOT)]
    if args.before:
        before = workdir / "before"
        before.mkdir()
        trees.insert(0, (f"before ({args.before})", _export(args.before, before)))
    sides = {"now": ROOT}
    if args.analytics_before:
        tree = workdir / "analytics-before"
        tree.mkdir()
        sides = {f"before ({args.analytics_before})": _export(args.analytics_before, tree), **sides}
    analytics = {side: Analytics(workdir, bootstrap, root) for side, root in sides.items()}
    try:
        started = time.perf_counter()
        for side, process in analytics.items():
            await process.healthy()
            await wait_caught_up(process.url, bootstrap)
            print(f"analytics {side} caught up at {time.perf_counter() - started:.1f}s", flush=True)
        urls = {side: process.url for side, process in analytics.items()}
        for number in range(args.runs):
            for name, root in trees:  # alternately, so that both meet the same machine
                intake = Intake(root, workdir, bootstrap)
                try:
                    await intake.healthy()
                    await measure(intake.url, urls, bootstrap, args.rate, 3)  # warm-up
                    print(f"intake {name}, run {number + 1}; load average {os.getloadavg()[0]:.2f}", flush=True)
                    pids = {f"analytics {side}": process.process.pid for side, process in analytics.items()}
                    pids["intake"] = intake.process.pid
                    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
                    result = await measure(intake.url, urls, bootstrap, args.rate, args.seconds)
                    cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
                    for side, process in analytics.items():
                        print(f"analytics {side}:", flush=True)
                        seen = {**result["sides"][side], "cpu": cpu}
                        print(report(seen, process.stage_lines(since=seen["started"])), flush=True)
                    if len(analytics) > 1:
                        print(paired(result["sides"]), flush=True)
                finally:
                    intake.stop()
        print(f"load average {os.getloadavg()[0]:.2f}", flush=True)
    finally:
        for process in analytics.values():
            process.stop()


def paired(sides: dict[str, dict]) -> str:
    """The same probes' 201 → visible in each analytics, side by side, and how often each was the first."""
    names = list(sides)
    by_dealer = [{p.dealer: p for p in sides[name]["probes"] if p.visible is not None} for name in names]
    common = sorted(set.intersection(*(set(d) for d in by_dealer)))
    lags = {
        name: [by_dealer[i][dealer].visible - by_dealer[i][dealer].answered for dealer in common]  # type: ignore[operator]
        for i, name in enumerate(names)
    }
    lines = [f"  the same {len(common)} probes, 201 → visible in each analytics:"]
    for name in names:
        lines.append(f"    {name:38} {_stats(lags[name])}")
    if len(names) == 2 and common:
        first, second = lags[names[0]], lags[names[1]]
        ahead = sum(1 for a, b in zip(first, second) if b < a)
        lines.append(f"    {names[1]} saw the probe first in {ahead} of {len(common)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, default=20_000, help="requests published before (default 20000)")
    parser.add_argument("--rate", type=float, default=100, help="background requests/s at intake (default 100)")
    parser.add_argument("--seconds", type=float, default=20, help="length of a run (default 20)")
    parser.add_argument("--runs", type=int, default=1, help="runs (of each tree with --before; default 1)")
    parser.add_argument("--before", help="also run intake (its relay) from this git revision, alternately")
    parser.add_argument(
        "--analytics-before",
        help="also run an analytics from this git revision, beside this checkout's, on the same topics: every "
        "probe is watched in both at once",
    )
    parser.add_argument("--tail", metavar="BOOTSTRAP", help=argparse.SUPPRESS)  # the tail consumer's process
    parser.add_argument("--load", metavar="INTAKE_URL", help=argparse.SUPPRESS)  # the background load's process
    parser.add_argument("--serve-analytics", action="store_true", help=argparse.SUPPRESS)  # instrumented analytics
    args = parser.parse_args(argv)
    if args.tail:
        asyncio.run(tail(args.tail))
        return 0
    if args.load:
        asyncio.run(steady_load(args.load, args.rate, args.seconds))
        return 0
    if args.serve_analytics:
        serve_instrumented_analytics()
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="bench-freshness-"))
    try:
        with bench_broker(workdir / "kafka") as (bootstrap, _):
            asyncio.run(run(args, bootstrap, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
