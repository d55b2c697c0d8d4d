"""`python -m deploy.bench.analytics`: how fast analytics follows the topics.

1. Lag: intake and analytics run as separate uvicorn processes; while a steady load of requests is opened at
   intake, probe requests (each for a dealer of its own) are opened too, and the time from intake's HTTP 201 to
   the request showing in analytics' throughput view (read with that dealer's token) is measured.
2. Replay: a realistic history (~50k events by default: requests, triage, jobs and their steps, SLA breaches,
   revisits, complaints, warranty checks, intake's own follow-up events) is published, then read from the
   beginning of the topics by a raw aiokafka consumer and folded into fresh tables by analytics' rebuild, in
   the same run; the ratio of the two rates is the replay's cost over merely reading.
3. Live catch-up: a fresh analytics process consumes the same history through its per-event transactions.

Starts its own Kafka broker (deploy.kafka.launcher) unless KAFKA_BOOTSTRAP is set. Prints the numbers and writes
docs/bench-analytics.md."""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer

from deploy.kafka.launcher import LocalKafkaBroker, ensure_jars, free_port
from services.analytics.records import CONSUMES
from services.analytics.replay import rebuild
from services.analytics.store import prepare
from shared.auth import mint_token
from shared.contracts import complaints, dispatch, intake, warranty
from shared.contracts.topics import ALL_TOPICS
from shared.eventstore.database import Database
from shared.eventstore.tables import metadata
from shared.messaging.cloudevents import to_record
from shared.messaging.kafka import ensure_topics, reliable_producer
from shared.settings import ServiceSettings
from shared.testing.kafka import envelope_for

import services.analytics.tables  # noqa: F401  (analytics' fixed tables in `metadata`)

ROOT = Path(__file__).resolve().parents[2]
SECRET = ServiceSettings().auth_secret


# --- a realistic history ---------------------------------------------------------------------------------

def _received(rid: str, dealer: str | None, region: str, line: str, urgent: bool = False):
    return intake.ServiceRequestReceived(
        request_id=rid, dealer_id=dealer, channel="dealer" if dealer else "hotline",
        customer=intake.Customer(name="A Customer", phone="+49 170 5550101", region=region),
        product=intake.Product(serial=f"SN-{rid[:10]}", model="M-1", product_line=line), purchase_date=None,
        symptom="does not start", customer_tier="standard", urgent=urgent)


