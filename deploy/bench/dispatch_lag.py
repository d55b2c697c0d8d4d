"""`python -m deploy.bench.dispatch_lag`: how long a triaged request waits for its technician, under load.

A paced producer publishes `service_request.received` + `service_request.triaged` pairs to `intake.events` at a
steady rate (as intake's relay would), dispatch runs as its own process (`python -m services.dispatch`, uvicorn,
SQLite with synchronous=FULL, its defaults), and a reader matches every `job.assigned` on `dispatch.events` to
its triage by request_id. The lag is the difference of the two records' Kafka timestamps (CreateTime, stamped by
the producing clients on this machine): consume, decide, commit, relay, acknowledged. Prints p50/p90/p99/max
and writes docs/bench-dispatch.md. Starts its own broker unless KAFKA_BOOTSTRAP is set.

`--before <rev>`: each rate is run first against dispatch at that git revision (exported to a temporary directory
and served from there), then against this checkout, on the same broker, one after the other.
`--in-process`: dispatch's consumer path alone (no broker, HTTP or relay; `dispatch_in_process.py`), CPU per
assignment, for `--before` and this checkout, each in a process of its own; nothing is written."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from deploy.bench.dispatch_in_process import compare
from deploy.bench.payloads import CUSTOMER, MODEL, received_event
from deploy.bench.procs import Server, cpu_seconds
from deploy.bench.sysinfo import busy_cpu_seconds, fsync_ms, load_average, machine
from deploy.kafka.launcher import LocalKafkaBroker, ensure_jars
from shared.auth import mint_token
from shared.contracts.enums import Priority, ServiceMode
from shared.contracts.intake import ServiceRequestTriaged
from shared.contracts.topics import ALL_TOPICS, DISPATCH, INTAKE
from shared.messaging.cloudevents import to_record
from shared.messaging.kafka import ensure_topics, reliable_producer
from shared.testing.kafka import envelope_for, start_group_at_end

ROOT = Path(__file__).resolve().parents[2]
SECRET = "bench-secret-" + "x" * 32


@dataclass
class Run:
    rate: float
    label: str
    seconds: float
    warmup: float
    technicians: int
    triaged_at: dict[str, int] = field(default_factory=dict)  # request_id → ms, measured phase only
    assigned_at: dict[str, int] = field(default_factory=dict)  # request_id → ms
    published: int = 0
    publish_seconds: float = 0.0
    drained_seconds: float = 0.0  # from the first publication until the last assignment arrived
    dispatch_cores: float = 0.0
    machine_cores_busy: float = 0.0
    load_before: float = 0.0

    def lags(self) -> list[tuple[int, int]]:
        """(triaged ms, lag ms) of every measured request that was assigned, in publication order."""
        return sorted(
            (sent, self.assigned_at[rid] - sent) for rid, sent in self.triaged_at.items() if rid in self.assigned_at
        )


def percentile(sorted_values: list[int], pct: float) -> float:
    """Nearest rank."""
    if not sorted_values:
        return float("nan")
    return float(sorted_values[max(0, -(-len(sorted_values) * int(pct * 10) // 1000) - 1)])


async def _partitions(bootstrap: str, topic: str) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return [TopicPartition(topic, p["partition"]) for p in described["partitions"]]


class DispatchProcess(Server):
    """dispatch itself (`-m services.dispatch`, from the tree `root`) on the bench's broker, in a consumer group of
    its own."""

    def __init__(self, workdir: Path, bootstrap: str, root: Path = ROOT) -> None:
        self.group = f"bench-dispatch-{uuid.uuid4().hex[:8]}"
        env = {
            "DATABASE_URL": f"sqlite+aiosqlite:///{workdir}/dispatch.db",
            "KAFKA_BOOTSTRAP": bootstrap,
            "CONSUMER_GROUP": self.group,
            "AUTH_SECRET": SECRET,
            "LOG_LEVEL": "WARNING",
        }
        super().__init__("dispatch", workdir, env, root)
        self.env["PORT"] = str(self.port)

    def command(self) -> list[str]:
        return [sys.executable, "-m", "services.dispatch"]


async def staff(url: str, technicians: int) -> None:
    """A center in the payload's region and technicians for its product line, so every job is auto-assigned."""
    token = mint_token(SECRET, subject="bench", roles=["dispatcher"])
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=10) as client:
        center = {"id": "BENCH-C1", "name": "Bench center", "region": CUSTOMER["region"], "kind": "repair_center"}
        (await client.post("/v1/service-centers", json=center)).raise_for_status()
        for i in range(technicians):
            body = {
                "id": f"BENCH-T{i:03d}",
                "center_id": "BENCH-C1",
                "name": f"Technician {i}",
                "skills": [MODEL["product_line"]],
            }
            (await client.post("/v1/technicians", json=body)).raise_for_status()


