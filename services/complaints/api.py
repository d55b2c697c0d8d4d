"""complaints' HTTP entry points: each route turns its input into a command and calls the application once."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, StrictBool

from services.complaints.application import ComplaintsApplication
from services.complaints.commands import (
    AcknowledgeComplaint,
    Actor,
    CloseComplaint,
    EscalateComplaint,
    OpenComplaint,
    RecordCustomerResponse,
    ReopenComplaint,
    ResolveComplaint,
    WaitOnCustomer,
)
from services.complaints.domain import Status
from services.complaints.read_model import ComplaintFilter
from shared.auth import Principal, Role
from shared.contracts.complaints import ComplaintCategory, ComplaintSeverity, ComplaintSource
from shared.contracts.enums import Channel
from shared.http.commands import CommandMetadata, StrictBody, location, UtcDatetime
from shared.http.idempotency import Idempotency
from shared.http.pagination import Cursor, Limit, decode_cursor, encode_cursor
from shared.http.problems import Problem
from shared.http.security import CurrentPrincipal, Permission

router = APIRouter(prefix="/v1/complaints", tags=["complaints"])

READERS = (Role.complaints_officer, Role.agent, Role.analyst, Role.dispatcher, Role.dealer)
OFFICER = Role.complaints_officer


class OpenComplaintBody(StrictBody):
    request_id: str | None = Field(None, min_length=1, max_length=80, description="The service request, if known")
    job_id: str | None = Field(None, min_length=1, max_length=80, description="The job, if known (implies its request)")
    dealer_id: str | None = Field(None, min_length=1, max_length=80,
                                  description="Taken from the request when linked; ignored for dealer tokens")
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


class HistoryEntry(BaseModel):
    type: str
    time: str


class ComplaintView(BaseModel):
    id: str
    status: Status
    level: int
    category: ComplaintCategory
    severity: ComplaintSeverity
    source: ComplaintSource
    description: str
    satisfaction: int | None
    request_id: str | None
    job_id: str | None
    dealer_id: str | None
    link: str | None = Field(description="awaited: the request or job named is not known yet; linked: it arrived; "
                                         "unresolved: it did not arrive within the grace period; null: nothing "
                                         "awaited")
    opened_at: str
    ack_due: str
    acknowledged_at: str | None
    acknowledged_in_time: bool | None
    resolve_due: str | None = Field(description="Null while waiting on the customer stops the clock")
    waiting_on_customer_since: str | None
    resolved_at: str | None
    resolution: str | None
    resolved_in_time: bool | None
    next_due: str | None = Field(description="The earliest deadline still to be met")
    closed_at: str | None
    customer_confirmed: bool | None
    reopen_count: int
    appeal_count: int
    version: int
    history: list[HistoryEntry]


class ComplaintPage(BaseModel):
    items: list[ComplaintView]
    next_cursor: str | None


def _complaints(request: Request) -> ComplaintsApplication:
    return request.app.state.complaints


Complaints = Annotated[ComplaintsApplication, Depends(_complaints)]
ComplaintId = Annotated[str, Path(min_length=1, max_length=64, description="The complaint's id")]


def _actor(principal: Principal) -> Actor:
    return Actor(subject=principal.subject, dealer_scope=principal.dealer_scope)


def _ok(view: dict[str, Any], status: int = 200) -> JSONResponse:
    headers = {"Location": location("/v1/complaints", view["id"])} if status == 201 else None
    return JSONResponse(view, status_code=status, headers=headers)


@router.post("", status_code=201, dependencies=[Permission(Role.agent, OFFICER, Role.dealer)],
             responses={201: {"model": ComplaintView}}, response_class=JSONResponse)
async def open_complaint(body: OpenComplaintBody, meta: CommandMetadata, principal: CurrentPrincipal,
                         complaints: Complaints, idempotent: Idempotency) -> JSONResponse:
    """Open a complaint about a service request and/or job: a job must belong to the request, and the dealer is
    the request's. One complaints has not heard of yet is accepted and linked when its event arrives (`link`:
    awaited, then linked), or flagged `unresolved` after COMPLAINT_UNKNOWN_LINK_GRACE_SECONDS. Deadlines: acknowledge within 1 hour, resolve within
    8 hours (general) or 5 working days (serious). A dealer complains through the `dealer` channel, for
    itself, about its own requests."""
    actor = _actor(principal)
    dealer_id = body.dealer_id
    if actor.dealer_scope is not None:
        if dealer_id is not None and dealer_id != actor.dealer_scope:
            raise Problem(403, "A dealer may only open complaints for itself.", slug="forbidden",
                          errors=[{"field": "dealer_id", "reason": "differs from the token's dealer_id"}])
        if body.channel != Channel.dealer:
            raise Problem(422, "A dealer's complaints come through the dealer channel.", slug="validation-error",
                          title="Validation failed",
                          errors=[{"field": "channel", "reason": "must be 'dealer' for a dealer token"}])
        dealer_id = actor.dealer_scope
    command = OpenComplaint(request_id=body.request_id, job_id=body.job_id, dealer_id=dealer_id,
                            channel=body.channel, category=body.category, severity=body.severity,
                            description=body.description, occurred_at=body.occurred_at)

    async def run() -> JSONResponse:
        return _ok(await complaints.handle(command, actor, meta), 201)

    return await idempotent.run(run)


@router.get("/{complaint_id}", dependencies=[Permission(*READERS)], response_model=ComplaintView)
async def get_complaint(complaint_id: ComplaintId, principal: CurrentPrincipal, complaints: Complaints) -> JSONResponse:
    """One complaint with its deadlines, level and history. Dealers see only complaints about their own
    requests (404 otherwise)."""
    return _ok(await complaints.get(complaint_id, _actor(principal)))


@router.get("", dependencies=[Permission(*READERS)], response_model=ComplaintPage)
async def list_complaints(
    principal: CurrentPrincipal,
    complaints: Complaints,
    active: Annotated[bool | None, Query(alias="open", description="Only open (true) or only finished (false) "
                                                                   "complaints")] = None,
    status: Annotated[Status | None, Query()] = None,
    level: Annotated[int | None, Query(ge=1, le=3)] = None,
    severity: Annotated[ComplaintSeverity | None, Query()] = None,
    category: Annotated[ComplaintCategory | None, Query()] = None,
    source: Annotated[ComplaintSource | None, Query()] = None,
    request_id: Annotated[str | None, Query(max_length=80)] = None,
    job_id: Annotated[str | None, Query(max_length=80)] = None,
    dealer_id: Annotated[str | None, Query(max_length=80)] = None,
    due_before: Annotated[UtcDatetime | None, Query(description="Next deadline before this moment "
                                                                  "(e.g. now: the overdue ones)")] = None,
    sort: Annotated[Literal["newest", "urgency"], Query(description="`urgency`: the complaints officer's "
                    "worklist, open before finished, level 3 first, earliest deadline first")] = "newest",
    limit: Limit = 50,
    cursor: Cursor = None,
) -> JSONResponse:
    """Complaints, newest first or by urgency, filtered by state, level, severity, category, source,
    request, job, dealer and due time. Dealers list only complaints about their own requests."""
    actor = _actor(principal)
    if actor.dealer_scope is not None and dealer_id is not None and dealer_id != actor.dealer_scope:
        raise Problem(403, "A dealer may only list its own complaints.", slug="forbidden",
                      errors=[{"field": "dealer_id", "reason": "differs from the token's dealer_id"}])
    by_urgency = sort == "urgency"
    after = decode_cursor(cursor)
    if after is not None and not isinstance(after, str if by_urgency else int):
        raise Problem(400, "The cursor is not one this API handed out for this sort.", slug="invalid-cursor",
                      errors=[{"field": "cursor", "reason": f"not a cursor of sort={sort}"}])
    where = ComplaintFilter(status=status, active=active, level=level, severity=severity, category=category,
                            source=source, dealer_id=dealer_id, request_id=request_id, job_id=job_id,
                            due_before=due_before)
    items, next_after = await complaints.list(actor, where, by_urgency=by_urgency, after=after, limit=limit)
    return JSONResponse({"items": items,
                         "next_cursor": encode_cursor(next_after) if next_after is not None else None})


@router.post("/{complaint_id}/acknowledge", dependencies=[Permission(OFFICER)], response_model=ComplaintView)
async def acknowledge_complaint(complaint_id: ComplaintId, meta: CommandMetadata, principal: CurrentPrincipal,
                                complaints: Complaints, body: NoteBody | None = None) -> JSONResponse:
    """Take an open complaint on (due within 1 hour of opening). A late-synced acknowledgement within the
    deadline withdraws the timer's escalation."""
    body = body or NoteBody()
    command = AcknowledgeComplaint(complaint_id, body.note, body.occurred_at)
    return _ok(await complaints.handle(command, _actor(principal), meta))