def _lifecycle(rng: random.Random, received_at: datetime) -> list:
    """The events of one request, as intake, warranty, dispatch and complaints publish them."""
    rid, jid = str(uuid.uuid4()), str(uuid.uuid4())
    dealer = rng.choice([None] + [f"D{n:02d}" for n in range(30)])
    region, line = rng.choice(["north", "south", "east", "west", "hills", "coast"]), rng.choice(
        ["tractor", "baler", "mower", "washer", "dryer"])
    t = received_at
    out = [(_received(rid, dealer, region, line, urgent=rng.random() < 0.1), t)]
    out.append((warranty.WarrantyChecked(request_id=rid, serial=f"SN-{rid[:10]}", covered=rng.random() < 0.7,
                                         reason="within warranty"), t))

    def later(minutes: float) -> datetime:
        nonlocal t
        t = t + timedelta(minutes=rng.expovariate(1 / minutes))
        return t

    if rng.random() < 0.05:
        out.append((intake.ServiceRequestEscalated(request_id=rid, reason="expert"), later(10)))
    if rng.random() < 0.03:
        out.append((intake.ServiceRequestCancelled(request_id=rid, reason="withdrawn"), later(60)))
        return out
    if rng.random() < 0.15:
        at = later(8)
        return out + [(intake.ServiceRequestTriaged(request_id=rid, mode="phone", priority="P3"), at),
                      (intake.ServiceRequestResolved(request_id=rid, outcome="resolved_by_phone"), at),
                      (intake.ServiceRequestClosed(request_id=rid, outcome="resolved_by_phone"), at)]
    at = later(15)
    keys = dict(region=region, product_line=line, dealer_id=dealer)
    out += [(intake.ServiceRequestTriaged(request_id=rid, mode="onsite", priority="P2"), at),
            (dispatch.JobCreated(job_id=jid, request_id=rid, mode="onsite", priority="P2", **keys), at),
            (intake.ServiceRequestDispatched(request_id=rid, job_id=jid), at)]
    tech = f"T{rng.randrange(40):02d}"
    out.append((dispatch.JobAssigned(job_id=jid, request_id=rid, center_id=f"C{tech[1:]}", technician_id=tech,
                                     by="auto"), at))
    out.append((dispatch.JobAccepted(job_id=jid, request_id=rid, technician_id=tech), later(20)))
    if rng.random() < 0.1:
        due = at + timedelta(hours=24)
        out.append((dispatch.JobSlaBreached(job_id=jid, request_id=rid, kind="arrive", due=due), due))
    for visit in range(1 + (rng.random() < 0.2)):
        out.append((dispatch.JobArrived(job_id=jid, request_id=rid, technician_id=tech), later(600)))
        fixed = visit == 1 or rng.random() > 0.2
        out.append((dispatch.JobCompleted(job_id=jid, request_id=rid, technician_id=tech, fixed=fixed), later(60)))
        if fixed:
            out.append((intake.ServiceRequestResolved(request_id=rid, job_id=jid, outcome="fixed"), t))
            break
    if rng.random() < 0.7:
        score = rng.choices([1, 2, 3, 4, 5], [3, 5, 12, 40, 40])[0]
        out.append((dispatch.RevisitDone(job_id=jid, request_id=rid, satisfaction=score, nps=rng.randrange(11),
                                         channel="phone"), later(1440)))
        out.append((intake.ServiceRequestClosed(request_id=rid, outcome="resolved_and_revisited"), t))
    if rng.random() < 0.05:
        out.append((complaints.ComplaintOpened.model_validate(dict(
            complaint_id=str(uuid.uuid4()), request_id=rid, job_id=jid, dealer_id=dealer, category="delay",
            severity="general", source="hotline", level=1, ack_due=t + timedelta(hours=1),
            resolve_due=t + timedelta(hours=8))), later(120)))
    return out


async def publish_history(bootstrap: str, events: int, seed: int = 42) -> int:
    rng = random.Random(seed)
    start = datetime.now(timezone.utc) - timedelta(days=40)
    producer = reliable_producer(bootstrap, "bench-analytics", linger_ms=20)
    await producer.start()
    sent, pending = 0, []
    try:
        while sent < events:
            for data, at in _lifecycle(rng, start + timedelta(minutes=rng.uniform(0, 38 * 1440))):
                envelope = replace(envelope_for(data, source=data.topic.split(".")[0], time=at), recordedat=at)
                topic, key, value, headers = to_record(envelope)
                pending.append(await producer.send(topic, value=value, key=key, headers=headers))
                sent += 1
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent


# --- replay ----------------------------------------------------------------------------------------------

async def raw_read(bootstrap: str) -> tuple[int, float]:
    """A bare aiokafka consumer reading the same topics from their beginning to their end: (records, seconds)."""
    started = time.perf_counter()
    consumer = AIOKafkaConsumer(*CONSUMES, bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", isolation_level="read_committed")
    await consumer.start()
    count = 0
    try:
        partitions = sorted(consumer.assignment())
        end = await consumer.end_offsets(partitions)
        await consumer.seek_to_beginning(*partitions)
        remaining = {tp for tp in partitions if end[tp] > 0}
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000, max_records=5000)
            for tp, records in batches.items():
                count += sum(1 for r in records if r.offset < end[tp])
            for tp in list(remaining):
                if await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    return count, time.perf_counter() - started


