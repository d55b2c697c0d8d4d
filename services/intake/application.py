"""intake's use cases: one handler per command, keyed by the command's class. Each runs in the kernel's unit
of work (`shared.kernel`): it loads the request from its events, lets the aggregate decide, and the commit
appends the new events (outbox included) and projects the read-model row, in one transaction."""

from __future__ import annotations

import logging
import uuid
from contextlib import suppress
from typing import Any

from sqlalchemy.exc import DBAPIError, IntegrityError

from services.intake.commands import (
    AcceptQuote,
    CancelServiceRequest,
    DeclineQuote,
    EscalateServiceRequest,
    IssueQuote,
    OpenServiceRequest,
    TriageServiceRequest,
)
from services.intake.domain import ServiceRequest
from services.intake.quotes import PartWanted, QuoteTerms, price_quote
from services.intake.read_model import catalogue_prices, dealer_of, open_request_for, serial_of
from services.intake.views import ServiceRequestView, to_view
from shared.auth import Actor
from shared.contracts.intake import ServiceRequestReceived
from shared.domain import Conflict
from shared.eventstore.database import Database
from shared.kernel import UnitOfWork
from shared.kernel.application import IntegrityConflict
from shared.scheduling import Deadline

log = logging.getLogger(__name__)


def _already_open(serial: str, existing: str | None, actor: Actor, owner: str | None) -> Conflict:
    # A dealer learns the id of its own open request only.
    shown = existing if actor.sees_dealer(owner) else None
    return Conflict(f"serial {serial} already has an open service request", existing_id=shown)


async def open_request(command: OpenServiceRequest, actor: Actor, uow: UnitOfWork) -> ServiceRequestView:
    """No look-up of the serial first: the new request's reservation (`open_serials`, written with its row in
    the append's trip) refuses a serial that has an open request, and `integrity_conflict` turns that into the
    409 naming it. One trip to the writer per open instead of two; nothing of the refused open stays (its
    transaction, or on SQLite its group member's savepoint, is rolled back)."""
    at = uow.step_time(command.occurred_at)
    request_id = str(uuid.uuid4())
    received = ServiceRequestReceived(
        request_id=request_id,
        dealer_id=command.dealer_id,
        channel=command.channel,
        customer=command.customer,
        product=command.product,
        purchase_date=command.purchase_date,
        symptom=command.symptom,
        customer_tier=command.customer_tier,
        urgent=command.urgent,
    )
    return to_view(uow.add(ServiceRequest.receive(request_id, received, at)))


async def triage(command: TriageServiceRequest, actor: Actor, uow: UnitOfWork) -> ServiceRequestView:
    request = await uow.get_visible(ServiceRequest, command.request_id, actor)
    request.triage(command.mode, command.priority, command.note, uow.step_time(command.occurred_at, request))
    return to_view(request)


async def escalate(command: EscalateServiceRequest, actor: Actor, uow: UnitOfWork) -> ServiceRequestView:
    request = await uow.get_visible(ServiceRequest, command.request_id, actor)
    request.escalate(command.reason, uow.step_time(command.occurred_at, request))
    return to_view(request)


async def cancel(command: CancelServiceRequest, actor: Actor, uow: UnitOfWork) -> ServiceRequestView:
    request = await uow.get_visible(ServiceRequest, command.request_id, actor)
    request.cancel(command.reason, uow.step_time(command.occurred_at, request))
    return to_view(request)


async def issue_quote(command: IssueQuote, actor: Actor, uow: UnitOfWork, terms: QuoteTerms) -> ServiceRequestView:
    request = await uow.get_visible(ServiceRequest, command.request_id, actor)
    at = uow.step_time(command.occurred_at, request)
    wanted = [PartWanted(p.part_number, p.quantity) for p in command.parts]
    catalogue = await catalogue_prices(uow.conn, (p.part_number for p in wanted))
    priced = price_quote(command.labour_minutes, wanted, catalogue, terms)
    request.issue_quote(
        str(uuid.uuid4()),
        list(priced.lines),
        priced.labour_minutes,
        priced.total,
        priced.currency,
        terms.valid_until(at),
        command.note,
        at,
    )
    return to_view(request)


