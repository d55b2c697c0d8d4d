"""`python -m services.analytics.rebuild`: replay the four topics into fresh tables and switch analytics' views
to them. Safe while the service runs (it keeps answering from the old tables until the switch)."""

import asyncio
import json

from services.analytics.settings import AnalyticsSettings
from services.analytics.replay import rebuild
from services.analytics.store import prepare
from shared.eventstore.tables import metadata
from shared.runtime import ServiceRuntime

import services.analytics.tables  # noqa: F401  (registers analytics' fixed tables in `metadata`)


async def main() -> None:
    settings = AnalyticsSettings()
    db = ServiceRuntime.database(settings)
    try:
        if settings.database_auto_create:
            await db.create_all(metadata)
        await prepare(db)
        report = await rebuild(db, settings.kafka_bootstrap, batch_size=settings.rebuild_batch_size,
                               on_progress=lambda stage, message: print(message, flush=True))
        print(json.dumps(report.as_dict(), indent=2))
    finally:
        await db.dispose()


if __name__ == "__main__":
    asyncio.run(main())
