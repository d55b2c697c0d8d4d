"""`python -m deploy.demo_year [--requests 1000000]` (`make demo-year`): publish a realistic year of a large
manufacturer's after-sales service straight to the four topics, as intake, warranty, dispatch and complaints
publish it (binary-mode CloudEvents headers, the subject as the key, per-stream sequences), for people who want
to see analytics at scale. About 10 records per request; 20 dealers (and direct customers), 20 service centers
of 10 technicians each, six regions, five product lines.

What a request goes through, drawn per request: the warranty check; escalations and cancellations; phone
resolution or a job: assignment (sometimes a re-assignment), acceptance, travel, one or two visits (a first
visit that does not fix the unit names why), SLA breaches, the follow-up revisit with its score, complaints.
Steps a technician's app synced later are recorded later than they happened (`recordedat` after `time`), as
they are in the field, so `as_of` has restatements to show."""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from shared.contracts import dispatch, intake, warranty
from shared.contracts.topics import ALL_TOPICS
from shared.messaging.cloudevents import to_record
from shared.messaging.kafka import ensure_topics, reliable_producer
from shared.testing.contract_events import complaint_opened
from shared.testing.kafka import envelope_for

DEALERS = [f"D{n:02d}" for n in range(1, 21)]
REGIONS = ["north", "south", "east", "west", "hills", "coast"]
LINES = ["tractor", "baler", "mower", "washer", "dryer"]
CENTERS = [(f"C{n:02d}", REGIONS[n % len(REGIONS)]) for n in range(20)]
TECHNICIANS = {center: [f"T{n:02d}{k}" for k in range(10)] for n, (center, _) in enumerate(CENTERS)}
BY_REGION = {region: [c for c, r in CENTERS if r == region] for region in REGIONS}
REASONS = ["parts_unavailable", "customer_absent", "site_not_ready", "needs_expert", "wrong_diagnosis", "other"]


def _received(rid: str, dealer: str | None, region: str, line: str, serial: str, urgent: bool):
    return intake.ServiceRequestReceived(
        request_id=rid,
        dealer_id=dealer,
        channel="dealer" if dealer else "hotline",
        customer=intake.Customer(name="A Customer", phone="+49 170 5550101", region=region),
        product=intake.Product(serial=serial, model="M-1", product_line=line),
        purchase_date=None,
        symptom="does not start",
        customer_tier="standard",
        urgent=urgent,
    )


def _completed(jid: str, rid: str, tech: str, fixed: bool, reason: str | None):
    data = dict(job_id=jid, request_id=rid, technician_id=tech, fixed=fixed, resolution="done" if fixed else "")
    if reason is not None and "reason" in dispatch.JobCompleted.model_fields:
        data["reason"] = reason
    return dispatch.JobCompleted(**data)


