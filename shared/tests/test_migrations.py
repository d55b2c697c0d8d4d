"""Each service's Alembic history builds exactly the schema its models declare, on SQLite and PostgreSQL."""

import pytest
from alembic import command
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine

from shared.migrations import ROOT, alembic_config, service_metadata

SERVICES = sorted(p.parent.parent.name for p in (ROOT / "services").glob("*/migrations/env.py"))


@pytest.mark.parametrize("service", SERVICES)
async def test_upgrading_to_head_gives_the_schema_of_the_models_with_nothing_left_to_migrate(service, database_url):
    import asyncio

    config = alembic_config(service, database_url)
    await asyncio.to_thread(command.upgrade, config, "heads")
    await asyncio.to_thread(command.check, config)  # raises when autogenerate would find a difference

    engine = create_async_engine(database_url)
    async with engine.connect() as conn:
        tables = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    await engine.dispose()
    assert set(service_metadata(service).tables) <= tables


def test_every_service_has_a_migration_history():
    services = {p.name for p in (ROOT / "services").iterdir() if (p / "app.py").exists()}
    assert services == set(SERVICES)
