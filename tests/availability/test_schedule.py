"""A person's week in their own zone: in or out at an instant, and when next in, across DST changes and zones."""

import datetime as dt

import pytest

from routing.availability.schedule import Schedule, Why, parse_timezone, parse_week


def week(zone, hours, time_off=()):
    return Schedule(parse_timezone(zone), parse_week(hours), tuple(time_off))


def utc(*args):
    return dt.datetime(*args, tzinfo=dt.UTC)


NINE_TO_FIVE = {day: [["09:00", "17:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}


@pytest.mark.parametrize(
    "zone, at, why",
    [
        # Berlin springs forward on Sunday 29 March 2026: 09:00 local is 08:00 UTC before, 07:00 UTC after.
        ("Europe/Berlin", utc(2026, 3, 27, 7, 30), Why.OUT_OF_HOURS),
        ("Europe/Berlin", utc(2026, 3, 27, 8, 0), ""),
        ("Europe/Berlin", utc(2026, 3, 30, 7, 0), ""),
        ("Europe/Berlin", utc(2026, 3, 30, 15, 0), Why.OUT_OF_HOURS),  # 17:00 local after the change
        # and falls back on 25 October: 17:00 local is 15:00 UTC before, 16:00 UTC after.
        ("Europe/Berlin", utc(2026, 10, 23, 15, 30), Why.OUT_OF_HOURS),
        ("Europe/Berlin", utc(2026, 10, 26, 15, 30), ""),
        # New York springs forward on 8 March 2026 (09:00 local: 14:00 UTC before, 13:00 after).
        ("America/New_York", utc(2026, 3, 6, 13, 30), Why.OUT_OF_HOURS),
        ("America/New_York", utc(2026, 3, 9, 13, 30), ""),
        # Half-hour and far-east zones: Kolkata +05:30, Auckland +13:00 in December (Monday 09:00 = Sunday 20:00 UTC).
        ("Asia/Kolkata", utc(2026, 12, 7, 3, 29), Why.OUT_OF_HOURS),
        ("Asia/Kolkata", utc(2026, 12, 7, 3, 30), ""),
        ("Pacific/Auckland", utc(2026, 12, 6, 20, 0), ""),
        ("Pacific/Auckland", utc(2026, 12, 6, 19, 59), Why.OUT_OF_HOURS),
    ],
)
def test_in_or_out_is_decided_in_the_persons_zone_across_daylight_saving_changes(zone, at, why):
    assert week(zone, NINE_TO_FIVE).why_not_in(at) == why


def test_next_in_skips_the_weekend_and_time_off_and_all_day_means_midnight_to_midnight():
    holiday = (utc(2026, 12, 7, 0), utc(2026, 12, 8, 0))
    person = week("UTC", NINE_TO_FIVE, [holiday])
    assert person.why_not_in(utc(2026, 12, 7, 10)) == Why.AWAY  # time off wins over hours
    assert person.next_available_at(utc(2026, 12, 5, 12)) == utc(2026, 12, 8, 9)
    always = week("UTC", {"sat": [["00:00", "24:00"]], "sun": [["00:00", "24:00"]]})
    assert always.why_not_in(utc(2026, 12, 6, 23, 59)) == ""
    assert always.next_available_at(utc(2026, 12, 7, 1)) == utc(2026, 12, 12, 0)


def test_time_off_ending_mid_shift_brings_them_back_at_its_end():
    person = week("UTC", NINE_TO_FIVE, [(utc(2026, 12, 7, 0), utc(2026, 12, 7, 13))])
    assert person.next_available_at(utc(2026, 12, 7, 9)) == utc(2026, 12, 7, 13)


def test_nobody_back_within_the_horizon_is_none():
    person = week("UTC", NINE_TO_FIVE, [(utc(2026, 1, 1), utc(2029, 1, 1))])
    assert person.next_available_at(utc(2026, 12, 7)) is None
