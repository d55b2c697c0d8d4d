"""Load generators: wrk with a Lua script (preferred, cheap on CPU), or a small asyncio client."""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from deploy.bench.payloads import request_body_template

LUA = Path(__file__).with_name("post.lua")
WRK_HINT = "apt-get install -y wrk"


@dataclass(frozen=True)
class LoadResult:
    """One load run: counts, wall time, latency percentiles and the generator's own CPU time."""

    concurrency: int
    requests: int
    seconds: float
    created: int
    other: int
    errors: int
    p50_ms: float
    p99_ms: float
    generator_cpu: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def all_created(self) -> bool:
        return self.requests > 0 and self.created == self.requests and self.other == 0 and self.errors == 0


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_wrk(url: str, concurrency: int, seconds: float, token: str, prefix: str) -> LoadResult:
    """wrk, one thread, `concurrency` keep-alive connections; every request has a serial of its own."""
    command = [
        "wrk",
        "-t1",
        f"-c{concurrency}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        url,
        "--",
        token,
        prefix,
        request_body_template(),
    ]
    before = _children_cpu()
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    cpu = _children_cpu() - before
    line = next((out for out in done.stdout.splitlines() if out.startswith("BENCH_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    data = json.loads(line.removeprefix("BENCH_JSON "))
    return LoadResult(
        concurrency=concurrency,
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        created=data["created"],
        other=data["other"],
        errors=data["errors"],
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        generator_cpu=cpu,
    )


def run_load(url: str, concurrency: int, seconds: float, token: str, prefix: str) -> LoadResult:
    """wrk when installed, else the asyncio fallback (which competes harder for the CPU)."""
    if wrk_available():
        return run_wrk(url, concurrency, seconds, token, prefix)
    from deploy.bench.pyload import run_python_load

    return run_python_load(url, concurrency, seconds, token, prefix)
