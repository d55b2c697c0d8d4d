"""`python -m deploy.bench.http_in_process --before REV`: CPU per POST /v1/service-requests of the whole intake
service in one process, without uvicorn and sockets, for this checkout and for `REV`, interleaved.

The ASGI app is called directly from `--concurrency` tasks (a bearer token, the bench's body), with its lifespan
running: the relay, intake's own consumer and the scheduler all run, on the in-process broker
(`shared.messaging.memory`) and SQLite with synchronous=FULL. Each round runs each tree in a fresh process of
its own (alternately first) and prints the process's CPU per request, so the machine's other load moves both
alike: a ratio to read, where the HTTP bench on a loaded box mostly measures the box. The CPU is also split by
thread, from the kernel's own accounting (/proc, Linux): the event loop's thread, and aiosqlite's threads, where
SQLite itself runs (the writer's, and the read connections'), with the Python of the steps sent there. A
sampling profiler counts those threads' idle waits on their queues as samples: this split does not."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from deploy.bench.write_path import ROOT, _export


async def post(app: Any, path: str, token: str, body: bytes) -> int:
    """POST a JSON `body` with a bearer token straight to the ASGI `app` (no server, no socket); the answer's
    status. Defined here, not in a module of its own, because this file also runs inside the `--before` tree."""
    import asyncio

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"bench"),
            (b"content-type", b"application/json"),
            (b"authorization", f"Bearer {token}".encode()),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "state": {},
        "app": app,
    }
    delivered = False

    async def receive() -> dict[str, object]:
        nonlocal delivered
        if delivered:
            await asyncio.Event().wait()
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    status = 0

    async def send(message: dict[str, object]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])  # type: ignore[call-overload]

    await app(scope, receive, send)
    return status


def _thread_cpu() -> dict[int, float]:
    """CPU seconds of each thread of this process so far, by native thread id (Linux /proc; empty elsewhere)."""
    import os

    ticks = os.sysconf("SC_CLK_TCK")
    found: dict[int, float] = {}
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return found
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended
        found[int(tid)] = (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    return found


def _serve_in_process(requests: int, concurrency: int, warmup: int) -> None:
    """Run in the tree first on sys.path (the parent starts this with cwd = that tree)."""
    import asyncio
    import shutil
    import threading
    import uuid

    import uvloop

    from deploy.bench.payloads import request_body_template
    from services.intake.app import IntakeSettings, create_app
    from shared.auth import mint_token
    from shared.contracts.topics import ALL_TOPICS
    from shared.messaging import memory

    secret = "x" * 40
    bootstrap = f"{memory.SCHEME}bench-{uuid.uuid4().hex[:8]}"
    memory.broker_for(bootstrap).create_topics(ALL_TOPICS, partitions=3)
    workdir = Path(tempfile.mkdtemp(prefix="servicetrail-http-in-process-"))
    settings = IntakeSettings(
        database_url=f"sqlite+aiosqlite:///{workdir / 'intake.db'}",
        kafka_bootstrap=bootstrap,
        auth_secret=secret,
        consumer_group=f"bench-{uuid.uuid4().hex[:6]}",
    )
    app = create_app(settings, configure_logs=False)
    token = mint_token(secret, subject="bench", roles=["agent"])
    template = request_body_template()

    async def one(body: bytes) -> int:
        return await post(app, "/v1/service-requests", token, body)

    async def load(count: int, prefix: str) -> list[int]:
        statuses: list[int] = []
        remaining = iter(range(count))

        async def worker(number: int) -> None:
            for counter in remaining:
                statuses.append(await one((template % (prefix, number, counter)).encode()))

        await asyncio.gather(*(worker(n) for n in range(concurrency)))
        return statuses

    async def main() -> None:
        async with app.router.lifespan_context(app):
            await load(warmup, "warm")
            threads = _thread_cpu()
            started, wall = time.process_time(), time.perf_counter()
            statuses = await load(requests, uuid.uuid4().hex[:6])
            cpu, elapsed = time.process_time() - started, time.perf_counter() - wall
            spent = {tid: seconds - threads.get(tid, 0.0) for tid, seconds in _thread_cpu().items()}
            sqlite_threads = {t.native_id for t in threading.enumerate() if "_connection_worker_thread" in t.name}
        created = statuses.count(201)
        loop_cpu = spent.get(threading.main_thread().native_id or 0, 0.0)
        sqlite_cpu = sum(seconds for tid, seconds in spent.items() if tid in sqlite_threads)
        per = 1000 / requests
        print(f"{cpu * per:.3f} {created} {requests / elapsed:.0f} {loop_cpu * per:.3f} {sqlite_cpu * per:.3f}")

    try:
        uvloop.run(main())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _round(root: Path, requests: int, concurrency: int, warmup: int) -> tuple[float, int, float, float, float]:
    """One tree's run: ms CPU per request, requests created, req/s, and of the CPU per request the event
    loop's thread's and SQLite's threads' (ms)."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    command = [sys.executable, "-c", _CHILD, str(requests), str(concurrency), str(warmup)]
    out = subprocess.run(command, cwd=root, env=env, check=True, capture_output=True, text=True).stdout
    cpu, created, rate, loop_cpu, sqlite_cpu = out.split()[-5:]
    return float(cpu), int(created), float(rate), float(loop_cpu), float(sqlite_cpu)


# The child runs this file's code with the measured tree first on sys.path (an older tree may not have the file).
_CHILD = (
    "import runpy, sys\n"
    f"serve = runpy.run_path({__file__!r})['_serve_in_process']\n"
    "serve(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))\n"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.bench.http_in_process", description=__doc__)
    parser.add_argument("--before", default="main", help="git revision to compare with (default main)")
    parser.add_argument("--requests", type=int, default=2000, help="requests measured per round (default 2000)")
    parser.add_argument("--concurrency", type=int, default=64, help="tasks sending requests (default 64)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each tree once per round (default 3)")
    parser.add_argument("--warmup", type=int, default=300, help="requests before measuring (default 300)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="servicetrail-before-") as tmp:
        before = _export(args.before, Path(tmp))
        trees = {f"before ({args.before[:10]})": before, "now": ROOT}
        results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in trees}
        for number in range(args.rounds):
            order = list(trees.items()) if number % 2 == 0 else list(reversed(trees.items()))
            for name, root in order:
                cpu, created, rate, loop_cpu, sqlite_cpu = _round(root, args.requests, args.concurrency, args.warmup)
                results[name].append((cpu, loop_cpu, sqlite_cpu))
                load = " ".join(f"{v:.1f}" for v in os.getloadavg())
                print(
                    f"round {number + 1} {name:20} {cpu:.3f} ms CPU/request (loop thread {loop_cpu:.3f}, SQLite "
                    f"threads {sqlite_cpu:.3f})  {rate:5.0f} req/s  {created}/{args.requests} created  load {load}",
                    flush=True,
                )
        for name, values in results.items():
            medians = [sorted(column)[len(column) // 2] for column in zip(*values, strict=True)]
            print(
                f"{name:20} median {medians[0]:.3f} ms CPU per request (loop thread {medians[1]:.3f}, SQLite threads "
                f"{medians[2]:.3f}; {len(values)} rounds)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
