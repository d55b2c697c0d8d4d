"""docker-compose.yml is checked by the Compose specification's reference loader (compose-go, built from the
Go module proxy) and held to what ops need: every service with its image build, database, health check and
start order; Kafka at the version the tests pin; variables the services really read."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from deploy.kafka.launcher import KAFKA_VERSION
from deploy.run import PORTS
from shared.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[2]
SERVICES = sorted(p.name for p in (ROOT / "services").iterdir() if (p / "app.py").exists())


def resolved(*profiles: str) -> dict:
    go = shutil.which("go")
    assert go, "Go is needed to build compose-check (it is on our machines)"
    binary = ROOT / "deploy" / "compose-check" / "compose-check"
    subprocess.run([go, "build", "-o", str(binary), "."], cwd=binary.parent, check=True, timeout=600)
    result = subprocess.run(
        [str(binary), str(ROOT / "docker-compose.yml"), *profiles], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def project() -> dict:
    return resolved()


def test_the_compose_file_is_valid_and_runs_every_service(project):
    assert set(SERVICES) <= set(project["services"])
    assert {"kafka", "postgres", "topics", "migrate"} <= set(project["services"])


def test_kafka_runs_the_version_the_tests_pin(project):
    assert project["services"]["kafka"]["image"] == f"apache/kafka:{KAFKA_VERSION}"
    assert project["services"]["topics"]["image"] == f"apache/kafka:{KAFKA_VERSION}"


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_has_its_image_port_database_and_start_order(project, service):
    spec = project["services"][service]
    assert spec["build"]["dockerfile"] == f"services/{service}/Dockerfile"
    assert spec["environment"]["PORT"] == str(PORTS[service])
    assert spec["environment"]["DATABASE_URL"].endswith(f"@postgres:5432/{service}")
    assert spec["environment"]["DATABASE_AUTO_CREATE"] == "false"
    assert {
        "kafka": "service_healthy",
        "topics": "service_completed_successfully",
        "migrate": "service_completed_successfully",
    }.items() <= {name: dep["condition"] for name, dep in spec["depends_on"].items()}.items()
    assert any(p["target"] == PORTS[service] for p in spec["ports"])


@pytest.mark.parametrize("service", SERVICES)
def test_each_dockerfile_is_small_non_root_one_worker_with_a_health_check(service):
    dockerfile = (ROOT / "services" / service / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", dockerfile, re.M)
    assert re.search(r"^USER (?!root)\S+", dockerfile, re.M)
    assert "/healthz" in dockerfile and "HEALTHCHECK" in dockerfile
    assert f'CMD ["python", "-m", "services.{service}"]' in dockerfile


def test_the_services_read_only_variables_that_exist(project):
    known = {name.upper() for name in ServiceSettings.model_fields} | {"PORT"}
    for service in SERVICES:
        extra = set(project["services"][service]["environment"]) - known
        # service-specific settings (e.g. COMPLAINT_*) must be fields of that service's settings class
        module = __import__(f"services.{service}.app", fromlist=["*"])
        settings_classes = [
            v
            for v in vars(module).values()
            if isinstance(v, type) and issubclass(v, ServiceSettings) and v is not ServiceSettings
        ]
        own = {name.upper() for cls in settings_classes for name in cls.model_fields}
        assert extra <= own, f"{service} is given variables it does not read: {extra - own}"


def test_analytics_keeps_its_duckdb_projection_on_a_volume_of_its_own(project):
    spec = project["services"]["analytics"]
    path = spec["environment"]["ANALYTICS_DUCKDB_PATH"]
    mounts = [v for v in spec["volumes"] if v["type"] == "volume"]
    assert any(path.startswith(m["target"].rstrip("/") + "/") and m["source"] == "analytics-data" for m in mounts)
    assert "analytics-data" in project["volumes"]
    dockerfile = (ROOT / "services" / "analytics" / "Dockerfile").read_text()
    assert "chown servicetrail /var/lib/analytics" in dockerfile  # the non-root user may write the file


def test_every_migration_history_the_migrate_step_runs_exists(project):
    command = " ".join(project["services"]["migrate"]["command"])
    for service in SERVICES:
        assert service in command
        assert (ROOT / "services" / service / "migrations" / "env.py").exists()


def test_the_monitoring_profile_adds_prometheus_scraping_every_service_and_grafana():
    monitored = resolved("monitoring")
    assert {"prometheus", "grafana"} <= set(monitored["services"])
    scrape = (ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text()
    for service in SERVICES:
        assert f"{service}:{PORTS[service]}" in scrape
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "dashboards" / "servicetrail.json").read_text())
    metrics = " ".join(p["targets"][0]["expr"] for p in dashboard["panels"])
    for name in (
        "servicetrail_http_requests_total",
        "servicetrail_relay_backlog",
        "servicetrail_consumer_lag",
        'servicetrail_events_published_total{type=~"job.sla_breached',
    ):
        assert name in metrics
