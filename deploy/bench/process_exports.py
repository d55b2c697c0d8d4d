"""`python -m deploy.bench.process_exports [--requests N]`: how fast the process-mining exports stream, next to
a baseline measured in the same run — serialising the same stored events with one `json.dumps` each (the least
any JSON export costs) — plus the peak memory of each writer at N and at N/4 requests (flat memory: the two
peaks stay close), and the process view's reference functions over the same history.

Pure CPU: no broker, no database server (the writers spool objects into a temporary SQLite file)."""

from __future__ import annotations

import argparse
import json
import random
import time
import tracemalloc
from collections.abc import Callable, Iterator

from services.analytics.exports import ocel_json_chunks, ocel_sqlite_chunks, xes_chunks
from services.analytics.metrics import MICROS_PER_MINUTE, Window
from services.analytics.process import finding_rows, handoff_rows, process_trails, rework_rows, variant_rows
from services.analytics.records import AnalyticsEvent
from services.analytics.views import GroupBy

START = 1_767_225_600_000_000  # 2026-01-01T00:00Z


def history(requests: int, seed: int = 1) -> Iterator[AnalyticsEvent]:
    """A year of requests, grouped by request: a fifth resolved by phone, the rest through a job (some
    re-assigned, some with a failed visit), most revisited; every tenth with a complaint."""
    rnd = random.Random(seed)
    step = 365 * 1440 * MICROS_PER_MINUTE // max(requests, 1)
    for i in range(requests):
        rid, jid = f"R{i:08d}", f"J{i:08d}"
        t = START + i * step
        dealer = f"D{rnd.randrange(200)}"
        seq = iter(range(1, 100))

        def event(kind: str, at: int, job: bool = False, **fields) -> AnalyticsEvent:
            payload = {"request_id": rid, **({"job_id": jid} if job else {}), **fields}
            folded = {**fields, **fields.get("customer", {}), **fields.get("product", {})}  # what the facts read
            return AnalyticsEvent(
                f"{rid}-{kind}-{at}", kind, rid, jid if job else None, at, at + 1000, next(seq), folded, payload=payload
            )

        yield event(
            "service_request.received",
            t,
            dealer_id=dealer,
            channel="dealer",
            customer={"region": f"r{rnd.randrange(12)}"},
            product={"serial": f"SN{i}", "model": "M1", "product_line": "washer"},
            customer_tier="standard",
        )
        t += rnd.randrange(1, 60) * MICROS_PER_MINUTE
        if rnd.random() < 0.2:
            yield event("service_request.triaged", t, mode="phone", priority="P3")
            continue
        yield event("service_request.triaged", t, mode="onsite", priority="P3")
        tech, center = f"T{rnd.randrange(900)}", f"C{rnd.randrange(90)}"
        for _ in range(1 + (rnd.random() < 0.15)):
            t += rnd.randrange(1, 30) * MICROS_PER_MINUTE
            yield event("job.assigned", t, True, center_id=center, technician_id=tech, by="auto")
        t += rnd.randrange(5, 120) * MICROS_PER_MINUTE
        yield event("job.accepted", t, True, technician_id=tech)
        for fixed in ([False] if rnd.random() < 0.2 else []) + [True]:
            t += rnd.randrange(30, 1440) * MICROS_PER_MINUTE
            yield event("job.arrived", t, True, technician_id=tech)
            t += rnd.randrange(20, 180) * MICROS_PER_MINUTE
            yield event(
                "job.completed",
                t,
                True,
                technician_id=tech,
                fixed=fixed,
                **({} if fixed else {"reason": "parts_unavailable"}),
            )
        if rnd.random() < 0.8:
            yield event(
                "revisit.done", t + 1440 * MICROS_PER_MINUTE, True, satisfaction=rnd.randrange(1, 6), channel="phone"
            )
        if i % 10 == 0:
            yield event(
                "complaint.opened",
                t + 2000 * MICROS_PER_MINUTE,
                True,
                complaint_id=f"K{i}",
                dealer_id=dealer,
                category="delay",
                severity="general",
            )


def rate(name: str, consume: Callable[[Iterator[AnalyticsEvent]], int], requests: int) -> float:
    events = sum(1 for _ in history(requests))
    began = time.perf_counter()
    size = consume(history(requests))
    seconds = time.perf_counter() - began
    print(f"  {name:<34} {events / seconds:>10,.0f} events/s   {size / 1e6:8.1f} MB   {seconds:6.1f} s")
    return events / seconds


def drain(writer) -> Callable[[Iterator[AnalyticsEvent]], int]:
    return lambda events: sum(len(chunk) for chunk in writer(events))


def baseline(events: Iterator[AnalyticsEvent]) -> int:
    return sum(len(json.dumps({"id": e.event_id, "type": e.type, "time": e.time, "data": e.payload})) for e in events)


def peak_mib(writer, requests: int) -> float:
    tracemalloc.start()
    try:
        for _ in writer(history(requests)):
            pass
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    args = parser.parse_args()
    n = args.requests
    print(f"process-mining exports over {n:,} requests ({sum(1 for _ in history(n)):,} events)")
    base = rate("baseline: json.dumps per event", baseline, n)
    for name, writer in (
        ("OCEL 2.0 JSON", ocel_json_chunks),
        ("OCEL 2.0 SQLite", ocel_sqlite_chunks),
        ("XES", xes_chunks),
    ):
        measured = rate(name, drain(writer), n)
        print(f"  {'':<34} {measured / base:>10.2f} × baseline")
    small = max(n // 5, 100)
    print(f"peak Python memory (tracemalloc), {small // 4:,} vs {small:,} requests:")
    for name, writer in (("OCEL 2.0 JSON", ocel_json_chunks), ("XES", xes_chunks)):
        print(f"  {name:<34} {peak_mib(writer, small // 4):6.1f} MiB vs {peak_mib(writer, small):6.1f} MiB")
    events = list(history(n))
    window = Window(START, START + 366 * 1440 * MICROS_PER_MINUTE)
    began = time.perf_counter()
    trails = process_trails(events)
    print(f"process view reference: fold {len(trails):,} requests in {time.perf_counter() - began:.2f} s")
    for view in (handoff_rows, rework_rows, variant_rows, finding_rows):
        began = time.perf_counter()
        view(trails, window, GroupBy.dealer)
        print(f"  {view.__name__:<34} {1000 * (time.perf_counter() - began):8.0f} ms")


if __name__ == "__main__":
    main()
