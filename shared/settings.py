"""Settings read from the environment (12-factor): one place, one class, documented in the README."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEVELOPMENT_SECRET = "dev-secret-change-me-please-32bytes!"


class ServiceSettings(BaseSettings):
    """Settings every service shares. A service may subclass it for its own knobs."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    host: str = Field("127.0.0.1", description="Interface the HTTP server binds")
    port: int = Field(8000, ge=1, le=65535, description="Port the HTTP server binds (each service has its default)")
    service_name: str = Field("servicetrail", description="Name used as CloudEvents source and in logs")
    database_auto_create: bool = Field(
        True, description="Create missing tables at start (development); false when migrations run first"
    )
    database_url: str = Field(
        "",
        description="SQLAlchemy async URL; empty means a SQLite file var/<service>.db (WAL mode)",
    )
    kafka_bootstrap: str = Field(
        "127.0.0.1:9092",
        description="Kafka bootstrap servers, comma separated; memory://<name> is an in-process broker (tests)",
    )
    kafka_client_id_prefix: str = "servicetrail"
    consumer_group: str = Field("", description="Kafka consumer group; empty means the service name")
    kafka_topic_partitions: int = Field(3, ge=1, description="Partitions of topics this service creates")
    kafka_replication_factor: int = Field(
        1, ge=1, description="Replicas per partition of topics this service creates (3 on a cluster)"
    )
    kafka_min_insync_replicas: int | None = Field(
        None,
        ge=1,
        description="min.insync.replicas of topics this service creates (2 on a cluster; unset: the broker's default)",
    )
    auth_secret: str = Field(DEVELOPMENT_SECRET, description="HS256 signing secret")
    auth_public_key: str = Field("", description="PEM public key: when set, tokens are verified with RS256")
    auth_issuer: str = ""
    max_backdate_days: int = Field(45, ge=0, description="How far back occurred_at may reach")
    max_future_skew_seconds: int = Field(300, ge=0, description="How far ahead occurred_at may reach")
    relay_batch_size: int = Field(500, ge=1, le=10_000)
    relay_poll_interval_ms: int = Field(200, ge=5)
    relay_lease_seconds: float = Field(10.0, gt=0)
    consumer_batch_size: int = Field(500, ge=1)
    consumer_transaction_size: int = Field(
        100, ge=1, description="Events a consumer applies per database transaction (one commit for all)"
    )
    consumer_session_timeout_ms: int = Field(
        10000, ge=6000, description="How soon a dead replica's partitions move to the others"
    )
    deadline_poll_interval_ms: int = Field(500, ge=10, description="How often due deadlines are looked for")
    max_body_bytes: int = Field(
        1024 * 1024,
        ge=1024,
        description="Larger request bodies get a 413 before they are read (bulk imports allow more)",
    )
    sqlite_synchronous: str = Field("FULL", pattern="^(OFF|NORMAL|FULL|EXTRA)$")
    # Write transactions queued together share one COMMIT (one fsync), each in its own savepoint; 1 turns it off.
    sqlite_group_commit_limit: int = Field(64, ge=1, le=1024)
    otel_exporter_otlp_endpoint: str = Field("", description="OTLP/HTTP endpoint for traces; empty: no export")
    log_level: str = "INFO"
    log_json: bool = True

    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///var/{self.service_name}.db"


@lru_cache
def default_settings() -> ServiceSettings:
    return ServiceSettings()
