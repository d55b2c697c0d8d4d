"""Exports for process-mining tools, written from stored events as a stream (design.md, analytics, "Process view"):
OCEL 2.0 JSON, the OCEL 2.0 SQLite layout, and IEEE 1849 XES. No analytics database here: each writer takes an
iterable of `AnalyticsEvent` rows (already windowed, `as_of`-filtered and dealer-scoped by the caller) and
yields bytes, so that a year of history never has to fit in memory.

What an event becomes (`ocel_event`):
- its objects, with namespaced ids (`service_request:<id>`, `technician:<id>`…, so that a dealer and a
  technician sharing a name stay two objects): every id field of its data (`request_id`, `job_id`, `serial`,
  `dealer_id`, `center_id`, `technician_id`, `complaint_id`, `claim_id`, `part_number`), each a qualified
  event-to-object link;
- object-to-object links from the event's own aggregate (a job event: the job) to every other object it names,
  qualified by the role, and technician → service center ("works at") when an event names both;
- its attributes: `recordedat` (when it was stored, for `as_of`), and the scalar fields of its data — never
  the customer's name or phone, nor free text that could hold them (symptom, comments, notes…).

Objects are deduplicated in a temporary SQLite file beside the stream (memory stays flat); the OCEL 2.0
SQLite layout is that file, completed. Attribute values are written as strings, typed by the declared
attribute types, as the OCEL 2.0 JSON schema requires."""

from __future__ import annotations

import functools
import json
import os
import re
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from xml.sax.saxutils import quoteattr

from services.analytics.metrics import MICROS_PER_DAY, from_micros
from services.analytics.records import AnalyticsEvent

# data field → (object type, qualifier of the link)
ID_FIELDS: dict[str, tuple[str, str]] = {
    "request_id": ("service_request", "request"),
    "job_id": ("job", "job"),
    "serial": ("unit", "unit"),
    "dealer_id": ("dealer", "dealer"),
    "center_id": ("service_center", "service center"),
    "technician_id": ("technician", "technician"),
    "previous_technician_id": ("technician", "previous technician"),
    "complaint_id": ("complaint", "complaint"),
    "claim_id": ("claim", "claim"),
    "part_number": ("part", "part"),
}
OBJECT_TYPES = (
    "service_request",
    "job",
    "unit",
    "dealer",
    "service_center",
    "technician",
    "complaint",
    "claim",
    "part",
)
# Sharper qualifiers where the event says what the role is.
QUALIFIERS: dict[tuple[str, str], str] = {
    ("service_request.received", "dealer_id"): "opened for dealer",
    ("job.assigned", "technician_id"): "assigned to",
    ("job.assigned", "center_id"): "assigned to center",
    ("job.accepted", "technician_id"): "accepted by",
    ("job.arrived", "technician_id"): "visited by",
    ("job.completed", "technician_id"): "completed by",
    ("part.swapped", "part_number"): "part fitted",
    ("part.returned", "part_number"): "part returned",
    ("part_request.backordered", "part_number"): "part backordered",
    ("part_request.reserved", "part_number"): "part reserved",
    ("part_request.shipped", "part_number"): "part shipped",
    ("part_request.received", "part_number"): "part received",
    ("claim.submitted", "dealer_id"): "filed by",
}
# The aggregate an event belongs to: the source of its object-to-object links.
SUBJECT_FIELD: dict[str, str] = {
    "service_request": "request_id",
    "job": "job_id",
    "revisit": "job_id",
    "complaint": "complaint_id",
    "claim": "claim_id",
    "warranty": "request_id",
    "unit": "serial",
    "product": "serial",
    "service_center": "center_id",
    "technician": "technician_id",
    "part_request": "job_id",
}
SUBJECT_BY_TYPE = {"part.swapped": "job_id", "part.registered": "part_number"}
# Never exported: free text (may name or reach a person) and personal data.
PRIVATE_FIELDS = frozenset(
    {
        "name",
        "phone",
        "symptom",
        "comment",
        "description",
        "details",
        "note",
        "resolution",
        "customer",
        "email",
        "address",
    }
)
# Attributes of objects, from the events that tell them (object type → data field → attribute name).
OBJECT_ATTRIBUTES: dict[str, dict[str, str]] = {
    "service_request": {
        "region": "region",
        "product_line": "product_line",
        "mode": "mode",
        "priority": "priority",
        "customer_tier": "customer_tier",
    },
    "unit": {"model": "model", "product_line": "product_line"},
}


