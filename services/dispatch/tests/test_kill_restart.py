"""`python -m services.dispatch` killed with SIGKILL in the middle of a stream of triages (inside the consumer's
batches), then started again: every request ends up with exactly one job, created and assigned once, published
once per event, and counted once in its technician's open jobs."""

import os
import signal
import subprocess
import sys
import uuid
from collections import defaultdict
from pathlib import Path

import httpx
from sqlalchemy import func, select

from deploy.kafka.launcher import free_port
from services.dispatch.domain import job_id_for
from services.dispatch.read_model import dispatch_jobs, dispatch_technician_load
from services.dispatch.tests.conftest import request_events, start_group_at_end
from shared.auth import mint_token
from shared.contracts.topics import DISPATCH, INTAKE
from shared.eventstore import Database
from shared.eventstore.tables import events, outbox
from shared.settings import ServiceSettings
from shared.testing.app import eventually
from shared.testing.kafka import collect, headers_of, publish

ROOT = Path(__file__).resolve().parents[3]
REQUESTS = 400


class DispatchProcess:
    """The service as `make run` starts it, configured by the environment only."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.env = {**os.environ, **env, "PORT": str(self.port)}
        self.log = tmp_path / "dispatch.log"
        self.process: subprocess.Popen | None = None

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}", timeout=5)

    async def start(self) -> None:
        """Start the process and return once it is ready (database and Kafka reachable)."""
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "services.dispatch"],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        async def ready() -> int:
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            try:
                async with self.client() as client:
                    return (await client.get("/readyz")).status_code
            except httpx.TransportError:
                return 0

        await eventually(ready, until=lambda status: status == 200, timeout=60, interval=0.2)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


async def counts(db: Database) -> dict[str, int]:
    async with db.read() as conn:
        by_type = dict((await conn.execute(select(events.c.type, func.count()).group_by(events.c.type))).all())
        rows = (await conn.execute(select(func.count()).select_from(dispatch_jobs))).scalar_one()
        due = (await conn.execute(select(func.count()).select_from(outbox))).scalar_one()
    return {
        "created": by_type.get("job.created", 0),
        "assigned": by_type.get("job.assigned", 0),
        "rows": rows,
        "outbox": due,
    }


async def test_killing_dispatch_mid_stream_and_restarting_it_loses_no_job_and_doubles_none(tmp_path, kafka_bootstrap):
    url = f"sqlite+aiosqlite:///{tmp_path}/dispatch.db"
    group = f"dispatch-kill-{uuid.uuid4().hex[:8]}"
    await start_group_at_end(kafka_bootstrap, group, [INTAKE])
    env = {
        "DATABASE_URL": url,
        "KAFKA_BOOTSTRAP": kafka_bootstrap,
        "CONSUMER_GROUP": group,
        "CONSUMER_SESSION_TIMEOUT_MS": "6000",
        "RELAY_LEASE_SECONDS": "2",
        "RELAY_POLL_INTERVAL_MS": "50",
        "LOG_LEVEL": "WARNING",
    }
    service = DispatchProcess(tmp_path, env)
    db = Database(url)
    token = mint_token(ServiceSettings().auth_secret, subject="dispatcher", roles=["dispatcher"])
    headers = {"Authorization": f"Bearer {token}"}
    try:
        await service.start()
        async with service.client() as client:
            region = f"kill-{uuid.uuid4().hex[:6]}"
            assert (
                await client.post(
                    "/v1/service-centers",
                    headers=headers,
                    json={"id": "C1", "name": "C1", "region": region, "kind": "branch"},
                )
            ).status_code == 201
            for technician_id in ("T1", "T2"):
                assert (
                    await client.post(
                        "/v1/technicians",
                        headers=headers,
                        json={"id": technician_id, "center_id": "C1", "name": technician_id, "skills": ["tractor"]},
                    )
                ).status_code == 201
            requests = [request_events(region=region) for _ in range(REQUESTS)]
            await publish(kafka_bootstrap, *(envelope for pair in requests for envelope in pair))
            await eventually(lambda: counts(db), until=lambda c: c["created"] >= 40, timeout=60)
            service.kill()
        at_kill = await counts(db)
        assert at_kill["created"] < REQUESTS, "the kill landed mid-stream"

        await service.start()
        final = await eventually(
            lambda: counts(db), until=lambda c: c["rows"] >= REQUESTS and c["outbox"] == 0, timeout=90
        )
        assert final == {"created": REQUESTS, "assigned": REQUESTS, "rows": REQUESTS, "outbox": 0}
        async with db.read() as conn:
            streams = (
                await conn.execute(
                    select(func.count(func.distinct(events.c.stream_id))).where(events.c.type == "job.created")
                )
            ).scalar_one()
        assert streams == REQUESTS
        async with db.read() as conn:
            load = dict((await conn.execute(select(dispatch_technician_load))).all())
            open_jobs = dict(
                (
                    await conn.execute(
                        select(dispatch_jobs.c.technician_id, func.count())
                        .where(dispatch_jobs.c.is_load.is_(True))
                        .group_by(dispatch_jobs.c.technician_id)
                    )
                ).all()
            )
        # The least loaded first, then the smaller id: the two technicians alternate, whatever was replayed.
        assert load == open_jobs == {"T1": REQUESTS // 2, "T2": REQUESTS // 2}
    finally:
        service.kill()
        await db.dispose()

    expected = {job_id_for(received.subject) for received, _ in requests}
    records = await collect(
        kafka_bootstrap,
        DISPATCH,
        lambda r: r.key.decode() in expected and headers_of(r)["ce_type"] == "job.created",
        expected=REQUESTS,
        timeout=60,
    )
    ids_per_job = defaultdict(set)
    for record in records:
        ids_per_job[record.key.decode()].add(headers_of(record)["ce_id"])
    assert set(ids_per_job) == expected, "every job reached the topic"
    assert all(len(ids) == 1 for ids in ids_per_job.values()), (
        "a republished record is the same event (same ce_id), never a second job.created"
    )
