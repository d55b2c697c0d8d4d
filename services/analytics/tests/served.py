"""`python -m services.analytics` as `make run` starts it, on a free port, for the tests that need the real
process (the pages in a browser): its SQL database and its DuckDB file in the test's own directory, never the
repository's `var/` (another run's file there has another schema, or is held by a running analytics)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from deploy.kafka.launcher import free_port
from services.analytics.tests.conftest import unique
from shared.testing.app import eventually


@asynccontextmanager
async def analytics_process(workdir: Path, kafka_bootstrap: str, **settings: str) -> AsyncIterator[str]:
    """Run analytics until the block ends; yields its base URL once /healthz answers. `settings` are extra
    environment variables (ALERT_MIN_RESPONSES="1", HANDOFF_TARGETS=…)."""
    port = free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "KAFKA_BOOTSTRAP": kafka_bootstrap,
        "LOG_JSON": "false",
        "DATABASE_URL": f"sqlite+aiosqlite:///{workdir}/analytics.db",
        "SQLITE_SYNCHRONOUS": "NORMAL",
        "ANALYTICS_DUCKDB_PATH": f"{workdir}/analytics.duckdb",
        "CONSUMER_GROUP": unique("analytics-served"),
        **settings,
    }
    with open(workdir / "analytics.log", "wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.analytics", env=env, stdout=log, stderr=asyncio.subprocess.STDOUT
        )
        base = f"http://127.0.0.1:{port}"
        try:
            async with httpx.AsyncClient(base_url=base) as client:

                async def healthy() -> bool:
                    try:
                        return (await client.get("/healthz")).status_code == 200
                    except httpx.TransportError:
                        return False

                await eventually(healthy, until=bool, timeout=60, interval=0.2)
            yield base
        finally:
            if process.returncode is None:
                process.terminate()
            await asyncio.wait_for(process.wait(), 30)