@router.post("/{complaint_id}/escalate", dependencies=[Permission(OFFICER, Role.agent)],
             response_model=ComplaintView)
async def escalate_complaint(complaint_id: ComplaintId, body: ReasonBody, meta: CommandMetadata,
                             principal: CurrentPrincipal, complaints: Complaints) -> JSONResponse:
    """Hand an unfinished complaint up one level (1 -> 2 -> 3)."""
    command = EscalateComplaint(complaint_id, body.reason, body.occurred_at)
    return _ok(await complaints.handle(command, _actor(principal), meta))


@router.post("/{complaint_id}/wait-on-customer", dependencies=[Permission(OFFICER)], response_model=ComplaintView)
async def wait_on_customer(complaint_id: ComplaintId, body: ReasonBody, meta: CommandMetadata,
                           principal: CurrentPrincipal, complaints: Complaints) -> JSONResponse:
    """The acknowledged complaint waits for the customer: the resolution clock stops until they respond."""
    command = WaitOnCustomer(complaint_id, body.reason, body.occurred_at)
    return _ok(await complaints.handle(command, _actor(principal), meta))


@router.post("/{complaint_id}/customer-responded", dependencies=[Permission(OFFICER, Role.agent)],
             response_model=ComplaintView)
async def customer_responded(complaint_id: ComplaintId, meta: CommandMetadata, principal: CurrentPrincipal,
                             complaints: Complaints, body: NoteBody | None = None) -> JSONResponse:
    """The customer answered: the resolution clock runs again, its deadline moved by the wait."""
    body = body or NoteBody()
    command = RecordCustomerResponse(complaint_id, body.note, body.occurred_at)
    return _ok(await complaints.handle(command, _actor(principal), meta))


