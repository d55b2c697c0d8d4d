"""complaints' HTTP entry points: each route turns its input into a command and calls the application once, and
returns the complaint's view (validated against `response_model`)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse, Response
from pydantic import Field, StrictBool

from services.complaints.commands import (
    AcknowledgeComplaint,
    CloseComplaint,
    EscalateComplaint,
    OpenComplaint,
    RecordCustomerResponse,
    ReopenComplaint,
    ResolveComplaint,
    WaitOnCustomer,
)
from services.complaints.domain import Status
from services.complaints.queries import complaint_view
from services.complaints.queries import list_complaints as page_of_complaints
from services.complaints.read_model import ComplaintFilter
from services.complaints.views import ComplaintView
from shared.auth import Role
from shared.contracts.complaints import ComplaintCategory, ComplaintSeverity, ComplaintSource
from shared.contracts.enums import Channel
from shared.http.commands import Command, CommandCall, StrictBody, UtcDatetime, create_once
from shared.http.dependencies import ReadDatabase
from shared.http.pagination import Cursor, Limit, Page, decode_cursor
from shared.http.problems import Problem
from shared.http.security import CurrentActor, Permission, dealer_for

router = APIRouter(prefix="/v1/complaints", tags=["complaints"])

READERS = (Role.complaints_officer, Role.agent, Role.analyst, Role.dispatcher, Role.dealer)
OFFICER = Role.complaints_officer


class OpenComplaintBody(StrictBody):
    request_id: str | None = Field(None, min_length=1, max_length=80, description="The service request, if known")
    job_id: str | None = Field(None, min_length=1, max_length=80, description="The job, if known (implies its request)")
    dealer_id: str | None = Field(
        None, min_length=1, max_length=80, description="Taken from the request when linked; ignored for dealer tokens"
    )
    channel: Channel
    category: ComplaintCategory
    severity: ComplaintSeverity
    description: str = Field(min_length=1, max_length=4000)
    occurred_at: UtcDatetime | None = Field(None, description="When the complaint was made (defaults to now)")


class NoteBody(StrictBody):
    note: str | None = Field(None, max_length=2000)
    occurred_at: UtcDatetime | None = None


class ReasonBody(StrictBody):
    reason: str = Field(min_length=1, max_length=2000)
    occurred_at: UtcDatetime | None = None


class ResolutionBody(StrictBody):
    resolution: str = Field(min_length=1, max_length=4000, description="What was done for the customer")
    occurred_at: UtcDatetime | None = None


class CloseBody(StrictBody):
    customer_confirmed: StrictBool = Field(description="Whether the customer confirmed the resolution")
    occurred_at: UtcDatetime | None = None


ComplaintId = Annotated[str, Path(min_length=1, max_length=64, description="The complaint's id")]


async def visible_complaint(complaint_id: ComplaintId, actor: CurrentActor, db: ReadDatabase) -> ComplaintView:
    """The complaint named in the path, if the caller may see it (404 otherwise)."""
    return await complaint_view(db, complaint_id, actor)


VisibleComplaint = Annotated[ComplaintView, Depends(visible_complaint)]


async def _run(command: object, call: CommandCall) -> ComplaintView:
    view: ComplaintView = await call.handle(command)
    return view


@router.post(
    "",
    status_code=201,
    responses={201: {"model": ComplaintView}},
    response_class=JSONResponse,
)
async def open_complaint(
    body: OpenComplaintBody, call: Annotated[CommandCall, Command(Role.agent, OFFICER, Role.dealer, idempotent=True)]
) -> Response:
    """Open a complaint about a service request and/or job: a job must belong to the request, and the dealer is
    the request's. One complaints has not heard of yet is accepted and linked when its event arrives (`link`:
    awaited, then linked), or flagged `unresolved` after COMPLAINT_UNKNOWN_LINK_GRACE_SECONDS. Deadlines: acknowledge within 1 hour, resolve within
    8 hours (general) or 5 working days (serious). A dealer complains through the `dealer` channel, for
    itself, about its own requests."""
    dealer_id = dealer_for(call.actor, body.dealer_id, action="open complaints for itself")
    if call.actor.dealer_scope is not None:
        if body.channel != Channel.dealer:
            raise Problem(
                422,
                "A dealer's complaints come through the dealer channel.",
                slug="validation-error",
                title="Validation failed",
                errors=[{"field": "channel", "reason": "must be 'dealer' for a dealer token"}],
            )
    command = OpenComplaint(
        request_id=body.request_id,
        job_id=body.job_id,
        dealer_id=dealer_id,
        channel=body.channel,
        category=body.category,
        severity=body.severity,
        description=body.description,
        occurred_at=body.occurred_at,
    )
    return await create_once(call, command, ComplaintView, "/v1/complaints")


@router.get("/{complaint_id}", dependencies=[Permission(*READERS)], response_model=ComplaintView)
async def get_complaint(complaint: VisibleComplaint) -> ComplaintView:
    """One complaint with its deadlines, level and history. Dealers see only complaints about their own
    requests (404 otherwise)."""
    return complaint


@router.get("", dependencies=[Permission(*READERS)], response_model=Page[ComplaintView])
async def list_complaints(
    actor: CurrentActor,
    db: ReadDatabase,
    active: Annotated[
        bool | None, Query(alias="open", description="Only open (true) or only finished (false) complaints")
    ] = None,
    status: Annotated[Status | None, Query()] = None,
    level: Annotated[int | None, Query(ge=1, le=3)] = None,
    severity: Annotated[ComplaintSeverity | None, Query()] = None,
    category: Annotated[ComplaintCategory | None, Query()] = None,
    source: Annotated[ComplaintSource | None, Query()] = None,
    request_id: Annotated[str | None, Query(max_length=80)] = None,
    job_id: Annotated[str | None, Query(max_length=80)] = None,
    dealer_id: Annotated[str | None, Query(max_length=80)] = None,
    due_before: Annotated[
        UtcDatetime | None, Query(description="Next deadline before this moment (e.g. now: the overdue ones)")
    ] = None,
    sort: Annotated[
        Literal["newest", "urgency"],
        Query(
            description="`urgency`: the complaints officer's "
            "worklist, open before finished, level 3 first, earliest deadline first"
        ),
    ] = "newest",
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[ComplaintView]:
    """Complaints, newest first or by urgency, filtered by state, level, severity, category, source,
    request, job, dealer and due time. Dealers list only complaints about their own requests."""
    dealer_for(actor, dealer_id, action="list its own complaints")
    by_urgency = sort == "urgency"
    after = decode_cursor(cursor)
    if after is not None and not isinstance(after, str if by_urgency else int):
        raise Problem(
            400,
            "The cursor is not one this API handed out for this sort.",
            slug="invalid-cursor",
            errors=[{"field": "cursor", "reason": f"not a cursor of sort={sort}"}],
        )
    where = ComplaintFilter(
        status=status,
        active=active,
        level=level,
        severity=severity,
        category=category,
        source=source,
        dealer_id=dealer_id,
        request_id=request_id,
        job_id=job_id,
        due_before=due_before,
    )
    return await page_of_complaints(db, actor, where, by_urgency=by_urgency, after=after, limit=limit)


@router.post("/{complaint_id}/acknowledge", response_model=ComplaintView)
async def acknowledge_complaint(
    complaint_id: ComplaintId, call: Annotated[CommandCall, Command(OFFICER)], body: NoteBody | None = None
) -> ComplaintView:
    """Take an open complaint on (due within 1 hour of opening). A late-synced acknowledgement within the
    deadline withdraws the timer's escalation."""
    body = body or NoteBody()
    command = AcknowledgeComplaint(complaint_id, body.note, body.occurred_at)
    return await _run(command, call)


