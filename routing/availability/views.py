"""Console screens for people's availability: "Who is in" across the queues, and each person's page with their
time zone, weekly hours, time off and calendar feed. Anyone with console access reads them; only the person
or an admin changes them (routing.availability.services.may_edit_availability). Thin: the services decide
and write; a refused change comes back as a message saying why, at the field it concerns."""

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch, Q
from django.http import HttpResponseBadRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views import View

from exceptions.permissions import CONSOLE_GROUPS, ConsoleAccessMixin
from routing.availability import services
from routing.availability.forms import (
    DAY_NAMES,
    HoursForm,
    IcalFeedForm,
    IcalUploadForm,
    TimeOffForm,
    time_zone_names,
)
from routing.availability.models import TimeOff, TimeOffSource
from routing.availability.schedule import Why, parse_timezone
from routing.availability.selectors import schedules_for
from routing.models import Queue, QueueMembership


class PersonState:
    IN = "in"
    OUT_OF_HOURS = "out_of_hours"
    AWAY = "away"
    UNAVAILABLE = "unavailable"


@dataclass
class PersonRow:
    person: object
    zone_name: str
    local_now: dt.datetime
    queues: list = field(default_factory=list)  # (queue, is_available)
    state: str = PersonState.IN
    until: dt.datetime | None = None  # back at (local time), for out of hours and away
    until_is_whole_day: bool = False  # away through the day before `until` (time off ending at midnight there)
    notes: list = field(default_factory=list)  # time-off notes
    unavailable_in: list = field(default_factory=list)  # queue names where the flag is off
    always_in: bool = False  # no working hours and no time off


def _console_members(queue_id: int | None):
    people = (
        get_user_model()
        .objects.filter(Q(groups__name__in=CONSOLE_GROUPS) | Q(is_superuser=True), is_active=True)
        .filter(queue_memberships__isnull=False)
    )
    memberships = QueueMembership.objects.select_related("queue").order_by("queue__name")
    if queue_id is not None:
        people = people.filter(queue_memberships__queue_id=queue_id)
        memberships = memberships.filter(queue_id=queue_id)
    return (
        get_user_model()
        .objects.filter(pk__in=people.values("pk"))
        .order_by("username")
        .prefetch_related(Prefetch("queue_memberships", queryset=memberships, to_attr="shown_memberships"))
    )


def _until_back(time_off, at: dt.datetime) -> dt.datetime:
    """The end of the time off `at` is in, following periods that start before the previous one ends."""
    end = at
    for start, stop in sorted(time_off):
        if start <= end and stop > end:
            end = stop
    return end


def who_is_in(*, at: dt.datetime, queue_id: int | None = None) -> list[PersonRow]:
    """Every console person in a queue (or in `queue_id`), with their state at `at`: a fixed handful of
    queries however many people."""
    people = list(_console_members(queue_id))
    ids = [p.pk for p in people]
    schedules = schedules_for(ids, at=at)
    notes = defaultdict(list)
    for period in TimeOff.objects.filter(user_id__in=ids, start__lte=at, end__gt=at).order_by("start", "id"):
        if period.note:
            notes[period.user_id].append(period.note)
    rows = []
    for person in people:
        schedule = schedules.get(person.pk)
        zone = schedule.timezone if schedule is not None else dt.UTC
        row = PersonRow(
            person=person,
            zone_name=str(zone),
            local_now=at.astimezone(zone),
            queues=[(m.queue, m.is_available) for m in person.shown_memberships],
            always_in=schedule is None,
        )
        row.unavailable_in = [queue.name for queue, available in row.queues if not available]
        why = schedule.why_not_in(at) if schedule is not None else ""
        if row.queues and len(row.unavailable_in) == len(row.queues):
            row.state = PersonState.UNAVAILABLE  # the flag first: no hours make them routable in any queue
        elif why == Why.AWAY:
            row.state = PersonState.AWAY
            back = _until_back(schedule.time_off, at).astimezone(zone)
            row.until_is_whole_day = back.time() == dt.time(0)
            row.until = back - dt.timedelta(days=1) if row.until_is_whole_day else back
            row.notes = notes[person.pk]
        elif why == Why.OUT_OF_HOURS:
            row.state = PersonState.OUT_OF_HOURS
            back = schedule.next_available_at(at)
            row.until = back.astimezone(zone) if back is not None else None
        rows.append(row)
    return rows