@functools.lru_cache(maxsize=4096)
def _day(day: int) -> str:
    return from_micros(day * MICROS_PER_DAY).strftime("%Y-%m-%dT")


def rfc3339(micros: int) -> str:
    """RFC 3339 UTC with microseconds, e.g. `2026-03-02T08:00:00.000000Z` (by arithmetic: it runs per event)."""
    day, rest = divmod(micros, MICROS_PER_DAY)
    seconds, fraction = divmod(rest, 1_000_000)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    return f"{_day(day)}{hour:02d}:{minute:02d}:{second:02d}.{fraction:06d}Z"


def _typed(value) -> tuple[str, str] | None:
    """(OCEL attribute type, the value as a string) of a scalar; None for anything else."""
    if isinstance(value, bool):
        return "boolean", "true" if value else "false"
    if isinstance(value, int):
        return "integer", str(value)
    if isinstance(value, (float, Decimal)):
        return "float", str(value)
    if isinstance(value, str):
        return "string", value
    return None


@dataclass(slots=True)
class OcelEvent:
    """One event as OCEL 2.0 sees it."""

    id: str
    type: str
    time: int
    attributes: list[tuple[str, str, str]]  # (name, type, value)
    relationships: list[tuple[str, str]]  # (object id, qualifier)
    objects: list[tuple[str, str]]  # (object id, object type)
    links: list[tuple[str, str, str]]  # (source id, target id, qualifier)
    object_attributes: list[tuple[str, str, str, str]] = field(default_factory=list)  # (id, name, type, value)


def object_id(object_type: str, raw: str) -> str:
    return f"{object_type}:{raw}"


@functools.cache
def _roles(event_type: str) -> tuple[dict[str, tuple[str, str]], str | None, bool]:
    """Per event type: field → (object type, qualifier); the field naming its aggregate; whether it describes
    a service request (only a request's own events do)."""
    roles = {
        name: (otype, QUALIFIERS.get((event_type, name), qualifier)) for name, (otype, qualifier) in ID_FIELDS.items()
    }
    prefix = event_type.split(".", 1)[0]
    return roles, SUBJECT_BY_TYPE.get(event_type) or SUBJECT_FIELD.get(prefix), prefix == "service_request"


def _flattened(event: AnalyticsEvent) -> dict:
    """The event's whole stored data (its payload; the folded fields when there is none) with the customer's
    region and the product's fields lifted out (the rest of the customer — name, phone — dropped), and its
    request and job ids."""
    data = event.payload if event.payload is not None else event.data
    if isinstance(data, str):  # the stored JSON text as it came
        data = json.loads(data)
    if "customer" in data or "product" in data:
        data = dict(data)
        customer, product = data.pop("customer", None), data.pop("product", None)
        if isinstance(customer, dict) and customer.get("region") is not None:
            data.setdefault("region", customer["region"])
        if isinstance(product, dict):
            for name in ("serial", "model", "product_line"):
                if product.get(name) is not None:
                    data.setdefault(name, product[name])
    if (event.request_id is not None and "request_id" not in data) or (
        event.job_id is not None and "job_id" not in data
    ):
        data = {
            **data,
            "request_id": data.get("request_id") or event.request_id,
            "job_id": data.get("job_id") or event.job_id,
        }
    return data


