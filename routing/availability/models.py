"""Working hours and time off per person, and the distribution ledger per queue, member and day."""

import datetime as dt

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from simple_history.models import HistoricalRecords

from audit.history import history_person
from routing.availability.schedule import Schedule, parse_timezone, parse_week


class WorkingHours(models.Model):
    """A person's week. No row: in around the clock (only time off and the queue's flag take them out)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="working_hours")
    timezone = models.CharField(max_length=64, default="UTC", help_text="IANA name, e.g. Europe/Berlin.")
    # {"mon": [["09:00", "17:00"]], …}: a day left out is not worked; ["00:00", "24:00"] is all day.
    hours = models.JSONField(default=dict, blank=True)
    # An iCalendar feed of the person's time off, read again by the beat (all-day busy events = away).
    ical_url = models.URLField(max_length=500, blank=True)
    ical_read_at = models.DateTimeField(null=True, blank=True)
    ical_problem = models.CharField(max_length=500, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords(get_user=history_person, excluded_fields=["ical_read_at", "ical_problem"])

    def __str__(self):
        return f"{self.user}'s working hours"

    def clean(self):
        try:
            self.zone()
            self.week()
        except ValueError as exc:
            raise ValidationError(str(exc)) from None

    def week(self):
        return parse_week(self.hours)

    def zone(self):
        return parse_timezone(self.timezone)


class TimeOffSource(models.TextChoices):
    MANUAL = "manual", "Added by hand"
    ICAL = "ical", "From the calendar feed"


class TimeOff(models.Model):
    """A period (UTC, half-open [start, end)) a person is away: skipped by every queue they are in."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="time_off")
    start = models.DateTimeField()
    end = models.DateTimeField()
    note = models.CharField(max_length=200, blank=True)
    source = models.CharField(max_length=8, choices=TimeOffSource.choices, default=TimeOffSource.MANUAL)
    ical_uid = models.CharField(max_length=255, blank=True, help_text="The calendar event's UID (feed imports).")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords(get_user=history_person)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(end__gt=F("start")), name="time_off_ends_after_start")]
        indexes = [models.Index(fields=["user", "end"], name="time_off_user_end_idx")]
        ordering = ["start", "id"]

    def __str__(self):
        return f"{self.user} away {self.start:%Y-%m-%d %H:%M} – {self.end:%Y-%m-%d %H:%M}"


def schedule_of(hours: WorkingHours | None, time_off=()) -> Schedule | None:
    """The person's Schedule; None (always in) when they have neither hours nor time off."""
    periods = tuple((t.start, t.end) for t in time_off)
    if hours is None:
        if not periods:
            return None
        return Schedule(dt.UTC, {day: ((dt.time(0), None),) for day in range(7)}, periods)
    return Schedule(hours.zone(), hours.week(), periods)


class DistributionDay(models.Model):
    """What a queue's strategy did for one member on one UTC day: leads given, the share they were due, the
    picks they sat out and why, and turns credited back. Upserted (increments) under the queue's lock."""

    queue = models.ForeignKey("routing.Queue", on_delete=models.CASCADE, related_name="distribution_days")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    assigned = models.PositiveIntegerField(default=0)
    # Sum over the queue's picks of weight / (weights of the members eligible for that pick) while eligible.
    expected = models.FloatField(default=0.0)
    # Sum over the queue's picks of weight / (weights of every member), eligible or not: the share if always in.
    expected_if_always_in = models.FloatField(default=0.0)
    skipped_away = models.PositiveIntegerField(default=0)
    skipped_out_of_hours = models.PositiveIntegerField(default=0)
    skipped_at_cap = models.PositiveIntegerField(default=0)
    skipped_unavailable = models.PositiveIntegerField(default=0)
    credited_back = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["queue", "user", "day"], name="distribution_day_unique_queue_user_day")
        ]
        indexes = [models.Index(fields=["queue", "day"], name="distribution_day_queue_day_idx")]

    def __str__(self):
        return f"{self.user} in {self.queue} on {self.day}"
