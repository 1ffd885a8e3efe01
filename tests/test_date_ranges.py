"""One convention for date ranges in every command, screen and API filter (README, "Dates and ranges"): a bare
date is its whole UTC day at either end, a date-time is an instant, and the end is never included. A newcomer
found `replay_rules --until 2026-11-30` left out the 30th while `reconcile_attribution --until 2026-11-30`
kept it. Each test puts leads on both sides of a boundary and checks which ones a range takes."""

import datetime as dt
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from routing.dashboard.selectors import Window, items_url
from routing.governance.models import ReplayRun
from routing.models import LeadStatus
from routing.reports.models import ReconciliationReport
from tests.factories import LeadFactory, open_exception

pytestmark = pytest.mark.django_db

UTC = dt.UTC
NOV_1 = dt.datetime(2026, 11, 1, tzinfo=UTC)
DEC_1 = dt.datetime(2026, 12, 1, tzinfo=UTC)
NOON_30 = dt.datetime(2026, 11, 30, 12, tzinfo=UTC)
SECOND = dt.timedelta(seconds=1)

# Received at: the last second before November, its first instant, noon on the 30th, the last second of
# November, and the first instant of December.
MOMENTS = {
    "oct-31-last": NOV_1 - SECOND,
    "nov-1-first": NOV_1,
    "nov-30-noon": NOON_30,
    "nov-30-last": DEC_1 - SECOND,
    "dec-1-first": DEC_1,
}


@pytest.fixture
def routed_leads(db):
    return {
        name: LeadFactory(lead_id=name, received_at=at, occurred_at=at, status=LeadStatus.ASSIGNED)
        for name, at in MOMENTS.items()
    }


@pytest.fixture
def items(db):
    return {
        name: open_exception(lead=LeadFactory(lead_id=name, received_at=at, status=LeadStatus.EXCEPTION))
        for name, at in MOMENTS.items()
    }


def replayed(*args) -> ReplayRun:
    call_command("replay_rules", *args, stdout=io.StringIO(), stderr=io.StringIO())
    return ReplayRun.objects.latest("id")


# Management commands ----------------------------------------------------------------------------------------


def test_replay_rules_until_a_date_includes_that_whole_day(routed_leads):
    run = replayed("--since", "2026-11-01", "--until", "2026-11-30")

    assert (run.since, run.until) == (NOV_1, DEC_1)
    assert run.total == 3  # nov-1-first, nov-30-noon, nov-30-last


def test_replay_rules_until_a_date_time_stops_just_before_it(routed_leads):
    run = replayed("--since", "2026-11-01T00:00:00Z", "--until", "2026-11-30T12:00:00Z")

    assert (run.since, run.until) == (NOV_1, NOON_30)
    assert run.total == 1  # nov-1-first; the lead at exactly noon is not included


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("30/11/2026", "'30/11/2026' is not a date (YYYY-MM-DD, its whole UTC day) or a date-time"),
        ("9999-12-31", "9999-12-31: Choose a date between 2000-01-01 and 2999-12-31."),
    ],
)
def test_replay_rules_says_what_to_type_for_a_bad_date(value, message):
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        replayed("--until", value)


def reconciled(tmp_path, *args) -> ReconciliationReport:
    export = tmp_path / "crm.csv"
    export.write_text("lead_id,origin,owner\n")
    call_command("reconcile_attribution", str(export), *args, stdout=io.StringIO())
    return ReconciliationReport.objects.latest("id")


def test_reconcile_attribution_until_a_date_includes_that_whole_day(tmp_path):
    report = reconciled(tmp_path, "--since", "2026-11-01", "--until", "2026-11-30")

    assert (report.period_start, report.period_end) == (NOV_1, DEC_1)


def test_reconcile_attribution_until_a_date_time_stops_just_before_it(tmp_path):
    report = reconciled(tmp_path, "--since", "2026-11-01", "--until", "2026-11-30T12:00Z")

    assert (report.period_start, report.period_end) == (NOV_1, NOON_30)


# The API -----------------------------------------------------------------------------------------------------


@pytest.fixture
def api(ops_person):
    client = APIClient()
    client.force_authenticate(ops_person)
    return client


def listed(api, **query) -> set[str]:
    response = api.get("/api/v1/exceptions/", {"status": ["open"], **query})
    assert response.status_code == 200, response.json()
    return {row["lead"]["lead_id"] for row in response.json()["results"]}


