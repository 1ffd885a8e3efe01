"""GET/PUT /api/v1/people/{username}/availability/ and the calendar import, through a console token."""

import datetime as dt
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import time_machine
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from audit.models import AuditAction, AuditEvent
from routing.availability.models import TimeOff, TimeOffSource, WorkingHours
from tests.factories import TimeOffFactory, UserFactory, WorkingHoursFactory, personal_token

pytestmark = pytest.mark.django_db

WEEK = {
    "timezone": "Europe/Berlin",
    "hours": {"mon": [["09:00", "12:00"], ["13:00", "17:00"]], "fri": [["09:00", "17:00"]]},
}
CALENDAR = b"""BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//Handoff tests//EN\r
BEGIN:VEVENT\r
UID:xmas@example.com\r
SUMMARY:Christmas\r
DTSTART;VALUE=DATE:20261224\r
DTEND;VALUE=DATE:20261227\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:lunch@example.com\r
SUMMARY:Lunch\r
DTSTART:20261210T120000Z\r
DTEND:20261210T130000Z\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:free@example.com\r
SUMMARY:Maybe a day off\r
TRANSP:TRANSPARENT\r
DTSTART;VALUE=DATE:20261230\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:oof@example.com\r
SUMMARY:Dentist\r
X-MICROSOFT-CDO-BUSYSTATUS:OOF\r
DTSTART;TZID=Europe/Berlin:20261211T140000\r
DTEND;TZID=Europe/Berlin:20261211T160000\r
END:VEVENT\r
END:VCALENDAR\r
"""