def ocel_event(event: AnalyticsEvent) -> OcelEvent:
    """The OCEL 2.0 form of one stored event (see the module's docstring)."""
    roles, subject_field, describes_request = _roles(event.type)
    data = _flattened(event)
    named: dict[str, str] = {}  # field → object id
    objects, relationships = [], []
    attributes = [("recordedat", "time", rfc3339(event.recorded_at))]
    for name, value in data.items():
        if value is None or value == "":
            continue
        role = roles.get(name)
        if role is not None:
            oid = f"{role[0]}:{value}"
            named[name] = oid
            objects.append((oid, role[0]))
            relationships.append((oid, role[1]))
        elif name not in PRIVATE_FIELDS and (name != "reason" or event.type == "job.completed"):
            typed = _typed(value)
            if typed is not None:
                attributes.append((name, typed[0], typed[1]))

    links = []
    subject = named.get(subject_field) if subject_field else None
    if subject is not None:
        links = [(subject, oid, roles[name][1]) for name, oid in named.items() if oid != subject]
    if "technician_id" in named and "center_id" in named:
        links.append((named["technician_id"], named["center_id"], "works at"))

    object_attributes = []
    for name, otype in (("serial", "unit"), ("request_id", "service_request")):
        if name in named and (otype == "unit" or describes_request):
            for source, attribute in OBJECT_ATTRIBUTES[otype].items():
                typed = _typed(data.get(source))
                if typed is not None:
                    object_attributes.append((named[name], attribute, typed[0], typed[1]))
    return OcelEvent(
        event.event_id, event.type, event.time, attributes, relationships, objects, links, object_attributes
    )


# --- the object store beside the stream: the OCEL 2.0 SQLite layout ------------------------------------------


def table_suffix(type_name: str) -> str:
    """`job.assigned` → `JobAssigned`: the OCEL 2.0 SQLite layout's per-type table name part."""
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^0-9A-Za-z]+", type_name) if part)


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


