"""dispatch's HTTP entry points for jobs: each route turns its input into a command and calls the application
once. Centers, technicians and a technician's queue are in `api_workforce`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from services.dispatch.application import DispatchReads
from services.dispatch.commands import AcceptJob, AssignJob, CompleteJob, RecordArrival, RecordRevisit
from services.dispatch.domain import JobStatus
from shared.auth import Role
from shared.contracts.dispatch import RevisitChannel, VisitFailureReason
from shared.contracts.enums import Priority, ServiceMode
from shared.events import ACTOR_DESCRIPTION, UNKNOWN_ACTOR
from shared.http.commands import Command, CommandCall, StrictBody, UtcDatetime, validated
from shared.http.pagination import Cursor, Limit, Page, keyset_after
from shared.http.security import CurrentActor, Permission

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

JOB_READERS = (
    Role.dispatcher,
    Role.agent,
    Role.analyst,
    Role.warranty_officer,
    Role.complaints_officer,
    Role.dealer,
    Role.technician,
)
FIELD_WORK = (Role.technician, Role.dispatcher)  # a dispatcher may record a step on the technician's behalf

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
OccurredAt = Annotated[
    UtcDatetime | None,
    Field(
        None,
        description="When it happened (offline devices sync later); at most 5 minutes ahead, not before the "
        "job's previous step, not older than MAX_BACKDATE_DAYS",
    ),
]


def _dispatch(request: Request) -> DispatchReads:
    reads: DispatchReads = request.app.state.dispatch
    return reads


Dispatch = Annotated[DispatchReads, Depends(_dispatch)]
JobId = Annotated[str, Path(min_length=1, max_length=64, description="The job's id")]


class AssignBody(StrictBody):
    technician_id: str = Field(pattern=ID_PATTERN, description="Any active technician with the product line's skill")
    occurred_at: OccurredAt = None


class StepBody(StrictBody):
    occurred_at: OccurredAt = None


class CompleteBody(StrictBody):
    fixed: bool = Field(description="false: another visit is needed")
    resolution: str | None = Field(None, max_length=2000)
    reason: VisitFailureReason | None = Field(
        None,
        description="Why a visit with fixed=false did not fix the unit (default `unspecified`); "
        "a reason with fixed=true is refused (422)",
    )
    occurred_at: OccurredAt = None


class RevisitBody(StrictBody):
    satisfaction: int = Field(ge=1, le=5)
    nps: int | None = Field(None, ge=0, le=10)
    channel: RevisitChannel
    comment: str | None = Field(None, max_length=2000)
    occurred_at: OccurredAt = None


class SlaView(BaseModel):
    due: str | None
    done_at: str | None
    breached: bool


class VisitView(BaseModel):
    technician_id: str
    arrived_at: str
    completed_at: str | None
    fixed: bool | None
    resolution: str | None
    reason: VisitFailureReason | None = None


class RevisitView(BaseModel):
    satisfaction: int
    nps: int | None
    channel: RevisitChannel
    comment: str | None
    time: str


class HistoryEntry(BaseModel):
    type: str
    time: str
    # A default for rows a read model stored before events had actors (they are all `system:unknown`).
    actor: str = Field(UNKNOWN_ACTOR, description=ACTOR_DESCRIPTION)


class JobView(BaseModel):
    id: str
    request_id: str
    status: JobStatus
    mode: ServiceMode
    priority: Priority
    region: str
    product_line: str
    dealer_id: str | None
    center_id: str | None
    technician_id: str | None
    created_at: str
    accept_due: str | None
    arrive_due: str
    accepted_at: str | None
    arrived_at: str | None
    completed_at: str | None
    sla: dict[str, SlaView]
    visits: list[VisitView]
    revisit: RevisitView | None
    cancel_reason: str | None
    version: int
    history: list[HistoryEntry]


JobPage = Page[JobView]


@router.get("", dependencies=[Permission(*JOB_READERS)], response_model=JobPage)
async def list_jobs(
    actor: CurrentActor,
    dispatch: Dispatch,
    request_id: Annotated[str | None, Query(max_length=80)] = None,
    technician_id: Annotated[str | None, Query(max_length=64)] = None,
    status: Annotated[JobStatus | None, Query()] = None,
    dealer_id: Annotated[str | None, Query(max_length=80)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[dict[str, Any]]:
    """Jobs, newest first, filtered by request, technician, status and dealer. A dealer lists the jobs of its
    own requests, a technician the jobs assigned to them."""
    page = await dispatch.jobs(
        actor,
        request_id=request_id,
        technician_id=technician_id,
        status=status.value if status else None,
        dealer_id=dealer_id,
        limit=limit,
        after=keyset_after(cursor, int),
    )
    return page


@router.get("/{job_id}", dependencies=[Permission(*JOB_READERS)], response_model=JobView)
async def get_job(job_id: JobId, actor: CurrentActor, dispatch: Dispatch) -> dict[str, Any]:
    """One job with its SLA, visits, revisit and history. Dealers and technicians see only their own (404)."""
    return await dispatch.job(job_id, actor)


async def _run(command: Any, call: CommandCall) -> JSONResponse:
    """Every job command: once per Idempotency-Key (a device that retries gets the first answer back)."""

    async def run() -> JSONResponse:
        return validated(JobView, await call.handle(command))

    return await call.run(run)


@router.post("/{job_id}/assign", response_model=JobView)
async def assign_job(
    job_id: JobId,
    body: AssignBody,
    call: Annotated[CommandCall, Command(Role.dispatcher, idempotent=True)],
) -> JSONResponse:
    """Assign, or re-assign until the job is accepted, to any active technician with the product line's skill
    (in any region). The accept deadline stays the one set by the first assignment."""
    return await _run(AssignJob(job_id, body.technician_id, body.occurred_at), call)


@router.post("/{job_id}/accept", response_model=JobView)
async def accept_job(
    job_id: JobId,
    call: Annotated[CommandCall, Command(*FIELD_WORK, idempotent=True)],
    body: StepBody | None = None,
) -> JSONResponse:
    """The assigned technician takes the job on. Judged against the accept deadline."""
    command = AcceptJob(job_id, body.occurred_at if body else None)
    return await _run(command, call)


@router.post("/{job_id}/arrive", response_model=JobView)
async def arrive_at_job(
    job_id: JobId,
    call: Annotated[CommandCall, Command(*FIELD_WORK, idempotent=True)],
    body: StepBody | None = None,
) -> JSONResponse:
    """Service starts: on site, or the unit is checked in. After acceptance, and again for a repeat visit. The
    first arrival is judged against the arrive deadline."""
    command = RecordArrival(job_id, body.occurred_at if body else None)
    return await _run(command, call)


@router.post("/{job_id}/complete", response_model=JobView)
async def complete_job(
    job_id: JobId,
    body: CompleteBody,
    call: Annotated[CommandCall, Command(*FIELD_WORK, idempotent=True)],
) -> JSONResponse:
    """A visit ends. `fixed=false` leaves the job waiting for another visit."""
    command = CompleteJob(job_id, body.fixed, body.resolution, body.occurred_at, body.reason)
    return await _run(command, call)


@router.post("/{job_id}/revisit", response_model=JobView)
async def record_revisit(
    job_id: JobId,
    body: RevisitBody,
    call: Annotated[CommandCall, Command(Role.agent, Role.dealer, idempotent=True)],
) -> JSONResponse:
    """The follow-up contact with the customer, once the job is completed fixed: satisfaction 1-5 and NPS 0-10.
    A dealer records it for the jobs of its own requests."""
    command = RecordRevisit(job_id, body.satisfaction, body.channel, body.nps, body.comment, body.occurred_at)
    return await _run(command, call)


__all__ = ["router"]
