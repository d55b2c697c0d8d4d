"""Stop the service and start a new one on the same database and consumer group: no complaint is lost, none
is opened twice, and every missed deadline escalates exactly once, whether it fell due before, during or after
the restart."""

import uuid
from datetime import UTC, datetime

from sqlalchemy import func, select

from services.complaints.app import create_app
from services.complaints.domain import revisit_complaint_id
from services.complaints.read_model import complaints as complaint_rows
from services.complaints.tests.conftest import Complaints, revisit_done, start
from shared.clock import FixedClock
from shared.contracts.topics import COMPLAINTS
from shared.testing.app import eventually, running
from shared.testing.kafka import collect, envelope_for, headers_of, publish


async def rows_among(service: Complaints, ids: list[str], *, level: int | None = None) -> int:
    query = select(func.count()).select_from(complaint_rows).where(complaint_rows.c.complaint_id.in_(ids))
    if level is not None:
        query = query.where(complaint_rows.c.level == level)
    async with service.app.state.runtime.db.read() as conn:
        return (await conn.execute(query)).scalar_one()


async def test_a_restart_neither_repeats_an_escalation_nor_loses_one_that_fell_due_while_down(tmp_path, event_bus):
    clock = FixedClock(datetime.now(UTC))
    settings, app = start(tmp_path, event_bus, clock=clock)
    async with running(app) as client:
        before = Complaints(client, settings, app)
        early = (await before.open()).json()["id"]
        clock.advance(minutes=30)
        late = (await before.open()).json()["id"]
        clock.advance(minutes=31)  # early's acknowledgement is overdue, late's not yet
        await before.until(early, lambda v: v["level"] == 2)

    clock.advance(minutes=30)  # late's acknowledgement falls due while the service is down
    restarted = create_app(settings, clock=clock, configure_logs=False)
    async with running(restarted) as client:
        after = Complaints(client, settings, restarted)
        await after.until(late, lambda v: v["level"] == 2)
        await restarted.state.runtime.scheduler.fire_due()  # one more round of the timer: nothing left for these
        for complaint_id in (early, late):
            assert await after.stored_types(complaint_id) == ["complaint.opened", "complaint.escalated"]


async def test_a_restart_mid_stream_loses_no_revisit_complaint_and_escalates_each_once(tmp_path, event_bus):
    clock = FixedClock(datetime.now(UTC))
    settings, app = start(tmp_path, event_bus, clock=clock, consumer_batch_size=4)
    cases = [(str(uuid.uuid4()), f"job-{uuid.uuid4()}") for _ in range(30)]
    revisits = [envelope_for(revisit_done(job_id, request_id, 1), source="dispatch") for request_id, job_id in cases]
    ids = [revisit_complaint_id(job_id) for _, job_id in cases]
    acknowledge_within = settings.complaint_acknowledge_within_seconds
    async with running(app) as client:
        before = Complaints(client, settings, app)
        await publish(event_bus, *revisits, *revisits[:10])  # the first ten delivered twice
        await eventually(lambda: rows_among(before, ids), until=lambda n: n >= 1)
        clock.advance(seconds=acknowledge_within)  # the first ones' deadlines fall due as the service stops

    restarted = create_app(settings, clock=clock, configure_logs=False)
    async with running(restarted) as client:
        after = Complaints(client, settings, restarted)
        await eventually(lambda: rows_among(after, ids), until=lambda n: n == len(ids))
        clock.advance(seconds=acknowledge_within)  # and the rest's
        await eventually(lambda: rows_among(after, ids, level=2), until=lambda n: n == len(ids))
        assert await rows_among(after, ids) == len(ids)
        for complaint_id in ids:
            assert await after.stored_types(complaint_id) == ["complaint.opened", "complaint.escalated"]
        opened = await collect(
            event_bus,
            COMPLAINTS,
            lambda r: r.key.decode() in ids and headers_of(r)["ce_type"] == "complaint.opened",
            expected=len(ids),
        )
        assert sorted(r.key.decode() for r in opened) == sorted(ids), "every complaint published, once"