async def read_assignments(bootstrap: str, run: Run, ready: asyncio.Event, stop: asyncio.Event) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = await _partitions(bootstrap, DISPATCH)
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        for partition in partitions:  # resolve the end now, before anything is published
            await consumer.position(partition)
        ready.set()
        while not stop.is_set():
            for records in (await consumer.getmany(timeout_ms=100)).values():
                for record in records:
                    if dict(record.headers).get("ce_type") == b"job.assigned":
                        run.assigned_at[json.loads(record.value)["request_id"]] = record.timestamp
    finally:
        await consumer.stop()


async def publish_paced(bootstrap: str, run: Run) -> None:
    """received + triaged per request, `rate` requests a second, warm-up first; each pair shares a timestamp."""
    producer = reliable_producer(bootstrap, "bench-intake")
    await producer.start()
    loop = asyncio.get_running_loop()
    total = int(run.rate * (run.warmup + run.seconds))
    warmup = int(run.rate * run.warmup)
    deliveries = []
    try:
        started = loop.time()
        for i in range(total):
            delay = started + i / run.rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            received = received_event(f"SN-BENCH-{uuid.uuid4().hex[:12]}")
            triaged = ServiceRequestTriaged(
                request_id=received.request_id, mode=ServiceMode.onsite, priority=Priority.P3, note=None
            )
            stamp = int(time.time() * 1000)
            for data, sequence in ((received, 1), (triaged, 2)):
                topic, key, value, headers = to_record(envelope_for(data, source="intake", sequence=sequence))
                deliveries.append(await producer.send(topic, value=value, key=key, headers=headers, timestamp_ms=stamp))
            if i >= warmup:
                run.triaged_at[received.request_id] = stamp
            if len(deliveries) >= 2000:
                await asyncio.gather(*deliveries)
                deliveries.clear()
        await asyncio.gather(*deliveries)
        run.published = total
        run.publish_seconds = loop.time() - started
    finally:
        await producer.stop()


async def measure(bootstrap: str, workdir: Path, run: Run, log, root: Path = ROOT) -> None:
    await ensure_topics(bootstrap, ALL_TOPICS, partitions=3)
    dispatch = DispatchProcess(workdir, bootstrap, root)
    # dispatch's group starts at the topic's end: a reused broker's old events are not part of the run
    await start_group_at_end(bootstrap, dispatch.group, [INTAKE])
    dispatch.start()
    try:
        await staff(dispatch.url, run.technicians)
        ready, stop = asyncio.Event(), asyncio.Event()
        reader = asyncio.create_task(read_assignments(bootstrap, run, ready, stop))
        await ready.wait()
        run.load_before = load_average()
        cpu_before, busy_before, started = cpu_seconds(dispatch.pid), busy_cpu_seconds(), time.monotonic()
        log(
            f"{run.label}: publishing {run.rate:.0f} requests/s for {run.warmup:.0f} s warm-up + {run.seconds:.0f} s ..."
        )
        await publish_paced(bootstrap, run)
        # An overloaded dispatch catches up later: wait while assignments keep coming (30 s without one ends it).
        seen, last_progress = -1, time.monotonic()
        while not set(run.triaged_at) <= set(run.assigned_at) and time.monotonic() - last_progress < 30:
            if len(run.assigned_at) != seen:
                seen, last_progress = len(run.assigned_at), time.monotonic()
            await asyncio.sleep(0.2)
        elapsed = time.monotonic() - started
        run.drained_seconds = elapsed
        run.dispatch_cores = (cpu_seconds(dispatch.pid) - cpu_before) / elapsed
        run.machine_cores_busy = (busy_cpu_seconds() - busy_before) / elapsed
        stop.set()
        await reader
    finally:
        dispatch.stop()


