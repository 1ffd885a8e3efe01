"""UTC days, the unit the reports count in: daily parity, attribution periods, dashboard rollups, the anomaly
report and the Monday checklist all cut time at UTC midnight."""

import datetime as dt


def day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)


def day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of one UTC day."""
    start = day_start(day)
    return start, start + dt.timedelta(days=1)


def days_bounds(first: dt.date, last: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[start of `first`, end of `last`): several whole UTC days."""
    return day_start(first), day_bounds(last)[1]
