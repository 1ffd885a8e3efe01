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
