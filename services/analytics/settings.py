"""analytics' settings (environment variables, like every service's)."""

from __future__ import annotations

from pydantic import Field

from services.analytics.alerts import AlertPolicy
from services.analytics.projection import MEMORY_LIMIT
from shared.settings import ServiceSettings

SERVICE = "analytics"


class AnalyticsSettings(ServiceSettings):
    service_name: str = SERVICE
    port: int = 8005
    alert_sla_met_pct: float = Field(
        90.0, ge=0, le=100, description="Alert when a dealer's/center's SLA met over the lookback is below this"
    )
    alert_csat_pct: float = Field(80.0, ge=0, le=100, description="Alert when CSAT over the lookback is below this")
    alert_min_jobs: int = Field(5, ge=1, description="Completed jobs needed before SLA met is judged")
    alert_min_responses: int = Field(5, ge=1, description="Revisits needed before CSAT is judged")
    alert_backlog_growth_pct: float = Field(20.0, ge=0, description="Backlog growth over the lookback that alerts")
    alert_backlog_growth_min: int = Field(5, ge=1, description="…and at least this many more open requests")
    alert_lookback_days: int = Field(7, ge=1)
    alert_threshold_overrides: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description='Per dealer/center thresholds, JSON: {"dealer:D1": {"csat_pct": 70, "sla_met_pct": 85}}',
    )
    alert_min_interval_seconds: float = Field(1.0, ge=0, description="Alerts are evaluated at most this often")
    alert_max_busy_share: float = Field(
        0.2,
        gt=0,
        le=1,
        description="…and no more often than keeps evaluating under this share of the process's time "
        "(an evaluation of 1 s then waits 4 s before the next)",
    )
    alert_sweep_seconds: float = Field(60.0, gt=0, description="…and at least this often (time moves windows)")
    rebuild_batch_size: int = Field(5000, ge=100, description="Records per batch when replaying the topics")
    analytics_duckdb_path: str = Field(
        "",
        description="The projection's DuckDB file (one read-write process per file: each replica its own, "
        "with its own CONSUMER_GROUP); empty means var/analytics.duckdb",
    )
    analytics_duckdb_memory_limit: str = Field(
        MEMORY_LIMIT,
        description="DuckDB's memory limit (it spills beyond); the process holds about this plus 250-400 MB of Python "
        "and its libraries",
    )
    analytics_batch_size: int = Field(
        10000,
        ge=1,
        description="Records per poll batch at most, applied in one "
        "transaction (a catching-up replica amortizes each batch's scans over more)",
    )

    def duckdb_path(self) -> str:
        return self.analytics_duckdb_path or "var/analytics.duckdb"

    def alert_policy(self) -> AlertPolicy:
        return AlertPolicy(
            sla_met_pct=self.alert_sla_met_pct,
            csat_pct=self.alert_csat_pct,
            min_jobs=self.alert_min_jobs,
            min_responses=self.alert_min_responses,
            backlog_growth_pct=self.alert_backlog_growth_pct,
            backlog_growth_min=self.alert_backlog_growth_min,
            lookback_days=self.alert_lookback_days,
            overrides=self.alert_threshold_overrides,
        )
