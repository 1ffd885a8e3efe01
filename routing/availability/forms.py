"""Console forms for a person's availability: time zone and weekly hours as typed text, a time-off period in
the person's own time zone, an iCalendar file and a feed URL. They turn what was typed into the services'
shapes; the services (routing.availability.services) decide what is valid."""

import datetime as dt
import re
import zoneinfo
from functools import cache

from django import forms

from routing.availability.schedule import DAYS

DAY_NAMES = dict(zip(DAYS, ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"), strict=True))
ALL_DAY = ["00:00", "24:00"]
_RANGE = re.compile(r"^(\d{1,2}(?::\d{2})?)\s*[-–]\s*(\d{1,2}(?::\d{2})?)$")
MAX_ICAL_BYTES = 1024 * 1024  # a year of someone's time off is a few kilobytes; more is the wrong file


@cache
def time_zone_names() -> list[str]:
    """Every IANA name this machine knows, sorted (for the time zone field's suggestions)."""
    return sorted(zoneinfo.available_timezones())


def _clock(text: str) -> str:
    hour, _, minute = text.partition(":")
    return f"{int(hour):02d}:{minute or '00'}"


def ranges_from_text(text: str) -> list[list[str]]:
    """ "09:00-12:00, 13:00-17:00" -> [["09:00", "12:00"], ["13:00", "17:00"]]; "all day" -> 00:00-24:00;
    empty -> [] (not working). Only the shape is checked here; the times themselves by the service."""
    text = text.strip()
    if not text:
        return []
    if text.lower() in ("all day", "allday", "24h"):
        return [list(ALL_DAY)]
    ranges = []
    for part in (p.strip() for p in text.split(",")):
        found = _RANGE.match(part)
        if not found:
            raise forms.ValidationError(
                f"{part!r} is not a range: write start-end, e.g. 09:00-17:00; separate ranges with commas, "
                "or write “all day”."
            )
        ranges.append([_clock(found.group(1)), _clock(found.group(2))])
    return ranges


def ranges_as_text(ranges) -> str:
    """The inverse of ranges_from_text, for showing a saved week."""
    if [list(r) for r in ranges or ()] == [ALL_DAY]:
        return "all day"
    return ", ".join(f"{start}-{end}" for start, end in ranges or ())


class HoursForm(forms.Form):
    timezone = forms.CharField(
        max_length=64,
        label="Time zone",
        help_text="An IANA name, e.g. Europe/Berlin: your hours and whole-day time off are read in it.",
        widget=forms.TextInput(attrs={"list": "time-zones", "autocomplete": "off", "spellcheck": "false"}),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for day in DAYS:
            self.fields[day] = forms.CharField(
                label=DAY_NAMES[day],
                required=False,
                max_length=200,
                widget=forms.TextInput(attrs={"placeholder": "not working", "spellcheck": "false"}),
            )

    @classmethod
    def showing(cls, availability: dict) -> "HoursForm":
        """The form filled with a person's saved time zone and week (availability_of's shape)."""
        hours = availability.get("hours") or {}
        initial = {"timezone": availability.get("timezone") or "UTC"}
        initial.update({day: ranges_as_text(hours.get(day)) for day in DAYS})
        return cls(initial=initial)

    def clean(self):
        cleaned = super().clean()
        hours = {}
        for day in DAYS:
            if day not in cleaned:
                continue
            try:
                ranges = ranges_from_text(cleaned[day])
            except forms.ValidationError as problem:
                self.add_error(day, problem)
                continue
            if ranges:
                hours[day] = ranges
        cleaned["hours"] = hours
        return cleaned

    def day_fields(self):
        return [self[day] for day in DAYS]

    def add_service_errors(self, errors: dict) -> None:
        """AvailabilityInvalid's {field: message} at the field it is about ("hours.mon[0]" -> Monday)."""
        for key, message in errors.items():
            found = re.search(r"hours\.(" + "|".join(DAYS) + r")\b", f"{key} {message}")
            if found:
                self.add_error(found.group(1), message)
            elif str(key).startswith("timezone") or str(message).startswith("timezone"):
                self.add_error("timezone", message)
            else:
                self.add_error(None, message)


class TimeOffForm(forms.Form):
    """A period away in the person's time zone: from the start of the first day to the end of the last one,
    unless times are given."""

    start_date = forms.DateField(label="From", widget=forms.DateInput(attrs={"type": "date"}))
    start_time = forms.TimeField(label="at", required=False, widget=forms.TimeInput(attrs={"type": "time"}))
    end_date = forms.DateField(label="To", widget=forms.DateInput(attrs={"type": "date"}))
    end_time = forms.TimeField(label="at", required=False, widget=forms.TimeInput(attrs={"type": "time"}))
    note = forms.CharField(label="Note", max_length=200, required=False)

    def __init__(self, *args, zone: zoneinfo.ZoneInfo | dt.tzinfo = dt.UTC, **kwargs):
        super().__init__(*args, **kwargs)
        self.zone = zone

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            start = dt.datetime.combine(cleaned["start_date"], cleaned["start_time"] or dt.time(0), tzinfo=self.zone)
            if cleaned["end_time"] is None:  # through the last day: until the next day's midnight there
                end = dt.datetime.combine(cleaned["end_date"] + dt.timedelta(days=1), dt.time(0), tzinfo=self.zone)
            else:
                end = dt.datetime.combine(cleaned["end_date"], cleaned["end_time"], tzinfo=self.zone)
            cleaned["start"], cleaned["end"] = start.astimezone(dt.UTC), end.astimezone(dt.UTC)
        except OverflowError:
            raise forms.ValidationError(
                "Those dates are out of range; give dates between the years 2 and 9998."
            ) from None
        if cleaned["end"] <= cleaned["start"]:
            self.add_error("end_date", "The end is not after the start; give a later end (or leave the times empty).")
        return cleaned

    def add_service_errors(self, errors: dict) -> None:
        for key, message in errors.items():
            field = {"start": "start_date", "end": "end_date", "note": "note"}.get(
                str(key).split(".")[-1].split("[")[0]
            )
            self.add_error(field, message)


class IcalUploadForm(forms.Form):
    file = forms.FileField(label="iCalendar file (.ics)", widget=forms.ClearableFileInput(attrs={"accept": ".ics"}))

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > MAX_ICAL_BYTES:
            raise forms.ValidationError(
                f"The file is {upload.size // 1024} KB; an iCalendar of time off is at most "
                f"{MAX_ICAL_BYTES // 1024} KB. Export only your time-off calendar."
            )
        return upload.read()


class IcalFeedForm(forms.Form):
    url = forms.URLField(
        label="Calendar feed URL",
        required=False,
        max_length=500,
        assume_scheme="https",
        help_text="Read now, then again regularly; leave it empty to stop reading a feed.",
    )
