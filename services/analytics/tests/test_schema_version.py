"""The projection's schema version, kept in its DuckDB file: an analytics started on a file written with an older
schema (or before versions were kept) starts an empty generation with this schema's tables at once — so its views
answer, never a 500 — and rebuilds it from the topics; the file is marked current only when that rebuild has
switched, so a process stopped before then starts over."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import duckdb

from services.analytics import sqlviews
from services.analytics.app import create_app
from services.analytics.metrics import Window
from services.analytics.projection import REQUEST_COLUMNS, SCHEMA_VERSION, Projection, Tables, run
from services.analytics.tests.conftest import analytics_settings, unique
from services.analytics.tests.test_facts import received
from services.analytics.tests.test_rebuild import small_history
from services.analytics.views import GroupBy
from shared.clock import utcnow
from shared.testing.app import bearer, eventually, running
from shared.testing.kafka import publish


def write_older_file(path: str, *, versioned: bool = True) -> None:
    """A file as an older analytics left it: facts of a request, a fact table missing a column this schema
    has, and an older schema version (or, `versioned=False`, no version at all)."""
    projection = Projection(path)
    try:
        projection.apply([received(at=0)])
        cur = projection.writer
        run(cur, "DROP INDEX g1_requests_request")
        run(cur, "ALTER TABLE g1_requests DROP COLUMN customer_waits")
        if versioned:
            run(cur, "UPDATE analytics_schema SET version = ?", [SCHEMA_VERSION - 1])
        else:
            run(cur, "DROP TABLE analytics_schema")
    finally:
        projection.close()


def columns(projection: Projection, table: str) -> list[str]:
    cur = projection.reader()
    try:
        return [r[0] for r in cur.execute(f"SELECT column_name FROM (DESCRIBE {table})").fetchall()]
    finally:
        cur.close()


def test_a_new_file_is_written_with_the_current_schema_version_and_needs_no_rebuild(tmp_path):
    projection = Projection(tmp_path / "new.duckdb")
    try:
        assert projection.schema_version() == SCHEMA_VERSION and not projection.needs_rebuild
    finally:
        projection.close()
    reopened = Projection(tmp_path / "new.duckdb")
    try:
        assert not reopened.needs_rebuild and reopened.state().active == 1
    finally:
        reopened.close()


def test_a_file_of_an_older_schema_opens_on_an_empty_generation_of_this_schema_that_views_can_read(tmp_path):
    for versioned in (True, False):
        path = str(tmp_path / f"older-{versioned}.duckdb")
        write_older_file(path, versioned=versioned)
        projection = Projection(path)
        try:
            assert projection.needs_rebuild
            tables = Tables(projection.state().active)
            assert tables.number == 2 and projection.generations(projection.writer) == [2]
            assert columns(projection, tables.requests) == list(REQUEST_COLUMNS)
            with projection.reading() as (cur, active):
                window = Window(0, 2**62)
                assert sqlviews.throughput_rows(cur, active, window, GroupBy.all) == []
            projection.apply([received(at=0)])  # the live path writes the new tables
        finally:
            projection.close()
        again = Projection(path)  # stopped before a rebuild switched: still to be rebuilt
        try:
            assert again.needs_rebuild and again.schema_version() != SCHEMA_VERSION
        finally:
            again.close()


async def test_analytics_started_on_an_older_file_answers_at_once_and_rebuilds_it_from_the_topics(tmp_path, event_bus):
    dealer, region = unique("D"), unique("schema")
    t0 = (utcnow() - timedelta(days=2)).replace(hour=5, minute=0, second=0, microsecond=0)
    await publish(event_bus, *small_history(dealer, region, t0))
    settings = analytics_settings(tmp_path, event_bus)
    write_older_file(settings.analytics_duckdb_path)
    window = {"group_by": "dealer", "from": t0.date().isoformat(), "to": (t0 + timedelta(days=2)).date().isoformat()}
    app = create_app(settings, configure_logs=False)
    async with running(app) as client:
        analyst, admin = bearer(settings, "analyst"), bearer(settings, "admin")
        first = await client.get("/v1/views/throughput", params=window, headers=analyst)
        assert first.status_code == 200, first.text

        async def finished():
            status = (await client.get("/v1/admin/rebuild", headers=admin)).json()
            response = await client.get("/v1/views/throughput", params=window, headers=analyst)
            assert response.status_code == 200, response.text  # never a 500 while it rebuilds
            return status

        status = await eventually(finished, until=lambda s: s["state"] in ("succeeded", "failed"), timeout=120)
        assert status["state"] == "succeeded", status["error"]
        rows = {
            r["key"]: r
            for r in (await client.get("/v1/views/throughput", params=window, headers=analyst)).json()["rows"]
        }
        assert rows[dealer]["received"] == 4
        projection = app.state.projection
        assert await asyncio.to_thread(projection.schema_version, projection.reader()) == SCHEMA_VERSION


def test_an_older_build_can_still_open_a_file_this_one_wrote(tmp_path):
    """The version is a table of its own: the statements an older analytics opens its file with still run (a
    deploy can be rolled back without deleting the file)."""
    path = tmp_path / "rollback.duckdb"
    Projection(path).close()
    con = duckdb.connect(str(path))
    try:
        run(con.cursor(), "INSERT INTO analytics_state VALUES (1, 1, NULL) ON CONFLICT DO NOTHING")
        assert con.execute("SELECT active_generation, building_generation FROM analytics_state").fetchall() == [
            (1, None)
        ]
    finally:
        con.close()
