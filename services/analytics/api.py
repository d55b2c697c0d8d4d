"""analytics' HTTP entry points: the views (throughput, satisfaction, scorecard, and the dashboard's trend and
durations), alerts, and the rebuild. Analysts and admins read everything; a dealer token reads the same views
computed over its own requests only."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, Field

from services.analytics import sqlviews
from services.analytics.application import AnalyticsViews, Scope, ViewQuery
from services.analytics.metrics import Window
from services.analytics.replay import RebuildRunning
from services.analytics.views import GroupBy
from shared.auth import Actor, Role
from shared.http.pagination import Cursor, Limit, keyset_after
from shared.http.problems import Problem
from shared.http.security import CurrentActor, Permission

views = APIRouter(prefix="/v1/views", tags=["views"])
admin = APIRouter(prefix="/v1/admin", tags=["admin"])

VIEWERS = (Role.analyst, Role.dealer)
DEFAULT_DAYS = 30
MAX_DAYS = 1830  # five years: longer is no longer a view of the service process, and would scan for long


class ThroughputRow(BaseModel):
    key: str
    received: int
    resolved: int
    backlog: int
    phone_resolved_pct: float | None
    escalated_pct: float | None
    median_minutes_to_triage: float | None
    median_minutes_to_assign: float | None
    p90_minutes_to_assign: float | None
    median_minutes_to_arrive: float | None
    p90_minutes_to_arrive: float | None
    median_minutes_to_resolve: float | None
    p90_minutes_to_resolve: float | None
    first_time_fix_pct: float | None
    sla_met_pct: float | None
    complaint_rate_pct: float | None


class SatisfactionRow(BaseModel):
    key: str
    responses: int
    avg_score: float | None
    csat_pct: float | None
    csi: float | None
    nps: float | None
    low_scores: int


class ScorecardRow(BaseModel):
    key: str
    sla_met_pct: float | None
    first_time_fix_pct: float | None
    csat_pct: float | None
    score: float | None


class ThroughputView(BaseModel):
    rows: list[ThroughputRow]


class SatisfactionView(BaseModel):
    rows: list[SatisfactionRow]


class ScorecardView(BaseModel):
    rows: list[ScorecardRow]


class TrendRow(BaseModel):
    day: str
    received: int
    resolved: int
    backlog: int


class TrendView(BaseModel):
    rows: list[TrendRow]


class DurationBucket(BaseModel):
    label: str
    count: int


class StepDurations(BaseModel):
    count: int
    median_minutes: float | None
    p90_minutes: float | None
    buckets: list[DurationBucket]


class DurationsView(BaseModel):
    steps: dict[str, StepDurations] = Field(description="triage, assign, arrive and resolve")


class AlertState(StrEnum):
    active = "active"
    cleared = "cleared"


def _views(request: Request) -> AnalyticsViews:
    return request.app.state.views


Views = Annotated[AnalyticsViews, Depends(_views)]
GroupByParam = Annotated[
    GroupBy, Query(description="dealer, center, technician, region, product_line, day, month or all")
]
AsOf = Annotated[
    AwareDatetime | None,
    Query(description="RFC 3339: the numbers as they stood then (only events recorded by that moment)"),
]
FromDate = Annotated[
    date | None, Query(alias="from", description="First UTC day of the window (default: 30 days before `to`)")
]
ToDate = Annotated[date | None, Query(description="UTC day after the window (default: tomorrow)")]


def window_of(first: date | None, end: date | None, analytics: AnalyticsViews) -> Window:
    end = end or (analytics.clock.now().date() + timedelta(days=1))
    first = first or (end - timedelta(days=DEFAULT_DAYS))
    if first >= end:
        raise Problem(
            422,
            f"The window is empty: `from` ({first}) must be before `to` ({end}).",
            slug="validation-error",
            title="Validation failed",
            errors=[
                {"field": "query.from", "location": "query", "reason": "must be before `to`"},
                {"field": "query.to", "location": "query", "reason": "must be after `from`"},
            ],
        )
    if (end - first).days > MAX_DAYS:
        raise Problem(
            422,
            f"The window is longer than {MAX_DAYS} days.",
            slug="validation-error",
            title="Validation failed",
            errors=[{"field": "query.from", "location": "query", "reason": f"at most {MAX_DAYS} days before `to`"}],
        )
    return Window.of_dates(first, end)


def scope_of(actor: Actor) -> Scope:
    """The one confinement rule of shared.auth: a dealer token sees its own requests' numbers only."""
    return Scope(dealer_id=actor.dealer_scope)


async def windowed(
    actor: CurrentActor, analytics: Views, from_: FromDate = None, to: ToDate = None, as_of: AsOf = None
) -> ViewQuery:
    """The question every view answers: a window of days, a moment, and whose requests (the caller's scope)."""
    return ViewQuery(window_of(from_, to, analytics), as_of, scope_of(actor))


