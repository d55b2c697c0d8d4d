"""The process view's HTTP entry points (design.md, analytics, "Process view"): hand-offs, rework, variants and
findings over a window's cohort, and the exports for process-mining tools (OCEL 2.0 JSON or SQLite, XES),
streamed. Each takes `as_of`; a dealer token gets its own requests only.

The views are SQL over the versioned facts in DuckDB (`process_sql`, held equal to the reference definitions of
`process.py` by property tests), run in a worker thread."""

from __future__ import annotations

from collections.abc import Iterator
from enum import StrEnum
from fractions import Fraction
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.analytics import exports, process_sql
from services.analytics.api import VIEWERS, GroupedQuery, Views, WindowQuery, grouped
from services.analytics.application import AnalyticsViews, ViewQuery
from services.analytics.metrics import to_micros
from services.analytics.process import STEPS, FindingRules
from services.analytics.process_store import window_events
from services.analytics.records import AnalyticsEvent
from services.analytics.views import GroupBy
from shared.http.security import Permission

router = APIRouter(tags=["process"])


class ProcessSettings(BaseSettings):
    """`HANDOFF_TARGETS` (JSON, step → minutes) and the rules for a dealer or center much slower than the others."""

    model_config = SettingsConfigDict(extra="ignore")
    handoff_targets: dict[str, float] = {"triage": 15}
    peer_factor: float = 2
    peer_margin_minutes: int = 10
    # At least one measured request on each side: a key or peers with none have no median to compare.
    peer_min_requests: int = Field(5, ge=1)


def finding_rules() -> FindingRules:
    settings = ProcessSettings()
    unknown = sorted(set(settings.handoff_targets) - set(STEPS))
    if unknown:
        raise ValueError(f"HANDOFF_TARGETS names steps that do not exist: {unknown}")
    return FindingRules(
        handoff_targets=settings.handoff_targets,
        peer_min_requests=settings.peer_min_requests,
        peer_margin_minutes=settings.peer_margin_minutes,
        # Exact: the rules compare medians with factor × medians in integers (a float factor has no numerator).
        peer_factor=Fraction(str(settings.peer_factor)),
    )


class HandoffRow(BaseModel):
    key: str
    step: str
    owner: str
    count: int
    median_minutes: float | None
    p90_minutes: float | None
    total_minutes: float | None
    share_pct: float | None
    customer_minutes: float | None


class ReworkRow(BaseModel):
    key: str
    jobs: int
    reassigned_pct: float | None
    repeat_visit_pct: float | None
    repeat_visits: int
    reasons: dict[str, int]
    reopened_complaints: int


class VariantRow(BaseModel):
    key: str
    path: list[str]
    requests: int
    share_pct: float | None
    median_minutes: float | None
    p90_minutes: float | None
    request_ids: list[str]


class FindingRow(BaseModel):
    kind: str
    key: str
    step: str | None
    owner: str | None
    reason: str | None
    side: str
    customer_minutes: float | None = Field(
        None, description="For repeat visits the customer caused: minutes spent waiting on the customer"
    )
    count: int
    requests: int
    detail: str
    request_ids: list[str]


class HandoffView(BaseModel):
    rows: list[HandoffRow]


class ReworkView(BaseModel):
    rows: list[ReworkRow]


class VariantView(BaseModel):
    rows: list[VariantRow]


class FindingView(BaseModel):
    rows: list[FindingRow]


FindingsQuery = Annotated[ViewQuery, Depends(grouped(GroupBy.dealer))]


@router.get("/v1/views/handoffs", dependencies=[Permission(*VIEWERS)])
async def handoffs(query: GroupedQuery, analytics: Views) -> HandoffView:
    """Per key, one row per hand-off of the chain measured at least once over the requests received in
    `[from, to)`, in chain order: from the first occurrence of its start to the first of its end, count, median
    and nearest-rank p90 minutes, total minutes, its share, and `customer_minutes`, the part spent waiting on the
    customer (after a visit failed because the customer was absent or the site not ready).

    The contract's six steps: triage, assign, accept, travel, repair, follow_up. Three more for paid service
    and parts, which lie inside them: `quoting` (hotline; first quote_required → first quote_issued) and
    `customer_decision` (customer; first quote_issued → the first acceptance, decline, or expiry not withdrawn
    by a late-synced acceptance), both inside `assign`; `parts_wait` (warehouse), inside `repair`: from the
    first part request of the request's jobs that could not be served from the technician's van (backordered,
    or reserved at a center or warehouse) to the last first-receipt of those part requests. `share_pct` of
    every step, the added ones too, is its total over the six contract steps' total × 100 (so the six still
    add up to 100 and the added ones say how much of that time was quoting, the customer's or the parts')."""
    return HandoffView.model_validate({"rows": await analytics.view(process_sql.handoff_rows, query)})


