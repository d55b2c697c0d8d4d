"""The working-day calendar: weekends, holidays, pauses and time zones, on fixed instants (no clock, no I/O)."""

from datetime import UTC, date, datetime, timedelta

import pytest

from shared.calendar import WorkingCalendar, parse_holidays

UTC = UTC
WEEKDAYS = WorkingCalendar()
CHRISTMAS = WorkingCalendar(holidays=parse_holidays("2026-12-25,2026-12-26"))


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    "start, due",
    [
        ("2026-05-05T23:00", "2026-05-12T23:00"),  # Tuesday 23:00: the same clock time on the 5th working day
        ("2026-05-04T00:00", "2026-05-09T00:00"),  # Monday 00:00: the whole of Monday to Friday, due Friday 24:00
        ("2026-05-08T10:00", "2026-05-15T10:00"),  # Friday: over the weekend to next Friday
        ("2026-05-09T14:00", "2026-05-16T00:00"),  # Saturday: the end of the 5th working day (Friday 24:00)
        ("2026-05-10T23:59", "2026-05-16T00:00"),  # late Sunday: the same, the clock starts on Monday 00:00
    ],
)
def test_five_working_days_end_at_the_same_clock_time_or_at_the_end_of_the_fifth_working_day(start, due):
    assert WEEKDAYS.add_working_days(at(start), 5) == at(due)


def test_holidays_are_skipped_like_weekends():
    # Wed 23 Dec 10:00: Wed (14 h), Thu 24, [Fri 25 and Sat 26 holidays, Sun], Mon 28, Tue 29, Wed 30, Thu 31 10:00
    assert CHRISTMAS.add_working_days(at("2026-12-23T10:00"), 5) == at("2026-12-31T10:00")
    new_year = WorkingCalendar(holidays=parse_holidays("2026-12-25, 2026-12-26, 2026-12-31,2027-01-01"))
    assert new_year.add_working_days(at("2026-12-23T10:00"), 5) == at("2027-01-04T10:00")
    assert not CHRISTMAS.is_working_day(date(2026, 12, 25)) and CHRISTMAS.is_working_day(date(2026, 12, 24))


def test_a_complaint_opened_on_a_holiday_starts_its_clock_on_the_next_working_day():
    assert CHRISTMAS.add_working_days(at("2026-12-25T09:00"), 1) == at("2026-12-29T00:00")


def test_around_the_clock_counts_every_hour_of_every_day():
    clock = WorkingCalendar.around_the_clock()
    assert clock.add_working_time(at("2026-05-08T20:00"), timedelta(hours=8)) == at("2026-05-09T04:00")
    assert clock.working_time_between(at("2026-05-08T20:00"), at("2026-05-11T20:00")) == timedelta(days=3)


def test_a_pause_moves_the_deadline_by_the_paused_time():
    clock = WorkingCalendar.around_the_clock()
    pauses = [(at("2026-05-04T11:00"), at("2026-05-04T13:00"))]
    assert clock.add_working_time(at("2026-05-04T09:00"), timedelta(hours=8), pauses) == at("2026-05-04T19:00")


def test_only_the_working_part_of_a_pause_moves_a_working_day_deadline():
    # Paused Friday 16:00 -> Monday 10:00: 8 h on Friday + 10 h on Monday stopped the clock, the weekend did not.
    pauses = [(at("2026-05-08T16:00"), at("2026-05-11T10:00"))]
    assert WEEKDAYS.add_working_days(at("2026-05-08T10:00"), 5, pauses) == at("2026-05-18T04:00")
    weekend_only = [(at("2026-05-09T08:00"), at("2026-05-10T20:00"))]
    assert WEEKDAYS.add_working_days(at("2026-05-08T10:00"), 5, weekend_only) == at("2026-05-15T10:00")


def test_overlapping_and_unsorted_pauses_count_once():
    clock = WorkingCalendar.around_the_clock()
    pauses = [(at("2026-05-04T12:00"), at("2026-05-04T14:00")), (at("2026-05-04T11:00"), at("2026-05-04T13:00"))]
    assert clock.add_working_time(at("2026-05-04T09:00"), timedelta(hours=8), pauses) == at("2026-05-04T20:00")


