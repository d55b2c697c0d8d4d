"""A throwaway PostgreSQL server for tests and local runs: Debian's binaries, a temp data dir, a free
loopback port. As root (CI, this workplace), the server runs as the `postgres` system user, since PostgreSQL
refuses to run as root.

`postgres_for_tests()` yields a server URL: `TEST_POSTGRES_URL` when set, else a server it starts."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _bin_dir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    if not candidates:
        raise RuntimeError("PostgreSQL server binaries not found; `apt-get install postgresql` (make test does)")
    return Path(candidates[-1])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalPostgres:
    def __init__(self, port: int | None = None) -> None:
        self.bin = _bin_dir()
        self.port = port or _free_port()
        self.root = Path(tempfile.mkdtemp(prefix="servicetrail-pg-"))
        self.data = self.root / "data"
        self.run_as_postgres = os.geteuid() == 0
        self._process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """Server URL without a database name (asyncpg driver); append `/<db>`."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}"

    def _command(self, *args: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *args] if self.run_as_postgres else list(args)

    def start(self, timeout: float = 30) -> LocalPostgres:
        if self.run_as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        subprocess.run(
            self._command(
                str(self.bin / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-instructions",
            ),
            check=True,
            capture_output=True,
        )
        options = [
            "-p",
            str(self.port),
            "-k",
            str(self.root),
            "-h",
            "127.0.0.1",
            "-c",
            "fsync=on",
            "-c",
            "max_connections=200",
            "-c",
            "shared_buffers=64MB",
        ]
        log = open(self.root / "postgres.log", "ab")
        self._process = subprocess.Popen(
            self._command(str(self.bin / "postgres"), "-D", str(self.data), *options),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready = subprocess.run(
                [str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)], capture_output=True
            )
            if ready.returncode == 0:
                return self
            if self._process.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"PostgreSQL did not start: {(self.root / 'postgres.log').read_text()[-2000:]}")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()  # smart shutdown
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def postgres_for_tests() -> Iterator[str]:
    """A PostgreSQL server URL for the test session (no database name)."""
    given = os.environ.get("TEST_POSTGRES_URL")
    if given:
        yield given.rstrip("/")
        return
    server = LocalPostgres().start()
    try:
        yield server.url
    finally:
        server.stop()


async def create_database(server_url: str, name: str) -> str:
    """Create database `name` on the server and return its URL."""
    import asyncpg

    dsn = server_url.replace("postgresql+asyncpg://", "postgresql://")
    connection = await asyncpg.connect(dsn + "/postgres")
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return f"{server_url}/{name}"
