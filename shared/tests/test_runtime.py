"""A service's own background loops run in its ServiceRuntime beside the relay, the consumer and the scheduler:
started with it, asked to stop with it, and their task ends before the database closes."""

import asyncio

import pytest
from sqlalchemy import MetaData

from services.intake.app import create_app
from services.intake.tests.conftest import intake_settings
from shared.eventstore.tables import service_schema
from shared.runtime import ServiceRuntime
from shared.settings import ServiceSettings
from shared.testing.app import running


class Loop:
    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.stopping = asyncio.Event()
        self.finished = False

    async def run(self) -> None:
        self.started.set()
        await self.stopping.wait()
        self.finished = True

    async def stop(self) -> None:
        self.stopping.set()


def runtime(tmp_path, event_bus) -> ServiceRuntime:
    settings = ServiceSettings(
        service_name="runtime-test", database_url=f"sqlite+aiosqlite:///{tmp_path}/r.db", kafka_bootstrap=event_bus
    )
    return ServiceRuntime.build(
        settings, metadata=service_schema(MetaData()), db=ServiceRuntime.database(settings), consumes=[]
    )


async def test_a_registered_worker_runs_from_the_runtimes_start_to_its_stop(tmp_path, event_bus):
    service, loop = runtime(tmp_path, event_bus), Loop()
    service.add_worker("loop", loop)
    await service.start()
    await asyncio.wait_for(loop.started.wait(), 10)
    assert "loop" in {task.get_name() for task in service.tasks if not task.done()}
    await service.stop()
    assert loop.finished, "the runtime asked it to stop and waited for its task"


async def test_a_worker_name_is_registered_once(tmp_path, event_bus):
    service = runtime(tmp_path, event_bus)
    service.add_worker("loop", Loop())
    with pytest.raises(ValueError, match="registered already"):
        service.add_worker("loop", Loop())
    await service.db.dispose()


async def test_intakes_webhook_deliveries_are_one_of_its_runtimes_workers(tmp_path, event_bus):
    app = create_app(intake_settings(tmp_path, event_bus), configure_logs=False)
    async with running(app):
        runtime = app.state.runtime
        assert list(runtime.workers) == ["webhook-deliveries"]
        assert "webhook-deliveries" in {task.get_name() for task in runtime.tasks if not task.done()}