def grouped(default: GroupBy) -> Callable[..., Awaitable[ViewQuery]]:
    """`windowed` and a `group_by` with the view's own default."""

    async def query(
        actor: CurrentActor,
        analytics: Views,
        group_by: GroupByParam = default,
        from_: FromDate = None,
        to: ToDate = None,
        as_of: AsOf = None,
    ) -> ViewQuery:
        return ViewQuery(window_of(from_, to, analytics), as_of, scope_of(actor), group_by)

    return query


WindowQuery = Annotated[ViewQuery, Depends(windowed)]
GroupedQuery = Annotated[ViewQuery, Depends(grouped(GroupBy.all))]


@views.get("/throughput", dependencies=[Permission(*VIEWERS)])
async def throughput(query: GroupedQuery, analytics: Views) -> ThroughputView:
    """Requests per group over `[from, to)`: the cohort received in the window with its times to triage,
    assignment, arrival and resolution (median, nearest-rank p90, minutes), first-time fix, SLA met and
    complaints; resolutions in the window; the backlog at `to`. Percentages 0-100, 1 decimal, null where the
    denominator is 0."""
    return ThroughputView.model_validate({"rows": await analytics.view(sqlviews.throughput_rows, query)})


@views.get("/satisfaction", dependencies=[Permission(*VIEWERS)])
async def satisfaction(query: GroupedQuery, analytics: Views) -> SatisfactionView:
    """Revisits in `[from, to)` by their own time: responses, average score, CSAT (share of 4-5), CSI, NPS
    (promoters 9-10 minus detractors 0-6, among revisits that gave one) and low scores (1-2)."""
    return SatisfactionView.model_validate({"rows": await analytics.view(sqlviews.satisfaction_rows, query)})


@views.get("/scorecard", dependencies=[Permission(*VIEWERS)])
async def scorecard(query: GroupedQuery, analytics: Views) -> ScorecardView:
    """SLA met, first-time fix and CSAT per group, and score = 0.2 × SLA met + 0.3 × first-time fix + 0.5 ×
    CSAT from the unrounded parts (a missing part counts as 0; null when all three are missing)."""
    return ScorecardView.model_validate({"rows": await analytics.view(sqlviews.scorecard_rows, query)})


@views.get("/trend", dependencies=[Permission(*VIEWERS)])
async def trend(query: WindowQuery, analytics: Views) -> TrendView:
    """Per UTC day of the window: requests received that day, resolved that day, and the backlog at the day's
    end (the dashboard's throughput-and-backlog chart)."""
    return TrendView.model_validate({"rows": await analytics.view(sqlviews.trend_rows, query)})


@views.get("/durations", dependencies=[Permission(*VIEWERS)])
async def durations(query: WindowQuery, analytics: Views) -> DurationsView:
    """How long the window's cohort took from received to triage, first assignment, first arrival and
    resolution: counts per duration bucket, with median and p90 in minutes."""
    return DurationsView.model_validate({"steps": await analytics.view(sqlviews.duration_histograms, query)})


@views.get("/alerts", dependencies=[Permission(*VIEWERS)])
async def alerts(
    actor: CurrentActor,
    analytics: Views,
    state: Annotated[AlertState, Query(description="active (default) or cleared")] = AlertState.active,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> JSONResponse:
    """Alerts, newest first: a dealer's or center's SLA met or CSAT below its threshold over the last days, and
    growing backlogs. Raised and cleared as events arrive. Dealers see only their own."""
    cleared = state == AlertState.cleared
    after = keyset_after(cursor, list)
    if after is not None and not _alert_key(after, cleared):
        raise Problem(
            400,
            "The cursor is not one this API handed out.",
            slug="invalid-cursor",
            errors=[{"field": "cursor", "reason": "not a cursor of this list"}],
        )
    page = await analytics.alerts(cleared=cleared, scope=scope_of(actor), limit=limit, after=after)
    return JSONResponse(page.model_dump(mode="json"))


def _alert_key(after: list[Any], cleared: bool) -> bool:
    """The shape of an alert list's key: [cleared_at, id] for cleared alerts, [raised_at, kind, scope, key]."""
    kinds = (int, int) if cleared else (int, str, str, str)
    return len(after) == len(kinds) and all(type(part) is kind for part, kind in zip(after, kinds, strict=True))


def _status(analytics: AnalyticsViews) -> dict:
    return vars(analytics.rebuild_status).copy()


@admin.post("/rebuild", status_code=202, dependencies=[Permission(Role.admin)])
async def start_rebuild(analytics: Views) -> JSONResponse:
    """Replay the four topics from their beginning into fresh tables, then switch the views to them. The views
    keep answering from the current tables meanwhile. 409 while a rebuild runs; follow it with GET."""
    try:
        analytics.start_rebuild()
    except RebuildRunning as exc:
        raise Problem(409, str(exc), slug="rebuild-running") from exc
    return JSONResponse(_status(analytics), status_code=202, headers={"Location": "/v1/admin/rebuild"})


@admin.get("/rebuild", dependencies=[Permission(Role.admin)])
async def rebuild_status(analytics: Views) -> JSONResponse:
    """The last rebuild started by this process: state (idle, running, succeeded, failed) and its report."""
    return JSONResponse(_status(analytics))


routers = [views, admin]