class OcelDatabase:
    """The OCEL 2.0 SQLite layout being written: `event`, `object`, `event_object`, `object_object`, the
    `*_map_type` tables and one `event_<Type>` / `object_<Type>` table per type. With `events=False` only the
    objects, their attribute values and links are kept (what the JSON writer streams from at its end)."""

    BATCH = 5000

    def __init__(self, path: str, events: bool = True) -> None:
        self.path, self.with_events = path, events
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.executescript("""
            PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA temp_store = FILE;
            CREATE TABLE object (ocel_id TEXT PRIMARY KEY, ocel_type TEXT NOT NULL);
            CREATE TABLE object_object (ocel_source_id TEXT NOT NULL, ocel_target_id TEXT NOT NULL,
                ocel_qualifier TEXT NOT NULL, PRIMARY KEY (ocel_source_id, ocel_target_id, ocel_qualifier));
            CREATE TABLE object_value (ocel_id TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL,
                time INTEGER NOT NULL, PRIMARY KEY (ocel_id, name, time, value));
            CREATE TABLE event (ocel_id TEXT PRIMARY KEY, ocel_type TEXT NOT NULL);
            CREATE TABLE event_object (ocel_event_id TEXT NOT NULL, ocel_object_id TEXT NOT NULL,
                ocel_qualifier TEXT NOT NULL, PRIMARY KEY (ocel_event_id, ocel_object_id, ocel_qualifier));
            BEGIN;
        """)
        self.event_attribute_types: dict[str, dict[str, str]] = {}
        self.object_attribute_types: dict[str, dict[str, str]] = {t: {} for t in OBJECT_TYPES}
        self._event_columns: dict[str, list[str]] = {}
        self._pending: dict[str, list[tuple]] = {}
        self._recent = _Recent()
        self.events = 0

    def _queue(self, statement: str, rows: Iterable[tuple]) -> None:
        queue = self._pending.setdefault(statement, [])
        queue.extend(rows)
        if len(queue) >= self.BATCH:
            self.db.executemany(statement, queue)
            queue.clear()

    def _flush(self) -> None:
        for statement, rows in self._pending.items():
            if rows:
                self.db.executemany(statement, rows)
                rows.clear()

    def add(self, event: OcelEvent) -> None:
        self.events += 1
        declared = self.event_attribute_types.setdefault(event.type, {})
        for name, atype, _ in event.attributes:
            declared[name] = _wider(declared.get(name), atype)
        object_types = self.object_attribute_types
        for oid, name, atype, _ in event.object_attributes:
            otype = oid.split(":", 1)[0]
            object_types[otype][name] = _wider(object_types[otype].get(name), atype)
        self._queue("INSERT OR IGNORE INTO object VALUES (?, ?)", self._recent.fresh(event.objects))
        self._queue("INSERT OR IGNORE INTO object_object VALUES (?, ?, ?)", self._recent.fresh(event.links))
        self._queue(
            "INSERT OR IGNORE INTO object_value VALUES (?, ?, ?, ?)",
            ((oid, name, value, event.time) for oid, name, _, value in event.object_attributes),
        )
        if not self.with_events:
            return
        self._queue("INSERT OR IGNORE INTO event VALUES (?, ?)", [(event.id, event.type)])
        self._queue(
            "INSERT OR IGNORE INTO event_object VALUES (?, ?, ?)",
            ((event.id, oid, qualifier) for oid, qualifier in event.relationships),
        )
        columns = self._event_table(event.type, [name for name, _, _ in event.attributes])
        values = dict((name, value) for name, _, value in event.attributes)
        table = _quoted("event_" + table_suffix(event.type))
        marks = ", ".join("?" * (len(columns) + 2))
        self._queue(
            f"INSERT OR IGNORE INTO {table} VALUES ({marks})",
            [(event.id, rfc3339(event.time), *(values.get(c) for c in columns))],
        )

    def _event_table(self, event_type: str, names: list[str]) -> list[str]:
        columns = self._event_columns.get(event_type)
        table = _quoted("event_" + table_suffix(event_type))
        if columns is None:
            self._flush()
            columns = self._event_columns[event_type] = []
            self.db.execute(f"CREATE TABLE {table} (ocel_id TEXT PRIMARY KEY, ocel_time TEXT NOT NULL)")
        new = [n for n in names if n not in columns]
        if new:
            self._flush()
            for name in new:
                self.db.execute(f"ALTER TABLE {table} ADD COLUMN {_quoted(name)} TEXT")
                columns.append(name)
        return columns

    def close(self) -> None:
        self._flush()
        self.db.execute("COMMIT")
        self.db.close()

    def finish(self) -> None:
        """Complete the layout: the type maps and the `object_<Type>` tables (one first row per object with
        its first value of each attribute, then a row per later change), then drop the working table."""
        self._flush()
        db = self.db
        db.execute("CREATE TABLE event_map_type (ocel_type TEXT PRIMARY KEY, ocel_type_map TEXT NOT NULL)")
        db.executemany(
            "INSERT INTO event_map_type VALUES (?, ?)", [(t, table_suffix(t)) for t in sorted(self._event_columns)]
        )
        db.execute("CREATE TABLE object_map_type (ocel_type TEXT PRIMARY KEY, ocel_type_map TEXT NOT NULL)")
        present = [row[0] for row in db.execute("SELECT DISTINCT ocel_type FROM object ORDER BY ocel_type")]
        db.executemany("INSERT INTO object_map_type VALUES (?, ?)", [(t, table_suffix(t)) for t in present])
        for otype in present:
            names = sorted(self.object_attribute_types.get(otype, {}))
            table = _quoted("object_" + table_suffix(otype))
            columns = "".join(f", {_quoted(n)} TEXT" for n in names)
            db.execute(
                f"CREATE TABLE {table} (ocel_id TEXT NOT NULL, ocel_time TEXT NOT NULL, "
                f"ocel_changed_field TEXT{columns})"
            )
            marks = ", ".join("?" * (len(names) + 3))
            rows = self._object_rows(otype, names)
            while batch := [row for _, row in zip(range(self.BATCH), rows)]:
                db.executemany(f"INSERT INTO {table} VALUES ({marks})", batch)
        db.execute("DROP TABLE object_value")
        self.close()

    def _object_rows(self, otype: str, names: list[str]) -> Iterator[tuple]:
        # Read on the writing connection: SQLite lets a cursor read one table while another is written.
        for oid, values in self.objects(otype):
            first: dict[str, str] = {}
            changes = []
            for name, value, time in values:
                if name not in first:
                    first[name] = value
                else:
                    changes.append((name, value, time))
            yield (oid, rfc3339(0), None, *(first.get(n) for n in names))
            for name, value, time in changes:
                yield (oid, rfc3339(time), name, *(value if n == name else None for n in names))

    def objects(self, otype: str | None = None) -> Iterator[tuple[str, list[tuple[str, str, int]]]]:
        """(object id, [(attribute, value, time)…] in time order) for every object (of a type), by id."""
        reader = self.db.cursor()
        where = "WHERE o.ocel_type = ?" if otype else ""
        rows = reader.execute(
            f"SELECT o.ocel_id, v.name, v.value, v.time FROM object o LEFT JOIN object_value v ON v.ocel_id = o.ocel_id "
            f"{where} ORDER BY o.ocel_id, v.time, v.name",
            (otype,) if otype else (),
        )
        current, values = None, []
        for oid, name, value, time in rows:
            if oid != current:
                if current is not None:
                    yield current, values
                current, values = oid, []
            if name is not None:
                values.append((name, value, time))
        if current is not None:
            yield current, values


