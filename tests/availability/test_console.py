"""Console screens for availability: "Who is in" and each person's page (hours, time off, calendar)."""

import datetime as dt

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext

from routing.availability.models import TimeOff, TimeOffSource, WorkingHours
from tests.factories import MembershipFactory, QueueFactory, TimeOffFactory, UserFactory, WorkingHoursFactory

pytestmark = pytest.mark.django_db

BERLIN_WEEK = {day: [["09:00", "17:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}
HOLIDAY_ICS = b"""BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//Handoff tests//EN\r
BEGIN:VEVENT\r
UID:holiday-1@example.com\r
DTSTAMP:20261201T000000Z\r
DTSTART;VALUE=DATE:20261221\r
DTEND;VALUE=DATE:20261224\r
SUMMARY:Christmas\r
TRANSP:OPAQUE\r
END:VEVENT\r
END:VCALENDAR\r
"""


def at(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def ops(username, **fields):
    user = UserFactory(username=username, **fields)
    user.groups.add(Group.objects.get_or_create(name="ops")[0])
    return user


@pytest.fixture
def admin(db):
    return UserFactory(username="ada", first_name="Ada", last_name="Admin", is_staff=True, is_superuser=True)


@pytest.fixture
def ann(db):
    return ops("ann", first_name="Ann", last_name="Berlin")


def page_url(user) -> str:
    return f"/console/people/{user.get_username()}/availability/"


def change_url(user, action) -> str:
    return f"{page_url(user)}{action}/"


def hours_post(**days) -> dict:
    data = {"timezone": "Europe/Berlin", **{day: "" for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}}
    data.update(days)
    return data


# Who may see and change what


def test_both_screens_need_a_login(client, ann):
    for url in ("/console/people/", page_url(ann)):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_outsiders_get_403(client, outsider, ann):
    client.force_login(outsider)
    assert client.get("/console/people/").status_code == 403
    assert client.get(page_url(ann)).status_code == 403


def test_an_unknown_person_is_404(client, ops_person):
    client.force_login(ops_person)
    assert client.get("/console/people/nobody-here/availability/").status_code == 404


def test_ops_person_reads_anyones_page_without_the_forms(client, ops_person, ann):
    WorkingHoursFactory(user=ann, timezone="Europe/Berlin", hours=BERLIN_WEEK)
    client.force_login(ops_person)
    response = client.get(page_url(ann))
    page = response.content.decode()
    assert response.status_code == 200
    assert "Europe/Berlin" in page and "09:00–17:00" in page
    assert 'id="hours-form"' not in page and 'id="time-off-form"' not in page and 'id="ical-upload-form"' not in page
    assert "Only ann or an admin changes this page." in page


def test_ops_person_cannot_change_someone_elses_hours(client, ops_person, ann):
    client.force_login(ops_person)
    response = client.post(change_url(ann, "hours"), hours_post(mon="09:00-17:00"))
    assert response.status_code == 403
    assert "Only ann or an admin changes ann&#x27;s working hours" in response.content.decode()
    assert not WorkingHours.objects.filter(user=ann).exists()
    response = client.post(change_url(ann, "time-off"), {"start_date": "2026-12-21", "end_date": "2026-12-23"})
    assert response.status_code == 403 and not TimeOff.objects.filter(user=ann).exists()


def test_ops_person_changes_their_own_hours(client, ann):
    client.force_login(ann)
    page = client.get(page_url(ann)).content.decode()
    assert 'id="hours-form"' in page and 'list="time-zones"' in page and '<option value="Europe/Berlin">' in page
    response = client.post(change_url(ann, "hours"), hours_post(mon="09:00-17:00"))
    assert response.status_code == 302 and response["Location"] == page_url(ann)
    assert WorkingHours.objects.get(user=ann).hours == {"mon": [["09:00", "17:00"]]}


def test_a_superuser_changes_anyones_availability(client, admin, ann):
    client.force_login(admin)
    assert client.post(change_url(ann, "hours"), hours_post(tue="08:00-16:00")).status_code == 302
    assert WorkingHours.objects.get(user=ann).hours == {"tue": [["08:00", "16:00"]]}
    response = client.post(change_url(ann, "time-off"), {"start_date": "2026-12-21", "end_date": "2026-12-23"})
    assert response.status_code == 302 and TimeOff.objects.filter(user=ann).count() == 1


# Weekly hours


def test_hours_round_trip_through_the_form(client, ann):
    client.force_login(ann)
    sent = hours_post(mon="09:00-12:00, 13:00-17:00", tue="9-17", sat="all day")
    assert client.post(change_url(ann, "hours"), sent).status_code == 302
    saved = WorkingHours.objects.get(user=ann)
    assert saved.timezone == "Europe/Berlin"
    assert saved.hours == {
        "mon": [["09:00", "12:00"], ["13:00", "17:00"]],
        "tue": [["09:00", "17:00"]],
        "sat": [["00:00", "24:00"]],
    }
    form = client.get(page_url(ann)).context["hours_form"]
    assert form["mon"].value() == "09:00-12:00, 13:00-17:00"
    assert form["tue"].value() == "09:00-17:00"
    assert form["sat"].value() == "all day"
    assert form["sun"].value() == "" and form["timezone"].value() == "Europe/Berlin"


def test_hours_errors_show_at_the_day_they_concern_and_nothing_is_saved(client, ann):
    client.force_login(ann)
    response = client.post(change_url(ann, "hours"), hours_post(mon="09:00-17:00", wed="17:00-09:00"))
    assert response.status_code == 400
    form = response.context["hours_form"]
    assert form.errors.keys() == {"wed"} and "17:00" in form.errors["wed"][0]
    page = response.content.decode()
    assert "The working hours were not saved; fix the fields marked below." in page
    wednesday = page.split('data-day="wed"')[1].split("</label>")[0]
    assert 'class="error"' in wednesday
    assert not WorkingHours.objects.filter(user=ann).exists()


def test_hours_text_that_is_not_a_range_and_an_unknown_zone_say_why(client, ann):
    client.force_login(ann)
    response = client.post(change_url(ann, "hours"), hours_post(thu="mornings", timezone="Mars/Olympus"))
    assert response.status_code == 400
    errors = response.context["hours_form"].errors
    assert "'mornings' is not a range" in errors["thu"][0]
    assert not WorkingHours.objects.filter(user=ann).exists()
    response = client.post(change_url(ann, "hours"), hours_post(thu="09:00-17:00", timezone="Mars/Olympus"))
    assert response.status_code == 400
    assert "Mars/Olympus" in response.context["hours_form"].errors["timezone"][0]
    assert not WorkingHours.objects.filter(user=ann).exists()


# Time off


def test_whole_days_of_time_off_are_read_in_the_persons_zone_across_a_dst_change(client, ann):
    WorkingHoursFactory(user=ann, timezone="Europe/Berlin", hours=BERLIN_WEEK)
    client.force_login(ann)
    # Berlin leaves summer time on Sunday 2026-10-25: the first day starts at +02:00, the day after the last at +01:00.
    response = client.post(
        change_url(ann, "time-off"), {"start_date": "2026-10-24", "end_date": "2026-10-26", "note": "Long weekend"}
    )
    assert response.status_code == 302 and response["Location"].endswith("#time-off")
    period = TimeOff.objects.get(user=ann)
    assert (period.start, period.end) == (at(2026, 10, 23, 22), at(2026, 10, 26, 23))
    assert period.note == "Long weekend" and period.source == TimeOffSource.MANUAL and period.created_by == ann


def test_time_off_with_times_is_read_in_the_persons_zone(client, ann):
    WorkingHoursFactory(user=ann, timezone="America/New_York", hours=BERLIN_WEEK)
    client.force_login(ann)
    data = {"start_date": "2026-12-21", "start_time": "13:00", "end_date": "2026-12-21", "end_time": "17:30"}
    assert client.post(change_url(ann, "time-off"), data).status_code == 302
    period = TimeOff.objects.get(user=ann)
    assert (period.start, period.end) == (at(2026, 12, 21, 18), at(2026, 12, 21, 22, 30))


def test_time_off_that_ends_before_it_starts_is_refused_at_the_field(client, ann):
    client.force_login(ann)
    data = {"start_date": "2026-12-21", "start_time": "13:00", "end_date": "2026-12-21", "end_time": "09:00"}
    response = client.post(change_url(ann, "time-off"), data)
    assert response.status_code == 400
    assert "The time off was not added" in response.content.decode()
    assert "The end is not after the start" in response.context["time_off_form"].errors["end_date"][0]
    assert not TimeOff.objects.filter(user=ann).exists()


def test_time_off_is_listed_upcoming_first_and_a_manual_period_is_deleted(client, ann):
    client.force_login(ann)
    past = TimeOffFactory(user=ann, start=at(2026, 1, 5), end=at(2026, 1, 6), note="Old")
    later = TimeOffFactory(user=ann, start=at(2027, 3, 1), end=at(2027, 3, 2), note="Later")
    sooner = TimeOffFactory(user=ann, start=at(2027, 2, 1), end=at(2027, 2, 2), note="Sooner")
    feed = TimeOffFactory(
        user=ann, start=at(2027, 4, 1), end=at(2027, 4, 2), note="Feed", source=TimeOffSource.ICAL, ical_uid="x"
    )
    page = client.get(page_url(ann)).content.decode()
    assert page.index("Sooner") < page.index("Later") < page.index("Feed") < page.index("Old")
    assert "from the calendar feed: change it there" in page
    assert page.count('name="period"') == 3  # no Delete button for the feed's period

    response = client.post(change_url(ann, "time-off-remove"), {"period": sooner.pk})
    assert response.status_code == 302
    assert set(TimeOff.objects.filter(user=ann).values_list("pk", flat=True)) == {past.pk, later.pk, feed.pk}
    response = client.post(change_url(ann, "time-off-remove"), {"period": feed.pk}, follow=True)
    assert "comes from the calendar feed" in response.content.decode()
    assert TimeOff.objects.filter(pk=feed.pk).exists()


def test_deleting_someone_elses_period_through_your_own_page_removes_nothing(client, ann):
    bob = ops("bob")
    theirs = TimeOffFactory(user=bob, start=at(2027, 2, 1), end=at(2027, 2, 2))
    client.force_login(ann)
    response = client.post(change_url(ann, "time-off-remove"), {"period": theirs.pk}, follow=True)
    assert f"ann has no time off #{theirs.pk}" in response.content.decode()
    assert TimeOff.objects.filter(pk=theirs.pk).exists()


# Calendar


def test_uploading_a_calendar_adds_its_all_day_events_as_time_off(client, ann):
    WorkingHoursFactory(user=ann, timezone="Europe/Berlin", hours=BERLIN_WEEK)
    client.force_login(ann)
    upload = SimpleUploadedFile("holidays.ics", HOLIDAY_ICS, content_type="text/calendar")
    response = client.post(change_url(ann, "ical-upload"), {"file": upload}, follow=True)
    assert "Calendar read: 1 period added" in response.content.decode()
    period = TimeOff.objects.get(user=ann)
    assert period.source == TimeOffSource.ICAL
    assert (period.start, period.end) == (at(2026, 12, 20, 23), at(2026, 12, 23, 23))


def test_a_file_that_is_not_a_calendar_is_refused_with_why_and_nothing_is_written(client, ann):
    client.force_login(ann)
    upload = SimpleUploadedFile("notes.ics", b"this is not a calendar\r\n", content_type="text/calendar")
    response = client.post(change_url(ann, "ical-upload"), {"file": upload}, follow=True)
    page = response.content.decode()
    assert "The calendar was not read, nothing changed:" in page
    assert not TimeOff.objects.filter(user=ann).exists()
    assert not WorkingHours.objects.filter(user=ann, ical_read_at__isnull=False).exists()


def test_an_upload_without_a_file_says_so(client, ann):
    client.force_login(ann)
    response = client.post(change_url(ann, "ical-upload"), {}, follow=True)
    assert "The calendar was not read: This field is required." in response.content.decode()


def test_the_feed_url_and_its_last_problem_are_shown(client, ops_person, ann):
    WorkingHoursFactory(
        user=ann,
        timezone="Europe/Berlin",
        ical_url="https://calendar.example.com/ann.ics",
        ical_read_at=at(2026, 12, 1, 8),
        ical_problem="the server answered 404",
    )
    client.force_login(ops_person)
    page = client.get(page_url(ann)).content.decode()
    assert "https://calendar.example.com/ann.ics" in page and "last read 2026-12-01 09:00 Europe/Berlin" in page
    assert "The last read failed: the server answered 404" in page


def test_a_malformed_feed_url_is_refused_with_why(client, ann):
    client.force_login(ann)
    response = client.post(change_url(ann, "ical-feed"), {"url": "not a url at all"}, follow=True)
    assert "The feed was not saved: Enter a valid URL." in response.content.decode()
    assert not WorkingHours.objects.filter(user=ann).exclude(ical_url="").exists()


# Who is in


@pytest.fixture
def team(ann):
    """In Sales: ann (Berlin, weekdays 9-17), bob (New York, on holiday), cyd (marked unavailable), dee (no
    hours: always in). Support: ann and eve (Tokyo, weekdays 9-18)."""
    sales, support = QueueFactory(name="Sales"), QueueFactory(name="Support")
    bob, cyd, dee, eve = ops("bob"), ops("cyd"), ops("dee"), ops("eve")
    WorkingHoursFactory(user=ann, timezone="Europe/Berlin", hours=BERLIN_WEEK)
    WorkingHoursFactory(user=bob, timezone="America/New_York", hours=BERLIN_WEEK)
    WorkingHoursFactory(
        user=eve, timezone="Asia/Tokyo", hours={d: [["09:00", "18:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}
    )
    TimeOffFactory(user=bob, start=at(2026, 10, 22, 4), end=at(2026, 10, 27, 4), note="Fishing <3")
    for person in (ann, bob, dee):
        MembershipFactory(queue=sales, user=person)
    MembershipFactory(queue=sales, user=cyd, is_available=False)
    MembershipFactory(queue=support, user=ann)
    MembershipFactory(queue=support, user=eve)
    MembershipFactory(queue=support, user=UserFactory(username="quinn"))  # no console access: not listed
    return {"sales": sales, "support": support}


def states(response) -> dict:
    return {row.person.get_username(): row.state for row in response.context["rows"]}


def row_of(response, username) -> str:
    page = response.content.decode()
    return page.split(f'data-person="{username}"')[1].split("</tr>")[0]


def test_who_is_in_before_berlin_opens_on_the_monday_after_the_dst_change(client, ops_person, team):
    # Monday 2026-10-26 07:30 UTC: 08:30 in Berlin (CET now), 03:30 in New York, 16:30 in Tokyo.
    with time_machine.travel(at(2026, 10, 26, 7, 30), tick=False):
        client.force_login(ops_person)
        response = client.get("/console/people/")
    assert states(response) == {
        "ann": "out_of_hours",
        "bob": "away",
        "cyd": "unavailable",
        "dee": "in",
        "eve": "in",
    }
    assert "Out of hours until 09:00 Europe/Berlin" in row_of(response, "ann")
    assert "Mon 08:30" in row_of(response, "ann")
    bob = row_of(response, "bob")
    assert "Away until Mon 2026-10-26 (Fishing &lt;3)" in bob and "<3" not in bob  # through Monday there
    assert "Marked unavailable in Sales" in row_of(response, "cyd")
    assert "no hours set: always in" in row_of(response, "dee")
    assert "Mon 16:30" in row_of(response, "eve") and "Asia/Tokyo" in row_of(response, "eve")
    assert "Sales, Support" in row_of(response, "ann")


def test_who_is_in_an_hour_later_and_after_tokyo_closes(client, ops_person, team):
    with time_machine.travel(at(2026, 10, 26, 9, 30), tick=False):
        client.force_login(ops_person)
        response = client.get("/console/people/")
    assert states(response)["ann"] == "in"
    assert states(response)["eve"] == "out_of_hours"
    assert "Out of hours until Tue 09:00 Asia/Tokyo" in row_of(response, "eve")


def test_whole_days_away_show_the_last_day(client, ops_person, team):
    bob = team["sales"].memberships.get(user__username="bob").user
    TimeOff.objects.filter(user=bob).delete()
    # Away Thu 2026-12-03 to Mon 2026-12-07 inclusive in New York (EST, -05:00).
    TimeOffFactory(user=bob, start=at(2026, 12, 3, 5), end=at(2026, 12, 8, 5), note="")
    with time_machine.travel(at(2026, 12, 4, 15), tick=False):
        client.force_login(ops_person)
        response = client.get("/console/people/")
    bob_row = row_of(response, "bob")
    assert "Away until Mon 2026-12-07" in bob_row and "Away until Mon 2026-12-07 (" not in bob_row  # no note


def test_who_is_in_filters_by_queue(client, ops_person, team):
    with time_machine.travel(at(2026, 10, 26, 9, 30), tick=False):
        client.force_login(ops_person)
        response = client.get("/console/people/", {"queue": team["support"].pk})
        malformed = client.get("/console/people/", {"queue": "sales"})
    assert set(states(response)) == {"ann", "eve"}
    assert "Sales" not in row_of(response, "ann")
    assert malformed.status_code == 400 and "queue: give a queue's number" in malformed.content.decode()


def test_marked_unavailable_in_one_queue_only_is_noted_beside_the_state(client, ops_person, team):
    team["support"].memberships.filter(user__username="ann").update(is_available=False)
    with time_machine.travel(at(2026, 10, 26, 9, 30), tick=False):
        client.force_login(ops_person)
        response = client.get("/console/people/")
    assert states(response)["ann"] == "in"
    assert "marked unavailable in Support" in row_of(response, "ann")


def test_who_is_in_costs_the_same_queries_for_3_and_for_10_people(client, ops_person):
    client.force_login(ops_person)

    def people(count):
        queue = QueueFactory()
        for n in range(count):
            person = ops(f"{queue.name.replace(' ', '')}-{n}")
            MembershipFactory(queue=queue, user=person)
            WorkingHoursFactory(user=person, timezone="Europe/Berlin", hours=BERLIN_WEEK)
            TimeOffFactory(user=person, start=at(2026, 1, 1), end=at(2030, 1, 1), note=f"away {n}")
        return queue

    def queries(queue):
        client.get("/console/people/", {"queue": queue.pk})  # warm: the session and the navigation's reads
        with CaptureQueriesContext(connection) as captured:
            response = client.get("/console/people/", {"queue": queue.pk})
        assert response.status_code == 200
        return len(captured), len(response.context["rows"])

    few, many = people(3), people(10)
    assert queries(few)[1] == 3 and queries(many)[1] == 10
    assert queries(few)[0] == queries(many)[0]


def test_the_navigation_links_people_and_my_hours(client, ann):
    client.force_login(ann)
    page = client.get("/console/").content.decode()
    assert 'href="/console/people/"' in page and 'href="/console/people/ann/availability/"' in page


def test_the_persons_page_says_whether_they_are_in_and_when_they_are_next(client, ops_person, ann):
    WorkingHoursFactory(user=ann, timezone="Europe/Berlin", hours=BERLIN_WEEK)
    with time_machine.travel(at(2026, 10, 26, 7, 30), tick=False):  # 08:30 in Berlin, opens at 09:00
        client.force_login(ops_person)
        page = client.get(page_url(ann)).content.decode()
    assert "Not in now</strong>: out of working hours" in page
    assert "their time Mon 2026-10-26 08:30 Europe/Berlin" in page
    assert "next in Mon 2026-10-26 09:00 Europe/Berlin" in page


def test_away_for_part_of_a_day_shows_the_time_they_are_back(client, ops_person, team):
    ann = team["sales"].memberships.get(user__username="ann").user
    TimeOffFactory(user=ann, start=at(2026, 10, 26, 8), end=at(2026, 10, 26, 11, 30), note="Dentist")
    with time_machine.travel(at(2026, 10, 26, 9), tick=False):
        client.force_login(ops_person)
        response = client.get("/console/people/")
    assert "Away until Mon 2026-10-26 12:30 Europe/Berlin (Dentist)" in row_of(response, "ann")


def test_time_off_at_the_end_of_the_calendar_is_refused_with_why(client, ann):
    client.force_login(ann)
    response = client.post(change_url(ann, "time-off"), {"start_date": "9999-12-30", "end_date": "9999-12-31"})
    assert response.status_code == 400
    assert "out of range" in response.context["time_off_form"].non_field_errors()[0]
    assert not TimeOff.objects.filter(user=ann).exists()


def test_a_feed_that_cannot_be_read_says_why_and_adds_nothing(client, ann):
    client.force_login(ann)
    response = client.post(change_url(ann, "ical-feed"), {"url": "http://127.0.0.1:9/ann.ics"}, follow=True)
    page = response.content.decode()
    assert "The feed was not saved: " in page and "the feed was not changed." in page
    assert not TimeOff.objects.filter(user=ann).exists()
    assert not WorkingHours.objects.filter(user=ann).exclude(ical_url="").exists()  # a feed that fails is not kept
