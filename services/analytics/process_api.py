"""The process view's HTTP entry points (design.md, analytics, "Process view"): hand-offs, rework, variants and
findings over a window's cohort, and the exports for process-mining tools (OCEL 2.0 JSON or SQLite, XES),
streamed. Each takes `as_of`; a dealer token gets its own requests only.

The views are SQL over the versioned facts in DuckDB (`process_sql`, held equal to the reference definitions of
`process.py` by property tests), run in a worker thread."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from enum import StrEnum
from fractions import Fraction
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, create_model
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.analytics import exports, process_sql
from services.analytics.api import VIEWERS, AsOf, FromDate, GroupByParam, ToDate, Views, scope_of, window_of
from services.analytics.metrics import Window, to_micros
from services.analytics.process import STEPS, FindingRules
from services.analytics.process_store import window_events
from services.analytics.views import GroupBy
from shared.auth import Actor
from shared.http.security import CurrentActor, Permission

router = APIRouter(tags=["process"])


class ProcessSettings(BaseSettings):
    """`HANDOFF_TARGETS` (JSON, step → minutes) and the rules for a dealer or center much slower than the others."""

    model_config = SettingsConfigDict(extra="ignore")
    handoff_targets: dict[str, float] = {"triage": 15}
    peer_factor: float = 2
    peer_margin_minutes: int = 10
    peer_min_requests: int = 5


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
    count: int
    requests: int
    detail: str
    request_ids: list[str]


def _rows_model(row: type[BaseModel]) -> type[BaseModel]:
    return create_model(f"{row.__name__}s", rows=(list[row], ...))


async def _process_view(
    analytics, view: Callable[..., list[dict]], window: Window, group_by: GroupBy, as_of, actor: Actor, **kw: Any
) -> JSONResponse:
    projection, dealer_id = analytics.projection, scope_of(actor).dealer_id
    moment = None if as_of is None else to_micros(as_of)

    def run() -> list[dict]:
        with projection.reading() as (cur, tables):
            return view(cur, tables, window, group_by, moment, dealer_id, **kw)

    return JSONResponse({"rows": await asyncio.to_thread(run)})


@router.get("/v1/views/handoffs", dependencies=[Permission(*VIEWERS)], response_model=_rows_model(HandoffRow))
async def handoffs(
    actor: CurrentActor,
    analytics: Views,
    group_by: GroupByParam = GroupBy.all,
    from_: FromDate = None,
    to: ToDate = None,
    as_of: AsOf = None,
) -> JSONResponse:
    """Per key, one row per hand-off of the chain (triage, assign, accept, travel, repair, follow_up) measured at
    least once over the requests received in `[from, to)`: from the first occurrence of its start to the first
    of its end, count, median and nearest-rank p90 minutes, total minutes, its share of the six steps' total,
    and `customer_minutes`, the part spent waiting on the customer (after a visit failed because the customer
    was absent or the site not ready)."""
    return await _process_view(
        analytics, process_sql.handoff_rows, window_of(from_, to, analytics), group_by, as_of, actor
    )


@router.get("/v1/views/rework", dependencies=[Permission(*VIEWERS)], response_model=_rows_model(ReworkRow))
async def rework(
    actor: CurrentActor,
    analytics: Views,
    group_by: GroupByParam = GroupBy.all,
    from_: FromDate = None,
    to: ToDate = None,
    as_of: AsOf = None,
) -> JSONResponse:
    """Over the jobs of the requests received in `[from, to)`: jobs assigned twice or more, jobs with a visit
    that did not fix the unit (repeat visits, by reason), and complaints reopened."""
    return await _process_view(
        analytics, process_sql.rework_rows, window_of(from_, to, analytics), group_by, as_of, actor
    )


@router.get("/v1/views/variants", dependencies=[Permission(*VIEWERS)], response_model=_rows_model(VariantRow))
async def variants(
    actor: CurrentActor,
    analytics: Views,
    group_by: GroupByParam = GroupBy.all,
    from_: FromDate = None,
    to: ToDate = None,
    as_of: AsOf = None,
) -> JSONResponse:
    """The paths the requests received in `[from, to)` took (their steps in business order), most frequent
    first: how many took each, their share, the median and p90 minutes from first to last step, and up to 20
    of their request ids."""
    return await _process_view(
        analytics, process_sql.variant_rows, window_of(from_, to, analytics), group_by, as_of, actor
    )


@router.get("/v1/views/process-findings", dependencies=[Permission(*VIEWERS)], response_model=_rows_model(FindingRow))
async def process_findings(
    actor: CurrentActor,
    analytics: Views,
    group_by: GroupByParam = GroupBy.dealer,
    from_: FromDate = None,
    to: ToDate = None,
    as_of: AsOf = None,
) -> JSONResponse:
    """What to act on, each finding with the requests behind it: a hand-off whose median exceeds its target
    (`HANDOFF_TARGETS`, e.g. triage within 15 minutes); a key whose median for a step is at least twice the
    others' and 10 minutes more (5+ requests each side); jobs bounced between technicians (3+ assignments or
    A→B→A); visits that did not fix the unit, by reason, with the time spent waiting on the customer."""
    return await _process_view(
        analytics,
        process_sql.finding_rows,
        window_of(from_, to, analytics),
        group_by,
        as_of,
        actor,
        rules=finding_rules(),
    )


class OcelFormat(StrEnum):
    json = "json"
    sqlite = "sqlite"


def _stream(analytics, window: Window, as_of, actor: Actor, by_request: bool) -> Iterator:
    projection, dealer_id = analytics.projection, scope_of(actor).dealer_id
    cur, tables = projection.snapshot()  # taken now: the stream reads this generation to its end
    return window_events(
        cur,
        tables,
        window,
        None if as_of is None else to_micros(as_of),
        dealer_id,
        by_request=by_request,
    )


@router.get(
    "/v1/exports/ocel",
    dependencies=[Permission(*VIEWERS)],
    tags=["exports"],
    responses={200: {"content": {"application/json": {}, "application/vnd.sqlite3": {}}}},
)
async def export_ocel(
    actor: CurrentActor,
    analytics: Views,
    from_: FromDate = None,
    to: ToDate = None,
    as_of: AsOf = None,
    format: Annotated[OcelFormat, Query(description="json (default) or sqlite")] = OcelFormat.json,
) -> StreamingResponse:
    """Every stored event whose `time` is in `[from, to)` as an OCEL 2.0 log, streamed: objects service_request,
    job, unit, dealer, service_center, technician, complaint, claim and part with qualified event-to-object and
    object-to-object links, `recordedat` as an event attribute; no customer names or phones. `format=sqlite`
    gives the OCEL 2.0 SQLite layout. A dealer token exports its own requests only."""
    window = window_of(from_, to, analytics)
    events = _stream(analytics, window, as_of, actor, by_request=False)
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
async def export_xes(
    actor: CurrentActor, analytics: Views, from_: FromDate = None, to: ToDate = None, as_of: AsOf = None
) -> StreamingResponse:
    """The events whose `time` is in `[from, to)` as an IEEE 1849 XES log, streamed: one trace per service
    request (its complaints included through their job), each event with `lifecycle:transition`, `org:resource`
    (the technician, else the owning party) and `recordedat`. A dealer token exports its own requests only."""
    window = window_of(from_, to, analytics)
    events = _stream(analytics, window, as_of, actor, by_request=True)
    return StreamingResponse(
        exports.xes_chunks(events),
        media_type="application/xml",
        headers={"Content-Disposition": "attachment; filename=servicetrail.xes"},
    )
