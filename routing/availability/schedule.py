"""A person's week and time off as pure functions: are they in at an instant, and when are they next in.

Working hours are local wall-clock ranges per weekday in the person's IANA time zone. Each day's ranges are
turned into UTC on their own, so a daylight-saving change moves the range in UTC and never stretches or
shortens a working day. `["00:00", "24:00"]` is the whole day; a day left out is not worked. Time off is a
list of UTC periods, half-open [start, end). No schedule at all (None) means always in: today's behaviour
for anyone who never set hours.
"""

import datetime as dt
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_RANGES_A_DAY = 12  # a split shift has two or three; more is a mistake, and each costs every look-ahead
LOOK_AHEAD_DAYS = 400  # next_available_at gives up after this: a year of time off is "not coming back soon"
_CLOCK = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)$")


class Why:
    """Why a member is skipped (the distribution ledger's columns, the report's words)."""

    AWAY = "away"  # time off
    OUT_OF_HOURS = "out_of_hours"
    AT_CAP = "at_cap"
    UNAVAILABLE = "unavailable"  # marked unavailable in the queue

    WORDS = {
        AWAY: "away (time off)",
        OUT_OF_HOURS: "out of working hours",
        AT_CAP: "at the queue's cap",
        UNAVAILABLE: "marked unavailable",
    }


Range = tuple[dt.time, dt.time | None]  # end None: midnight at the end of the day ("24:00")


@dataclass(frozen=True)
class Schedule:
    timezone: ZoneInfo
    week: Mapping[int, tuple[Range, ...]]  # 0 = Monday … 6 = Sunday; a day missing: not worked
    time_off: tuple[tuple[dt.datetime, dt.datetime], ...] = field(default=())

    def why_not_in(self, at: dt.datetime) -> str:
        """ "" when the person is in at `at`, else Why.AWAY or Why.OUT_OF_HOURS (time off wins)."""
        if any(start <= at < end for start, end in self.time_off):
            return Why.AWAY
        if not any(opens <= at < closes for opens, closes in self._windows_around(at)):
            return Why.OUT_OF_HOURS
        return ""

    def next_available_at(self, at: dt.datetime) -> dt.datetime | None:
        """The first instant from `at` on when the person is in (`at` itself when in now); None when nothing
        within LOOK_AHEAD_DAYS."""
        for opens, closes in self.windows(at):
            start = max(opens, at)
            while start < closes:
                blocking = [end for begin, end in self.time_off if begin <= start < end]
                if not blocking:
                    return start
                start = max(blocking)
        return None

    def windows(self, since: dt.datetime) -> Iterator[tuple[dt.datetime, dt.datetime]]:
        """Working windows (UTC, half-open, adjacent ones merged) that end after `since`, in order."""
        merged: list[dt.datetime] | None = None
        for opens, closes in self._day_windows(since.astimezone(self.timezone).date() - dt.timedelta(days=1)):
            if merged is not None and opens <= merged[1]:
                merged[1] = max(merged[1], closes)
                continue
            if merged is not None and merged[1] > since:
                yield merged[0], merged[1]
            merged = [opens, closes]
        if merged is not None and merged[1] > since:
            yield merged[0], merged[1]

    def _windows_around(self, at: dt.datetime) -> Iterator[tuple[dt.datetime, dt.datetime]]:
        day = at.astimezone(self.timezone).date()
        for date in (day - dt.timedelta(days=1), day, day + dt.timedelta(days=1)):
            yield from self._date_windows(date)

    def _day_windows(self, first: dt.date) -> Iterator[tuple[dt.datetime, dt.datetime]]:
        for offset in range(LOOK_AHEAD_DAYS + 1):
            yield from self._date_windows(first + dt.timedelta(days=offset))

    def _date_windows(self, date: dt.date) -> Iterator[tuple[dt.datetime, dt.datetime]]:
        for start, end in self.week.get(date.weekday(), ()):
            opens = dt.datetime.combine(date, start, tzinfo=self.timezone).astimezone(dt.UTC)
            if end is None:
                closes = dt.datetime.combine(date + dt.timedelta(days=1), dt.time(0), tzinfo=self.timezone)
            else:
                closes = dt.datetime.combine(date, end, tzinfo=self.timezone)
            closes = closes.astimezone(dt.UTC)
            if closes > opens:  # a range that a spring-forward gap swallows whole is not worked that day
                yield opens, closes


def parse_timezone(name) -> ZoneInfo:
    if not isinstance(name, str) or not name.strip():
        raise ValueError("timezone: give an IANA time zone name, e.g. Europe/Berlin.")
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"timezone: unknown time zone {name!r}; use an IANA name such as Europe/Berlin.") from None


def parse_week(hours) -> dict[int, tuple[Range, ...]]:
    """The API's `hours` object ({"mon": [["09:00", "17:00"], …], …}) as a week; ValueError names what to fix."""
    if not isinstance(hours, Mapping):
        raise ValueError('hours: give an object of weekdays, e.g. {"mon": [["09:00", "17:00"]]}.')
    unknown = sorted(set(hours) - set(DAYS))
    if unknown:
        raise ValueError(f"hours: unknown day {unknown[0]!r}; use {', '.join(DAYS)}.")
    week: dict[int, tuple[Range, ...]] = {}
    for number, day in enumerate(DAYS):
        ranges = hours.get(day)
        if ranges is None:
            continue
        if not isinstance(ranges, list):
            raise ValueError(f'hours.{day}: give a list of ["HH:MM", "HH:MM"] ranges (an empty list: not working).')
        if len(ranges) > MAX_RANGES_A_DAY:
            raise ValueError(f"hours.{day}: at most {MAX_RANGES_A_DAY} ranges a day; merge the ones that touch.")
        # End None is 24:00, after every clock time.
        parsed = sorted(
            (_parse_range(day, i, r) for i, r in enumerate(ranges)), key=lambda r: (r[0], r[1] is None, r[1])
        )
        for (_, end), (start, _) in zip(parsed, parsed[1:], strict=False):
            if end is None or start < end:
                raise ValueError(f"hours.{day}: ranges overlap; merge them into one.")
        if parsed:
            week[number] = tuple(parsed)
    return week


def _parse_range(day: str, i: int, value) -> Range:
    where = f"hours.{day}[{i}]"
    if not (isinstance(value, list | tuple) and len(value) == 2 and all(isinstance(v, str) for v in value)):
        raise ValueError(f'{where}: give ["HH:MM", "HH:MM"], e.g. ["09:00", "17:00"].')
    start, end = (_parse_clock(where, v) for v in value)
    if start is None:
        raise ValueError(f"{where}: a range cannot start at 24:00.")
    if end is not None and end <= start:
        raise ValueError(
            f"{where}: {value[1]} is not after {value[0]}; a range ends the same day (split a night shift in two)."
        )
    return start, end


def _parse_clock(where: str, text: str) -> dt.time | None:
    found = _CLOCK.match(text.strip())
    if not found or (found.group(1) == "24" and found.group(2) != "00"):
        raise ValueError(f"{where}: {text!r} is not a time of day; use HH:MM from 00:00 to 24:00.")
    if found.group(1) == "24":
        return None
    return dt.time(int(found.group(1)), int(found.group(2)))


def week_as_hours(week: Mapping[int, tuple[Range, ...]]) -> dict[str, list[list[str]]]:
    """The inverse of parse_week: the API's shape, days in order, worked days only."""
    return {
        DAYS[number]: [
            [start.strftime("%H:%M"), "24:00" if end is None else end.strftime("%H:%M")] for start, end in ranges
        ]
        for number, ranges in sorted(week.items())
    }
