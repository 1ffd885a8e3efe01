"""The distribution report: leads against each member's fair share, and every reason they sat picks out, read
from the ledger routing writes. Routed for real at fixed instants."""

import csv
import datetime as dt
import io

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from exceptions.triage import lead_assign_manually
from routing.availability.report import distribution_report, report_range
from routing.models import Queue
from routing.services import lead_route
from tests.factories import (
    LeadFactory,
    MembershipFactory,
    QueueFactory,
    RuleFactory,
    TimeOffFactory,
    UserFactory,
    WorkingHoursFactory,
)

pytestmark = pytest.mark.django_db

MONDAY_MORNING = dt.datetime(2026, 11, 30, 7, 0, tzinfo=dt.UTC)  # bob's hours (09:00 UTC) have not started
MONDAY_NOON = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def ops_client(client, ops_person):
    client.force_login(ops_person)
    return client


@pytest.fixture
def queue():
    queue = QueueFactory(name="AEs <Sales>")
    for name in ("ann", "bob", "cat"):
        MembershipFactory(queue=queue, user=UserFactory(username=name))
    WorkingHoursFactory(user=queue.members.get(username="bob"))  # Mon-Fri 09:00-17:00 UTC
    RuleFactory(queue=queue)
    return queue


def route(n, at):
    with time_machine.travel(at, tick=False):
        for _ in range(n):
            lead_route(lead_id=LeadFactory().pk)


def shares(report):
    return {m.username: m for m in report.members}


def test_why_bob_got_fewer_a_member_out_of_hours_sits_picks_out_and_keeps_place(queue):
    route(4, MONDAY_MORNING)  # ann, cat, ann, cat: bob is out of hours
    route(6, MONDAY_NOON)  # the round resumes with bob in it: two each

    report = distribution_report(queue=queue, start=dt.date(2026, 11, 30), end=dt.date(2026, 11, 30))
    ann, bob, cat = (shares(report)[name] for name in ("ann", "bob", "cat"))

    assert report.total == 10
    assert (ann.assigned, bob.assigned, cat.assigned) == (4, 2, 4)
    assert (ann.expected, bob.expected, cat.expected) == (4.0, 2.0, 4.0)  # each got their share while in
    assert (ann.expected_if_always_in, bob.expected_if_always_in) == (3.3, 3.3)
    assert bob.skipped == {"away": 0, "out_of_hours": 4, "at_cap": 0, "unavailable": 0}
    assert "bob got 2, their fair share while in (2)" in bob.explanation
    assert "sat out 4 pick(s): 4 out of working hours" in bob.explanation
    assert "under keep place those 1.3 lead(s) of share went to whoever was in" in bob.explanation
    assert "they were eligible for every pick" in ann.explanation


def test_time_off_and_turns_credited_back_are_counted_and_explained(queue):
    ann = queue.members.get(username="ann")
    TimeOffFactory(user=queue.members.get(username="cat"), start=MONDAY_NOON, end=MONDAY_NOON + dt.timedelta(days=1))
    route(2, MONDAY_NOON)  # ann, bob
    taken = ann.assigned_leads.get()
    with time_machine.travel(MONDAY_NOON, tick=False):
        lead_assign_manually(lead=taken, queue=queue, assignee=UserFactory(username="olga"), reason="asked", by=ann)
    route(2, MONDAY_NOON)  # ann's owed turn, then bob

    member = shares(distribution_report(queue=queue, start=dt.date(2026, 11, 30), end=dt.date(2026, 11, 30)))
    # ann was given 3 (one taken back by hand), 1 over her share while in: the owed turn, and the words say so.
    assert (member["ann"].assigned, member["ann"].credited_back, member["ann"].difference) == (3, 1, 1.0)
    assert "1 more than their fair share while in (2) because of 1 turn(s) given back" in member["ann"].explanation
    assert member["cat"].skipped["away"] == 4
    assert "4 away (time off)" in member["cat"].explanation


def test_the_period_is_the_queues_own_unless_asked_and_bad_parameters_name_themselves(queue):
    today = dt.date(2026, 12, 3)
    assert report_range({}, queue=queue, today=today)[:2] == (dt.date(2026, 12, 1), dt.date(2026, 12, 31))
    week = report_range({"period": "week", "date": "2026-12-03"}, queue=queue, today=today)
    assert week[:2] == (dt.date(2026, 11, 30), dt.date(2026, 12, 6))
    for params, message in (
        ({"period": "year"}, "period: use day, week, month."),
        ({"date": "3 Dec"}, "date: give a date as YYYY-MM-DD."),
        ({"start": "2026-12-09", "end": "2026-12-01"}, "end: the end date is before the start date."),
        ({"start": "2025-01-01", "end": "2026-12-01"}, "end: a report covers at most 366 days."),
    ):
        with pytest.raises(ValueError, match=message):
            report_range(params, queue=queue, today=today)


def test_the_api_answers_json_and_400_naming_the_parameter(queue, ops_client):
    route(3, MONDAY_NOON)
    url = reverse("queue-distribution", args=[queue.pk])
    body = ops_client.get(url, {"period": "day", "date": "2026-11-30"}).json()
    assert (body["total"], body["start"], body["end"]) == (3, "2026-11-30", "2026-11-30")
    assert [m["assigned"] for m in body["members"]] == [1, 1, 1]
    bad = ops_client.get(url, {"start": "2026-12-09", "end": "2026-12-01"})
    assert (bad.status_code, bad.json()) == (400, {"end": ["the end date is before the start date."]})
    assert ops_client.get(reverse("queue-distribution", args=[999999])).status_code == 404


def test_the_console_page_and_its_csv_explain_each_member_with_names_escaped(queue, ops_client):
    route(10, MONDAY_NOON)
    url = reverse("console:queue-distribution", args=[queue.pk])
    page = ops_client.get(url, {"period": "day", "date": "2026-11-30"}).content.decode()
    assert "Distribution in AEs &lt;Sales&gt;" in page
    assert "bob got 3, their fair share while in (3.3)" in page
    download = ops_client.get(url, {"period": "day", "date": "2026-11-30", "format": "csv"})
    assert download["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(download.content.decode())))
    assert [(r["member"], r["assigned"]) for r in rows] == [("ann", "4"), ("bob", "3"), ("cat", "3")]


def test_the_console_page_costs_the_same_queries_for_two_or_eight_members(ops_client):
    def queries(members):
        queue = QueueFactory()
        for _ in range(members):
            MembershipFactory(queue=queue)
        with CaptureQueriesContext(connection) as captured:
            ops_client.get(reverse("console:queue-distribution", args=[queue.pk]))
        return len(captured)

    assert queries(2) == queries(8)
    assert Queue.objects.count() == 2