@router.post("/{complaint_id}/escalate", response_model=ComplaintView)
async def escalate_complaint(
    complaint_id: ComplaintId, body: ReasonBody, call: Annotated[CommandCall, Command(OFFICER, Role.agent)]
) -> ComplaintView:
    """Hand an unfinished complaint up one level (1 -> 2 -> 3)."""
    command = EscalateComplaint(complaint_id, body.reason, body.occurred_at)
    return await _run(command, call)


@router.post("/{complaint_id}/wait-on-customer", response_model=ComplaintView)
async def wait_on_customer(
    complaint_id: ComplaintId, body: ReasonBody, call: Annotated[CommandCall, Command(OFFICER)]
) -> ComplaintView:
    """The acknowledged complaint waits for the customer: the resolution clock stops until they respond."""
    command = WaitOnCustomer(complaint_id, body.reason, body.occurred_at)
    return await _run(command, call)


@router.post("/{complaint_id}/customer-responded", response_model=ComplaintView)
async def customer_responded(
    complaint_id: ComplaintId, call: Annotated[CommandCall, Command(OFFICER, Role.agent)], body: NoteBody | None = None
) -> ComplaintView:
    """The customer answered: the resolution clock runs again, its deadline moved by the wait."""
    body = body or NoteBody()
    command = RecordCustomerResponse(complaint_id, body.note, body.occurred_at)
    return await _run(command, call)


@router.post("/{complaint_id}/resolve", response_model=ComplaintView)
async def resolve_complaint(
    complaint_id: ComplaintId, body: ResolutionBody, call: Annotated[CommandCall, Command(OFFICER)]
) -> ComplaintView:
    """Give the customer a resolution (an unacknowledged complaint is acknowledged by it)."""
    command = ResolveComplaint(complaint_id, body.resolution, body.occurred_at)
    return await _run(command, call)


@router.post("/{complaint_id}/reopen", response_model=ComplaintView)
async def reopen_complaint(
    complaint_id: ComplaintId, body: ReasonBody, call: Annotated[CommandCall, Command(OFFICER, Role.agent)]
) -> ComplaintView:
    """Take a resolved complaint up again at its level, or appeal a closed one: reopened one level up. Both
    deadlines start again."""
    command = ReopenComplaint(complaint_id, body.reason, body.occurred_at)
    return await _run(command, call)


@router.post("/{complaint_id}/close", response_model=ComplaintView)
async def close_complaint(
    complaint_id: ComplaintId, body: CloseBody, call: Annotated[CommandCall, Command(OFFICER)]
) -> ComplaintView:
    """Close a resolved complaint, recording whether the customer confirmed the resolution. A complaint
    without a resolution cannot be closed (409)."""
    command = CloseComplaint(complaint_id, body.customer_confirmed, body.occurred_at)
    return await _run(command, call)


__all__ = ["router"]
