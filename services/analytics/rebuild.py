"""`python -m services.analytics.rebuild`: replay the four topics into a fresh generation of the projection and
switch analytics' views to it, in the DuckDB file of a stopped analytics. A running analytics holds its file
(DuckDB allows one read-write process per file): rebuild it in place with `POST /v1/admin/rebuild`, which
keeps the views answering meanwhile."""

import asyncio
import json
import sys

from services.analytics.projection import LockedByAnotherProcess, Projection
from services.analytics.replay import rebuild
from services.analytics.settings import AnalyticsSettings


async def main() -> int:
    settings = AnalyticsSettings()
    try:
        projection = await asyncio.to_thread(
            Projection, settings.duckdb_path(), memory_limit=settings.analytics_duckdb_memory_limit
        )
    except LockedByAnotherProcess:
        print(
            f"{settings.duckdb_path()} is open in a running analytics: rebuild it there with "
            "POST /v1/admin/rebuild (admin token), or stop it first.",
            file=sys.stderr,
        )
        return 2
    try:
        report = await rebuild(
            projection,
            settings.kafka_bootstrap,
            batch_size=settings.rebuild_batch_size,
            on_progress=lambda stage, message: print(message, flush=True),
        )
        print(json.dumps(report.as_dict(), indent=2))
        return 0
    finally:
        projection.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
