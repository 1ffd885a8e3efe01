"""SLA arithmetic: business hours, weekends, time zones and a daylight-saving change."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from exceptions.sla import BusinessHours, add_business_time, business_time_between, is_open, next_open

BERLIN = BusinessHours(ZoneInfo("Europe/Berlin"), frozenset(range(5)), dt.time(9), dt.time(17))
NEW_YORK = BusinessHours(ZoneInfo("America/New_York"), frozenset(range(5)), dt.time(9), dt.time(17))


def utc(*args):
    return dt.datetime(*args, tzinfo=dt.UTC)


def minutes(n):
    return dt.timedelta(minutes=n)


def test_without_business_hours_the_clock_always_runs():
    assert add_business_time(utc(2026, 11, 21, 23, 50), minutes(30), None) == utc(2026, 11, 22, 0, 20)
    assert business_time_between(utc(2026, 11, 21), utc(2026, 11, 22), None) == dt.timedelta(days=1)


def test_inside_hours_due_time_is_plain_addition():
    # Friday 20 Nov 2026, 10:00 in Berlin (CET, UTC+1) = 09:00 UTC
    assert add_business_time(utc(2026, 11, 20, 9, 0), minutes(30), BERLIN) == utc(2026, 11, 20, 9, 30)


def test_time_left_at_closing_carries_over_the_weekend():
    # Friday 16:00 Berlin + 2 h = 1 h on Friday, 1 h on Monday from 09:00 → Monday 10:00 Berlin = 09:00 UTC
    assert add_business_time(utc(2026, 11, 20, 15, 0), minutes(120), BERLIN) == utc(2026, 11, 23, 9, 0)


def test_arriving_at_night_starts_the_clock_at_opening():
    # Saturday noon: nothing runs until Monday 09:00 Berlin (08:00 UTC)
    assert add_business_time(utc(2026, 11, 21, 12, 0), minutes(30), BERLIN) == utc(2026, 11, 23, 8, 30)
    assert not is_open(utc(2026, 11, 21, 12, 0), BERLIN)
    assert next_open(utc(2026, 11, 21, 12, 0), BERLIN) == utc(2026, 11, 23, 8, 0)
    assert is_open(utc(2026, 11, 23, 8, 0), BERLIN)


def test_spring_forward_keeps_working_hours_local():
    # Europe switches to summer time on Sunday 29 March 2026. Friday 27 March 16:30 CET (15:30 UTC) + 60 min:
    # 30 min on Friday, 30 min on Monday from 09:00 CEST (07:00 UTC) → 07:30 UTC.
    assert add_business_time(utc(2026, 3, 27, 15, 30), minutes(60), BERLIN) == utc(2026, 3, 30, 7, 30)


def test_fall_back_keeps_working_hours_local_in_new_york():
    # US clocks go back on Sunday 1 Nov 2026: Friday 16:00 EDT (20:00 UTC) + 2 h → Monday 10:00 EST (15:00 UTC).
    assert add_business_time(utc(2026, 10, 30, 20, 0), minutes(120), NEW_YORK) == utc(2026, 11, 2, 15, 0)


def test_a_working_day_across_the_change_is_still_eight_hours():
    monday_after = business_time_between(utc(2026, 3, 30, 0, 0), utc(2026, 3, 31, 0, 0), BERLIN)
    assert monday_after == dt.timedelta(hours=8)


def test_business_time_between_counts_only_open_time():
    # Friday 16:00 Berlin → Monday 10:00 Berlin: 1 h + 1 h
    assert business_time_between(utc(2026, 11, 20, 15, 0), utc(2026, 11, 23, 9, 0), BERLIN) == dt.timedelta(hours=2)
    assert business_time_between(utc(2026, 11, 23, 9, 0), utc(2026, 11, 20, 15, 0), BERLIN) == dt.timedelta(0)


def test_business_time_between_inverts_add_business_time():
    start = utc(2026, 11, 19, 14, 7)
    for amount in (minutes(1), minutes(90), minutes(600), minutes(2400)):
        assert business_time_between(start, add_business_time(start, amount, BERLIN), BERLIN) == amount


@pytest.mark.parametrize(
    ("days", "start", "end", "message"),
    [
        (frozenset(), dt.time(9), dt.time(17), "Business days"),
        (frozenset({7}), dt.time(9), dt.time(17), "Business days"),
        (frozenset({0}), dt.time(17), dt.time(9), "start before they end"),
    ],
)
def test_impossible_calendars_are_refused(days, start, end, message):
    with pytest.raises(ValueError, match=message):
        BusinessHours(ZoneInfo("UTC"), days, start, end)


def test_subtract_business_time_is_the_inverse_of_add():
    from exceptions.sla import subtract_business_time

    # Monday 10:00 Berlin (09:00 UTC) minus 2 h of open time: 1 h Monday, 1 h Friday → Friday 16:00 Berlin
    assert subtract_business_time(utc(2026, 11, 23, 9, 0), minutes(120), BERLIN) == utc(2026, 11, 20, 15, 0)
    # from a closed time, it looks back from the last closing
    assert subtract_business_time(utc(2026, 11, 21, 12, 0), minutes(30), BERLIN) == utc(2026, 11, 20, 15, 30)
    for start in (utc(2026, 11, 19, 14, 7), utc(2026, 3, 27, 15, 30)):
        for amount in (minutes(1), minutes(90), minutes(600)):
            end = add_business_time(start, amount, BERLIN)
            assert subtract_business_time(end, amount, BERLIN) == start
