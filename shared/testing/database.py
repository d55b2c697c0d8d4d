"""A test service's settings and its SQLite file, the file's tables made by copying one built once per process."""

from __future__ import annotations

import atexit
import shutil
import sqlite3
import tempfile
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import MetaData, create_engine
from sqlalchemy.engine import make_url

from shared.eventstore.tables import service_schema
from shared.settings import ServiceSettings

S = TypeVar("S", bound=ServiceSettings)

_templates: dict[int, Path] = {}


def settings_for_a_test(
    settings_class: type[S], own: MetaData, database: Path | str, event_bus: str, **given: Any
) -> S:
    """A test service's settings: its SQLite file `database` with its tables made (`with_tables`), the broker
    `event_bus`, the relay polling every 50 ms and plain logs; the `given` settings (its consumer group…) win."""
    values: dict[str, Any] = dict(
        database_url=f"sqlite+aiosqlite:///{database}",
        kafka_bootstrap=event_bus,
        relay_poll_interval_ms=50,
        log_json=False,
        # In WAL mode NORMAL survives a killed process (what the crash tests do); only a power loss could take the
        # last commits, and skipping that fsync per commit is most of a test's time on a busy disk.
        sqlite_synchronous="NORMAL",
    )
    settings = settings_class(**{**values, **given})
    with_tables(settings, own)
    return settings


_workdir: Path | None = None


def with_tables(settings: ServiceSettings, own: MetaData) -> None:
    """Before a test's service starts on a SQLite file that does not exist yet, put there the tables it would
    create at start-up (`service_schema(own)`), copied from a file built once per process: the lifespan's
    `create_all` then finds them made, instead of creating a dozen tables and switching the file to WAL on every
    start (~15 ms of CPU and ~50 ms of a busy disk, paid by every test that starts a service). Nothing happens
    for another database, an existing file (a restart) or a service that does not create its tables."""
    url = make_url(settings.resolved_database_url())
    if not settings.database_auto_create or not url.get_backend_name() == "sqlite" or not url.database:
        return
    target = Path(url.database)
    if target.exists():
        return
    shutil.copyfile(_template(own), target)


def _template(own: MetaData) -> Path:
    global _workdir
    template = _templates.get(id(own))
    if template is None:
        if _workdir is None:
            _workdir = Path(tempfile.mkdtemp(prefix="servicetrail-schemas-"))
            atexit.register(shutil.rmtree, _workdir, True)
        template = _workdir / f"schema-{len(_templates)}.db"
        engine = create_engine(f"sqlite:///{template}")
        try:
            service_schema(own).create_all(engine)
        finally:
            engine.dispose()
        with sqlite3.connect(template) as conn:  # the mode the service opens its file in (it persists)
            conn.execute("PRAGMA journal_mode=WAL")
        conn.close()
        _templates[id(own)] = template
    return template