class _Recent:
    """The objects and links written lately, so that the same dealer, technician or job is not offered to the
    database again and again: bounded (forgotten wholesale when full), the database deduplicates the rest."""

    LIMIT = 50_000  # ~10 MB at most

    def __init__(self) -> None:
        self.seen: set[tuple] = set()

    def fresh(self, rows: list[tuple]) -> list[tuple]:
        new = [row for row in rows if row not in self.seen]
        if new:
            if len(self.seen) > self.LIMIT:
                self.seen.clear()
            self.seen.update(new)
        return new


def _wider(old: str | None, new: str) -> str:
    """The declared type of an attribute seen with two types: integer+float → float, else string."""
    if old is None or old == new:
        return new
    return "float" if {old, new} == {"integer", "float"} else "string"


# --- OCEL 2.0 JSON -------------------------------------------------------------------------------------------

_json_string = json.encoder.encode_basestring_ascii  # a JSON string literal (C-accelerated)


def _chunked(parts: Iterable[str], size: int) -> Iterator[bytes]:
    buffer, length = [], 0
    for part in parts:
        buffer.append(part)
        length += len(part)
        if length >= size:
            yield "".join(buffer).encode()
            buffer, length = [], 0
    if buffer:
        yield "".join(buffer).encode()


def ocel_json_chunks(
    events: Iterable[AnalyticsEvent], workdir: str | None = None, chunk_bytes: int = 1 << 16
) -> Iterator[bytes]:
    """OCEL 2.0 JSON as chunks of bytes: the events as they come, then the objects (deduplicated on disk),
    then the declared event and object types."""
    with tempfile.TemporaryDirectory(prefix="ocel-", dir=workdir) as scratch:
        store = OcelDatabase(os.path.join(scratch, "objects.sqlite"), events=False)
        try:
            yield from _chunked(_ocel_json_parts(events, store), chunk_bytes)
        finally:
            store.db.close()