def lifecycle(rng: random.Random, received_at: datetime) -> list[tuple[object, datetime, datetime]]:
    """The events of one request: (data, time, recorded at)."""
    rid, jid = str(uuid.UUID(int=rng.getrandbits(128), version=4)), str(uuid.UUID(int=rng.getrandbits(128), version=4))
    dealer = None if rng.random() < 0.1 else rng.choice(DEALERS)
    region, line = rng.choice(REGIONS), rng.choice(LINES)
    serial = f"SN-{rid[:12]}"
    t = received_at
    out: list[tuple[object, datetime, datetime]] = []

    def at(data, when: datetime, late: bool = False) -> None:
        recorded = when + timedelta(minutes=rng.uniform(30, 2880)) if late else when
        out.append((data, when, recorded))

    def later(minutes: float) -> datetime:
        nonlocal t
        t = t + timedelta(minutes=rng.expovariate(1 / minutes))
        return t

    at(_received(rid, dealer, region, line, serial, rng.random() < 0.1), t)
    at(warranty.WarrantyChecked(request_id=rid, serial=serial, covered=rng.random() < 0.7, reason="sale date"), t)
    if rng.random() < 0.05:
        at(intake.ServiceRequestEscalated(request_id=rid, reason="second level"), later(10))
    if rng.random() < 0.03:
        at(intake.ServiceRequestCancelled(request_id=rid, reason="withdrawn"), later(60))
        return out
    if rng.random() < 0.15:
        when = later(8)
        at(intake.ServiceRequestTriaged(request_id=rid, mode="phone", priority="P3"), when)
        at(intake.ServiceRequestResolved(request_id=rid, outcome="resolved_by_phone"), when)
        at(intake.ServiceRequestClosed(request_id=rid, outcome="resolved_by_phone"), when)
        return out
    when = later(15)
    priority = rng.choices(["P1", "P2", "P3"], [1, 3, 6])[0]
    at(intake.ServiceRequestTriaged(request_id=rid, mode="onsite", priority=priority), when)
    at(
        dispatch.JobCreated(
            job_id=jid,
            request_id=rid,
            mode="onsite",
            priority=priority,
            region=region,
            product_line=line,
            dealer_id=dealer,
        ),
        when,
    )
    at(intake.ServiceRequestDispatched(request_id=rid, job_id=jid), when)
    center = rng.choice(BY_REGION[region])
    tech = rng.choice(TECHNICIANS[center])
    at(dispatch.JobAssigned(job_id=jid, request_id=rid, center_id=center, technician_id=tech, by="auto"), later(5))
    if rng.random() < 0.08:  # re-assigned before acceptance
        center = rng.choice(BY_REGION[region])
        tech = rng.choice(TECHNICIANS[center])
        at(
            dispatch.JobAssigned(job_id=jid, request_id=rid, center_id=center, technician_id=tech, by="manual"),
            later(30),
        )
    at(dispatch.JobAccepted(job_id=jid, request_id=rid, technician_id=tech), later(20))
    offline = rng.random() < 0.1  # this technician's app syncs its steps later
    if rng.random() < 0.1:
        due = when + timedelta(hours=24)
        at(dispatch.JobSlaBreached(job_id=jid, request_id=rid, kind="arrive", due=due), due)
    for visit in range(2):
        at(dispatch.JobArrived(job_id=jid, request_id=rid, technician_id=tech), later(600), late=offline)
        fixed = visit == 1 or rng.random() > 0.2
        reason = None if fixed else rng.choice(REASONS)
        at(_completed(jid, rid, tech, fixed, reason), later(60), late=offline)
        if fixed:
            at(intake.ServiceRequestResolved(request_id=rid, job_id=jid, outcome="fixed"), t)
            break
    if rng.random() < 0.7:
        score = rng.choices([1, 2, 3, 4, 5], [3, 5, 12, 40, 40])[0]
        at(
            dispatch.RevisitDone(
                job_id=jid, request_id=rid, satisfaction=score, nps=rng.randrange(11), channel="phone"
            ),
            later(1440),
        )
        at(intake.ServiceRequestClosed(request_id=rid, outcome="resolved_and_revisited"), t)
    if rng.random() < 0.05:
        opened = later(120)
        complaint_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        at(complaint_opened(complaint_id, opened, request_id=rid, job_id=jid, dealer_id=dealer), opened)
    return out


def records(
    requests: int, *, months: int = 12, seed: int = 2026, now: datetime | None = None
) -> Iterator[tuple[str, bytes, bytes, list]]:
    """(topic, key, value, headers) of the history, request by request (received times spread over the
    months before `now`; steps that would lie in the future are not there yet)."""
    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    span = months * 30 * 1440
    for _ in range(requests):
        sequences: dict[str, int] = {}
        for data, when, recorded in lifecycle(rng, now - timedelta(minutes=rng.uniform(0, span))):
            if when > now:
                break
            subject = data.subject
            sequences[subject] = sequences.get(subject, 0) + 1
            envelope = replace(
                envelope_for(data, source=data.topic.split(".")[0], time=when, sequence=sequences[subject]),
                recordedat=min(recorded, now),
            )
            yield to_record(envelope)


async def publish_year(
    bootstrap: str, requests: int, *, months: int = 12, seed: int = 2026, progress: bool = False
) -> int:
    """Publish the history; return the number of records."""
    await ensure_topics(bootstrap, ALL_TOPICS, partitions=int(os.environ.get("KAFKA_TOPIC_PARTITIONS", "3")))
    producer = reliable_producer(bootstrap, "demo-year", linger_ms=50, max_batch_size=1 << 20)
    await producer.start()
    sent, pending, started = 0, [], time.perf_counter()
    try:
        for topic, key, value, headers in records(requests, months=months, seed=seed):
            pending.append(await producer.send(topic, value=value, key=key, headers=headers))
            sent += 1
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending = []
                if progress and sent % 200_000 < 20_000:
                    print(f"  {sent} records ({sent / (time.perf_counter() - started):.0f}/s)", flush=True)
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
    args = parser.parse_args(argv)
    started = time.perf_counter()
    sent = asyncio.run(publish_year(args.bootstrap, args.requests, months=args.months, seed=args.seed, progress=True))
    print(
        f"published {sent} records for {args.requests} requests over {args.months} months to {args.bootstrap} "
        f"in {time.perf_counter() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
