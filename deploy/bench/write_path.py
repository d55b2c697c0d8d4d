"""`python -m deploy.bench.write_path`: the write path before and after a change, in the same run.

HTTP (default): POST /v1/service-requests on three servers measured one after another at each concurrency, so
that all three meet the same machine: the bare FastAPI endpoint (the ceiling), intake at `--before` (a git
revision, exported to a temporary directory and served from there) and intake of this checkout. Prints req/s,
p50/p99, the server's CPU per request (all its workers) and each intake's ratio to the bare endpoint.
`--postgres --workers 2`: intake on a local PostgreSQL server (Debian's binaries, as the tests start it), a
database each, with two uvicorn workers; the database server's CPU per request is printed too.

`--in-process`: intake's command path alone, without HTTP or Kafka — `Application.handle` of an open inside
`Database.unit_of_work` (as the route runs it), from `--concurrency` tasks, group commit on, SQLite with
synchronous=FULL — for this checkout and for `--before`, each in a process of its own. Prints the process's CPU
per command. Nothing is written."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def _export(revision: str, into: Path) -> Path:
    """The tree of `revision`, as files (no git worktree: nothing is added to the repository)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def _in_process(commands: int, concurrency: int) -> None:
    """Run in the checkout whose code is first on sys.path (the parent starts this with cwd = that tree)."""
    from datetime import date

    import uvloop

    import services.intake.webhooks.tables  # noqa: F401  (intake's whole schema)
    from services.intake.app import IntakeSettings
    from services.intake.application import COMMANDS, integrity_conflict
    from services.intake.commands import OpenServiceRequest
    from services.intake.quotes import QuoteTerms
    from services.intake.read_model import PROJECTIONS, metadata
    from services.intake.webhooks.queue import DeliveryQueue, IntakeApplication
    from shared.auth import Actor, Principal, Role
    from shared.clock import SystemClock
    from shared.contracts.intake import Customer, Product
    from shared.domain import TimeRules
    from shared.eventstore.database import Database
    from shared.eventstore.store import EventStore, new_metadata
    from shared.eventstore.tables import service_schema
    from shared.kernel import Kernel

    async def main() -> None:
        workdir = Path(tempfile.mkdtemp(prefix="servicetrail-write-path-"))
        url = f"sqlite+aiosqlite:///{workdir / 'intake.db'}"
        db = Database(url)
        await db.create_all(service_schema(metadata))
        settings = IntakeSettings(database_url=url, auth_secret="x" * 40)
        clock = SystemClock()
        kernel = Kernel(
            db=db,
            store=EventStore("intake"),
            clock=clock,
            time_rules=TimeRules.from_settings(settings),
            projections=PROJECTIONS,
            commands=COMMANDS,
            provided={QuoteTerms: settings.quote_terms()},
            on_integrity_error=integrity_conflict(db),
        )
        application = IntakeApplication(kernel, DeliveryQueue(clock))
        actor = Actor.of(Principal(subject="bench", roles=frozenset({Role.agent})))

        def command() -> OpenServiceRequest:
            return OpenServiceRequest(
                dealer_id=None,
                channel="hotline",
                customer=Customer(name="Ann Farmer", phone="+49 170 5550101", region="north"),
                product=Product(serial=f"SN-{uuid.uuid4().hex[:12]}", model="T-100", product_line="tractor"),
                purchase_date=date(2025, 3, 1),
                symptom="Engine stalls when cold",
                customer_tier="standard",
                urgent=False,
            )

        async def opens(count: int) -> None:
            todo = iter(range(count))

            async def worker() -> None:
                for _ in todo:
                    async with db.unit_of_work():
                        await application.handle(command(), actor, new_metadata())

            await asyncio.gather(*(worker() for _ in range(concurrency)))

        await opens(200)  # warm-up: caches, the first pages of the file
        cpu, wall = time.process_time(), time.perf_counter()
        await opens(commands)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        print(
            f"{commands} opens from {concurrency} tasks: {commands / wall:6.0f}/s wall, "
            f"CPU {cpu / commands * 1000:.3f} ms per command (the whole process)",
            flush=True,
        )
        await db.dispose()
        shutil.rmtree(workdir, ignore_errors=True)

    uvloop.run(main())


def _tree_cpu(pid: int | None) -> float:
    """CPU seconds of a process and all its descendants (uvicorn's workers, PostgreSQL's backends)."""
    from deploy.bench.procs import cpu_seconds

    if pid is None:
        return 0.0
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    tree, grew = {pid}, True
    while grew:
        found = {child for child, parent in parents.items() if parent in tree} - tree
        tree |= found
        grew = bool(found)
    return sum(cpu_seconds(p) for p in tree)


def _measure_tree(
    pid: int | None, database_pid: int | None, url: str, concurrency: int, seconds: float, token: str, prefix: str
) -> Any:
    """`http_bench._measure` with the CPU of whole process trees: the server's (all its workers) and, in the
    place of the broker's, the database server's."""
    from deploy.bench.http_bench import Level
    from deploy.bench.load import run_load
    from deploy.bench.sysinfo import busy_cpu_seconds

    server, database, machine, started = _tree_cpu(pid), _tree_cpu(database_pid), busy_cpu_seconds(), time.monotonic()
    load = run_load(url, concurrency, seconds, token, prefix)
    machine_cores = (busy_cpu_seconds() - machine) / (time.monotonic() - started)
    return Level(
        load=load,
        server_cores=(_tree_cpu(pid) - server) / load.seconds,
        broker_cores=(_tree_cpu(database_pid) - database) / load.seconds,
        machine_cores=machine_cores,
    )


