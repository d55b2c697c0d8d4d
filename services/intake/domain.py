"""The service request aggregate: a customer's case, folded from its events. Pure: no web, database or
Kafka here."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from shared.contracts.base import EventData
from shared.contracts.enums import Channel, CustomerTier, Priority, ServiceMode
from shared.contracts.intake import (
    ClearedBy,
    Customer,
    Product,
    QuoteLine,
    ServiceRequestCancelled,
    ServiceRequestClearedForDispatch,
    ServiceRequestClosed,
    ServiceRequestCoverageRecorded,
    ServiceRequestDispatched,
    ServiceRequestEscalated,
    ServiceRequestQuoteAccepted,
    ServiceRequestQuoteDeclined,
    ServiceRequestQuoteExpired,
    ServiceRequestQuoteExpiryWithdrawn,
    ServiceRequestQuoteIssued,
    ServiceRequestQuoteRequired,
    ServiceRequestReceived,
    ServiceRequestResolved,
    ServiceRequestServiceStarted,
    ServiceRequestTriaged,
)
from shared.domain import Aggregate, Conflict, InvalidTransition, transition_refused


class Status(StrEnum):
    received = "received"
    triaged = "triaged"
    escalated = "escalated"
    awaiting_quote = "awaiting_quote"  # paid service: no job until the customer accepts a quote
    dispatched = "dispatched"
    in_service = "in_service"
    resolved = "resolved"
    closed = "closed"
    cancelled = "cancelled"


OPEN_STATUSES = frozenset(Status) - {Status.closed, Status.cancelled}
RESOLVED_BY_PHONE = "resolved_by_phone"
QUOTE_DECLINED = "quote_declined"
QUOTE_EXPIRED = "quote_expired"
QUOTE_EXPIRY = "quote_expiry"  # the deadline kind


class QuoteState(StrEnum):
    issued = "issued"  # waiting for the customer's decision
    accepted = "accepted"
    declined = "declined"
    expired = "expired"
    withdrawn = "withdrawn"  # warranty's verdict changed to covered before the customer decided


def default_priority(urgent: bool, tier: CustomerTier) -> Priority:
    """urgent → P1, key account → P2, else P3 (design.md, triage)."""
    if urgent:
        return Priority.P1
    if tier == CustomerTier.key_account:
        return Priority.P2
    return Priority.P3


@dataclass
class Coverage:
    covered: bool
    expires_on: date | None
    reason: str | None


@dataclass
class Quote:
    quote_id: str
    lines: list[QuoteLine]
    labour_minutes: int
    total: Decimal
    currency: str
    valid_until: datetime
    note: str | None
    issued_at: datetime
    state: QuoteState = QuoteState.issued
    decided_at: datetime | None = None
    channel: Channel | None = None  # of the acceptance
    reason: str | None = None  # of the decline


@dataclass
class ServiceRequest(Aggregate):
    stream_type = "service_request"

    status: Status | None = None
    dealer_id: str | None = None
    channel: Channel | None = None
    customer: Customer | None = None
    product: Product | None = None
    purchase_date: date | None = None
    symptom: str = ""
    customer_tier: CustomerTier = CustomerTier.standard
    urgent: bool = False
    received_at: datetime | None = None
    mode: ServiceMode | None = None
    priority: Priority | None = None
    coverage: Coverage | None = None
    job_id: str | None = None
    # A field triage held back from dispatch until warranty's verdict (or a quote's acceptance) clears it.
    dispatch_held: bool = False
    quote: Quote | None = None
    outcome: str | None = None  # of the close
    # The latest business step: the quote's expiry and the close that follows it are the timer's, not steps,
    # so an acceptance synced late may still be stamped before them (see `accept_quote`).
    last_step_at: datetime | None = None
    history: list[tuple[str, datetime]] = field(default_factory=list)

    # --- commands -------------------------------------------------------------------------------------

    @classmethod
    def receive(cls, request_id: str, received: ServiceRequestReceived, occurred_at: datetime) -> ServiceRequest:
        request = cls(id=request_id)
        request.record(received, occurred_at)
        return request

    def triage(self, mode: ServiceMode, priority: Priority | None, note: str | None, at: datetime) -> None:
        """Field work is dispatched at once only when warranty covers the unit. Not covered: the case waits for
        a quote the customer accepts. Warranty's verdict not in yet (it is an asynchronous reaction to the
        receipt): the job is held back until it arrives, so that nobody is sent to a customer who has not
        agreed to pay (the careful order; the verdict usually lands within a second of the receipt)."""
        self._require(Status.received, Status.escalated, action="triage")
        chosen = priority or default_priority(self.urgent, self.customer_tier)
        field_work = mode != ServiceMode.phone
        held = field_work and (self.coverage is None or not self.coverage.covered)
        self.record(
            ServiceRequestTriaged(request_id=self.id, mode=mode, priority=chosen, note=note, dispatch_held=held), at
        )
        if not field_work:
            self.record(ServiceRequestResolved(request_id=self.id, outcome=RESOLVED_BY_PHONE), at)
            self.record(ServiceRequestClosed(request_id=self.id, outcome=RESOLVED_BY_PHONE), at)
        elif self.coverage is not None and not self.coverage.covered:
            self.record(ServiceRequestQuoteRequired(request_id=self.id, reason=self.coverage.reason), at)

    def escalate(self, reason: str, at: datetime) -> None:
        self._require(Status.received, action="escalate")
        self.record(ServiceRequestEscalated(request_id=self.id, reason=reason), at)

    def cancel(self, reason: str, at: datetime) -> None:
        """Allowed until a technician has arrived."""
        self._require(
            Status.received, Status.escalated, Status.triaged, Status.awaiting_quote, Status.dispatched, action="cancel"
        )
        self.record(ServiceRequestCancelled(request_id=self.id, reason=reason), at)

    # --- paid service: the quote gate -----------------------------------------------------------------

    def issue_quote(
        self,
        quote_id: str,
        lines: list[QuoteLine],
        labour_minutes: int,
        total: Decimal,
        currency: str,
        valid_until: datetime,
        note: str | None,
        at: datetime,
    ) -> None:
        """Price the paid service; a quote issued while another still waits for the customer replaces it."""
        if self.coverage is not None and self.coverage.covered:
            raise Conflict(
                "the request is covered by warranty: there is nothing to quote", current_status=str(self.status)
            )
        self._require(Status.awaiting_quote, action="quote")
        self.record(
            ServiceRequestQuoteIssued(
                request_id=self.id,
                quote_id=quote_id,
                lines=lines,
                labour_minutes=labour_minutes,
                total=total,
                currency=currency,
                valid_until=valid_until,
                note=note,
            ),
            at,
        )

    def accept_quote(self, channel: Channel, quote_id: str | None, at: datetime) -> None:
        """The customer agreed to pay: the job may be created, its arrive SLA counted from now. A step exactly on
        `valid_until` is in time (the contract's rule for every deadline), whether or not the timer has fired:
        an acceptance made in time but recorded after the expiry (a dealer's device synced late) proves the
        expiry wrong. It is withdrawn (`quote_expiry_withdrawn`), the close that followed it no longer holds,
        and the request goes on to dispatch as after an acceptance on time (the acceptance and the clearance
        stamped with `at`)."""
        withdrawing = self.closed_by_quote_expiry
        if withdrawing:
            assert self.quote is not None
            quote = self._named_quote(self.quote, quote_id)
        else:
            quote = self._pending_quote("accept", quote_id)
        if at > quote.valid_until:
            raise Conflict(
                f"quote {quote.quote_id} expired at {quote.valid_until.isoformat()}: "
                f"an acceptance at {at.isoformat()} is too late",
                field="occurred_at",
                quote_id=quote.quote_id,
                valid_until=quote.valid_until.isoformat(),
            )
        if withdrawing:
            # Stamped like the expiry it withdraws (as dispatch stamps `job.sla_breach_withdrawn` with the due):
            # a reader in business time meets it right after the expiry and the close, in the same window.
            withdrawn = ServiceRequestQuoteExpiryWithdrawn(request_id=self.id, quote_id=quote.quote_id, accepted_at=at)
            self.record(withdrawn, quote.valid_until)
        assert self.mode is not None and self.priority is not None  # a quote follows a field triage
        self.record(
            ServiceRequestQuoteAccepted(
                request_id=self.id, quote_id=quote.quote_id, channel=channel, total=quote.total, currency=quote.currency
            ),
            at,
        )
        self.record(
            ServiceRequestClearedForDispatch(
                request_id=self.id,
                mode=self.mode,
                priority=self.priority,
                arrive_sla_from=at,
                cleared_by=ClearedBy.quote_accepted,
                quote_id=quote.quote_id,
            ),
            at,
        )

    @property
    def closed_by_quote_expiry(self) -> bool:
        """Closed only because the quote's expiry timer fired (an acceptance made in time may undo it)."""
        quote = self.quote
        return (
            self.status == Status.closed
            and self.outcome == QUOTE_EXPIRED
            and quote is not None
            and quote.state == QuoteState.expired
        )

    def decline_quote(self, reason: str, quote_id: str | None, at: datetime) -> None:
        """The customer refused to pay: the case closes."""
        quote = self._pending_quote("decline", quote_id)
        self.record(ServiceRequestQuoteDeclined(request_id=self.id, quote_id=quote.quote_id, reason=reason), at)
        self.record(ServiceRequestClosed(request_id=self.id, outcome=QUOTE_DECLINED), at)

    def note_quote_deadline(self, now: datetime) -> None:
        """The expiry timer: a quote still undecided at `valid_until` expires (stamped with it); the case closes."""
        quote = self.quote
        if self.status != Status.awaiting_quote or quote is None or quote.state != QuoteState.issued:
            return
        if now < quote.valid_until:
            return
        expired = ServiceRequestQuoteExpired(request_id=self.id, quote_id=quote.quote_id, valid_until=quote.valid_until)
        self.record(expired, quote.valid_until)
        self.record(ServiceRequestClosed(request_id=self.id, outcome=QUOTE_EXPIRED), quote.valid_until)

    def due_deadlines(self) -> dict[str, datetime]:
        """The quote's expiry, while the customer has not decided (the kernel keeps the timer in step)."""
        quote = self.quote
        if self.status == Status.awaiting_quote and quote is not None and quote.state == QuoteState.issued:
            return {QUOTE_EXPIRY: quote.valid_until}
        return {}

    def _pending_quote(self, action: str, quote_id: str | None) -> Quote:
        quote = self.quote
        if quote is None:
            raise InvalidTransition(f"cannot {action} a quote: none was issued", current_status=str(self.status))
        if quote.state != QuoteState.issued or self.status != Status.awaiting_quote:
            why = f"it was {quote.state}" if quote.state != QuoteState.issued else f"the request is {self.status}"
            raise InvalidTransition(
                f"cannot {action} quote {quote.quote_id}: {why}",
                current_status=str(self.status),
                quote_id=quote.quote_id,
            )
        return self._named_quote(quote, quote_id)

    @staticmethod
    def _named_quote(quote: Quote, quote_id: str | None) -> Quote:
        """`quote`, when the caller named it (or none): a decision on a replaced quote is a conflict."""
        if quote_id is not None and quote_id != quote.quote_id:
            raise Conflict(
                f"quote {quote_id} was replaced by quote {quote.quote_id}", field="quote_id", quote_id=quote.quote_id
            )
        return quote

    # --- reactions to other services' facts (idempotent: a fact already reflected changes nothing) ----

    def note_coverage(self, covered: bool, expires_on: date | None, reason: str | None, at: datetime) -> None:
        """Record warranty's verdict, and release a field triage that waited for it: covered → dispatch (the
        arrive SLA from the receipt, as for any covered case); not covered → wait for a quote. A verdict that
        turns to covered while a quote still waits withdraws the quote and dispatches."""
        current = self.coverage
        if current and (current.covered, current.expires_on, current.reason) == (covered, expires_on, reason):
            return
        # The verdict is stamped with its cause (the receipt); what it releases cannot precede the triage.
        released_at = max(at, self.last_occurred_at) if self.last_occurred_at else at
        self.record(
            ServiceRequestCoverageRecorded(request_id=self.id, covered=covered, expires_on=expires_on, reason=reason),
            at,
        )
        held = (self.status == Status.triaged and self.dispatch_held) or self.status == Status.awaiting_quote
        if not held:
            return
        at = released_at
        if covered:
            assert self.mode is not None and self.priority is not None and self.received_at is not None
            cleared = ServiceRequestClearedForDispatch(
                request_id=self.id,
                mode=self.mode,
                priority=self.priority,
                arrive_sla_from=self.received_at,
                cleared_by=ClearedBy.coverage,
            )
            self.record(cleared, at)
        elif self.status == Status.triaged:
            self.record(ServiceRequestQuoteRequired(request_id=self.id, reason=reason), at)

    def note_job_created(self, job_id: str, at: datetime) -> None:
        if self.status == Status.triaged and self.job_id is None:
            self.record(ServiceRequestDispatched(request_id=self.id, job_id=job_id), at)

    def note_arrival(self, job_id: str, at: datetime) -> None:
        if self.status == Status.dispatched:
            self.record(ServiceRequestServiceStarted(request_id=self.id, job_id=job_id), at)

    def note_completion(self, job_id: str, fixed: bool, at: datetime) -> None:
        """The first fixed completion resolves the request (an arrival we missed is implied by it)."""
        if not fixed or self.status not in (Status.dispatched, Status.in_service):
            return
        if self.status == Status.dispatched:
            self.record(ServiceRequestServiceStarted(request_id=self.id, job_id=job_id), at)
        self.record(ServiceRequestResolved(request_id=self.id, job_id=job_id, outcome="fixed"), at)

    def note_revisit(self, at: datetime) -> None:
        if self.status == Status.resolved:
            self.record(ServiceRequestClosed(request_id=self.id, outcome="resolved_and_revisited"), at)

    # --- state ----------------------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def _require(self, *allowed: Status, action: str) -> None:
        if self.status not in allowed:
            raise transition_refused(
                self.status, allowed, f"cannot {action} a request that is {self.status}", label="allowed from"
            )

    @property
    def previous_step_at(self) -> datetime | None:
        return self.last_step_at

    def _decide(self, state: QuoteState, at: datetime) -> Quote:
        assert self.quote is not None
        self.quote.state, self.quote.decided_at = state, at
        return self.quote

    def _by_the_expiry_timer(self, data: EventData) -> bool:
        """The expiry, the close it causes and their withdrawal are the timer's guess and its correction, not
        steps a later step may not precede."""
        if isinstance(data, (ServiceRequestQuoteExpired, ServiceRequestQuoteExpiryWithdrawn)):
            return True
        return isinstance(data, ServiceRequestClosed) and data.outcome == QUOTE_EXPIRED

    def apply(self, data: EventData, occurred_at: datetime) -> None:
        self.history.append((data.event_type, occurred_at))
        if not self._by_the_expiry_timer(data):
            self.last_step_at = max(self.last_step_at, occurred_at) if self.last_step_at else occurred_at
        match data:
            case ServiceRequestReceived():
                self.status = Status.received
                self.dealer_id = data.dealer_id
                self.channel = data.channel
                self.customer = data.customer
                self.product = data.product
                self.purchase_date = data.purchase_date
                self.symptom = data.symptom
                self.customer_tier = data.customer_tier
                self.urgent = data.urgent
                self.received_at = occurred_at
            case ServiceRequestTriaged():
                self.status = Status.triaged
                self.mode = data.mode
                self.priority = data.priority
                self.dispatch_held = data.dispatch_held
            case ServiceRequestQuoteRequired():
                self.status = Status.awaiting_quote
            case ServiceRequestQuoteIssued():
                self.quote = Quote(
                    data.quote_id,
                    list(data.lines),
                    data.labour_minutes,
                    data.total,
                    data.currency,
                    data.valid_until,
                    data.note,
                    occurred_at,
                )
            case ServiceRequestQuoteAccepted():
                self._decide(QuoteState.accepted, occurred_at).channel = data.channel
            case ServiceRequestQuoteDeclined():
                self._decide(QuoteState.declined, occurred_at).reason = data.reason
            case ServiceRequestQuoteExpired():
                self._decide(QuoteState.expired, occurred_at)
            case ServiceRequestQuoteExpiryWithdrawn():
                # Back to waiting for the decision, which the acceptance recorded with it then takes.
                self.status, self.outcome = Status.awaiting_quote, None
                self._decide(QuoteState.issued, occurred_at).decided_at = None
            case ServiceRequestClearedForDispatch():
                self.status = Status.triaged
                self.dispatch_held = False
                if self.quote is not None and self.quote.state == QuoteState.issued:
                    self._decide(QuoteState.withdrawn, occurred_at)
            case ServiceRequestEscalated():
                self.status = Status.escalated
            case ServiceRequestCancelled():
                self.status = Status.cancelled
            case ServiceRequestCoverageRecorded():
                self.coverage = Coverage(data.covered, data.expires_on, data.reason)
            case ServiceRequestDispatched():
                self.status = Status.dispatched
                self.job_id = data.job_id
            case ServiceRequestServiceStarted():
                self.status = Status.in_service
            case ServiceRequestResolved():
                self.status = Status.resolved
            case ServiceRequestClosed():
                self.status = Status.closed
                self.outcome = data.outcome