def test_a_pause_still_going_leaves_a_deadline_it_began_before_unknown_and_one_it_began_after_alone():
    clock = WorkingCalendar.around_the_clock()
    start, eight_hours = at("2026-05-04T09:00"), timedelta(hours=8)
    assert clock.add_working_time(start, eight_hours, [(at("2026-05-04T12:00"), None)]) is None
    assert clock.add_working_time(start, eight_hours, [(at("2026-05-04T18:00"), None)]) == at("2026-05-04T17:00")
    assert clock.add_working_time(start, eight_hours, [(at("2026-05-04T17:00"), None)]) == at("2026-05-04T17:00"), (
        "a pause that begins exactly on the deadline comes too late"
    )


def test_working_time_between_two_instants_skips_weekends_holidays_and_pauses():
    assert WEEKDAYS.working_time_between(at("2026-05-08T10:00"), at("2026-05-11T10:00")) == timedelta(hours=24)
    holiday_monday = WorkingCalendar(holidays={date(2026, 5, 11)})
    assert holiday_monday.working_time_between(at("2026-05-08T10:00"), at("2026-05-11T10:00")) == timedelta(hours=14)
    paused = [(at("2026-05-08T12:00"), at("2026-05-08T15:00"))]
    assert WEEKDAYS.working_time_between(at("2026-05-08T10:00"), at("2026-05-11T10:00"), paused) == timedelta(hours=21)
    assert WEEKDAYS.working_time_between(at("2026-05-11T10:00"), at("2026-05-08T10:00")) == timedelta()
    assert WEEKDAYS.working_time_between(at("2026-05-09T01:00"), at("2026-05-10T23:00")) == timedelta()


@pytest.mark.parametrize("start", ["2026-05-05T23:00", "2026-05-09T14:00", "2026-12-23T10:00", "2026-12-24T18:30"])
def test_adding_working_time_and_measuring_it_agree(start):
    pauses = [(at("2026-12-24T20:00"), at("2026-12-28T09:00")), (at("2026-05-06T08:00"), at("2026-05-06T09:30"))]
    due = CHRISTMAS.add_working_days(at(start), 5, pauses)
    assert CHRISTMAS.working_time_between(at(start), due, pauses) == timedelta(days=5)


def test_days_are_judged_on_the_wall_clock_of_the_calendars_time_zone():
    shanghai = WorkingCalendar(holidays={date(2026, 10, 1)}, timezone="Asia/Shanghai")
    # 30 Sep 20:00 UTC is 1 Oct 04:00 in Shanghai, a holiday: the clock starts on Friday 2 Oct 00:00 local.
    assert shanghai.add_working_days(at("2026-09-30T20:00"), 1) == at("2026-10-02T16:00")
    assert WEEKDAYS.add_working_days(at("2026-09-30T20:00"), 1) == at("2026-10-01T20:00")


def test_a_deadline_keeps_its_clock_time_across_a_daylight_saving_change():
    berlin = WorkingCalendar(timezone="Europe/Berlin")
    # Friday 23 Oct 10:00 CEST (08:00 UTC); summer time ends on Sunday 25 Oct; due Friday 30 Oct 10:00 CET.
    assert berlin.add_working_days(at("2026-10-23T08:00"), 5) == at("2026-10-30T09:00")


def test_misconfiguration_is_refused_with_a_reason():
    with pytest.raises(ValueError, match="'2026-13-01' is not a date"):
        parse_holidays("2026-12-25,2026-13-01")
    with pytest.raises(ValueError, match="unknown time zone"):
        WorkingCalendar(timezone="Mars/Olympus")
    with pytest.raises(ValueError, match="no working day"):
        WorkingCalendar(weekend=frozenset(range(7))).add_working_days(at("2026-05-04T09:00"), 1)
    with pytest.raises(ValueError, match="negative"):
        WEEKDAYS.add_working_time(at("2026-05-04T09:00"), timedelta(hours=-1))
    assert parse_holidays(" , ") == frozenset()