def _http(before: Path, levels: list[int], seconds: float, *, postgres: bool, workers: int) -> None:
    from deploy.bench.group_commit import _row
    from deploy.bench.http_bench import SECRET
    from deploy.bench.load import run_load
    from deploy.bench.procs import Server, scratch_with_broker
    from deploy.postgres.launcher import LocalPostgres, create_database
    from shared.auth import mint_token

    class ServedFrom(Server):
        """A bench server whose code is the tree at `root`; intake with `workers` uvicorn workers."""

        def __init__(self, kind: str, workdir: Path, env: dict[str, str], root: Path, workers: int = 1) -> None:
            super().__init__(kind, workdir, env, root)
            self.workers = workers

        def command(self) -> list[str]:
            if self.workers == 1:  # exactly as the other benches serve (deploy/bench/serve.py)
                return super().command()
            return [
                *(sys.executable, "-m", "uvicorn", "services.intake.app:create_app", "--factory"),
                *("--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers)),
                *("--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"),
            ]

    token = mint_token(SECRET, subject="bench", roles=["agent"])
    with ExitStack() as stack:
        workdir, bootstrap = scratch_with_broker(stack, "servicetrail-write-path-")
        database_pid, database_server = None, None
        if postgres:
            database_server = LocalPostgres().start()
            stack.callback(database_server.stop)
            database_pid = database_server._process.pid if database_server._process else None
        servers = {}
        for name, kind, root in (
            ("bare", "bare", ROOT),
            ("intake before", "intake", before),
            ("intake now", "intake", ROOT),
        ):
            home = workdir / name.replace(" ", "-")
            home.mkdir()
            url = f"sqlite+aiosqlite:///{home / 'intake.db'}"
            if database_server is not None and kind == "intake":
                url = asyncio.run(create_database(database_server.url, f"intake_{uuid.uuid4().hex[:8]}"))
            env = {
                "DATABASE_URL": url,
                "KAFKA_BOOTSTRAP": bootstrap,
                "AUTH_SECRET": SECRET,
                "CONSUMER_GROUP": f"bench-{uuid.uuid4().hex[:8]}",
            }
            served = ServedFrom(kind, home, env, root, workers if kind == "intake" else 1)
            servers[name] = stack.enter_context(served)
        for server in servers.values():
            run_load(server.url, 8, 2, token, f"w{uuid.uuid4().hex[:6]}")
        print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)
        for concurrency in levels:
            rps = {}
            for name, server in servers.items():
                prefix = f"{name[:3]}{concurrency}{uuid.uuid4().hex[:6]}"
                level = _measure_tree(server.pid, database_pid, server.url, concurrency, seconds, token, prefix)
                rps[name] = level.load.rps
                database = level.broker_cores / level.load.rps * 1000 if level.load.rps else 0.0
                print(_row(name, concurrency, level) + (f"  PostgreSQL {database:.2f} ms/request" if postgres else ""))
            ratios = "  ".join(f"{name} {rps[name] / rps['bare']:.3f}" for name in ("intake before", "intake now"))
            load = " ".join(f"{v:.2f}" for v in os.getloadavg())
            print(f"{'':18} c={concurrency:<3} of the bare endpoint: {ratios}   load average {load}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.bench.write_path", description=__doc__)
    parser.add_argument("--before", default="main", help="git revision to compare with (default main)")
    parser.add_argument("--levels", default="1,8,32,64", help="HTTP concurrencies (default 1,8,32,64)")
    parser.add_argument("--seconds", type=float, default=8, help="seconds per server and level (default 8)")
    parser.add_argument("--postgres", action="store_true", help="intake on a local PostgreSQL server, not SQLite")
    parser.add_argument("--workers", type=int, default=1, help="intake's uvicorn workers (default 1)")
    parser.add_argument("--in-process", action="store_true", help="the command path alone, no HTTP")
    parser.add_argument("--commands", type=int, default=2000, help="in-process: opens measured (default 2000)")
    parser.add_argument("--concurrency", type=int, default=64, help="in-process: tasks (default 64)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="servicetrail-before-") as tree:
        before = _export(args.before, Path(tree))
        if not args.in_process:
            levels = [int(c) for c in args.levels.split(",")]
            _http(before, levels, args.seconds, postgres=args.postgres, workers=args.workers)
            return 0
        for name, root in ((f"before ({args.before})", before), ("now", ROOT)):
            print(f"{name:>18}: ", end="", flush=True)
            # This file's function, run with `root`'s code first on sys.path ("" = the working directory).
            code = f"import runpy; runpy.run_path({__file__!r}, run_name='child')['_in_process']"
            code += f"({args.commands}, {args.concurrency})"
            subprocess.run([sys.executable, "-c", code], cwd=root, check=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
