"""Every action a person takes on an exception or an incident, through the API or the console, logs one line
naming it (`exception_id` or `incident_id`, and the lead as `lead_pk` and `lead_id`), refusals (409) included.
The lines come from the service layer, so both ways in log the same."""

import logging

import pytest
from django.test import Client
from rest_framework.test import APIClient

from exceptions.models import ExceptionIncident, ExceptionItem
from routing.services import leads_route
from tests.factories import (
    LeadFactory,
    MembershipFactory,
    QueueFactory,
    RuleFactory,
    SourceFactory,
    UserFactory,
    open_exception,
    personal_token,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(ops_person):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {personal_token(ops_person)}")
    return client


@pytest.fixture
def console(ops_person):
    client = Client()
    client.force_login(ops_person)
    return client


@pytest.fixture
def item():
    return open_exception(queue=QueueFactory(name="Triage"), lead_id="form-77", lifecycle_stage="customer")


@pytest.fixture
def actions(caplog, django_capture_on_commit_callbacks):
    """Run a request and return the action lines it logged: the lines of a committed action are written on
    commit, which the test's own transaction would otherwise hold back."""
    caplog.set_level(logging.INFO)

    def run(request):
        caplog.clear()
        with django_capture_on_commit_callbacks(execute=True):
            response = request()
        lines = [
            r
            for r in caplog.records
            if r.name in ("exceptions.services", "exceptions.bulk", "exceptions.incident_actions")
        ]
        return response, lines

    return run


def ids(record) -> tuple:
    return record.exception_id, record.lead_pk, record.lead_id


def test_acknowledge_through_the_api_logs_one_line_and_a_conflict_a_warning(api, item, actions):
    answer, (line,) = actions(lambda: api.post(f"/api/v1/exceptions/{item.pk}/acknowledge/"))

    assert answer.status_code == 200
    assert ids(line) == (item.pk, item.lead_id, "form-77")
    assert (line.levelname, line.action, line.by, line.status) == (
        "INFO",
        "exception.acknowledged",
        "olga",
        "acknowledged",
    )
    assert line.getMessage() == f"Item #{item.pk}: exception.acknowledged by olga."

    answer, (refused,) = actions(lambda: api.post(f"/api/v1/exceptions/{item.pk}/acknowledge/"))

    assert answer.status_code == 409
    assert ids(refused) == (item.pk, item.lead_id, "form-77")
    assert (refused.levelname, refused.refused) == ("WARNING", True)
    assert refused.getMessage().endswith(
        f"refused: Cannot acknowledge item #{item.pk}: it is already acknowledged "
        f"by Olga Ops at {ExceptionItem.objects.get(pk=item.pk).acknowledged_at:%Y-%m-%d %H:%M} UTC."
    )


def test_resolve_through_the_api_logs_a_line_and_resolving_again_a_warning(api, item, actions):
    body = {"resolution": "duplicate", "note": "same as #1"}
    answer, (line,) = actions(lambda: api.post(f"/api/v1/exceptions/{item.pk}/resolve/", body, format="json"))

    assert answer.status_code == 200
    assert (ids(line), line.action, line.status) == (
        (item.pk, item.lead_id, "form-77"),
        "exception.resolved",
        "resolved",
    )

    answer, (refused,) = actions(lambda: api.post(f"/api/v1/exceptions/{item.pk}/resolve/", body, format="json"))
    assert answer.status_code == 409
    assert (refused.exception_id, refused.levelname, refused.action) == (item.pk, "WARNING", "exception.resolved")


def test_reroute_through_the_api_logs_the_reroute_and_the_resolve(api, item, actions):
    queue = QueueFactory(name="AE")
    MembershipFactory(queue=queue, user=UserFactory(username="alan"))
    RuleFactory(condition={"field": "lifecycle_stage", "op": "eq", "value": "mql"}, queue=queue)

    answer, lines = actions(
        lambda: api.post(f"/api/v1/exceptions/{item.pk}/reroute/", {"lead": {"lifecycle_stage": "MQL"}}, format="json")
    )

    assert answer.status_code == 200
    assert [(ids(line), line.action) for line in lines] == [
        ((item.pk, item.lead_id, "form-77"), "lead.rerouted"),
        ((item.pk, item.lead_id, "form-77"), "exception.resolved"),
    ]
    assert lines[0].getMessage() == f"Item #{item.pk}: lead.rerouted by olga: the lead is assigned."

    answer, (refused,) = actions(
        lambda: api.post(f"/api/v1/exceptions/{item.pk}/reroute/", {"lead": {"lifecycle_stage": "MQL"}}, format="json")
    )
    assert answer.status_code == 409
    assert (ids(refused), refused.action, refused.levelname) == (
        (item.pk, item.lead_id, "form-77"),
        "lead.rerouted",
        "WARNING",
    )


def test_console_actions_log_through_the_same_lines(console, item, actions):
    steps = [
        ("acknowledge", {}, "exception.acknowledged"),
        ("assign_to_me", {}, "exception.assigned"),
        ("resolve", {"resolution": "spam", "note": "bot"}, "exception.resolved"),
        ("reopen", {}, "exception.reopened"),
    ]
    for action, form, logged in steps:
        answer, (line,) = actions(lambda: console.post(f"/console/items/{item.pk}/{action}/", form))  # noqa: B023
        assert answer.status_code == 302
        assert (ids(line), line.action, line.by) == ((item.pk, item.lead_id, "form-77"), logged, "olga")

    answer, (refused,) = actions(lambda: console.post(f"/console/items/{item.pk}/reopen/"))
    assert (refused.exception_id, refused.action, refused.levelname) == (item.pk, "exception.reopened", "WARNING")


def test_a_bulk_action_logs_each_item_done_and_one_summary_naming_the_skipped(api, actions):
    first, second, done_already = (open_exception(lead_id=f"form-{n}") for n in (1, 2, 3))
    api.post(f"/api/v1/exceptions/{done_already.pk}/acknowledge/")

    body = {"action": "acknowledge", "ids": [first.pk, second.pk, done_already.pk]}
    answer, lines = actions(lambda: api.post("/api/v1/exceptions/bulk/", body, format="json"))

    assert answer.json()["done"] == 2
    items = [line for line in lines if line.name == "exceptions.services"]
    (summary,) = [line for line in lines if line.name == "exceptions.bulk"]
    assert sorted((line.exception_id, line.lead_pk, line.action, line.bulk) for line in items) == [
        (first.pk, first.lead_id, "exception.acknowledged", True),
        (second.pk, second.lead_id, "exception.acknowledged", True),
    ]
    assert (summary.name, summary.action, summary.done, summary.skipped_ids) == (
        "exceptions.bulk",
        "bulk.acknowledge",
        2,
        [done_already.pk],
    )
    assert summary.getMessage() == f"Bulk acknowledge by olga: 2 item(s) done, 1 skipped (#{done_already.pk})."


def test_an_incident_action_logs_its_incident_id_and_a_conflict_a_warning(api, actions):
    RuleFactory(condition={"field": "country", "op": "eq", "value": "FR"})
    form = SourceFactory(name="pricing-form")
    leads = [LeadFactory(origin=form, country="GB") for _ in range(3)]
    leads_route(lead_ids=[lead.pk for lead in leads])
    incident = ExceptionIncident.objects.get()

    answer, lines = actions(lambda: api.post(f"/api/v1/incidents/{incident.pk}/acknowledge/"))

    assert answer.status_code == 200
    (line,) = [r for r in lines if r.name == "exceptions.incident_actions"]
    assert (line.name, line.incident_id, line.action, line.by) == (
        "exceptions.incident_actions",
        incident.pk,
        "item_incident.acknowledged",
        "olga",
    )
    assert (
        line.getMessage() == f"Incident #{incident.pk}: item_incident.acknowledged by olga; 3 item(s) done, 0 skipped."
    )
    item_lines = [r for r in lines if r.name == "exceptions.services"]
    assert sorted(r.lead_pk for r in item_lines) == sorted(lead.pk for lead in leads)

    answer, (refused,) = actions(lambda: api.post(f"/api/v1/incidents/{incident.pk}/acknowledge/"))
    assert answer.status_code == 409
    assert (refused.incident_id, refused.levelname, refused.refused) == (incident.pk, "WARNING", True)


def test_an_action_rolled_back_logs_nothing(item, ops_person, actions):
    """The line is written on commit: a resolve whose transaction fails after the update says nothing."""
    from django.db import transaction

    from exceptions.services import exception_acknowledge

    def acknowledge_then_fail():
        try:
            with transaction.atomic():
                exception_acknowledge(item=item, by=ops_person)
                raise RuntimeError("a later step failed")
        except RuntimeError:
            return None

    _, lines = actions(acknowledge_then_fail)

    assert lines == []
    assert ExceptionItem.objects.get(pk=item.pk).status == "open"
