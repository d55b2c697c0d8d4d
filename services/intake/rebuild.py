"""`python -m services.intake.rebuild`: fold every request afresh from the event store into the read model."""

import asyncio

from services.intake.app import IntakeSettings
from services.intake.read_model import rebuild
from shared.eventstore.store import EventStore
from shared.runtime import ServiceRuntime


async def main() -> None:
    settings = IntakeSettings()
    db = ServiceRuntime.database(settings)
    try:
        count = await rebuild(db, EventStore(source=settings.service_name))
        print(f"rebuilt {count} service requests")
    finally:
        await db.dispose()


if __name__ == "__main__":
    asyncio.run(main())
