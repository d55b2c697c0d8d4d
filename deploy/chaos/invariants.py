"""The invariants of design.md, each counted: how many cases it was checked on and how many broke it."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta

import httpx

from deploy.chaos.load import STORED_AS, Command
from deploy.chaos.system import System, consumed_topics
from deploy.chaos.topics import POISON_HEADER, Injected, headers_of, read_topic
from shared.contracts.topics import DOMAIN_TOPICS, dlq_for

INVARIANTS = (
    ("acknowledged → stored", "acknowledged commands whose event is in the service's event store"),
    ("stored → on its topic", "events in the services' event stores (commands' and reactions') on their topic"),
    ("no event id twice", "event ids on the topics; broken: extra copies from a live relay, not injected"),
    (
        "re-sent by a killed relay",
        "(informational) copies a relay killed -9 between Kafka's ack and its outbox "
        "delete sent again after restart; consumers must absorb them",
    ),
    ("outboxes drained", "services; broken: events left in an outbox"),
    ("consumers caught up", "consumer groups; broken: records not committed"),
    ("one job per field request", "field-triaged requests; broken: not exactly one job.created"),
    ("one coverage per request", "requests; broken: not exactly one coverage recorded"),
    ("analytics counts once", "requests stored by intake; broken: |analytics received - stored|"),
    ("views = rebuild", "views compared after POST /v1/admin/rebuild; broken: differing"),
    ("poison in DLQ + reason", "(poison, consumer) pairs expected; broken: missing or without reason"),
    ("retried key → original", "keyed commands retried after a lost connection; broken: not answered 2xx once"),
    ("replayed key → same answer", "acknowledged keyed commands sent again; broken: answer differs"),
)


@dataclass
class Figure:
    checked: int = 0
    broken: int = 0
    notes: list[str] = field(default_factory=list)

    def fail(self, note: str, count: int = 1) -> None:
        self.broken += count
        if len(self.notes) < 5:
            self.notes.append(note)


@dataclass
class RunReport:
    name: str
    fault: str
    sent: int = 0
    acknowledged: int = 0
    seconds: float = 0.0
    figures: dict[str, Figure] = field(default_factory=lambda: {name: Figure() for name, _ in INVARIANTS})

    @property
    def ok(self) -> bool:
        return all(f.broken == 0 for f in self.figures.values())

    def failures(self) -> list[str]:
        return [
            f"{name}: {f.broken} of {f.checked} ({'; '.join(f.notes)})" for name, f in self.figures.items() if f.broken
        ]


class TopicLedger:
    """How often each event id was on the domain topics at the previous check, so that a run is charged only
    with the copies that appeared during it."""

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()

    async def count(self, system: System) -> tuple[Counter[str], dict[str, set[str]]]:
        counts: Counter[str] = Counter()
        ids_by_topic: dict[str, set[str]] = {}
        for topic in DOMAIN_TOPICS:
            ids = [headers_of(r).get("ce_id") for r in await read_topic(system.bootstrap, topic)]
            ids = [i for i in ids if i]
            counts.update(ids)
            ids_by_topic[topic] = set(ids)
        return counts, ids_by_topic


def _index_store(system: System, service: str) -> dict[tuple[str, str], list[str]]:
    """(stream, type) → event ids, with streams also under their id without the `<type>:` namespace."""
    index: dict[tuple[str, str], list[str]] = {}
    for stream, event_type, event_id in system.services[service].query("SELECT stream_id, type, event_id FROM events"):
        index.setdefault((stream, event_type), []).append(event_id)
        if ":" in stream:
            index.setdefault((stream.split(":", 1)[1], event_type), []).append(event_id)
    return index


async def check(
    system: System,
    report: RunReport,
    commands: list[Command],
    field_requests: list[str],
    injected: Injected,
    poisoned: dict[str, tuple[str, str]],
    ledger: TopicLedger,
    replayed: list[Command],
    killed: set[str],
) -> RunReport:
    """Wait until the system is quiet (bounded), then count every invariant for this run's commands.
    `injected`: every duplicate injected into this system so far; `poisoned`: this run's poison; `killed`: the
    services killed -9 in this run (their relay may rightly send its last batch again)."""
    f = report.figures
    left = await system.wait_quiet(timeout=150)
    report.sent = len(commands)
    report.acknowledged = sum(c.acknowledged for c in commands)

    # Outboxes and consumer groups, as they stand after the bounded wait.
    backlog = await asyncio.to_thread(system.outbox_backlog)
    lag = await system.consumer_lag()
    f["outboxes drained"].checked = len(backlog)
    for name, n in backlog.items():
        if n:
            f["outboxes drained"].fail(f"{name} {n}", n)
    f["consumers caught up"].checked = len(lag)
    for name, n in lag.items():
        if n:
            f["consumers caught up"].fail(f"{name} {n}", n)
    if left and not (f["outboxes drained"].broken or f["consumers caught up"].broken):
        f["consumers caught up"].notes.append(f"quiet only after the deadline: {left}")

    # Every acknowledged command stored, and its events on the topic.
    indexes = {
        service: await asyncio.to_thread(_index_store, system, service)
        for service in {s for s, _ in STORED_AS.values()}
    }
    counts, ids_by_topic = await ledger.count(system)
    on_topics = set().union(*ids_by_topic.values())
    stored_ids: list[str] = []
    for command in commands:
        if not command.acknowledged:
            continue
        service, event_type = STORED_AS[command.kind]
        ids = indexes[service].get((command.stream or "", event_type), [])
        f["acknowledged → stored"].checked += 1
        if not ids:
            f["acknowledged → stored"].fail(f"{command.kind} {command.stream}")
        stored_ids += ids
    # Not only the commands' own events: every event any service stored (reactions, timers) is on its topic.
    everything = {
        event_id
        for service in system.services.values()
        for (event_id,) in await asyncio.to_thread(service.query, "SELECT event_id FROM events")
    }
    for event_id in everything | set(stored_ids):
        f["stored → on its topic"].checked += 1
        if event_id not in on_topics:
            f["stored → on its topic"].fail(event_id)

    # Duplicates that appeared on the topics since the previous check and were not injected.
    injected_ids = Counter(i for ids in injected.duplicate_ids.values() for i in ids)
    f["no event id twice"].checked = len(counts)
    publisher = {event_id: topic.split(".")[0] for topic, ids in ids_by_topic.items() for event_id in ids}
    for event_id, n in counts.items():
        extra = n - 1 - injected_ids.get(event_id, 0)
        before = max(0, ledger.seen.get(event_id, 0) - 1 - injected_ids.get(event_id, 0))
        if extra > before:
            if publisher.get(event_id) in killed:
                f["re-sent by a killed relay"].checked += extra - before
            else:
                f["no event id twice"].fail(f"{publisher.get(event_id)}: {event_id}", extra - before)
    ledger.seen = counts

    # Exactly one job per field-triaged request; exactly one coverage verdict per stored request.
    jobs = Counter(
        r
        for (r,) in await asyncio.to_thread(
            system.services["dispatch"].query,
            "SELECT json_extract(data, '$.request_id') FROM events WHERE type = 'job.created'",
        )
    )
    for request_id in field_requests:
        f["one job per field request"].checked += 1
        if jobs.get(request_id, 0) != 1:
            f["one job per field request"].fail(f"{request_id}: {jobs.get(request_id, 0)}")
    intake = system.services["intake"]
    requests = [
        r
        for (r,) in await asyncio.to_thread(
            intake.query, "SELECT stream_id FROM events WHERE type = 'service_request.received'"
        )
    ]
    coverage = Counter(
        r
        for (r,) in await asyncio.to_thread(
            intake.query, "SELECT stream_id FROM events WHERE type = 'service_request.coverage_recorded'"
        )
    )
    for request_id in requests:
        f["one coverage per request"].checked += 1
        if coverage.get(request_id, 0) != 1:
            f["one coverage per request"].fail(f"{request_id}: {coverage.get(request_id, 0)}")

    await _check_analytics(system, report, len(requests))
    await _check_dlq(system, report, poisoned)

    # Idempotency-Keys: a retry after a lost connection is answered 2xx, and only one effect exists.
    for command in commands:
        if not (command.key and command.retried_after_failure):
            continue
        figure = f["retried key → original"]
        figure.checked += 1
        service, event_type = STORED_AS[command.kind]
        stored = indexes[service].get((command.stream or "", event_type), [])
        if not command.acknowledged:
            figure.fail(f"{command.kind} {command.path} answered {command.status}: {str(command.response)[:120]}")
        elif len(stored) != 1 and command.kind in ("open_request", "complaint", "product"):
            figure.fail(f"{command.kind} {command.stream}: {len(stored)} stored")
    if opened := [c for c in commands if c.kind == "open_request" and c.acknowledged]:
        serials = Counter(c.body["product"]["serial"] for c in opened)
        stored_serials = Counter(
            s
            for (s,) in await asyncio.to_thread(
                intake.query,
                "SELECT json_extract(data, '$.product.serial') FROM events WHERE type = 'service_request.received'",
            )
        )
        for serial in serials:
            if stored_serials.get(serial, 0) > 1:
                f["retried key → original"].fail(f"serial {serial} opened {stored_serials[serial]} times")
    for command in replayed:
        figure = f["replayed key → same answer"]
        figure.checked += 1
        if (command.replay_status, command.replay_response) != (command.status, command.response):
            figure.fail(f"{command.kind} {command.path}: {command.status} then {command.replay_status}")
    return report


async def _check_analytics(system: System, report: RunReport, stored_requests: int) -> None:
    f = report.figures
    analytics = system.services["analytics"]
    headers = {"Authorization": f"Bearer {system.token('admin')}"}
    window = {
        "from": (date.today() - timedelta(days=2)).isoformat(),
        "to": (date.today() + timedelta(days=1)).isoformat(),
    }
    views = [("throughput", "dealer"), ("satisfaction", "dealer"), ("scorecard", "dealer"), ("throughput", "all")]
    async with httpx.AsyncClient(base_url=analytics.url, headers=headers, timeout=30) as client:

        async def snapshot() -> list:
            out = []
            for view, group_by in views:
                response = await client.get(f"/v1/views/{view}", params={**window, "group_by": group_by})
                out.append(response.json() if response.status_code == 200 else response.status_code)
            return out

        before = await snapshot()
        if errors := [f"{view} by {g}: {b}" for (view, g), b in zip(views, before) if not isinstance(b, dict)]:
            f["views = rebuild"].checked = len(views)
            f["views = rebuild"].fail("; ".join(errors), len(errors))
            return
        totals = before[-1]["rows"] if isinstance(before[-1], dict) else []
        received = sum(row.get("received", 0) for row in totals)
        f["analytics counts once"].checked = stored_requests
        if received != stored_requests:
            f["analytics counts once"].fail(
                f"analytics {received}, intake {stored_requests}", abs(received - stored_requests)
            )
        started = await client.post("/v1/admin/rebuild")
        state = {"state": f"not started: {started.status_code}"}
        deadline = time.monotonic() + 120
        while started.status_code == 202 and time.monotonic() < deadline:
            state = (await client.get("/v1/admin/rebuild")).json()
            if state.get("state") in ("succeeded", "failed"):
                break
            await asyncio.sleep(0.5)
        after = await snapshot()
        f["views = rebuild"].checked = len(views)
        if state.get("state") != "succeeded":
            f["views = rebuild"].fail(f"rebuild {state.get('state')}: {state.get('error')}", len(views))
            return
        for (view, group_by), old, new in zip(views, before, after):
            if old != new or not isinstance(new, dict):
                f["views = rebuild"].fail(f"{view} by {group_by} differs")


async def _check_dlq(system: System, report: RunReport, poisoned: dict[str, tuple[str, str]]) -> None:
    figure = report.figures["poison in DLQ + reason"]
    if not poisoned:
        return
    groups_of = {topic: [g for g, topics in consumed_topics().items() if topic in topics] for topic in DOMAIN_TOPICS}
    found: dict[str, set[str]] = {}
    for topic in DOMAIN_TOPICS:
        for record in await read_topic(system.bootstrap, dlq_for(topic)):
            h = headers_of(record)
            if POISON_HEADER in h and h.get("dlq_reason"):
                found.setdefault(h[POISON_HEADER], set()).add(h.get("dlq_consumer", "?"))
    for poison_id, (topic, kind) in poisoned.items():
        expected = set(groups_of[topic]) if kind == "unreadable" else None
        got = found.get(poison_id, set())
        if expected is None:  # bad data: judged by the consumers that handle the type, at least one
            figure.checked += 1
            if not got:
                figure.fail(f"{kind} on {topic} not in its DLQ")
        else:
            figure.checked += len(expected)
            if missing := expected - got:
                figure.fail(f"{kind} on {topic} not sent by {sorted(missing)}", len(missing))


def table(reports: list[RunReport]) -> str:
    """Runs as columns, invariants as rows: `broken/checked` per cell, `ok` when nothing broke."""
    width = max(len(name) for name, _ in INVARIANTS) + 2
    cols = [max(len(r.name), 9) + 2 for r in reports]
    lines = ["".ljust(width) + "".join(r.name.rjust(c) for r, c in zip(reports, cols))]
    lines.append(
        "sent/acknowledged".ljust(width) + "".join(f"{r.sent}/{r.acknowledged}".rjust(c) for r, c in zip(reports, cols))
    )
    lines.append("seconds".ljust(width) + "".join(f"{r.seconds:.0f}".rjust(c) for r, c in zip(reports, cols)))
    lines.append("-" * (width + sum(cols)))
    for name, _ in INVARIANTS:
        cells = []
        for r, c in zip(reports, cols):
            fig = r.figures[name]
            if name == "re-sent by a killed relay":
                cells.append((str(fig.checked) if fig.checked else "-").rjust(c))
                continue
            cell = (
                "-"
                if fig.checked == 0 and fig.broken == 0
                else (f"ok {fig.checked}" if fig.broken == 0 else f"BROKEN {fig.broken}/{fig.checked}")
            )
            cells.append(cell.rjust(c))
        lines.append(name.ljust(width) + "".join(cells))
    lines.append("")
    lines += [f"  {r.name}: {r.fault}" for r in reports]
    lines += [f"  {name}: {meaning}" for name, meaning in INVARIANTS]
    return "\n".join(lines)