def _ocel_json_parts(events: Iterable[AnalyticsEvent], store: OcelDatabase) -> Iterator[str]:
    dumps, text = json.dumps, _json_string
    yield '{"events": ['
    separator = ""
    for stored in events:
        event = ocel_event(stored)
        store.add(event)
        # by hand: json.dumps of the nested structure is the slowest step of the export
        attributes = ",".join(f'{{"name":{text(n)},"value":{text(v)}}}' for n, _, v in event.attributes)
        relationships = ",".join(f'{{"objectId":{text(o)},"qualifier":{text(q)}}}' for o, q in event.relationships)
        yield (
            f'{separator}{{"id":{text(event.id)},"type":{text(event.type)},"time":"{rfc3339(event.time)}",'
            f'"attributes":[{attributes}],"relationships":[{relationships}]}}'
        )
        separator = ","
    store._flush()
    yield '], "objects": ['
    separator = ""
    # objects and their links, both in id order, merged as they are read
    links = store.db.cursor().execute(
        "SELECT ocel_source_id, ocel_target_id, ocel_qualifier FROM object_object "
        "ORDER BY ocel_source_id, ocel_target_id, ocel_qualifier"
    )
    link = links.fetchone()
    for oid, values in store.objects():
        relationships = []
        while link is not None and link[0] <= oid:
            if link[0] == oid:
                relationships.append(link[1:])
            link = links.fetchone()
        yield separator + dumps(
            {
                "id": oid,
                "type": oid.split(":", 1)[0],
                "attributes": [{"name": n, "value": v, "time": rfc3339(t)} for n, v, t in values],
                "relationships": [{"objectId": t, "qualifier": q} for t, q in relationships],
            }
        )
        separator = ", "
    yield '], "eventTypes": ' + dumps(
        [
            {"name": t, "attributes": [{"name": n, "type": a} for n, a in sorted(attrs.items())]}
            for t, attrs in sorted(store.event_attribute_types.items())
        ]
    )
    yield (
        ', "objectTypes": '
        + dumps(
            [
                {
                    "name": t,
                    "attributes": [{"name": n, "type": a} for n, a in sorted(store.object_attribute_types[t].items())],
                }
                for t in OBJECT_TYPES
            ]
        )
        + "}"
    )


# --- OCEL 2.0 SQLite -----------------------------------------------------------------------------------------


def write_ocel_sqlite(events: Iterable[AnalyticsEvent], path: str) -> int:
    """Write the OCEL 2.0 SQLite layout of the events into a new file at `path`; the number of events."""
    store = OcelDatabase(path)
    try:
        for stored in events:
            store.add(ocel_event(stored))
        store.finish()
    except BaseException:
        store.db.close()
        raise
    return store.events


def ocel_sqlite_chunks(
    events: Iterable[AnalyticsEvent], workdir: str | None = None, chunk_bytes: int = 1 << 16
) -> Iterator[bytes]:
    """The OCEL 2.0 SQLite file as chunks of bytes: written into a temporary file first (a database file is
    only whole once written), then read out; the file is removed when the stream ends."""
    with tempfile.TemporaryDirectory(prefix="ocel-", dir=workdir) as scratch:
        path = os.path.join(scratch, "export.sqlite")
        write_ocel_sqlite(events, path)
        with open(path, "rb") as file:
            while chunk := file.read(chunk_bytes):
                yield chunk


# --- IEEE 1849 XES -------------------------------------------------------------------------------------------

XES_HEADER = """<?xml version="1.0" encoding="UTF-8"?>
<log xes.version="1849-2016" xes.features="nested-attributes" xmlns="http://www.xes-standard.org/">
<extension name="Concept" prefix="concept" uri="http://www.xes-standard.org/concept.xesext"/>
<extension name="Time" prefix="time" uri="http://www.xes-standard.org/time.xesext"/>
<extension name="Lifecycle" prefix="lifecycle" uri="http://www.xes-standard.org/lifecycle.xesext"/>
<extension name="Organizational" prefix="org" uri="http://www.xes-standard.org/org.xesext"/>
<global scope="trace"><string key="concept:name" value="__INVALID__"/></global>
<global scope="event"><string key="concept:name" value="__INVALID__"/>\
<date key="time:timestamp" value="1970-01-01T00:00:00.000000Z"/>\
<string key="lifecycle:transition" value="complete"/></global>
<classifier name="Activity" keys="concept:name"/>
<classifier name="Activity and transition" keys="concept:name lifecycle:transition"/>
"""
XES_TAGS = {"string": "string", "integer": "int", "float": "float", "boolean": "boolean", "time": "date"}
# Who did it, when no technician is named: the party owning the step.
OWNER_BY_PREFIX = {
    "service_request": "hotline",
    "job": "dispatch",
    "revisit": "hotline",
    "complaint": "complaints",
    "claim": "warranty",
    "warranty": "warranty",
    "part": "warranty",
    "unit": "warranty",
    "part_request": "warehouse",
    "stock": "warehouse",
}
# The customer decides a quote (through the agent or the dealer): the resource of those steps.
OWNER_BY_TYPE = dict.fromkeys(("quote_accepted", "quote_declined", "quote_expiry_withdrawn"), "customer")