def summary(run: Run) -> dict[str, float]:
    lags = sorted(lag for _, lag in run.lags())
    return {
        "measured": len(run.triaged_at),
        "assigned": len(lags),
        "missing": len(run.triaged_at) - len(lags),
        "p50": percentile(lags, 50),
        "p90": percentile(lags, 90),
        "p99": percentile(lags, 99),
        "max": float(lags[-1]) if lags else float("nan"),
        "rate": run.published / run.publish_seconds if run.publish_seconds else 0.0,
        "throughput": len(run.assigned_at) / run.drained_seconds if run.drained_seconds else 0.0,
    }


def slices(run: Run, width_s: int = 10) -> list[tuple[int, float, float]]:
    """(second, p50, p99) per `width_s` of the measured phase: a steady state stays flat."""
    lags = run.lags()
    if not lags:
        return []
    first = lags[0][0]
    buckets: dict[int, list[int]] = {}
    for sent, lag in lags:
        buckets.setdefault((sent - first) // (width_s * 1000), []).append(lag)
    return [(b * width_s, percentile(sorted(v), 50), percentile(sorted(v), 99)) for b, v in sorted(buckets.items())]


def _section(run: Run, numbers: dict[str, float]) -> str:
    rows = "\n".join(f"| {start}-{start + 10} s | {p50:.0f} | {p99:.0f} |" for start, p50, p99 in slices(run))
    steady = numbers["throughput"] >= 0.95 * numbers["rate"]
    verdict = (
        "dispatch kept up: the lag is its own"
        if steady
        else f"**dispatch did not keep up** (it assigned {numbers['throughput']:.0f}/s): the lag is mostly the queue "
        "growing in front of it, and its percentiles say how long the run was rather than how fast a job is "
        "assigned"
    )
    return f"""## {run.rate:.0f} requests/s, {run.label}

| | |
|---|---|
| requests measured | {numbers["measured"]:.0f} ({numbers["missing"]:.0f} never assigned) |
| publish rate achieved | {numbers["rate"]:.0f} requests/s ({2 * numbers["rate"]:.0f} records/s on `intake.events`) |
| assignments per second, until drained | {numbers["throughput"]:.0f} ({verdict}) |
| **lag p50** | **{numbers["p50"]:.0f} ms** |
| lag p90 | {numbers["p90"]:.0f} ms |
| **lag p99** | **{numbers["p99"]:.0f} ms** |
| lag max | {numbers["max"]:.0f} ms |
| dispatch process CPU | {run.dispatch_cores:.2f} cores |
| whole machine busy | {run.machine_cores_busy:.2f} cores (broker, generator, dispatch, anything else) |
| load average before | {run.load_before:.2f} |

Per 10 s of the measured phase (ms):

| window | p50 | p99 |
|---|---|---|
{rows}
"""


def markdown(runs: list[tuple[Run, dict[str, float]]], fsync: float, external_broker: bool) -> str:
    m = machine()
    first = runs[0][0]
    rates = ",".join(dict.fromkeys(f"{run.rate:.0f}" for run, _ in runs))
    befores = [run.label.removeprefix("before (").removesuffix(")") for run, _ in runs if run.label != "now"]
    before = f" --before {befores[0]}" if befores else ""
    summary_rows = "\n".join(
        f"| {run.label} | {run.rate:.0f} | {n['throughput']:.0f} | {1000 * run.dispatch_cores / n['throughput']:.2f} | "
        f"{n['p50']:.0f} | {n['p99']:.0f} | {n['missing']:.0f} | {run.load_before:.1f} |"
        for run, n in runs
        if n["throughput"]
    )
    return f"""# Dispatch: lag from triage to assignment

`python -m deploy.bench.dispatch_lag --rate {rates}{before}` ({first.warmup:.0f} s
warm-up, then {first.seconds:.0f} s measured, per rate). Lag = Kafka timestamp of `job.assigned` on `dispatch.events`
minus the timestamp of its `service_request.triaged` on `intake.events` (both CreateTime, set by the producing clients on
this machine), matched by request_id. Every request is auto-assigned ({first.technicians} technicians in the request's
region). Each rate runs against a fresh dispatch process and database (with `--before`, first the one served from
that revision's tree, then this checkout's).

| dispatch | rate (requests/s) | dispatch assigned /s | CPU ms per assignment | lag p50 (ms) | lag p99 (ms) | never assigned | load average before |
|---|---|---|---|---|---|---|---|
{summary_rows}

Setup: {m.cores} cores ({m.cpu_model}), {m.memory_gb:.0f} GB, Python {m.python}, Kafka {m.kafka}
({"the broker at KAFKA_BOOTSTRAP" if external_broker else "a single local broker started by the bench"}), topics with 3
partitions, dispatch as one uvicorn process on SQLite (WAL, synchronous=FULL; a 4 KiB write+fsync takes {fsync:.2f} ms
here), the consumer applying up to 100 events per transaction (their ids claimed in one step, each event's
effect in a savepoint), the outbox relay publishing with acks=all. The load generator, the broker and dispatch
share the machine; other work may have been running on it too (see the load average and busy cores). CPU per
assignment: dispatch's process CPU (consumer, reactions, relay, HTTP server idle) over the assignments it made.

What the lag is made of: the consumer's fetch; per chunk of a poll, one transaction: the event ids claimed, the
chunk's requests, their jobs and the candidates of their regions and product lines read in two trips; per
`received` the request's row, per `triaged` the append of `job.created` + `job.assigned` with two SLA deadlines,
the job's row and its technician's open jobs, all riding with the chunk's next trip (in practice its last, before
the commit); the commit with fsync; the relay's wake-up, its batch to Kafka (acks=all) and the broker's append.

{chr(10).join(_section(run, n) for run, n in runs)}"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.bench.dispatch_lag", description=__doc__)
    parser.add_argument("--rate", default="300", help="requests per second, or several: 300,60 (default 300)")
    parser.add_argument("--seconds", type=float, default=60, help="measured seconds per rate (default 60)")
    parser.add_argument("--warmup", type=float, default=5, help="warm-up seconds, not measured (default 5)")
    parser.add_argument("--technicians", type=int, default=20)
    parser.add_argument("--before", help="git revision to run first at each rate (e.g. main)")
    parser.add_argument("--in-process", action="store_true", help="the consumer path alone, no broker")
    parser.add_argument("--requests", type=int, default=3000, help="in-process: requests measured (default 3000)")
    parser.add_argument("--repeat", type=int, default=1, help="in-process: runs per tree, alternating (medians)")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "bench-dispatch.md")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-dispatch-") as tmp:
        workdir = Path(tmp)
        trees: list[tuple[str, Path]] = [("now", ROOT)]
        if args.before:
            before = workdir / "before"
            before.mkdir()
            _export(args.before, before)
            trees.insert(0, (f"before ({args.before})", before))
        if args.in_process:
            compare(before if args.before else None, ROOT, args.requests, args.before or "", args.repeat)
            return 0
        runs = [
            (
                Run(
                    rate=float(rate),
                    label=label,
                    seconds=args.seconds,
                    warmup=args.warmup,
                    technicians=args.technicians,
                ),
                root,
            )
            for rate in args.rate.split(",")
            for label, root in trees
        ]
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP")
        broker = None
        try:
            if not bootstrap:
                ensure_jars()
                broker = LocalKafkaBroker(data_dir=workdir / "kafka").start()
                bootstrap = broker.bootstrap
            for i, (run, root) in enumerate(runs):
                rundir = workdir / f"run-{i}"
                rundir.mkdir()
                asyncio.run(measure(bootstrap, rundir, run, lambda message: print(message, flush=True), root))
                numbers = summary(run)
                print(
                    f"{run.label} at {run.rate:.0f}/s: triaged -> job.assigned over {numbers['assigned']:.0f} requests: "
                    f"p50 {numbers['p50']:.0f} ms, p90 {numbers['p90']:.0f} ms, p99 {numbers['p99']:.0f} ms, "
                    f"max {numbers['max']:.0f} ms; missing {numbers['missing']:.0f}; dispatch assigned "
                    f"{numbers['throughput']:.0f}/s on {run.dispatch_cores:.2f} cores (machine busy "
                    f"{run.machine_cores_busy:.2f} cores, load before {run.load_before:.2f})",
                    flush=True,
                )
                for start, p50, p99 in slices(run):
                    print(f"  {start:3d}-{start + 10:<3d} s  p50 {p50:6.0f} ms  p99 {p99:6.0f} ms")
            fsync = fsync_ms(workdir)
        finally:
            if broker is not None:
                broker.stop()
    results = [(run, summary(run)) for run, _ in runs]
    if not args.no_write:
        args.output.write_text(markdown(results, fsync, broker is None))
        print(f"wrote {args.output}")
    return 0 if all(n["missing"] == 0 for _, n in results) else 1


def _export(revision: str, into: Path) -> None:
    """The tree of `revision`, as files (no git worktree: nothing is added to the repository)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)


if __name__ == "__main__":
    sys.exit(main())
