"""An analytics service for the tests (its own DuckDB and SQLite files and consumer group), the session's broker
(`event_bus`, in-process), and builders for the events other services publish. Each test uses dealer, center and region ids of
its own, because the session's topics hold every other test's events too."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import httpx
import pytest

from services.analytics.app import AnalyticsSettings, create_app
from shared.testing.app import bearer, eventually, running


@dataclass
class Analytics:
    client: httpx.AsyncClient
    settings: AnalyticsSettings
    app: object

    def auth(self, *roles: str, dealer_id: str | None = None) -> dict[str, str]:
        return bearer(self.settings, *roles, dealer_id=dealer_id)

    @property
    def analyst(self) -> dict[str, str]:
        return self.auth("analyst")

    async def get(self, view: str, headers: dict | None = None, **params) -> httpx.Response:
        params = {("from" if k == "from_" else k): v for k, v in params.items() if v is not None}
        return await self.client.get(f"/v1/views/{view}", params=params, headers=headers or self.analyst)

    async def rows(self, view: str, **params) -> dict[str, dict]:
        """The view's rows by key (asserting a 200)."""
        response = await self.get(view, **params)
        assert response.status_code == 200, response.text
        return {row["key"]: row for row in response.json()["rows"]}

    async def rows_when(self, view: str, until, timeout: float = 30.0, **params) -> dict[str, dict]:
        return await eventually(lambda: self.rows(view, **params), until=until, timeout=timeout)


def analytics_settings(tmp_path, event_bus: str, **overrides) -> AnalyticsSettings:
    name = f"analytics-{uuid.uuid4().hex[:6]}"
    values = dict(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/{name}.db",
        analytics_duckdb_path=f"{tmp_path}/{name}.duckdb",
        kafka_bootstrap=event_bus,
        consumer_group=f"analytics-test-{uuid.uuid4().hex[:8]}",
        sqlite_synchronous="NORMAL",
        log_json=False,
        alert_min_interval_seconds=0.05,
    )
    values.update(overrides)
    return AnalyticsSettings(**values)


@pytest.fixture(scope="package")
async def analytics(tmp_path_factory, event_bus):
    """One analytics app for these tests: it reads the session's topics from their beginning once, not once per
    test (tests that need other settings start their own)."""
    settings = analytics_settings(tmp_path_factory.mktemp("analytics"), event_bus)
    app = create_app(settings, configure_logs=False)
    async with running(app) as client:
        yield Analytics(client, settings, app)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
