"""Child processes of the bench: a server under test, and CPU time read from /proc."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import ExitStack
from pathlib import Path

from deploy.kafka.launcher import LocalKafkaBroker, ensure_jars, free_port
from shared.contracts.topics import ALL_TOPICS
from shared.messaging.kafka import ensure_topics

_TICKS = os.sysconf("SC_CLK_TCK")
_ROOT = Path(__file__).resolve().parents[2]  # this checkout


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of a process and its reaped children (0 when it is gone or unknown)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(v) for v in fields[11:15]) / _TICKS  # utime stime cutime cstime


def scratch_with_broker(stack: ExitStack, prefix: str) -> tuple[Path, str]:
    """A scratch directory and a local Kafka broker with the contract's topics, both gone when `stack` closes:
    the directory, and the broker's bootstrap address."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    stack.callback(shutil.rmtree, workdir, True)
    ensure_jars()
    broker = stack.enter_context(LocalKafkaBroker())
    asyncio.run(ensure_topics(broker.bootstrap, ALL_TOPICS))
    return workdir, broker.bootstrap


def stop_group(process: subprocess.Popen[bytes] | None, timeout: float = 20) -> None:
    """Stop a child started in a session of its own, with whatever it started: SIGTERM to its process group
    (uvicorn shuts down gracefully: the lifespan stops the relay), SIGKILL if it hangs."""
    if process is None or process.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
            process.wait(wait)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


class Server:
    """`python -m deploy.bench.serve <kind>` on a free port; output goes to <workdir>/<kind>.log."""

    def __init__(self, kind: str, workdir: Path, env: dict[str, str] | None = None, root: Path = _ROOT) -> None:
        self.kind, self.workdir = kind, workdir
        self.root = root  # whose code is served (`-m` takes the working directory first)
        self.port = free_port()
        self.env = {**os.environ, **(env or {})}
        self.log = workdir / f"{kind}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def command(self) -> list[str]:
        """The server's command line (run from `root`)."""
        return [sys.executable, "-m", "deploy.bench.serve", self.kind, str(self.port)]

    def start(self, timeout: float = 60) -> Server:
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                self.command(),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.root,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while not self._ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.kind} server did not become ready:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)
        return self

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as answer:
                return answer.status == 200
        except (OSError, urllib.error.URLError):
            return False

    def stop(self, timeout: float = 20) -> None:
        process, self.process = self.process, None
        stop_group(process, timeout)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