class WhoIsInView(ConsoleAccessMixin, View):
    def get(self, request):
        raw = request.GET.get("queue", "")
        if raw and not (raw.isascii() and raw.isdigit() and len(raw) <= 18):
            return HttpResponseBadRequest(
                "queue: give a queue's number (choose it in the list).", content_type="text/plain; charset=utf-8"
            )
        queues = list(Queue.objects.order_by("name").only("id", "name"))
        chosen = next((q for q in queues if str(q.pk) == raw), None)
        if raw and chosen is None:
            messages.error(request, f"There is no queue #{raw}; showing everyone.")
        now = timezone.now()
        rows = who_is_in(at=now, queue_id=chosen.pk if chosen else None)
        return render(
            request,
            "console/people/who_is_in.html",
            {
                "rows": rows,
                "queues": queues,
                "chosen": chosen,
                "now": now,
                "counts": {state: sum(r.state == state for r in rows) for state in vars(PersonState).values()},
            },
        )


def _person(username: str):
    return get_object_or_404(get_user_model(), username=username)


def _as_datetime(value) -> dt.datetime | None:
    if value is None or isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(str(value))


def _zone(name: str):
    try:
        return parse_timezone(name)
    except ValueError:
        return dt.UTC


class PersonAvailabilityView(ConsoleAccessMixin, View):
    """A person's availability; POST /console/people/<username>/availability/<action>/ changes one part."""

    ACTIONS = ("hours", "time-off", "time-off-remove", "ical-upload", "ical-feed")

    def get(self, request, username, action=None):
        if action is not None:  # a change's address opened by hand: the page it belongs to
            return self._back(_person(username))
        return self._page(request, _person(username))

    def post(self, request, username, action=None):
        person = _person(username)
        if not services.may_edit_availability(request.user, person):
            raise PermissionDenied(
                f"Only {person.get_username()} or an admin changes {person.get_username()}'s working hours and "
                "time off; you may read them."
            )
        if action not in self.ACTIONS:
            messages.error(request, f"Unknown change {action!r}; use the forms on this page.")
            return self._back(person)
        return getattr(self, "do_" + action.replace("-", "_"))(request, person)

    def do_hours(self, request, person):
        form = HoursForm(request.POST)
        if form.is_valid():
            try:
                services.working_hours_set(
                    user=person,
                    timezone=form.cleaned_data["timezone"],
                    hours=form.cleaned_data["hours"],
                    by=request.user,
                )
            except services.AvailabilityInvalid as invalid:
                form.add_service_errors(invalid.errors)
            else:
                messages.success(request, f"Working hours of {person.get_username()} saved.")
                return self._back(person)
        messages.error(request, "The working hours were not saved; fix the fields marked below.")
        return self._page(request, person, hours_form=form, status=400)

    def do_time_off(self, request, person):
        availability = services.availability_of(person, at=timezone.now())
        form = TimeOffForm(request.POST, zone=_zone(availability.get("timezone") or "UTC"))
        if form.is_valid():
            data = form.cleaned_data
            try:
                services.time_off_add(
                    user=person, start=data["start"], end=data["end"], note=data["note"], by=request.user
                )
            except services.AvailabilityInvalid as invalid:
                form.add_service_errors(invalid.errors)
            else:
                messages.success(request, f"Time off added for {person.get_username()}.")
                return self._back(person, "#time-off")
        messages.error(request, "The time off was not added; fix the fields marked below.")
        return self._page(request, person, availability=availability, time_off_form=form, status=400)

    def do_time_off_remove(self, request, person):
        raw = request.POST.get("period", "")
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 18):
            messages.error(request, "Nothing was removed: choose a period's Delete button.")
            return self._back(person, "#time-off")
        period = TimeOff.objects.filter(pk=int(raw), user=person).first()
        if period is None:
            messages.error(
                request, f"Nothing was removed: {person.get_username()} has no time off #{raw} (gone already?)."
            )
        elif period.source == TimeOffSource.ICAL:
            messages.error(
                request,
                "That period comes from the calendar feed: remove it in the calendar, then read the feed again.",
            )
        else:
            try:
                services.time_off_remove(period=period, by=request.user)
            except (services.AvailabilityInvalid, ValueError) as refused:
                messages.error(request, f"Nothing was removed: {_words(refused)}")
            else:
                messages.success(request, f"Removed the time off {period.start:%Y-%m-%d} – {period.end:%Y-%m-%d}.")
        return self._back(person, "#time-off")

    def do_ical_upload(self, request, person):
        form = IcalUploadForm(request.POST, request.FILES)
        if not form.is_valid():
            messages.error(request, "The calendar was not read: " + _form_errors(form))
            return self._back(person, "#calendar")
        try:
            result = services.ical_import(user=person, content=form.cleaned_data["file"], by=request.user)
        except (ValueError, services.AvailabilityInvalid) as refused:
            messages.error(request, f"The calendar was not read, nothing changed: {_words(refused)}")
        else:
            messages.success(request, "Calendar read: " + _import_summary(result))
        return self._back(person, "#calendar")

    def do_ical_feed(self, request, person):
        form = IcalFeedForm(request.POST)
        if not form.is_valid():
            messages.error(request, "The feed was not saved: " + _form_errors(form))
            return self._back(person, "#calendar")
        url = form.cleaned_data["url"]
        try:
            result = services.ical_feed_set(user=person, url=url, by=request.user)
        except (ValueError, services.AvailabilityInvalid) as refused:
            messages.error(request, f"The feed was not saved: {_words(refused)}")
        else:
            if url:
                messages.success(request, "Feed saved and read: " + _import_summary(result))
            else:
                messages.success(request, f"{person.get_username()} has no calendar feed now.")
        return self._back(person, "#calendar")

    def _back(self, person, anchor=""):
        return HttpResponseRedirect(reverse("console:person-availability", args=[person.get_username()]) + anchor)

    def _page(self, request, person, *, availability=None, status=200, **forms):
        now = timezone.now()
        if availability is None:
            availability = services.availability_of(person, at=now)
        may_edit = services.may_edit_availability(request.user, person)
        hours = availability.get("hours") or {}
        time_off = [
            {**period, "start": _as_datetime(period["start"]), "end": _as_datetime(period["end"])}
            for period in availability.get("time_off") or ()
        ]
        upcoming = sorted((p for p in time_off if p["end"] > now), key=lambda p: (p["start"], p["id"]))
        past = sorted((p for p in time_off if p["end"] <= now), key=lambda p: (p["start"], p["id"]), reverse=True)
        zone = _zone(availability.get("timezone") or "UTC")
        context = {
            "person": person,
            "availability": availability,
            "zone_name": str(zone),
            "now": now,
            "local_now": now.astimezone(zone),
            "next_available_at": _as_datetime(availability.get("next_available_at")),
            "why_not_now": Why.WORDS.get(availability.get("why_not_now"), availability.get("why_not_now")),
            "ical_read_at": _as_datetime(availability.get("ical_read_at")),
            "week": [(DAY_NAMES[day], hours.get(day) or []) for day in DAY_NAMES],
            "time_off": upcoming + past,
            "may_edit": may_edit,
            "time_zones": time_zone_names(),
        }
        if may_edit:
            context.update(
                {
                    "hours_form": forms.get("hours_form") or HoursForm.showing(availability),
                    "time_off_form": forms.get("time_off_form") or TimeOffForm(zone=zone),
                    "ical_upload_form": IcalUploadForm(),
                    "ical_feed_form": IcalFeedForm(initial={"url": availability.get("ical_url") or ""}),
                }
            )
        return render(request, "console/people/person.html", context, status=status)


def _words(refused: Exception) -> str:
    errors = getattr(refused, "errors", None)
    if isinstance(errors, dict) and errors:
        return " ".join(str(message) for message in errors.values())
    return str(refused)


def _form_errors(form) -> str:
    return " ".join(str(message) for errors in form.errors.values() for message in errors)


def _import_summary(result) -> str:
    return (
        f"{result.added} period{'s' if result.added != 1 else ''} added, {result.removed} removed, "
        f"{result.kept} unchanged, {result.ignored} event{'s' if result.ignored != 1 else ''} ignored "
        "(not all-day busy time)."
    )