async def replay(bootstrap: str, workdir: Path):
    db = Database(f"sqlite+aiosqlite:///{workdir}/replay-{uuid.uuid4().hex[:6]}.db")
    try:
        await db.create_all(metadata)
        await prepare(db)
        return await rebuild(db, bootstrap)
    finally:
        await db.dispose()


# --- services as processes -------------------------------------------------------------------------------

class Service:
    def __init__(self, name: str, workdir: Path, bootstrap: str) -> None:
        self.name, self.port = name, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PORT": str(self.port), "KAFKA_BOOTSTRAP": bootstrap, "LOG_JSON": "false",
               "LOG_LEVEL": "WARNING", "DATABASE_URL": f"sqlite+aiosqlite:///{workdir}/{name}-{self.port}.db",
               "CONSUMER_GROUP": f"bench-{name}-{uuid.uuid4().hex[:6]}"}
        self.log = open(workdir / f"{name}-{self.port}.log", "wb")
        self.process = subprocess.Popen([sys.executable, "-m", f"services.{name}"], cwd=ROOT, env=env,
                                        stdout=self.log, stderr=subprocess.STDOUT)

    async def healthy(self, timeout: float = 60) -> "Service":
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"{self.name} exited; see {self.log.name}")
                try:
                    if (await client.get(f"{self.url}/healthz")).status_code == 200:
                        return self
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)
        raise RuntimeError(f"{self.name} did not start")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def _body(dealer: str) -> dict:
    return {"dealer_id": dealer, "channel": "dealer", "symptom": "noise", "purchase_date": "2025-01-01",
            "customer": {"name": "B", "phone": "+49 170 5550101", "region": "north"},
            "product": {"serial": f"SN-{uuid.uuid4().hex[:12]}", "model": "M", "product_line": "tractor"}}


