"""The paid-service quote gate of the request aggregate, and the pricing of a quote: no database, no Kafka, no
web (design.md, intake, "Paid service")."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from services.intake.domain import QUOTE_EXPIRY, QuoteState, ServiceRequest, Status
from services.intake.quotes import CataloguePrice, PartWanted, QuoteTerms, price_quote
from services.intake.tests.test_domain import received as received_with_events
from shared.contracts.enums import Channel, ServiceMode
from shared.contracts.intake import (
    ClearedBy,
    ServiceRequestClearedForDispatch,
    ServiceRequestClosed,
    ServiceRequestQuoteAccepted,
    ServiceRequestQuoteExpiryWithdrawn,
    ServiceRequestQuoteRequired,
    ServiceRequestTriaged,
)
from shared.domain import Conflict, InvalidTransition, RuleViolation

T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
TERMS = QuoteTerms(labour_rate_per_hour=Decimal("45.00"), currency="EUR", valid_days=14)
CATALOGUE = {
    "GB-100": CataloguePrice("GB-100", "Gearbox seal", Decimal("12.35"), "EUR"),
    "PUMP-7": CataloguePrice("PUMP-7", "Water pump", Decimal("189.90"), "EUR"),
    "USD-1": CataloguePrice("USD-1", "Imported valve", Decimal("3.00"), "USD"),
}


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def received() -> ServiceRequest:
    request = received_with_events()
    request.take_pending()
    return request


def new_events(request: ServiceRequest) -> list:
    return [p.data for p in request.take_pending()]


def out_of_warranty() -> ServiceRequest:
    request = received()
    request.note_coverage(False, date(2025, 12, 31), "not covered: the 12-month warranty ended", at(0))
    request.take_pending()
    return request


def awaiting_quote() -> ServiceRequest:
    request = out_of_warranty()
    request.triage(ServiceMode.onsite, None, None, at(5))
    request.take_pending()
    return request


def quoted(valid_until: datetime = at(60 * 24 * 14 + 10)) -> ServiceRequest:
    request = awaiting_quote()
    priced = price_quote(90, [PartWanted("GB-100", 2)], CATALOGUE, TERMS)
    request.issue_quote(
        "q1", list(priced.lines), 90, priced.total, priced.currency, valid_until, "seal and labour", at(10)
    )
    request.take_pending()
    return request


# --- pricing -------------------------------------------------------------------------------------------------


def test_a_quote_prices_labour_at_the_hourly_rate_and_parts_at_the_catalogue_exactly_to_the_cent():
    priced = price_quote(50, [PartWanted("GB-100", 3), PartWanted("PUMP-7", 1)], CATALOGUE, TERMS)
    amounts = [(line.kind, line.part_number, line.quantity, line.amount) for line in priced.lines]
    assert amounts == [
        ("labour", None, 50, Decimal("37.50")),  # 45.00 × 50/60
        ("part", "GB-100", 3, Decimal("37.05")),
        ("part", "PUMP-7", 1, Decimal("189.90")),
    ]
    assert priced.total == Decimal("264.45") and priced.currency == "EUR"
    assert all(isinstance(line.amount, Decimal) for line in priced.lines)


def test_labour_that_is_not_a_whole_number_of_cents_rounds_half_up_and_the_lines_add_up_to_the_total():
    terms = QuoteTerms(Decimal("50.00"), "EUR", 14)
    seven = price_quote(7, [], CATALOGUE, terms)  # 50 × 7/60 = 5.8333…
    assert seven.lines[0].amount == Decimal("5.83") and seven.total == Decimal("5.83")
    three = price_quote(3, [], CATALOGUE, QuoteTerms(Decimal("0.10"), "EUR", 14))  # 0.005 → 0.01
    assert three.total == Decimal("0.01")
    # Decimal, not float: 0.1 + 0.2 is 0.3 here.
    cheap = {
        "A": CataloguePrice("A", "a", Decimal("0.10"), "EUR"),
        "B": CataloguePrice("B", "b", Decimal("0.20"), "EUR"),
    }
    assert price_quote(0, [PartWanted("A", 1), PartWanted("B", 1)], cheap, TERMS).total == Decimal("0.30")


@pytest.mark.parametrize(
    "labour, parts, field",
    [
        (30, [PartWanted("GB-100", 1), PartWanted("NOPE", 1)], "parts.1.part_number"),
        (30, [PartWanted("GB-100", 0)], "parts.0.quantity"),
        (30, [PartWanted("GB-100", -2)], "parts.0.quantity"),
        (30, [PartWanted("USD-1", 1)], "parts.0.part_number"),
        (-1, [], "labour_minutes"),
        (0, [], "parts"),
    ],
)
def test_a_quote_with_an_unknown_part_a_quantity_below_one_or_nothing_to_price_is_refused_naming_the_field(
    labour, parts, field
):
    with pytest.raises(RuleViolation) as refused:
        price_quote(labour, parts, CATALOGUE, TERMS)
    assert refused.value.field == field


# --- the gate at triage and at warranty's verdict --------------------------------------------------------------


def test_a_request_not_covered_and_triaged_onsite_awaits_a_quote_and_is_held_from_dispatch():
    request = out_of_warranty()
    request.triage(ServiceMode.onsite, None, None, at(5))
    triaged, required = new_events(request)
    assert isinstance(triaged, ServiceRequestTriaged) and triaged.dispatch_held is True
    assert isinstance(required, ServiceRequestQuoteRequired) and "12-month" in required.reason
    assert request.status == Status.awaiting_quote


def test_a_covered_request_triaged_onsite_is_dispatched_at_once_as_before():
    request = received()
    request.note_coverage(True, date(2027, 1, 1), "covered", at(0))
    request.take_pending()
    request.triage(ServiceMode.carry_in, None, None, at(5))
    [triaged] = new_events(request)
    assert triaged.dispatch_held is False and request.status == Status.triaged


def test_a_request_not_covered_but_resolved_by_phone_needs_no_quote():
    request = out_of_warranty()
    request.triage(ServiceMode.phone, None, None, at(5))
    assert request.status == Status.closed and request.quote is None


def test_a_field_triage_before_warrantys_verdict_waits_for_it_then_dispatches_when_covered():
    request = received()
    request.triage(ServiceMode.onsite, None, None, at(5))
    [triaged] = new_events(request)
    assert triaged.dispatch_held is True and request.status == Status.triaged

    request.note_coverage(True, date(2027, 1, 1), "covered", at(6))
    _, cleared = new_events(request)
    assert isinstance(cleared, ServiceRequestClearedForDispatch)
    assert (cleared.cleared_by, cleared.arrive_sla_from, cleared.mode) == (ClearedBy.coverage, T0, ServiceMode.onsite)
    assert request.status == Status.triaged and request.dispatch_held is False
    request.note_coverage(True, date(2027, 1, 1), "covered", at(7))
    assert new_events(request) == [], "the same verdict again changes nothing"


def test_a_field_triage_before_warrantys_verdict_awaits_a_quote_when_the_verdict_says_not_covered():
    request = received()
    request.triage(ServiceMode.onsite, None, None, at(5))
    request.take_pending()
    request.note_coverage(False, None, "not covered: no purchase date", at(0))  # stamped with the receipt
    verdict, required = request.take_pending()
    assert isinstance(required.data, ServiceRequestQuoteRequired)
    assert request.status == Status.awaiting_quote
    assert (verdict.occurred_at, required.occurred_at) == (at(0), at(5)), "the wait starts at the triage, not before"


def test_a_verdict_that_turns_to_covered_while_a_quote_waits_withdraws_it_and_dispatches():
    request = quoted()
    request.note_coverage(True, date(2027, 1, 1), "covered: registered sale found", at(20))
    _, cleared = new_events(request)
    assert cleared.cleared_by == ClearedBy.coverage
    assert request.quote.state == QuoteState.withdrawn and request.due_deadlines() == {}


# --- issue, accept, decline, expire ----------------------------------------------------------------------------


def test_issuing_a_quote_records_its_lines_and_total_and_watches_its_expiry():
    request = quoted(valid_until=at(1000))
    assert request.status == Status.awaiting_quote
    assert request.quote.total == Decimal("92.20")  # 67.50 labour + 2 × 12.35
    assert request.due_deadlines() == {QUOTE_EXPIRY: at(1000)}


def test_a_quote_for_a_covered_request_is_a_conflict():
    request = received()
    request.note_coverage(True, date(2027, 1, 1), "covered", at(0))
    request.triage(ServiceMode.onsite, None, None, at(5))
    with pytest.raises(Conflict, match="covered by warranty"):
        request.issue_quote("q", [], 30, Decimal("22.50"), "EUR", at(100), None, at(6))


def test_a_quote_for_a_request_not_awaiting_one_is_refused():
    request = received()
    with pytest.raises(InvalidTransition):
        request.issue_quote("q", [], 30, Decimal("22.50"), "EUR", at(100), None, at(6))


def test_accepting_clears_the_request_for_dispatch_with_the_arrive_sla_counted_from_the_acceptance():
    request = quoted()
    request.accept_quote(Channel.dealer, "q1", at(30))
    accepted, cleared = new_events(request)
    assert (accepted.quote_id, accepted.total, accepted.channel) == ("q1", Decimal("92.20"), Channel.dealer)
    assert (cleared.cleared_by, cleared.arrive_sla_from, cleared.quote_id) == (ClearedBy.quote_accepted, at(30), "q1")
    assert request.status == Status.triaged and request.quote.state == QuoteState.accepted
    assert request.due_deadlines() == {}
    request.note_job_created("job-1", at(30))
    assert request.status == Status.dispatched


def test_declining_closes_the_request_with_outcome_quote_declined_and_frees_the_serial():
    request = quoted()
    request.decline_quote("too expensive", None, at(30))
    declined, closed = new_events(request)
    assert declined.reason == "too expensive"
    assert isinstance(closed, ServiceRequestClosed) and closed.outcome == "quote_declined"
    assert not request.is_open and request.due_deadlines() == {}


def test_a_declined_quote_cannot_be_accepted():
    request = quoted()
    request.decline_quote("no", None, at(30))
    with pytest.raises(InvalidTransition, match="declined"):
        request.accept_quote(Channel.hotline, None, at(31))


def test_a_quote_past_its_validity_cannot_be_accepted_even_before_the_timer_fired():
    request = quoted(valid_until=at(100))
    with pytest.raises(Conflict, match="expired"):
        request.accept_quote(Channel.hotline, None, at(101))
    request.accept_quote(Channel.hotline, None, at(100))  # exactly on its deadline is in time
    assert request.quote.state == QuoteState.accepted


def test_the_expiry_timer_expires_an_undecided_quote_stamped_with_its_validity_and_closes_the_request():
    request = quoted(valid_until=at(100))
    request.note_quote_deadline(at(99))
    assert new_events(request) == [], "an early timer changes nothing"
    request.note_quote_deadline(at(105))
    expired, closed = request.take_pending()
    assert expired.data.quote_id == "q1" and expired.occurred_at == at(100)
    assert closed.data.outcome == "quote_expired" and closed.occurred_at == at(100)
    with pytest.raises(Conflict, match="expired") as too_late:
        request.accept_quote(Channel.hotline, None, at(106))
    assert too_late.value.field == "occurred_at"
    request.note_quote_deadline(at(200))
    assert new_events(request) == [], "expires once"


def test_a_new_quote_replaces_the_pending_one_and_a_decision_on_the_replaced_one_is_a_conflict():
    request = quoted()
    request.issue_quote("q2", [], 60, Decimal("45.00"), "EUR", at(500), None, at(20))
    assert request.due_deadlines() == {QUOTE_EXPIRY: at(500)}
    with pytest.raises(Conflict) as refused:
        request.accept_quote(Channel.web, "q1", at(21))
    assert refused.value.field == "quote_id"
    request.accept_quote(Channel.web, "q2", at(21))
    assert request.quote.quote_id == "q2"


def test_a_request_awaiting_a_quote_may_be_cancelled_and_its_timer_stops():
    request = quoted()
    request.cancel("customer bought a new one", at(20))
    assert request.status == Status.cancelled and request.due_deadlines() == {}
    with pytest.raises(InvalidTransition, match="the request is cancelled"):
        request.accept_quote(Channel.hotline, None, at(21))


def test_accepting_or_declining_before_any_quote_is_refused():
    request = awaiting_quote()
    with pytest.raises(InvalidTransition, match="none was issued"):
        request.accept_quote(Channel.hotline, None, at(10))
    with pytest.raises(InvalidTransition, match="none was issued"):
        request.decline_quote("no", None, at(10))


# --- an acceptance synced after the expiry timer fired ---------------------------------------------------------


def expired_by_the_timer(valid_until: datetime = at(100)) -> ServiceRequest:
    request = quoted(valid_until=valid_until)
    request.note_quote_deadline(valid_until + timedelta(seconds=30))
    request.take_pending()
    assert request.status == Status.closed
    return request


def test_an_acceptance_made_before_valid_until_but_recorded_after_the_expiry_withdraws_it_and_clears_dispatch():
    request = expired_by_the_timer()
    assert request.previous_step_at == at(10), "the timer's expiry and close are not steps a late sync must follow"
    request.accept_quote(Channel.dealer, "q1", at(70))
    events = request.take_pending()
    assert [(type(e.data), e.occurred_at) for e in events] == [
        (ServiceRequestQuoteExpiryWithdrawn, at(100)),  # stamped like the expiry it withdraws
        (ServiceRequestQuoteAccepted, at(70)),
        (ServiceRequestClearedForDispatch, at(70)),
    ]
    withdrawn, accepted, cleared = (e.data for e in events)
    assert (withdrawn.quote_id, withdrawn.accepted_at) == ("q1", at(70))
    assert (accepted.quote_id, accepted.channel, accepted.total) == ("q1", Channel.dealer, Decimal("92.20"))
    assert (cleared.cleared_by, cleared.arrive_sla_from) == (ClearedBy.quote_accepted, at(70))
    assert request.status == Status.triaged and request.is_open, "the close no longer holds: on to dispatch"
    assert (request.quote.state, request.quote.decided_at) == (QuoteState.accepted, at(70))
    assert request.due_deadlines() == {}, "no expiry to watch again"
    request.note_job_created("job-1", at(70))
    assert request.status == Status.dispatched and request.job_id == "job-1"


def test_a_late_acceptance_exactly_on_valid_until_is_in_time_as_before_the_timer_fired():
    request = expired_by_the_timer(valid_until=at(100))
    request.accept_quote(Channel.hotline, None, at(100))
    assert request.status == Status.triaged and request.quote.state == QuoteState.accepted


def test_an_acceptance_after_valid_until_stays_refused_naming_occurred_at_and_records_nothing():
    request = expired_by_the_timer(valid_until=at(100))
    with pytest.raises(Conflict, match="expired") as refused:
        request.accept_quote(Channel.dealer, "q1", at(100) + timedelta(seconds=1))
    assert refused.value.field == "occurred_at"
    assert new_events(request) == [] and request.status == Status.closed and request.quote.state == QuoteState.expired


def test_a_late_acceptance_of_a_replaced_quote_id_is_a_conflict_naming_quote_id():
    request = expired_by_the_timer()
    with pytest.raises(Conflict) as refused:
        request.accept_quote(Channel.dealer, "q0", at(70))
    assert refused.value.field == "quote_id" and new_events(request) == []


def test_only_an_expiry_close_is_withdrawn_a_declined_quote_or_a_second_late_acceptance_is_not():
    declined = quoted(valid_until=at(100))
    declined.decline_quote("too dear", None, at(30))
    declined.take_pending()
    with pytest.raises(InvalidTransition, match="declined"):
        declined.accept_quote(Channel.dealer, None, at(40))

    request = expired_by_the_timer()
    request.accept_quote(Channel.dealer, None, at(70))
    request.take_pending()
    with pytest.raises(InvalidTransition, match="accepted"):
        request.accept_quote(Channel.dealer, None, at(80))


def test_a_request_folded_from_its_stream_with_the_withdrawal_reads_as_after_an_acceptance_on_time():
    live = received_with_events()  # its pending events are the whole stream
    live.note_coverage(False, date(2025, 12, 31), "not covered", at(0))
    live.triage(ServiceMode.onsite, None, None, at(5))
    live.issue_quote("q1", [], 60, Decimal("45.00"), "EUR", at(100), None, at(10))
    live.note_quote_deadline(at(101))
    live.accept_quote(Channel.dealer, None, at(70))
    folded = ServiceRequest.rehydrate(live.id, [(p.data, p.occurred_at) for p in live.take_pending()])
    assert (folded.status, folded.quote.state, folded.quote.decided_at) == (Status.triaged, QuoteState.accepted, at(70))
    assert folded.is_open and folded.previous_step_at == at(70) and folded.due_deadlines() == {}