@router.get("/v1/views/rework", dependencies=[Permission(*VIEWERS)])
async def rework(query: GroupedQuery, analytics: Views) -> ReworkView:
    """Over the jobs of the requests received in `[from, to)`: jobs assigned twice or more, jobs with a visit
    that did not fix the unit (repeat visits, by reason), and complaints reopened."""
    return ReworkView.model_validate({"rows": await analytics.view(process_sql.rework_rows, query)})


@router.get("/v1/views/variants", dependencies=[Permission(*VIEWERS)])
async def variants(query: GroupedQuery, analytics: Views) -> VariantView:
    """The paths the requests received in `[from, to)` took (their steps in business order), most frequent
    first: how many took each, their share, the median and p90 minutes from first to last step, and up to 20
    of their request ids."""
    return VariantView.model_validate({"rows": await analytics.view(process_sql.variant_rows, query)})


@router.get("/v1/views/process-findings", dependencies=[Permission(*VIEWERS)])
async def process_findings(query: FindingsQuery, analytics: Views) -> FindingView:
    """What to act on, each finding with the requests behind it: a hand-off whose median exceeds its target
    (`HANDOFF_TARGETS`, e.g. triage within 15 minutes); a key whose median for a step is at least twice the
    others' and 10 minutes more (5+ requests each side); jobs bounced between technicians (3+ assignments or
    A→B→A); visits that did not fix the unit, by reason, with the time spent waiting on the customer."""
    rows = await analytics.view(process_sql.finding_rows, query, rules=finding_rules())
    return FindingView.model_validate({"rows": rows})


class OcelFormat(StrEnum):
    json = "json"
    sqlite = "sqlite"


def _stream(analytics: AnalyticsViews, query: ViewQuery, by_request: bool) -> Iterator[AnalyticsEvent]:
    cur, tables = analytics.projection.snapshot()  # taken now: the stream reads this generation to its end
    moment = None if query.as_of is None else to_micros(query.as_of)
    return window_events(cur, tables, query.window, moment, query.scope.dealer_id, by_request=by_request)


@router.get(
    "/v1/exports/ocel",
    dependencies=[Permission(*VIEWERS)],
    tags=["exports"],
    responses={200: {"content": {"application/json": {}, "application/vnd.sqlite3": {}}}},
)
async def export_ocel(
    query: WindowQuery,
    analytics: Views,
    format: Annotated[OcelFormat, Query(description="json (default) or sqlite")] = OcelFormat.json,
) -> StreamingResponse:
    """Every stored event whose `time` is in `[from, to)` as an OCEL 2.0 log, streamed: objects service_request,
    job, unit, dealer, service_center, technician, complaint, claim and part with qualified event-to-object and
    object-to-object links, `recordedat` as an event attribute; no customer names or phones. `format=sqlite`
    gives the OCEL 2.0 SQLite layout. A dealer token exports its own requests only."""
    events = _stream(analytics, query, by_request=False)
    if format == OcelFormat.sqlite:
        return StreamingResponse(
            exports.ocel_sqlite_chunks(events),
            media_type="application/vnd.sqlite3",
            headers={"Content-Disposition": "attachment; filename=servicetrail.ocel.sqlite"},
        )
    return StreamingResponse(
        exports.ocel_json_chunks(events),
        media_type="application/json",
        headers={"Content-Disposition": "attachment; filename=servicetrail.jsonocel"},
    )


@router.get(
    "/v1/exports/xes",
    dependencies=[Permission(*VIEWERS)],
    tags=["exports"],
    responses={200: {"content": {"application/xml": {}}}},
)
async def export_xes(query: WindowQuery, analytics: Views) -> StreamingResponse:
    """The events whose `time` is in `[from, to)` as an IEEE 1849 XES log, streamed: one trace per service
    request (its complaints included through their job), each event with `lifecycle:transition`, `org:resource`
    (the technician, else the owning party) and `recordedat`. A dealer token exports its own requests only."""
    events = _stream(analytics, query, by_request=True)
    return StreamingResponse(
        exports.xes_chunks(events),
        media_type="application/xml",
        headers={"Content-Disposition": "attachment; filename=servicetrail.xes"},
    )