def percentile(values: list[float], pct: int) -> float:
    ordered = sorted(values)
    return ordered[max(0, (pct * len(ordered) + 99) // 100 - 1)]


async def measure_lag(intake_url: str, analytics_url: str, rate: float, seconds: float) -> dict:
    """Probe lags (ms) from intake's 201 to the probe's dealer row in analytics, under `rate` requests/s."""
    agent = {"Authorization": f"Bearer {mint_token(SECRET, subject='bench', roles=['agent'])}"}
    today = datetime.now(timezone.utc).date()
    window = {"group_by": "all", "from": today.isoformat(), "to": (today + timedelta(days=1)).isoformat()}
    lags: list[float] = []
    load = {"created": 0, "failed": 0}
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        async def background(dealer_no: int) -> None:
            response = await client.post(f"{intake_url}/v1/service-requests", json=_body(f"LOAD{dealer_no % 50}"),
                                         headers=agent)
            load["created" if response.status_code == 201 else "failed"] += 1

        async def probe() -> None:
            dealer = f"PROBE-{uuid.uuid4().hex[:10]}"
            viewer = {"Authorization": f"Bearer {mint_token(SECRET, subject=dealer, roles=['dealer'], dealer_id=dealer)}"}
            response = await client.post(f"{intake_url}/v1/service-requests", json=_body(dealer), headers=agent)
            created = time.perf_counter()
            if response.status_code != 201:
                load["failed"] += 1
                return
            while time.perf_counter() - created < 10:
                rows = (await client.get(f"{analytics_url}/v1/views/throughput", params=window,
                                         headers=viewer)).json()["rows"]
                if rows and rows[0]["received"] == 1:
                    lags.append((time.perf_counter() - created) * 1000)
                    return
                await asyncio.sleep(0.01)
            lags.append(10_000.0)

        async def steady_load() -> None:
            pending, n = [], 0
            while time.perf_counter() - started < seconds:
                pending.append(asyncio.create_task(background(n)))
                n += 1
                await asyncio.sleep(1 / rate)
            await asyncio.gather(*pending)

        async def probes() -> None:
            # One probe at a time, 100 ms apart: the polling itself stays a small load on analytics.
            while time.perf_counter() - started < seconds:
                await probe()
                await asyncio.sleep(0.1)

        started = time.perf_counter()
        await asyncio.gather(probes(), *([steady_load()] if rate else []))
        elapsed = time.perf_counter() - started
    return {"rate": rate, "achieved_rps": round(load["created"] / elapsed, 1), "failed": load["failed"],
            "probes": len(lags), "p50_ms": round(percentile(lags, 50), 1), "p99_ms": round(percentile(lags, 99), 1),
            "max_ms": round(max(lags), 1)}


async def wait_caught_up(analytics_url: str, bootstrap: str, timeout: float = 600) -> float:
    """Publish markers (one dealer, many keys so every partition gets some) and wait until all show."""
    dealer = f"MARK-{uuid.uuid4().hex[:8]}"
    now = datetime.now(timezone.utc)
    producer = reliable_producer(bootstrap, "bench-analytics-marker")
    await producer.start()
    try:
        for _ in range(24):
            data = _received(str(uuid.uuid4()), dealer, "north", "marker")
            topic, key, value, headers = to_record(envelope_for(data, source="bench", time=now))
            await producer.send_and_wait(topic, value=value, key=key, headers=headers)
    finally:
        await producer.stop()
    viewer = {"Authorization": f"Bearer {mint_token(SECRET, subject=dealer, roles=['dealer'], dealer_id=dealer)}"}
    params = {"group_by": "all", "from": now.date().isoformat(), "to": (now.date() + timedelta(days=1)).isoformat()}
    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=30) as client:
        while time.perf_counter() - started < timeout:
            rows = (await client.get(f"{analytics_url}/v1/views/throughput", params=params, headers=viewer)).json()
            if rows["rows"] and rows["rows"][0]["received"] == 24:
                return time.perf_counter() - started
            await asyncio.sleep(0.25)
    raise RuntimeError("analytics did not catch up")


# --- report ----------------------------------------------------------------------------------------------

def report(results: dict, out: Path) -> str:
    r = results
    lines = [
        "# Analytics benchmark", "",
        f"`python -m deploy.bench.analytics` on {platform.node()} ({os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}), {r['when']}. Kafka: {r['broker']}. SQLite files, `SQLITE_SYNCHRONOUS` "
        "default (FULL). Load generator, intake, analytics and the broker share the machine's cores; other work "
        f"may have been running on it (load average {r['load_before']:.1f} at the start, {r['load_after']:.1f} at "
        "the end).", "",
        "## Lag from intake's HTTP 201 to the change being visible in a view", "",
        "Probe requests (one dealer each, one at a time, 100 ms apart) opened at intake during a steady background",
        "load; each probe polls `GET /v1/views/throughput` with its dealer's token every 10 ms until its request shows.", "",
        "| background load (req/s asked → achieved) | probes | p50 | p99 | max |", "|---|---|---|---|---|",
        *[f"| {x['rate']} → {x['achieved_rps']} | {x['probes']} | {x['p50_ms']} ms | {x['p99_ms']} ms | "
          f"{x['max_ms']} ms |" for x in r["lag"]], "",
        "## Replay from the beginning of the topics", "",
        f"{r['published']} events published ({r['records']} records in the four topics).", "",
        "Each reader ran three times, alternately; the best run of each is shown.", "",
        "| reader | records | seconds | records/s |", "|---|---|---|---|",
        f"| raw aiokafka consumer (read only) | {r['raw_records']} | {r['raw_seconds']:.2f} | {r['raw_rate']:.0f} |",
        f"| analytics rebuild (decode, validate, store, fold, switch) | {r['replay']['records_read']} | "
        f"{r['replay']['seconds']:.2f} | {r['replay']['records_per_second']:.0f} |", "",
        f"**Ratio replay / raw: {r['ratio']:.2f}** (aim ≥ 0.3). The rebuild stored {r['replay']['events_stored']} "
        f"events analytics uses and folded {r['replay']['requests']} requests and {r['replay']['revisits']} "
        f"revisits (read {r['replay']['read_seconds']:.2f} s, fold and switch {r['replay']['fold_seconds']:.2f} s).",
        "The raw reader only unpacks records (aiokafka's own work, which the rebuild does too); the rebuild also",
        "reads each record as a CloudEvent with the shared reader, validates its data against the contract, stores",
        "it in SQLite (the lookup indexes are built after the bulk load) and folds every request.", "",
        "## Live catch-up", "",
        f"A fresh analytics process consumed the same history through its live consumer (one transaction per "
        f"event, idempotency claim included) in {r['catchup_seconds']:.1f} s: "
        f"{r['records'] / r['catchup_seconds']:.0f} records/s.", "",
    ]
    text = "\n".join(lines)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return text


async def run(args, bootstrap: str, broker_name: str, workdir: Path) -> dict:
    await ensure_topics(bootstrap, ALL_TOPICS, partitions=3)
    results: dict = {"when": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "broker": broker_name,
                     "lag": [], "load_before": os.getloadavg()[0]}
    print("lag: starting intake and analytics ...", flush=True)
    services_ = [Service("intake", workdir, bootstrap), Service("analytics", workdir, bootstrap)]
    try:
        intake_svc, analytics_svc = [await s.healthy() for s in services_]
        await wait_caught_up(analytics_svc.url, bootstrap)
        for rate in args.rates:
            result = await measure_lag(intake_svc.url, analytics_svc.url, rate, args.seconds)
            print(f"  load {rate}/s: {result}", flush=True)
            results["lag"].append(result)
    finally:
        for service in services_:
            service.stop()
    print(f"replay: publishing ~{args.events} events ...", flush=True)
    results["published"] = await publish_history(bootstrap, args.events)
    # Alternately, three times each; the best run of each reader counts (the machine is shared).
    raws, replays = [], []
    for _ in range(3):
        raws.append(await raw_read(bootstrap))
        replays.append((await replay(bootstrap, workdir)).as_dict())
    results["raw_records"], results["raw_seconds"] = min(raws, key=lambda r: r[1])
    results["records"] = results["raw_records"]
    results["raw_rate"] = results["raw_records"] / results["raw_seconds"]
    results["replay"] = replayed = min(replays, key=lambda r: r["seconds"])
    results["ratio"] = replayed["records_per_second"] / results["raw_rate"]
    print(f"  raw consumer: {[round(r[1], 3) for r in raws]} s for {results['raw_records']} records", flush=True)
    print(f"  rebuild: {[round(r['seconds'], 3) for r in replays]} s; best {replayed}", flush=True)
    print("live catch-up: a fresh analytics process ...", flush=True)
    fresh = Service("analytics", workdir, bootstrap)
    try:
        await fresh.healthy()
        started = time.perf_counter()
        await wait_caught_up(fresh.url, bootstrap)
        results["catchup_seconds"] = time.perf_counter() - started
    finally:
        fresh.stop()
    results["load_after"] = os.getloadavg()[0]
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--rates", type=float, nargs="+", default=[0, 50, 100, 150],
                        help="background requests per second at intake during the lag probes")
    parser.add_argument("--seconds", type=float, default=20, help="length of each lag run")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "bench-analytics.md")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="bench-analytics-"))
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP")
    broker = None
    if not bootstrap:
        ensure_jars()
        broker = LocalKafkaBroker(data_dir=workdir / "kafka")
        broker.start()
        bootstrap = broker.bootstrap
    try:
        results = asyncio.run(run(args, bootstrap, "local single-node Apache Kafka (KRaft)" if broker else bootstrap,
                                  workdir))
    finally:
        if broker is not None:
            broker.stop()
    print()
    print(report(results, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
