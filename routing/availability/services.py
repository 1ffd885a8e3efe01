"""Changing a person's working hours and time off (console, API, calendar feeds), each change audited.

Whoever changes them, the queues see it at their next pick: routing reads schedules per batch. A change may
bring someone back sooner than a held lead expected, so the leads held in that person's queues are woken (the
beat routes them within a minute, or holds them again with a new time).
"""

import datetime as dt
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from audit.models import AuditAction
from audit.services import audit_record
from routing.availability import ical
from routing.availability.models import TimeOff, TimeOffSource, WorkingHours, schedule_of
from routing.availability.schedule import Why, parse_timezone, parse_week, week_as_hours
from routing.integrations.http import get_document
from routing.models import Lead, LeadStatus, QueueMembership

ALL_WEEK = {day: [["00:00", "24:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
MAX_TIME_OFF_ENTRIES = 500  # per PUT: a year of single days, twice over
MAX_NOTE = 200
FEED_TIMEOUT_SECONDS = 10


class AvailabilityInvalid(ValueError):
    """What is wrong, field by field ("timezone", "hours.mon[0]", "time_off[2].end", …)."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors.items()))


@dataclass(frozen=True)
class IcalImport:
    added: int
    removed: int
    kept: int
    ignored: int


def may_edit_availability(actor, user) -> bool:
    """The person themselves, or an admin."""
    return bool(getattr(actor, "is_authenticated", False)) and (actor.pk == user.pk or actor.is_superuser)


def availability_of(user, *, at: dt.datetime) -> dict:
    """The API's shape: time zone, week, time off, and whether the person is in at `at`."""
    hours = WorkingHours.objects.filter(user=user).first()
    time_off = list(TimeOff.objects.filter(user=user).order_by("start", "id"))  # a PUT of this GET changes nothing
    schedule = schedule_of(hours, [period for period in time_off if period.end > at])
    why = schedule.why_not_in(at) if schedule is not None else ""
    back = schedule.next_available_at(at) if schedule is not None else at
    return {
        "username": user.get_username(),
        "timezone": hours.timezone if hours else "UTC",
        "hours": week_as_hours(hours.week()) if hours else dict(ALL_WEEK),
        "time_off": [
            {
                "id": period.pk,
                "start": period.start.isoformat(),
                "end": period.end.isoformat(),
                "note": period.note,
                "source": period.source,
            }
            for period in time_off
        ],
        "ical_url": hours.ical_url if hours else "",
        "ical_read_at": hours.ical_read_at.isoformat() if hours and hours.ical_read_at else None,
        "ical_problem": hours.ical_problem if hours else "",
        "available_now": not why,
        "why_not_now": Why.WORDS.get(why, ""),
        "next_available_at": back.isoformat() if back is not None else None,
    }


def availability_replace(*, user, data, by) -> None:
    """The API's PUT: time zone, week and the manual time off, all at once (calendar-feed periods are kept).
    Everything is checked before anything is written."""
    if not isinstance(data, dict):
        raise AvailabilityInvalid({"body": 'Send a JSON object: {"timezone": …, "hours": {…}, "time_off": […]}.'})
    errors: dict[str, str] = {}
    unknown = sorted(set(data) - {"timezone", "hours", "time_off"})
    for name in unknown:
        errors[name] = "Unknown field; send timezone, hours and time_off."
    for name in ("timezone", "hours"):
        if name not in data:
            errors[name] = "Required."
    zone_name = _checked(errors, "timezone", lambda: parse_timezone(data.get("timezone")).key)
    week = _checked(errors, "hours", lambda: parse_week(data.get("hours")))
    periods = _periods(errors, data.get("time_off", []))
    if errors:
        raise AvailabilityInvalid(errors)
    with transaction.atomic():
        before = _summary(user)
        _hours_write(user, zone_name, week_as_hours(week))
        _manual_time_off_replace(user, periods, by)
        _changed(user, by, "replaced", before)


def working_hours_set(*, user, timezone, hours, by) -> None:  # noqa: A002 (the API's field name)
    errors: dict[str, str] = {}
    zone_name = _checked(errors, "timezone", lambda: parse_timezone(timezone).key)
    week = _checked(errors, "hours", lambda: parse_week(hours))
    if errors:
        raise AvailabilityInvalid(errors)
    with transaction.atomic():
        before = _summary(user)
        _hours_write(user, zone_name, week_as_hours(week))
        _changed(user, by, "working hours set", before)


def time_off_add(*, user, start, end, note, by) -> TimeOff:
    errors: dict[str, str] = {}
    (period,) = _periods(errors, [{"start": start, "end": end, "note": note or ""}], where="")
    if errors:
        raise AvailabilityInvalid(errors)
    with transaction.atomic():
        before = _summary(user)
        made = TimeOff.objects.create(user=user, start=period[0], end=period[1], note=period[2], created_by=by)
        _changed(user, by, "time off added", before)
    return made


def time_off_remove(*, period: TimeOff, by) -> None:
    if period.source == TimeOffSource.ICAL:
        raise ValueError("this period comes from the calendar feed: remove it in the calendar, then read it again.")
    with transaction.atomic():
        before = _summary(period.user)
        period.delete()
        _changed(period.user, by, "time off removed", before)


def ical_import(*, user, content: bytes, by) -> IcalImport:
    """Replace the person's calendar periods with this file's (same UID and times: kept as they are)."""
    hours = WorkingHours.objects.filter(user=user).first()
    zone = hours.zone() if hours else parse_timezone("UTC")
    calendar = ical.calendar_read(content, zone=zone, now=timezone.now())
    with transaction.atomic():
        before = _summary(user)
        existing = {
            (p.ical_uid, p.start, p.end): p for p in TimeOff.objects.filter(user=user, source=TimeOffSource.ICAL)
        }
        wanted = {(a.uid, a.start, a.end): a for a in calendar.periods}
        gone = [p.pk for key, p in existing.items() if key not in wanted]
        TimeOff.objects.filter(pk__in=gone).delete()
        TimeOff.objects.bulk_create(
            TimeOff(
                user=user,
                start=a.start,
                end=a.end,
                note=a.note,
                source=TimeOffSource.ICAL,
                ical_uid=a.uid,
                created_by=by,
            )
            for key, a in wanted.items()
            if key not in existing
        )
        result = IcalImport(
            added=len(wanted.keys() - existing.keys()),
            removed=len(gone),
            kept=len(wanted.keys() & existing.keys()),
            ignored=calendar.ignored,
        )
        if result.added or result.removed:
            _changed(user, by, "calendar read", before, data={"calendar": result.__dict__})
    return result


def ical_feed_set(*, user, url: str, by) -> IcalImport:
    """Keep `url` as the person's time-off feed and read it now ("" forgets the feed, keeping its periods)."""
    url = (url or "").strip()
    hours = _hours_row(user)
    if not url:
        hours.ical_url, hours.ical_problem = "", ""
        hours.save(update_fields=["ical_url", "ical_problem", "updated_at"])
        return IcalImport(0, 0, 0, 0)
    if url.lower().startswith("webcal://"):
        url = "https://" + url[len("webcal://") :]  # a calendar app's link for the same https feed
    if not url.lower().startswith(("https://", "http://")):
        raise ValueError("the feed must be an https:// (or webcal://) URL.")
    result = _feed_read(hours, url, by)
    if hours.ical_problem:  # the feed that worked (if any) stays; this one is not kept
        raise ValueError(hours.ical_problem.removeprefix("The feed was not read: ") + "; the feed was not changed.")
    hours.ical_url = url
    hours.save(update_fields=["ical_url", "ical_read_at", "ical_problem", "updated_at"])
    return result


def ical_feeds_refresh(*, now: dt.datetime) -> int:
    """Read every feed again (the beat, hourly); a failing feed keeps its periods and shows its problem."""
    read = 0
    for hours in WorkingHours.objects.exclude(ical_url="").select_related("user"):
        _feed_read(hours, hours.ical_url, None)
        hours.save(update_fields=["ical_read_at", "ical_problem"])
        read += 1
    return read


def _feed_read(hours: WorkingHours, url: str, by) -> IcalImport:
    hours.ical_read_at = timezone.now()
    try:
        content = get_document(url, timeout=FEED_TIMEOUT_SECONDS)
        result = ical_import(user=hours.user, content=content, by=by)
    except ValueError as exc:
        hours.ical_problem = f"The feed was not read: {exc}"[:500]
        return IcalImport(0, 0, 0, 0)
    hours.ical_problem = ""
    return result


def _manual_time_off_replace(user, periods, by) -> None:
    """The person's manual time off becomes `periods` ((start, end, note), checked); calendar periods stay."""
    TimeOff.objects.filter(user=user, source=TimeOffSource.MANUAL).delete()
    TimeOff.objects.bulk_create(
        TimeOff(user=user, start=start, end=end, note=note, created_by=by) for start, end, note in periods
    )


def _hours_row(user) -> WorkingHours:
    hours = WorkingHours.objects.filter(user=user).first()
    if hours is None:
        hours = WorkingHours.objects.create(user=user, timezone="UTC", hours=dict(ALL_WEEK))
    return hours


def _hours_write(user, zone_name: str, hours: dict) -> None:
    row = WorkingHours.objects.filter(user=user).first() or WorkingHours(user=user)
    if row.pk is None or (row.timezone, row.hours) != (zone_name, hours):
        row.timezone, row.hours = zone_name, hours
        row.save()


def _checked(errors: dict, field: str, parse):
    try:
        return parse()
    except ValueError as exc:
        message = str(exc)
        where, _, rest = message.partition(": ")
        if where.startswith(field):
            errors[where] = rest
        else:
            errors[field] = message
        return None


def _periods(errors: dict, entries, *, where: str = "time_off") -> list[tuple[dt.datetime, dt.datetime, str]]:
    if not isinstance(entries, list):
        errors[where or "time_off"] = 'Give a list of {"start": ISO 8601, "end": ISO 8601, "note": "…"}.'
        return []
    if len(entries) > MAX_TIME_OFF_ENTRIES:
        errors[where] = f"At most {MAX_TIME_OFF_ENTRIES} periods at once."
        return []
    periods = []
    for i, entry in enumerate(entries):
        at = f"{where}[{i}]." if where else ""
        if not isinstance(entry, dict):
            errors[f"{where}[{i}]"] = 'Give {"start": ISO 8601, "end": ISO 8601, "note": "…"}.'
            continue
        if entry.get("source") == TimeOffSource.ICAL:
            continue  # the feed's, as a GET lists it: the feed keeps it, a PUT never copies it as manual
        start, end = (_instant(errors, f"{at}{name}", entry.get(name)) for name in ("start", "end"))
        note = entry.get("note", "") or ""
        if not isinstance(note, str) or len(note) > MAX_NOTE:
            errors[f"{at}note"] = f"Give text of at most {MAX_NOTE} characters."
        unknown = sorted(set(entry) - {"start", "end", "note", "id", "source"})
        if unknown:
            errors[f"{at}{unknown[0]}"] = "Unknown field; a period has start, end and note."
        if start and end and end <= start:
            errors[f"{at}end"] = "The end must be after the start."
        periods.append((start, end, note if isinstance(note, str) else ""))
    return periods


def _instant(errors: dict, field: str, value) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = parse_datetime(value.strip())
        except ValueError:
            parsed = None
    else:
        parsed = None
    if parsed is None:
        errors[field] = "Give an ISO 8601 date and time with its offset, e.g. 2026-12-24T00:00:00+01:00."
        return None
    if parsed.tzinfo is None:
        errors[field] = "Give the offset too (e.g. +01:00 or Z): a time without one names no instant."
        return None
    try:
        instant = parsed.astimezone(dt.UTC)
        instant + dt.timedelta(days=400)  # routing looks this far ahead of any period it reads
    except OverflowError:
        errors[field] = "Give a date between the years 1 and 9998."
        return None
    return instant


def _summary(user) -> dict:
    hours = WorkingHours.objects.filter(user=user).first()
    return {
        "timezone": hours.timezone if hours else None,
        "hours": hours.hours if hours else None,
        "time_off": TimeOff.objects.filter(user=user, end__gt=timezone.now()).count(),
    }


def _changed(user, by, what: str, before: dict, data: dict | None = None) -> None:
    audit_record(
        action=AuditAction.AVAILABILITY_CHANGED,
        actor=by,
        outcome=what,
        data={"person": user.get_username(), "before": before, "after": _summary(user), **(data or {})},
    )
    _wake_held_leads(user)


def _wake_held_leads(user) -> None:
    """Leads held in this person's queues may find them in sooner now: due at once, so the beat tries them."""
    queues = QueueMembership.objects.filter(user=user).values("queue_id")
    now = timezone.now()
    Lead.objects.filter(status=LeadStatus.RECEIVED, queue_id__in=queues, waiting_until__gt=now).update(
        waiting_until=now
    )


def availability_problems(spec: dict, where: str) -> list[str]:
    """A rules-file member's person-level fields (timezone, hours, time_off), checked; "" entries for none."""
    errors: dict[str, str] = {}
    if "timezone" in spec:
        _checked(errors, "timezone", lambda: parse_timezone(spec["timezone"]))
    if "hours" in spec:
        _checked(errors, "hours", lambda: parse_week(spec["hours"]))
    if "time_off" in spec:
        _periods(errors, spec["time_off"])
    return [f"{where}.{field}: {message}" for field, message in errors.items()]


def availability_of_member(user) -> dict:
    """What a rules file says of a person beyond the queue: their week and manual time off ({} when unset)."""
    hours = WorkingHours.objects.filter(user=user).first()
    periods = TimeOff.objects.filter(user=user, source=TimeOffSource.MANUAL).order_by("start", "id")
    found = {}
    if hours is not None:
        found = {"timezone": hours.timezone, "hours": week_as_hours(hours.week())}
    time_off = [{"start": p.start.isoformat(), "end": p.end.isoformat(), "note": p.note} for p in periods]
    if time_off:
        found["time_off"] = time_off
    return found


def availability_sync(*, user, spec: dict, by) -> bool:
    """Make a person's week and manual time off what a rules file says (fields it leaves out stay as they are);
    write nothing when they already are. Returns whether anything changed."""
    current = availability_of_member(user)
    changed = False
    if "timezone" in spec or "hours" in spec:
        zone = parse_timezone(spec.get("timezone", current.get("timezone", "UTC"))).key
        week = week_as_hours(parse_week(spec.get("hours", current.get("hours", ALL_WEEK))))
        if (current.get("timezone"), current.get("hours")) != (zone, week):
            working_hours_set(user=user, timezone=zone, hours=week, by=by)
            changed = True
    if "time_off" in spec:
        errors: dict[str, str] = {}
        wanted = _periods(errors, spec["time_off"])
        if errors:
            raise AvailabilityInvalid(errors)
        have = [(parse_datetime(p["start"]), parse_datetime(p["end"]), p["note"]) for p in current.get("time_off", [])]
        if sorted(have) != sorted(wanted):
            with transaction.atomic():
                before = _summary(user)
                _manual_time_off_replace(user, wanted, by)
                _changed(user, by, "time off set by a rules import", before)
            changed = True
    return changed
