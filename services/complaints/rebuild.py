"""`python -m services.complaints.rebuild`: fold every complaint afresh from the event store into the read
model (the deadlines table is state of its own and is left as it is)."""

import asyncio

from services.complaints.app import ComplaintsSettings
from services.complaints.read_model import rebuild
from shared.eventstore.store import EventStore
from shared.runtime import ServiceRuntime


async def main() -> None:
    settings = ComplaintsSettings()
    db = ServiceRuntime.database(settings)
    try:
        count = await rebuild(db, EventStore(source=settings.service_name))
        print(f"rebuilt {count} complaints")
    finally:
        await db.dispose()


if __name__ == "__main__":
    asyncio.run(main())