@router.post("/{complaint_id}/resolve", dependencies=[Permission(OFFICER)], response_model=ComplaintView)
async def resolve_complaint(complaint_id: ComplaintId, body: ResolutionBody, meta: CommandMetadata,
                            principal: CurrentPrincipal, complaints: Complaints) -> JSONResponse:
    """Give the customer a resolution (an unacknowledged complaint is acknowledged by it)."""
    command = ResolveComplaint(complaint_id, body.resolution, body.occurred_at)
    return _ok(await complaints.handle(command, _actor(principal), meta))


@router.post("/{complaint_id}/reopen", dependencies=[Permission(OFFICER, Role.agent)], response_model=ComplaintView)
async def reopen_complaint(complaint_id: ComplaintId, body: ReasonBody, meta: CommandMetadata,
                           principal: CurrentPrincipal, complaints: Complaints) -> JSONResponse:
    """Take a resolved complaint up again at its level, or appeal a closed one: reopened one level up. Both
    deadlines start again."""
    command = ReopenComplaint(complaint_id, body.reason, body.occurred_at)
    return _ok(await complaints.handle(command, _actor(principal), meta))


@router.post("/{complaint_id}/close", dependencies=[Permission(OFFICER)], response_model=ComplaintView)
async def close_complaint(complaint_id: ComplaintId, body: CloseBody, meta: CommandMetadata,
                          principal: CurrentPrincipal, complaints: Complaints) -> JSONResponse:
    """Close a resolved complaint, recording whether the customer confirmed the resolution. A complaint
    without a resolution cannot be closed (409)."""
    command = CloseComplaint(complaint_id, body.customer_confirmed, body.occurred_at)
    return _ok(await complaints.handle(command, _actor(principal), meta))


__all__ = ["router"]