def test_api_received_before_a_date_includes_that_whole_day(api, items):
    assert listed(api, received_after="2026-11-01", received_before="2026-11-30") == {
        "nov-1-first",
        "nov-30-noon",
        "nov-30-last",
    }


def test_api_received_before_a_date_time_stops_just_before_it(api, items):
    assert listed(api, received_after="2026-11-01T00:00:00Z", received_before="2026-11-30T12:00:00Z") == {"nov-1-first"}
    assert listed(api, received_after="2026-11-30T12:00:00Z") == {"nov-30-noon", "nov-30-last", "dec-1-first"}


def test_api_received_before_says_what_to_type_for_a_bad_date(api, items):
    response = api.get("/api/v1/exceptions/", {"received_before": "30/11/2026"})

    assert response.status_code == 400
    assert "is not a date (YYYY-MM-DD, its whole UTC day) or a date-time" in str(response.json())


def test_api_received_range_reversed_is_refused_as_the_commands_refuse_it(api, items):
    assert listed(api, received_after="2026-11-30", received_before="2026-11-30") == {"nov-30-noon", "nov-30-last"}
    response = api.get("/api/v1/exceptions/", {"received_after": "2026-12-05", "received_before": "2026-12-04"})
    assert response.status_code == 400
    assert "The date range is empty" in str(response.json())


def test_api_replay_until_a_date_includes_that_whole_day(rule_owner, routed_leads):
    client = APIClient()
    client.force_authenticate(rule_owner)

    by_day = client.post("/api/v1/rules/replay/", {"since": "2026-11-01", "until": "2026-11-30"}, format="json")
    by_moment = client.post(
        "/api/v1/rules/replay/", {"since": "2026-11-01", "until": "2026-11-30T12:00:00Z"}, format="json"
    )

    assert by_day.status_code == 202, by_day.json()
    assert ReplayRun.objects.get(pk=by_day.json()["id"]).until == DEC_1
    if by_moment.status_code == 202:  # a second replay may be refused while the first is queued
        assert ReplayRun.objects.get(pk=by_moment.json()["id"]).until == NOON_30


# Screens ----------------------------------------------------------------------------------------------------


def test_the_item_list_received_before_a_date_includes_that_whole_day(client, ops_person, items):
    client.force_login(ops_person)

    page = client.get("/console/items/", {"received_after": "2026-11-30", "received_before": "2026-11-30"})

    assert page.status_code == 200
    html = page.content.decode()
    assert "nov-30-noon" in html and "nov-30-last" in html
    assert "dec-1-first" not in html and "nov-1-first" not in html


def test_the_replay_screen_until_a_date_includes_that_whole_day(client, rule_owner, routed_leads):
    client.force_login(rule_owner)

    client.post("/console/rules/replay/", {"since": "2026-11-01", "until": "2026-11-30"})

    run = ReplayRun.objects.latest("id")
    assert (run.since, run.until) == (NOV_1, DEC_1)


def test_the_dashboard_lead_list_end_day_is_included(client, ops_person, routed_leads):
    client.force_login(ops_person)

    page = client.get("/console/dashboard/leads/", {"start": "2026-11-30", "end": "2026-11-30"})

    html = page.content.decode()
    assert page.status_code == 200
    assert "nov-30-noon" in html and "nov-30-last" in html
    assert "dec-1-first" not in html and "oct-31-last" not in html


def test_the_dashboard_links_to_the_items_of_its_days_by_date(client, ops_person, items):
    link = items_url(Window(dt.date(2026, 11, 30), dt.date(2026, 11, 30)))
    client.force_login(ops_person)

    html = client.get(link).content.decode()

    assert "received_after=2026-11-30" in link and "received_before=2026-11-30" in link
    assert "nov-30-noon" in html and "nov-30-last" in html and "dec-1-first" not in html


def test_the_attribution_screen_until_a_day_includes_it():
    from routing.reports.views.attribution import AttributionUploadForm

    export = SimpleUploadedFile("crm.csv", b"lead_id,origin,owner\n")
    form = AttributionUploadForm({"since": "2026-11-01", "until": "2026-11-30"}, {"file": export})

    assert form.is_valid(), form.errors
    assert form.cleaned_data["period"] == (NOV_1, DEC_1)
