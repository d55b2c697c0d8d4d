"""`python -m deploy.bench`: measure, print the tables, write docs/benchmarks.md. Cleans up after itself."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from deploy.bench.http_bench import run_http
from deploy.bench.load import WRK_HINT, wrk_available
from deploy.bench.markdown import render
from deploy.bench.relay_bench import run_relay
from deploy.bench.report import Report, console
from deploy.bench.sysinfo import fsync_ms, load_average, machine, wait_for_quiet
from deploy.kafka.launcher import LocalKafkaBroker, ensure_jars
from shared.contracts.topics import ALL_TOPICS
from shared.messaging.kafka import ensure_topics

ROOT = Path(__file__).resolve().parents[2]


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m deploy.bench", description=__doc__)
    parser.add_argument("--levels", default="1,8,32,64", help="HTTP concurrencies (default 1,8,32,64)")
    parser.add_argument("--seconds", type=float, default=8, help="seconds per concurrency (default 8)")
    parser.add_argument("--warmup", type=float, default=2, help="warm-up seconds per server (default 2)")
    parser.add_argument("--events", type=int, default=50_000, help="events for the relay part (default 50000)")
    parser.add_argument("--rounds", type=int, default=2, help="relay rounds; the fastest is kept (default 2)")
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--skip-relay", action="store_true")
    parser.add_argument(
        "--output",
        type=Path,
        default=ROOT / "docs" / "benchmarks.md",
        help="markdown report (default docs/benchmarks.md)",
    )
    parser.add_argument("--no-write", action="store_true", help="print only, do not write the report")
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=30,
        metavar="SECONDS",
        help="first wait up to this long for other work on the machine to stop (default 30)",
    )
    return parser.parse_args(argv)


def _log(message: str) -> None:
    print(message, flush=True)


def _run_async(coroutine):
    """On uvloop, like the services."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def _broker(stack: ExitStack) -> tuple[str, int | None]:
    """$KAFKA_BOOTSTRAP, or a local broker stopped and removed when the stack closes; and the broker's pid."""
    if bootstrap := os.environ.get("KAFKA_BOOTSTRAP"):
        _log(f"using the broker at KAFKA_BOOTSTRAP={bootstrap} (its CPU is not measured)")
        return bootstrap, None
    started = time.monotonic()
    ensure_jars()
    broker = stack.enter_context(LocalKafkaBroker())
    process = getattr(broker, "_process", None)  # for its CPU time only
    _log(f"Kafka {machine().kafka} started on {broker.bootstrap} in {time.monotonic() - started:.1f}s")
    return broker.bootstrap, process.pid if process else None


def _generator() -> str:
    if wrk_available():
        return "wrk 4 (1 thread, keep-alive connections = concurrency, Lua script: a new serial per request)"
    _log(f"wrk not found: using the Python load generator. For lighter load: {WRK_HINT}")
    return "Python asyncio client in the bench process (wrk not found; it costs more CPU than wrk)"


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: stop servers and broker, remove temp dirs
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # retried metadata errors of brand-new topics
    started = time.monotonic()
    levels = [int(level) for level in args.levels.split(",")]
    generator = _generator()
    if args.wait_idle > 0 and (used := wait_for_quiet(args.wait_idle)) >= 0.25:
        _log(
            f"note: other processes use {used:.2f} cores (load average {load_average():.2f}); they compete "
            "with the bench and skew its numbers (see the 'other' columns)"
        )
    workdir = Path(tempfile.mkdtemp(prefix="servicetrail-bench-"))
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, workdir, True)
        bootstrap, broker_pid = _broker(stack)
        _run_async(ensure_topics(bootstrap, ALL_TOPICS))
        http = relay = None
        if not args.skip_http:
            _log(f"HTTP: concurrency {levels}, {args.seconds:.0f}s each")
            http = run_http(bootstrap, broker_pid, workdir, levels, args.seconds, args.warmup, _log)
            check = http.relay
            _log(
                f"  relay caught up: {'yes' if check.ok else 'NO'} ({check.received_events} received events, "
                f"outbox {check.outbox_left}, intake.events +{check.offset_delta}); "
                f"all intake responses 201: {'yes' if http.intake_2xx_only else 'NO'}"
            )
        if not args.skip_relay:
            _log(f"relay: {args.events} events, {args.rounds} rounds")
            relay = _run_async(run_relay(bootstrap, broker_pid, workdir, args.events, args.rounds, _log))
        report = Report(
            machine=machine(),
            generator=generator,
            seconds=args.seconds,
            warmup=args.warmup,
            fsync_ms=fsync_ms(workdir),
            http=http,
            relay=relay,
        )
    report.total_seconds = time.monotonic() - started
    _log("\n" + console(report) + "\n")
    _log(
        f"aiokafka C extensions: {'loaded' if report.machine.aiokafka_c else 'NOT loaded'} "
        f"({report.machine.aiokafka_c_detail})"
    )
    if not args.no_write:
        args.output.write_text(render(report))
        _log(f"wrote {args.output}")
    _log(f"total {report.total_seconds:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