def _xes_attribute(tag: str, key: str, value: str) -> str:
    return f"<{XES_TAGS[tag]} key={quoteattr(key)} value={quoteattr(value)}/>"


def _xes_trace(request_id: str, events: list[AnalyticsEvent]) -> str:
    events.sort(key=lambda e: e.chronological)
    converted = [ocel_event(e) for e in events]
    trace = [f"<trace>{_xes_attribute('string', 'concept:name', request_id)}"]
    received = next((c for c in converted if c.type == "service_request.received"), None)
    if received is not None:
        for name, atype, value in received.attributes:
            if name in ("region", "product_line", "channel", "customer_tier"):
                trace.append(_xes_attribute(atype, name, value))
        dealer = next((oid for oid, otype in received.objects if otype == "dealer"), None)
        trace.append(_xes_attribute("string", "dealer", dealer.split(":", 1)[1] if dealer else "direct"))
    for stored, event in zip(events, converted):
        data = _flattened(stored)
        resource = (
            data.get("technician_id")
            or data.get("center_id")
            or OWNER_BY_TYPE.get(event.type.split(".", 1)[-1])
            or OWNER_BY_PREFIX.get(event.type.split(".", 1)[0], "system")
        )
        parts = [
            _xes_attribute("string", "concept:name", event.type),
            _xes_attribute("time", "time:timestamp", rfc3339(event.time)),
            _xes_attribute("string", "lifecycle:transition", "complete"),
            _xes_attribute("string", "org:resource", str(resource)),
            _xes_attribute("string", "event_id", event.id),
        ]
        parts += [
            _xes_attribute(atype, name, value)
            for name, atype, value in event.attributes
            if not name.startswith(("concept:", "time:", "lifecycle:", "org:"))
        ]
        trace.append("<event>" + "".join(parts) + "</event>")
    trace.append("</trace>\n")
    return "".join(trace)


def xes_chunks(events_by_request: Iterable[AnalyticsEvent], chunk_bytes: int = 1 << 16) -> Iterator[bytes]:
    """IEEE 1849 XES, one trace per service request, as chunks of bytes. The events must come grouped by
    request (each request's events consecutive, e.g. `ORDER BY request_id, time`); events without a request
    belong to no trace and are left out. One request's events are held at a time."""

    def parts() -> Iterator[str]:
        yield XES_HEADER
        current, trace = None, []
        for event in events_by_request:
            if event.request_id is None:
                continue
            if event.request_id != current:
                if current is not None:
                    yield _xes_trace(current, trace)
                current, trace = event.request_id, []
            trace.append(event)
        if current is not None:
            yield _xes_trace(current, trace)
        yield "</log>\n"

    return _chunked(parts(), chunk_bytes)


def grouped_by_request(events: Iterable[AnalyticsEvent]) -> list[AnalyticsEvent]:
    """Events (in memory) ordered for `xes_chunks`: by request, then business time; a complaint event naming
    only its job goes to the job's request."""
    unique = list({e.event_id: e for e in events}.values())
    job_requests = {e.job_id: e.request_id for e in unique if e.job_id and e.request_id}
    owned = []
    for e in unique:
        owner = e.request_id or job_requests.get(e.job_id)
        if owner is not None and owner != e.request_id:
            e = AnalyticsEvent(e.event_id, e.type, owner, e.job_id, e.time, e.recorded_at, e.sequence, e.data)
        owned.append(e)
    return sorted(owned, key=lambda e: (e.request_id or "", e.chronological))
