"""Alembic migrations, one history per service (`services/<name>/migrations/`), run the same way everywhere:

    python -m shared.migrations intake upgrade            # to the heads (shared tables + the service's own)
    python -m shared.migrations intake revision "add x"   # autogenerate a revision from the models
    python -m shared.migrations intake check              # fail when the models and the migrations differ

A service's tables are the shared ones (events, outbox, leases, processed_events, idempotency_keys,
deadlines) plus those of the service's own `MetaData`, which `services/<name>/migrations/models.py` exposes as
`metadata`."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, MetaData
from sqlalchemy.ext.asyncio import create_async_engine

ROOT = Path(__file__).resolve().parents[1]


def service_metadata(service: str) -> MetaData:
    """The tables of one service: shared ones plus the service's own `MetaData`."""
    from shared.eventstore import tables

    own = importlib.import_module(f"services.{service}.migrations.models").metadata
    if not isinstance(own, MetaData):
        raise TypeError(f"services.{service}.migrations.models.metadata is not a MetaData")
    return tables.service_schema(own)


def alembic_config(service: str, url: str) -> Config:
    config = Config()
    migrations = ROOT / "services" / service / "migrations"
    config.set_main_option("script_location", str(migrations))
    # The shared tables' history (shared/migrations_versions) beside the service's own; the service's first
    # revision depends on it.
    config.set_main_option("path_separator", "os")
    config.set_main_option(
        "version_locations",
        os.pathsep.join([str(ROOT / "shared" / "migrations_versions"), str(migrations / "versions")]),
    )
    config.set_main_option("sqlalchemy.url", url)
    config.attributes["service"] = service
    return config


def run_env(context: Any) -> None:  # alembic's `context` module, a proxy
    """Body of every service's env.py: online migrations over an async engine."""
    config = context.config
    metadata = service_metadata(config.attributes["service"])
    url = config.get_main_option("sqlalchemy.url")

    def migrate(connection: Connection) -> None:
        context.configure(
            connection=connection, target_metadata=metadata, render_as_batch=url.startswith("sqlite"), compare_type=True
        )
        with context.begin_transaction():
            context.run_migrations()

    async def run() -> None:
        engine = create_async_engine(url)
        async with engine.connect() as connection:
            await connection.run_sync(migrate)
            await connection.commit()
        await engine.dispose()

    if context.is_offline_mode():
        context.configure(url=url, target_metadata=metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
    else:
        asyncio.run(run())


def _has_branch(config: Config, label: str) -> bool:
    from alembic.script import ScriptDirectory

    return any(label in (rev.branch_labels or ()) for rev in ScriptDirectory.from_config(config).walk_revisions())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m shared.migrations", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("service")
    parser.add_argument("action", choices=["upgrade", "revision", "check", "current"])
    parser.add_argument("message", nargs="?", default="change")
    parser.add_argument("--url", default=None, help="database URL (default: the service's DATABASE_URL)")
    args = parser.parse_args(argv)
    from shared.settings import ServiceSettings

    url = args.url or ServiceSettings(service_name=args.service).resolved_database_url()
    if url.startswith("sqlite"):
        Path(url.split("///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
    config = alembic_config(args.service, url)
    if args.action == "upgrade":
        command.upgrade(config, "heads")
    elif args.action == "revision":
        versions = ROOT / "services" / args.service / "migrations" / "versions"
        rev_id = f"{len(list(versions.glob('[0-9]*.py'))) + 1:04d}"
        command.revision(
            config,
            message=args.message,
            autogenerate=True,
            rev_id=rev_id,
            head=f"{args.service}@head" if _has_branch(config, args.service) else "head",
            version_path=str(versions),
        )
    elif args.action == "check":
        command.check(config)
    else:
        command.current(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
