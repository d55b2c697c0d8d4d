"""The service request aggregate on its own: no database, no Kafka, no web."""

from datetime import UTC, date, datetime, timedelta

import pytest

from services.intake.domain import ServiceRequest, Status, default_priority
from shared.contracts.enums import Channel, CustomerTier, Priority, ServiceMode
from shared.contracts.intake import Customer, Product, ServiceRequestReceived
from shared.domain import InvalidTransition, NotFound, RuleViolation, TimeRules

T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)


def received(urgent=False, tier=CustomerTier.standard) -> ServiceRequest:
    data = ServiceRequestReceived(
        request_id="r1",
        dealer_id="D1",
        channel=Channel.dealer,
        customer=Customer(name="Ann", phone="+4911", region="north"),
        product=Product(serial="SN1", model="T-100", product_line="tractor"),
        purchase_date=date(2025, 1, 1),
        symptom="leaks oil",
        customer_tier=tier,
        urgent=urgent,
    )
    return ServiceRequest.receive("r1", data, T0)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.mark.parametrize(
    "urgent, tier, expected",
    [
        (True, CustomerTier.standard, Priority.P1),
        (True, CustomerTier.key_account, Priority.P1),
        (False, CustomerTier.key_account, Priority.P2),
        (False, CustomerTier.farmer, Priority.P3),
        (False, CustomerTier.standard, Priority.P3),
    ],
)
def test_triage_priority_defaults_to_urgent_p1_key_account_p2_else_p3(urgent, tier, expected):
    assert default_priority(urgent, tier) == expected
    request = received(urgent, tier)
    request.triage(ServiceMode.onsite, None, None, at(5))
    assert request.priority == expected


def test_an_explicit_priority_overrides_the_default():
    request = received(urgent=True)
    request.triage(ServiceMode.onsite, Priority.P3, "customer can wait", at(5))
    assert request.priority == Priority.P3


def test_phone_triage_resolves_and_closes_the_request_at_once():
    request = received()
    request.triage(ServiceMode.phone, None, None, at(3))
    assert request.status == Status.closed
    assert [p.data.event_type for p in request.take_pending()] == [
        "service_request.received",
        "service_request.triaged",
        "service_request.resolved",
        "service_request.closed",
    ]


def test_an_escalated_request_can_be_triaged_but_not_escalated_again():
    request = received()
    request.escalate("second level", at(1))
    with pytest.raises(InvalidTransition):
        request.escalate("again", at(2))
    request.triage(ServiceMode.carry_in, None, None, at(3))
    assert request.status == Status.triaged


@pytest.mark.parametrize(
    "steps, allowed",
    [
        ([], True),
        (["triage"], True),
        (["triage", "job"], True),
        (["triage", "job", "arrive"], False),
        (["cancel"], False),
    ],
)
def test_cancel_is_allowed_until_a_technician_has_arrived(steps, allowed):
    request = received()
    for i, step in enumerate(steps, start=1):
        {
            "triage": lambda: request.triage(ServiceMode.onsite, None, None, at(i)),
            "job": lambda: request.note_job_created("j1", at(i)),
            "arrive": lambda: request.note_arrival("j1", at(i)),
            "cancel": lambda: request.cancel("dup", at(i)),
        }[step]()
    if allowed:
        request.cancel("customer fixed it", at(10))
        assert request.status == Status.cancelled and not request.is_open
    else:
        with pytest.raises(InvalidTransition):
            request.cancel("too late", at(10))


def test_a_cancelled_request_is_final():
    request = received()
    request.cancel("duplicate", at(1))
    with pytest.raises(InvalidTransition):
        request.triage(ServiceMode.onsite, None, None, at(2))


def test_the_request_follows_its_job_to_resolution_and_closes_at_the_revisit():
    request = received()
    request.triage(ServiceMode.onsite, None, None, at(1))
    request.note_job_created("j1", at(1))
    request.note_job_created("j1", at(1))  # the same fact again changes nothing
    request.note_arrival("j1", at(60))
    request.note_completion("j1", False, at(90))
    assert request.status == Status.in_service
    request.note_arrival("j1", at(200))
    request.note_completion("j1", True, at(240))
    request.note_completion("j1", True, at(300))  # a later fixed completion is not a second resolution
    assert request.status == Status.resolved
    request.note_revisit(at(2000))
    assert request.status == Status.closed
    types = [p.data.event_type for p in request.take_pending()]
    assert types.count("service_request.resolved") == 1
    assert types.count("service_request.dispatched") == 1


def test_coverage_is_noted_once_per_distinct_verdict():
    request = received()
    request.note_coverage(True, date(2027, 1, 1), "within 24 months", at(1))
    request.note_coverage(True, date(2027, 1, 1), "within 24 months", at(1))
    assert request.coverage.covered and request.version == 2


def test_a_request_rebuilt_from_its_events_equals_the_one_that_made_them():
    request = received(urgent=True)
    request.triage(ServiceMode.onsite, None, "bring seals", at(2))
    request.note_job_created("j1", at(2))
    history = [(p.data, p.occurred_at) for p in request.take_pending()]
    rebuilt = ServiceRequest.rehydrate("r1", history)
    assert rebuilt == request


def test_a_request_without_events_does_not_exist():
    with pytest.raises(NotFound):
        ServiceRequest.rehydrate("nope", [])


RULES = TimeRules(max_backdate_days=45, max_future_skew_seconds=300)
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "occurred_at, previous, ok",
    [
        (NOW + timedelta(minutes=5), None, True),
        (NOW + timedelta(minutes=5, seconds=1), None, False),
        (NOW - timedelta(days=45), None, True),
        (NOW - timedelta(days=45, seconds=1), None, False),
        (NOW - timedelta(hours=1), NOW - timedelta(hours=1), True),
        (NOW - timedelta(hours=1, seconds=1), NOW - timedelta(hours=1), False),
    ],
)
def test_occurred_at_is_bounded_by_the_future_the_backdate_limit_and_the_previous_step(occurred_at, previous, ok):
    if ok:
        assert RULES.check(occurred_at, NOW, previous) == occurred_at
    else:
        with pytest.raises(RuleViolation) as error:
            RULES.check(occurred_at, NOW, previous)
        assert error.value.field == "occurred_at"