def client_of(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {personal_token(user)}")
    return client


@pytest.fixture
def ann():
    user = UserFactory(username="ann")
    user.groups.add(Group.objects.get_or_create(name="ops")[0])
    return user


def url(username="ann"):
    return f"/api/v1/people/{username}/availability/"


def test_put_then_get_gives_the_week_back_with_when_the_person_is_next_in(ann):
    api = client_of(ann)
    body = {
        **WEEK,
        "time_off": [{"start": "2026-12-07T00:00:00+01:00", "end": "2026-12-08T00:00:00+01:00", "note": "Off"}],
    }
    assert api.put(url(), body, format="json").status_code == 200

    with time_machine.travel(dt.datetime(2026, 12, 5, 12, tzinfo=dt.UTC), tick=False):  # a Saturday
        got = api.get(url()).json()
    assert (got["timezone"], got["hours"]) == (WEEK["timezone"], WEEK["hours"])
    assert [(p["start"], p["note"], p["source"]) for p in got["time_off"]] == [
        ("2026-12-06T23:00:00+00:00", "Off", "manual")
    ]
    # Monday is off, so Friday 09:00 Berlin (08:00 UTC) is next; "out of working hours" now.
    assert (got["available_now"], got["why_not_now"]) == (False, "out of working hours")
    assert got["next_available_at"] == "2026-12-11T08:00:00+00:00"
    assert AuditEvent.objects.filter(action=AuditAction.AVAILABILITY_CHANGED, actor=ann).count() == 1


def test_someone_who_never_set_hours_is_in_all_week(ann):
    got = client_of(ann).get(url()).json()
    assert got["available_now"] is True and got["hours"]["sun"] == [["00:00", "24:00"]]


def test_a_put_replaces_the_manual_time_off_and_keeps_the_calendars(ann):
    TimeOffFactory(user=ann, start=dt.datetime(2026, 12, 1, tzinfo=dt.UTC), end=dt.datetime(2026, 12, 2, tzinfo=dt.UTC))
    feed = TimeOffFactory(
        user=ann,
        source=TimeOffSource.ICAL,
        ical_uid="x",
        start=dt.datetime(2027, 1, 4, tzinfo=dt.UTC),
        end=dt.datetime(2027, 1, 5, tzinfo=dt.UTC),
    )
    assert client_of(ann).put(url(), {**WEEK, "time_off": []}, format="json").status_code == 200
    assert list(TimeOff.objects.filter(user=ann)) == [feed]


@pytest.mark.parametrize(
    "change, field, message",
    [
        (
            {"timezone": "Mars/Olympus"},
            "timezone",
            "unknown time zone 'Mars/Olympus'; use an IANA name such as Europe/Berlin.",
        ),
        (
            {"hours": {"mon": [["09:00", "25:00"]]}},
            "hours.mon[0]",
            "'25:00' is not a time of day; use HH:MM from 00:00 to 24:00.",
        ),
        (
            {"hours": {"mon": [["17:00", "09:00"]]}},
            "hours.mon[0]",
            "09:00 is not after 17:00; a range ends the same day",
        ),
        (
            {"hours": {"mon": [["09:00", "12:00"], ["11:00", "13:00"]]}},
            "hours.mon",
            "ranges overlap; merge them into one.",
        ),
        ({"hours": {"monday": []}}, "hours", "unknown day 'monday'"),
        (
            {"time_off": [{"start": "2026-12-07T00:00:00", "end": "2026-12-08T00:00:00Z"}]},
            "time_off[0].start",
            "Give the offset too",
        ),
        (
            {"time_off": [{"start": "2026-12-08T00:00:00Z", "end": "2026-12-07T00:00:00Z"}]},
            "time_off[0].end",
            "The end must be after the start.",
        ),
        ({"time_off": "tomorrow"}, "time_off", "Give a list"),
        ({"colour": "blue"}, "colour", "Unknown field"),
        ({"hours": {"mon": [["09:00", "24:00"], ["09:00", "17:00"]]}}, "hours.mon", "ranges overlap"),
        ({"hours": {"mon": [[f"{h:02}:00", f"{h:02}:30"] for h in range(13)]}}, "hours.mon", "at most 12 ranges a day"),
        (
            {"time_off": [{"start": "9999-12-31T23:00:00-05:00", "end": "9999-12-31T23:30:00-05:00"}]},
            "time_off[0].start",
            "between the years 1 and 9998",
        ),
    ],
)
def test_a_bad_value_is_a_400_naming_the_field_and_nothing_is_written(ann, change, field, message):
    response = client_of(ann).put(url(), {**WEEK, **change}, format="json")
    assert response.status_code == 400
    assert message in response.json()[field][0]
    assert not WorkingHours.objects.exists() and not TimeOff.objects.exists()


def test_only_the_person_or_an_admin_changes_it_and_an_unknown_person_is_404(ann):
    bob = UserFactory(username="bob")
    bob.groups.add(Group.objects.get(name="ops"))
    refused = client_of(bob).put(url(), WEEK, format="json")
    assert (refused.status_code, refused.json()["detail"]) == (
        403,
        "Only ann or an admin changes ann's working hours and time off.",
    )
    assert client_of(bob).get(url()).status_code == 200  # reading is for everyone with console access
    root = UserFactory(username="root", is_superuser=True)
    assert client_of(root).put(url(), WEEK, format="json").status_code == 200
    assert client_of(ann).get(url("nobody")).status_code == 404
    assert APIClient().get(url()).status_code == 401


def test_a_calendar_file_adds_all_day_busy_and_out_of_office_events_and_reading_it_again_changes_nothing(ann):
    WorkingHoursFactory(user=ann, timezone="Europe/Berlin")
    api = client_of(ann)
    first = api.post(url() + "ical/", {"file": _upload(CALENDAR)}, format="multipart")
    assert first.json() == {"added": 2, "removed": 0, "kept": 0, "ignored": 2}
    periods = [(p.note, p.start, p.end) for p in TimeOff.objects.filter(user=ann, source=TimeOffSource.ICAL)]
    assert periods == [  # local midnights in Berlin (UTC+1): the days are the person's
        ("Dentist", dt.datetime(2026, 12, 11, 13, tzinfo=dt.UTC), dt.datetime(2026, 12, 11, 15, tzinfo=dt.UTC)),
        ("Christmas", dt.datetime(2026, 12, 23, 23, tzinfo=dt.UTC), dt.datetime(2026, 12, 26, 23, tzinfo=dt.UTC)),
    ]
    again = api.post(url() + "ical/", {"file": _upload(CALENDAR)}, format="multipart")
    assert again.json() == {"added": 0, "removed": 0, "kept": 2, "ignored": 2}


def test_a_file_that_is_not_a_calendar_is_refused_saying_why(ann):
    response = client_of(ann).post(
        url() + "ical/", {"file": _upload(b"name,start\nann,2026-12-24\n")}, format="multipart"
    )
    assert response.status_code == 400
    assert "not an iCalendar file" in response.json()["file"][0]
    assert not TimeOff.objects.exists()


def test_a_feed_url_is_read_from_a_real_server_and_a_private_address_is_refused(ann):
    server = HTTPServer(("127.0.0.1", 0), _CalendarHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        feed = f"http://127.0.0.1:{server.server_port}/ann.ics"
        read = client_of(ann).post(url() + "ical/", {"url": feed}, format="json")
    finally:
        server.shutdown()
    assert read.json()["added"] == 2
    assert ann.working_hours.ical_url == feed

    refused = client_of(ann).post(url() + "ical/", {"url": "http://169.254.169.254/latest/meta-data"}, format="json")
    assert refused.status_code == 400
    assert "refused" in refused.json()["url"][0]


class _CalendarHandler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        self.send_response(200)
        self.send_header("Content-Type", "text/calendar")
        self.end_headers()
        self.wfile.write(CALENDAR)

    def log_message(self, *args):
        pass


def _upload(content: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("calendar.ics", content, content_type="text/calendar")


def test_a_get_sent_back_as_a_put_changes_nothing_and_never_copies_calendar_periods_as_manual(ann):
    TimeOffFactory(user=ann, start=dt.datetime(2026, 12, 1, tzinfo=dt.UTC), end=dt.datetime(2026, 12, 2, tzinfo=dt.UTC))
    TimeOffFactory(
        user=ann,
        source=TimeOffSource.ICAL,
        ical_uid="x",
        start=dt.datetime(2027, 1, 4, tzinfo=dt.UTC),
        end=dt.datetime(2027, 1, 5, tzinfo=dt.UTC),
    )
    api = client_of(ann)
    got = api.get(url()).json()
    assert api.put(url(), {k: got[k] for k in ("timezone", "hours", "time_off")}, format="json").status_code == 200
    assert sorted(TimeOff.objects.values_list("source", flat=True)) == ["ical", "manual"]


def test_a_webcal_link_is_read_as_https_and_a_failing_feed_is_not_kept(ann):
    response = client_of(ann).post(url() + "ical/", {"url": "webcal://127.0.0.1:9/ann.ics"}, format="json")
    assert response.status_code == 400
    assert "the feed was not changed" in response.json()["url"][0]
    assert not WorkingHours.objects.exclude(ical_url="").exists()


def test_a_weekly_day_off_counts_every_occurrence_except_the_one_taken_out(ann):
    fridays = b"""BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//Handoff tests//EN\r
BEGIN:VEVENT\r
UID:fridays@example.com\r
SUMMARY:Fridays off\r
DTSTART;VALUE=DATE:20261204\r
DTEND;VALUE=DATE:20261205\r
RRULE:FREQ=WEEKLY;COUNT=3\r
EXDATE;VALUE=DATE:20261211\r
END:VEVENT\r
END:VCALENDAR\r
"""
    with time_machine.travel(dt.datetime(2026, 12, 1, tzinfo=dt.UTC), tick=False):
        result = client_of(ann).post(url() + "ical/", {"file": _upload(fridays)}, format="multipart").json()
    assert result["added"] == 2
    days = sorted(p.start.date() for p in TimeOff.objects.filter(user=ann))
    assert days == [dt.date(2026, 12, 4), dt.date(2026, 12, 18)]
