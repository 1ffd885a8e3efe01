"""SLA time: due times and elapsed time inside a queue's business hours. Pure functions of their inputs.

Business hours are local wall-clock hours on chosen weekdays in an IANA time zone; each day's window is
converted to UTC on its own, so a daylight-saving change shifts the window in UTC and never stretches or
shortens a working day. No business hours (None) means the clock always runs.
"""

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo

MAX_DAYS_AHEAD = 3 * 366  # a safety stop for calendars that are almost never open


@dataclass(frozen=True)
class BusinessHours:
    timezone: ZoneInfo
    weekdays: frozenset[int]  # 0 = Monday … 6 = Sunday
    start: dt.time
    end: dt.time

    def __post_init__(self):
        if not self.weekdays or not self.weekdays <= set(range(7)):
            raise ValueError("Business days must be some of 0 (Monday) to 6 (Sunday).")
        if self.start >= self.end:
            raise ValueError("Business hours must start before they end on the same day.")

    def windows(self, since: dt.datetime) -> Iterator[tuple[dt.datetime, dt.datetime]]:
        """Open periods (UTC, half-open) from the local day containing `since` onwards, in order."""
        day = since.astimezone(self.timezone).date()
        for offset in range(MAX_DAYS_AHEAD):
            date = day + dt.timedelta(days=offset)
            if date.weekday() not in self.weekdays:
                continue
            opens = dt.datetime.combine(date, self.start, tzinfo=self.timezone).astimezone(dt.UTC)
            closes = dt.datetime.combine(date, self.end, tzinfo=self.timezone).astimezone(dt.UTC)
            if closes > since:
                yield opens, closes


def subtract_business_time(end: dt.datetime, amount: dt.timedelta, hours: BusinessHours | None) -> dt.datetime:
    """The latest instant from which `amount` of open time has passed by `end`."""
    if hours is None:
        return end - amount
    remaining = amount
    day = end.astimezone(hours.timezone).date()
    for offset in range(MAX_DAYS_AHEAD):
        date = day - dt.timedelta(days=offset)
        if date.weekday() not in hours.weekdays:
            continue
        opens = dt.datetime.combine(date, hours.start, tzinfo=hours.timezone).astimezone(dt.UTC)
        closes = min(dt.datetime.combine(date, hours.end, tzinfo=hours.timezone).astimezone(dt.UTC), end)
        if closes <= opens:
            continue
        if remaining <= closes - opens:
            return closes - remaining
        remaining -= closes - opens
    raise ValueError("Business hours leave no time to look back over.")


def add_business_time(start: dt.datetime, amount: dt.timedelta, hours: BusinessHours | None) -> dt.datetime:
    """The instant `amount` of open time after `start`."""
    if hours is None:
        return start + amount
    remaining = amount
    for opens, closes in hours.windows(start):
        begin = max(opens, start)
        if remaining <= closes - begin:
            return begin + remaining
        remaining -= closes - begin
    raise ValueError("Business hours leave no time to meet this SLA.")


def business_time_between(start: dt.datetime, end: dt.datetime, hours: BusinessHours | None) -> dt.timedelta:
    """Open time elapsed from `start` to `end` (zero when end <= start)."""
    if end <= start:
        return dt.timedelta(0)
    if hours is None:
        return end - start
    total = dt.timedelta(0)
    for opens, closes in hours.windows(start):
        if opens >= end:
            break
        total += min(closes, end) - max(opens, start)
    return total


def is_open(at: dt.datetime, hours: BusinessHours | None) -> bool:
    return next_open(at, hours) == at


def next_open(at: dt.datetime, hours: BusinessHours | None) -> dt.datetime:
    """`at` itself when open, else the next opening."""
    if hours is None:
        return at
    for opens, _ in hours.windows(at):
        return max(opens, at)
    raise ValueError("Business hours never open.")