async def accept_quote(command: AcceptQuote, actor: Actor, uow: UnitOfWork) -> ServiceRequestView:
    """An acceptance; one that withdraws a fired expiry reopens the request, so its serial must still be free."""
    request = await uow.get_visible(ServiceRequest, command.request_id, actor)
    reopening = request.closed_by_quote_expiry
    request.accept_quote(command.channel, command.quote_id, uow.step_time(command.occurred_at, request))
    if reopening and request.product is not None:
        serial = request.product.serial
        existing = await open_request_for(uow.conn, serial)
        if existing is not None:
            raise _reopening_refused(serial, existing, actor, await dealer_of(uow.conn, existing))
    return to_view(request)


def _reopening_refused(serial: str, existing: str | None, actor: Actor, owner: str | None) -> Conflict:
    """One open request per unit: a late acceptance cannot reopen a case whose serial a new request took after
    the expiry closed it (two cases, and soon two jobs, for one unit). Someone must decide which case goes on:
    cancel the new one and record the acceptance again, or quote the new one."""
    return Conflict(
        f"serial {serial} has had a new open service request since the quote expired: the late acceptance "
        "cannot reopen this one",
        field="product.serial",
        existing_id=existing if actor.sees_dealer(owner) else None,
    )


async def decline_quote(command: DeclineQuote, actor: Actor, uow: UnitOfWork) -> ServiceRequestView:
    request = await uow.get_visible(ServiceRequest, command.request_id, actor)
    request.decline_quote(command.reason, command.quote_id, uow.step_time(command.occurred_at, request))
    return to_view(request)


async def quote_deadline_passed(deadline: Deadline, uow: UnitOfWork) -> None:
    """The quote's expiry timer: a quote still undecided expires and the case closes (once: the scheduler's
    `fired` mark commits with the events, and the request ignores a quote already decided)."""
    request = await uow.find(ServiceRequest, deadline.stream_id)
    if request is None:
        log.warning("deadline %s names a request that does not exist; dropped", deadline.name)
        return
    request.note_quote_deadline(uow.clock.now())


COMMANDS = {
    OpenServiceRequest: open_request,
    TriageServiceRequest: triage,
    EscalateServiceRequest: escalate,
    CancelServiceRequest: cancel,
    IssueQuote: issue_quote,
    AcceptQuote: accept_quote,
    DeclineQuote: decline_quote,
}


def integrity_conflict(db: Database) -> IntegrityConflict:
    """An open whose serial has an open request (the reservation's key refused it): the 409 naming the holder.
    A late acceptance that lost its serial to a new open: the 409 naming the new one."""

    async def _open_refused(serial: str, actor: Actor) -> Conflict:
        async with db.read() as conn:
            existing = await open_request_for(conn, serial)
            dealer = await dealer_of(conn, existing)
        if existing is None:
            # Not committed yet: on SQLite the holder can be an earlier member of this process's open group
            # commit, seen only inside it (within a route's unit of work this is that very transaction, still
            # the refused command's own: its savepoint is rolled back when the 409 leaves it).
            with suppress(DBAPIError):  # PostgreSQL: the refused transaction is aborted (and the holder gone)
                async with db.transaction() as conn:
                    existing = await open_request_for(conn, serial)
                    dealer = await dealer_of(conn, existing)
        return _already_open(serial, existing, actor, dealer)

    async def on_integrity_error(command: Any, actor: Actor, exc: IntegrityError) -> Exception | None:
        if isinstance(command, OpenServiceRequest):
            return await _open_refused(command.product.serial, actor)
        if isinstance(command, AcceptQuote):  # a late acceptance reopening the request lost its serial to an open
            async with db.read() as conn:
                serial = await serial_of(conn, command.request_id)
                existing = await open_request_for(conn, serial) if serial else None
                dealer = await dealer_of(conn, existing)
            if serial is not None and existing not in (None, command.request_id):
                return _reopening_refused(serial, existing, actor, dealer)
        return None

    return on_integrity_error
