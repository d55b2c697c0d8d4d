"""HTTP part: POST /v1/service-requests on the real intake service next to a bare FastAPI app."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from deploy.bench.kafka_util import end_offset_sum
from deploy.bench.load import LoadResult, run_load
from deploy.bench.procs import Server, cpu_seconds
from deploy.bench.sysinfo import busy_cpu_seconds
from shared.auth import mint_token
from shared.contracts.topics import INTAKE

SECRET = "bench-secret-" + "x" * 32
NOISY_CORES = 0.3  # CPU of other processes above which a pair of runs is repeated once
Log = Callable[[str], None]


@dataclass
class Level:
    """One concurrency level of one server, with the CPU each process spent meanwhile (in cores)."""

    load: LoadResult
    server_cores: float
    broker_cores: float
    machine_cores: float

    @property
    def generator_cores(self) -> float:
        return self.load.generator_cpu / self.load.seconds if self.load.seconds else 0.0

    @property
    def other_cores(self) -> float:
        """CPU that neither the server, the broker nor the load generator used (other work on the machine)."""
        return max(0.0, self.machine_cores - self.server_cores - self.broker_cores - self.generator_cores)


@dataclass
class RelayCheck:
    """Did every request intake created reach `intake.events`?"""

    received_events: int = 0
    outbox_left: int = -1
    offset_delta: int = 0
    seconds_to_drain: float = 0.0

    @property
    def ok(self) -> bool:
        return self.outbox_left == 0 and self.offset_delta >= self.received_events > 0


@dataclass
class HttpResults:
    """Both servers' levels by concurrency, and the checks on intake's run."""

    bare: dict[int, Level] = field(default_factory=dict)
    intake: dict[int, Level] = field(default_factory=dict)
    relay: RelayCheck = field(default_factory=RelayCheck)
    intake_2xx_only: bool = False


def _measure(
    server: Server, broker_pid: int | None, concurrency: int, seconds: float, token: str, prefix: str
) -> Level:
    server_before, broker_before = cpu_seconds(server.pid), cpu_seconds(broker_pid)
    machine_before, started = busy_cpu_seconds(), time.monotonic()
    load = run_load(server.url, concurrency, seconds, token, prefix)
    machine_cores = (busy_cpu_seconds() - machine_before) / (time.monotonic() - started)
    return Level(
        load=load,
        server_cores=(cpu_seconds(server.pid) - server_before) / load.seconds,
        broker_cores=(cpu_seconds(broker_pid) - broker_before) / load.seconds,
        machine_cores=machine_cores,
    )


def _log_level(log: Log, kind: str, concurrency: int, level: Level) -> None:
    log(
        f"  {kind:6} c={concurrency:<3} {level.load.rps:8.0f} req/s  p50 {level.load.p50_ms:6.2f} ms  "
        f"p99 {level.load.p99_ms:7.2f} ms  cores: server {level.server_cores:.2f} broker "
        f"{level.broker_cores:.2f} load {level.generator_cores:.2f} other {level.other_cores:.2f}  "
        f"{'all 201' if level.load.all_created else 'NOT ALL 201'}"
    )


def _run_pairs(
    bare: Server,
    intake: Server,
    broker_pid: int | None,
    levels: list[int],
    seconds: float,
    warmup: float,
    token: str,
    results: HttpResults,
    log: Log,
) -> list[LoadResult]:
    """Per concurrency, bare then intake right after it, so that both meet the same machine. A pair during
    which other processes took more than `NOISY_CORES` is measured once more, and the quieter pair kept.
    Returns every intake load, kept or not (each of its responses must have been a 201)."""
    run = uuid.uuid4().hex[:8]
    for server in (bare, intake):
        run_load(server.url, 8, warmup, token, f"{run}w")
    intake_loads = []
    for concurrency in levels:
        pairs = []
        for attempt in range(2):
            prefix = f"{run}c{concurrency}a{attempt}"
            pair = (
                _measure(bare, broker_pid, concurrency, seconds, token, prefix),
                _measure(intake, broker_pid, concurrency, seconds, token, prefix),
            )
            intake_loads.append(pair[1].load)
            for kind, level in zip(("bare", "intake"), pair):
                _log_level(log, kind, concurrency, level)
            pairs.append(pair)
            if max(level.other_cores for level in pair) < NOISY_CORES:
                break
            log(f"  other processes were busy: measuring c={concurrency} once more")
        results.bare[concurrency], results.intake[concurrency] = min(
            pairs, key=lambda pair: max(level.other_cores for level in pair)
        )
    return intake_loads


def _outbox_state(db_file: Path) -> tuple[int, int]:
    """(service_request.received events, rows still in the outbox), read beside the running server."""
    with sqlite3.connect(f"file:{db_file}?mode=ro", uri=True, timeout=30) as conn:
        received = conn.execute("SELECT count(*) FROM events WHERE type = 'service_request.received'").fetchone()[0]
        left = conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
    return received, left


def _wait_for_relay(db_file: Path, timeout: float = 60) -> tuple[int, int, float]:
    started = time.monotonic()
    while True:
        received, left = _outbox_state(db_file)
        if left == 0 or time.monotonic() - started > timeout:
            return received, left, time.monotonic() - started
        time.sleep(0.1)


def run_http(
    bootstrap: str,
    broker_pid: int | None,
    workdir: Path,
    levels: list[int],
    seconds: float,
    warmup: float,
    log: Log = print,
) -> HttpResults:
    """Both servers up, intake on a fresh SQLite file; pairs of runs per concurrency; finally check that
    intake's relay caught up."""
    token = mint_token(SECRET, subject="bench", roles=["agent"])
    results = HttpResults()
    db_file = workdir / "intake.db"
    env = {
        "DATABASE_URL": f"sqlite+aiosqlite:///{db_file}",
        "KAFKA_BOOTSTRAP": bootstrap,
        "AUTH_SECRET": SECRET,
        "CONSUMER_GROUP": f"bench-intake-{uuid.uuid4().hex[:8]}",
    }
    offsets_before = asyncio.run(end_offset_sum(bootstrap, INTAKE))
    with Server("bare", workdir) as bare, Server("intake", workdir, env) as intake:
        intake_loads = _run_pairs(bare, intake, broker_pid, levels, seconds, warmup, token, results, log)
        received, left, drained = _wait_for_relay(db_file)
    offsets_after = asyncio.run(end_offset_sum(bootstrap, INTAKE))
    results.relay = RelayCheck(
        received_events=received,
        outbox_left=left,
        offset_delta=offsets_after - offsets_before,
        seconds_to_drain=drained,
    )
    results.intake_2xx_only = all(load.all_created for load in intake_loads)
    return results
