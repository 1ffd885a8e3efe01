"""Time off from an iCalendar file or feed: all-day busy events (and timed out-of-office ones) are away, each
occurrence of a recurring one within HORIZON of now.

Parsed with `icalendar` (RFC 5545: line folding, TZIDs, VALUE=DATE). An all-day event covers whole days in the
person's time zone, local midnight to local midnight, so a holiday is the same days whatever the UTC offset.
"""

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import icalendar
import recurring_ical_events

MAX_CALENDAR_BYTES = 1024 * 1024
HORIZON = dt.timedelta(days=400)  # periods ending further back or starting further ahead are left out


@dataclass(frozen=True)
class Away:
    uid: str
    start: dt.datetime
    end: dt.datetime
    note: str


@dataclass(frozen=True)
class Calendar:
    periods: list[Away]
    ignored: int  # events that are not time off (timed, transparent, cancelled, out of range)


def calendar_read(content: bytes, *, zone: ZoneInfo, now: dt.datetime) -> Calendar:
    """The away periods of a calendar file. ValueError says what is wrong with a file that is not one."""
    if len(content) > MAX_CALENDAR_BYTES:
        raise ValueError(f"the calendar is larger than {MAX_CALENDAR_BYTES // 1024} KB; export a shorter range.")
    if b"BEGIN:VCALENDAR" not in content[:4096].upper():
        raise ValueError("this is not an iCalendar file (no BEGIN:VCALENDAR); export the calendar as .ics.")
    try:
        calendar = icalendar.Calendar.from_ical(content)
    except (ValueError, IndexError, KeyError) as exc:
        raise ValueError(f"the iCalendar file cannot be read: {exc}"[:300]) from None
    try:
        # Recurring events (RRULE, RDATE, EXDATE, moved occurrences) as the occurrences in the window.
        events = recurring_ical_events.of(calendar).between(now - HORIZON, now + HORIZON)
    except Exception as exc:  # the library raises its own types for a series it cannot expand
        raise ValueError(f"a recurring event cannot be expanded: {exc}"[:300]) from None
    periods, ignored = [], 0
    for event in events:
        try:
            away = _away(event, zone)
        except (ValueError, TypeError, AttributeError) as exc:
            summary = str(event.get("SUMMARY", "")) or str(event.get("UID", "an event"))
            raise ValueError(f"the event {summary!r} has dates that cannot be read: {exc}"[:300]) from None
        if away is None:
            ignored += 1
            continue
        periods.append(away)
    return Calendar(periods, ignored)


def _away(event, zone: ZoneInfo) -> Away | None:
    if str(event.get("TRANSP", "OPAQUE")).upper() == "TRANSPARENT":
        return None
    if str(event.get("STATUS", "")).upper() == "CANCELLED":
        return None
    if "DTSTART" not in event:
        raise ValueError("no DTSTART")
    start = event.decoded("DTSTART")
    end = event.decoded("DTEND") if "DTEND" in event else None
    if end is None and "DURATION" in event:
        end = start + event.decoded("DURATION")
    uid = str(event.get("UID", ""))[:255]
    note = str(event.get("SUMMARY", ""))[:200]
    if not isinstance(start, dt.datetime):  # VALUE=DATE: an all-day event
        last = end if isinstance(end, dt.date) and not isinstance(end, dt.datetime) else start + dt.timedelta(days=1)
        if last <= start:
            last = start + dt.timedelta(days=1)
        begins = dt.datetime.combine(start, dt.time(0), tzinfo=zone).astimezone(dt.UTC)
        ends = dt.datetime.combine(last, dt.time(0), tzinfo=zone).astimezone(dt.UTC)
        return Away(uid or f"{start.isoformat()}/{note}", begins, ends, note)
    if str(event.get("X-MICROSOFT-CDO-BUSYSTATUS", "")).upper() != "OOF" or end is None:
        return None  # a timed meeting is not time off
    start = start if start.tzinfo else start.replace(tzinfo=zone)
    end = end if end.tzinfo else end.replace(tzinfo=zone)
    if end <= start:
        return None
    return Away(uid or f"{start.isoformat()}/{note}", start.astimezone(dt.UTC), end.astimezone(dt.UTC), note)
