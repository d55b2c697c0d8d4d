"""What the numbers were measured on: machine, versions, aiokafka's C extensions, background CPU load."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

PACKAGES = ("aiokafka", "fastapi", "uvicorn", "uvloop", "httptools", "sqlalchemy", "aiosqlite", "pydantic")


@dataclass(frozen=True)
class Machine:
    cores: int
    cpu_model: str
    memory_gb: float
    kernel: str
    python: str
    kafka: str
    packages: dict[str, str]
    aiokafka_c: bool
    aiokafka_c_detail: str


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_gb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024**2
    return 0.0


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "missing"


def aiokafka_extensions() -> tuple[bool, str]:
    """Whether aiokafka builds record batches with its Cython extensions (not the pure-Python fallback)."""
    from aiokafka import util
    from aiokafka.record import default_records

    builder = default_records.DefaultRecordBatchBuilder
    try:
        import aiokafka.record._crecords  # noqa: F401

        importable = True
    except ImportError:
        importable = False
    loaded = importable and not util.NO_EXTENSIONS and builder is not default_records._DefaultRecordBatchBuilderPy
    detail = (
        f"NO_EXTENSIONS={util.NO_EXTENSIONS}, _crecords importable={importable}, "
        f"DefaultRecordBatchBuilder from {builder.__module__}"
    )
    return loaded, detail


def machine() -> Machine:
    from deploy.kafka.launcher import KAFKA_VERSION

    loaded, detail = aiokafka_extensions()
    return Machine(
        cores=os.cpu_count() or 0,
        cpu_model=_cpu_model(),
        memory_gb=_memory_gb(),
        kernel=platform.release(),
        python=platform.python_version(),
        kafka=KAFKA_VERSION,
        packages={name: _version(name) for name in PACKAGES},
        aiokafka_c=loaded,
        aiokafka_c_detail=detail,
    )


def busy_cpu_seconds() -> float:
    """CPU seconds all processes of the machine have spent so far (user, nice, system, irq, softirq, steal)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def load_average() -> float:
    return os.getloadavg()[0]


def fsync_ms(directory: Path, rounds: int = 200) -> float:
    """Mean time of a 4 KiB write + fsync in `directory`: what a durable SQLite commit waits for at least."""
    path = directory / "fsync.probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        started = time.perf_counter()
        for _ in range(rounds):
            os.write(fd, b"\0" * 4096)
            os.fsync(fd)
        return (time.perf_counter() - started) / rounds * 1000
    finally:
        os.close(fd)
        path.unlink()


def wait_for_quiet(max_seconds: float, cores: float = 0.25, window: float = 2.0) -> float:
    """Wait (at most `max_seconds`) until the machine used less than `cores` CPU over `window` seconds; return the
    last measured use, in cores."""
    deadline = time.monotonic() + max_seconds
    while True:
        before = busy_cpu_seconds()
        time.sleep(window)
        used = (busy_cpu_seconds() - before) / window
        if used < cores or time.monotonic() >= deadline:
            return used
