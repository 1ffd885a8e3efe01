"""UTC days, the unit the reports count in: daily parity, attribution periods, dashboard rollups, the anomaly
report and the Monday checklist all cut time at UTC midnight."""

import datetime as dt


def yesterday() -> dt.date:
    """The UTC day before today: what the morning reports cover, and what "run now" runs."""
    return (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).date()


def day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)


def day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of one UTC day."""
    start = day_start(day)
    return start, start + dt.timedelta(days=1)


def days_bounds(first: dt.date, last: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[start of `first`, end of `last`): several whole UTC days."""
    return day_start(first), day_bounds(last)[1]


# Days a person may ask about (dashboard ranges, drill-downs): wider than any real data, narrow enough that a
# day's bounds, a week around it and any time zone's offset stay inside datetime (year 9999 gave a 500).
FIRST_DAY = dt.date(2000, 1, 1)
LAST_DAY = dt.date(2999, 12, 31)


def day_out_of_range(day: dt.date | None) -> str | None:
    """Why `day` cannot be asked about, or None when it can."""
    if day is not None and not FIRST_DAY <= day <= LAST_DAY:
        return f"Choose a date between {FIRST_DAY.isoformat()} and {LAST_DAY.isoformat()}."
    return None


# Date ranges, the same in every command, screen and API filter: a range runs from its start up to, not
# including, its end. A bare date (YYYY-MM-DD) stands for its whole UTC day at either end: "from 2026-11-01"
# starts at that day's midnight, "until 2026-11-30" includes the 30th. A date-time is an instant: "until
# 2026-11-30T12:00Z" stops just before noon. (The README's "Dates and ranges".)
DAY_OR_MOMENT_HINT = (
    "a date (YYYY-MM-DD, its whole UTC day) or a date-time (e.g. 2026-11-01T09:00:00Z; UTC if no offset)"
)


def day_or_moment(value: str) -> dt.date | dt.datetime:
    """A bare date, or an aware date-time (UTC when it names no offset), inside the days a person may ask
    about; ValueError saying what to type."""
    text = value.strip()
    try:
        if len(text) == 10:
            when = dt.date.fromisoformat(text)
        else:
            when = dt.datetime.fromisoformat(text.replace("z", "Z"))
            when = when if when.tzinfo else when.replace(tzinfo=dt.UTC)
    except ValueError:
        raise ValueError(f"{value!r} is not {DAY_OR_MOMENT_HINT}.") from None
    try:
        day = when.astimezone(dt.UTC).date() if isinstance(when, dt.datetime) else when
    except OverflowError:
        day = dt.date.max
    problem = day_out_of_range(day)
    if problem:
        raise ValueError(f"{text}: {problem}")
    return when


def range_start(value: dt.date | dt.datetime) -> dt.datetime:
    """Where a range starting at `value` starts: a date's midnight (UTC), or the instant itself."""
    return value if isinstance(value, dt.datetime) else day_start(value)


def range_end(value: dt.date | dt.datetime) -> dt.datetime:
    """The exclusive end of a range ending at `value`: a date's next midnight (the day is included), or the
    instant itself (not included)."""
    return value if isinstance(value, dt.datetime) else day_bounds(value)[1]
