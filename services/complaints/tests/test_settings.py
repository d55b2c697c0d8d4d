"""complaints' deadlines are configured by environment variables, and a bad calendar stops the start."""

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from services.complaints.app import ComplaintsSettings


def test_the_deadlines_and_the_holiday_calendar_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("COMPLAINT_HOLIDAYS", "2026-12-25,2026-12-26")
    monkeypatch.setenv("COMPLAINT_ACKNOWLEDGE_WITHIN_SECONDS", "1800")
    monkeypatch.setenv("COMPLAINT_RESOLVE_SERIOUS_WORKING_DAYS", "3")
    sla = ComplaintsSettings().sla()
    wednesday = datetime(2026, 12, 23, 10, 0, tzinfo=UTC)
    assert sla.acknowledge_due(wednesday) == wednesday + timedelta(minutes=30)
    assert sla.resolve_due("general", wednesday) == wednesday + timedelta(hours=8)
    assert sla.resolve_due("serious", wednesday) == datetime(2026, 12, 29, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "variable, value",
    [
        ("COMPLAINT_HOLIDAYS", "2026-12-25,Christmas"),
        ("COMPLAINT_TIMEZONE", "Mars/Olympus"),
        ("COMPLAINT_LOW_SATISFACTION", "6"),
    ],
)
def test_a_calendar_or_threshold_that_makes_no_sense_is_refused_at_start(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError, match=variable.lower()):
        ComplaintsSettings()
