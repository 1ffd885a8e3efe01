"""Bulk triage over a selection or every item a filter matches: acknowledge, assign, resolve (code and note
required) and reopen, in the console and `POST /api/v1/exceptions/bulk/`, each item audited, with a summary of
what was done and why the rest was skipped."""

import pytest
from rest_framework.test import APIClient

from audit.models import AuditAction, AuditEvent
from exceptions import bulk
from exceptions.models import ExceptionItem, ExceptionReason, ExceptionStatus, Resolution
from exceptions.services import exception_resolve
from tests.factories import ExceptionItemFactory, QueueFactory, UserFactory

pytestmark = pytest.mark.django_db
BULK = "/api/v1/exceptions/bulk/"


@pytest.fixture
def api(ops_person):
    client = APIClient()
    client.force_authenticate(ops_person)
    return client


@pytest.fixture
def outage(db):
    """One CRM outage: 60 delivery_failed items (more than a page of 50), and 3 items of another cause."""
    triage = QueueFactory(name="Triage")
    failed = [ExceptionItemFactory(queue=triage, reason=ExceptionReason.DELIVERY_FAILED) for _ in range(60)]
    others = [ExceptionItemFactory(queue=triage) for _ in range(3)]
    return failed, others


def test_resolve_needs_a_code_and_a_note_and_names_both(api, outage):
    failed, _ = outage
    answer = api.post(BULK, {"action": "resolve", "ids": [failed[0].pk]}, format="json")
    assert answer.status_code == 400
    assert "Choose a resolution code" in str(answer.json()) and "Give a note" in str(answer.json())
    assert not ExceptionItem.objects.filter(status=ExceptionStatus.RESOLVED).exists()


def test_resolving_every_item_a_filter_matches_resolves_them_each_with_its_own_trail(api, outage, ops_person):
    failed, others = outage
    body = {
        "action": "resolve",
        "filter": {"reason": "delivery_failed"},
        "code": "fixed_upstream",
        "note": "CRM outage 14:02-14:31; replayed.",
    }
    answer = api.post(BULK, body, format="json")
    assert answer.status_code == 200, answer.json()
    assert answer.json() == {"done": 60, "skipped": []}
    resolved = ExceptionItem.objects.filter(pk__in=[i.pk for i in failed])
    assert set(resolved.values_list("status", "resolution", "resolution_note")) == {
        (ExceptionStatus.RESOLVED, Resolution.FIXED_UPSTREAM, "CRM outage 14:02-14:31; replayed.")
    }
    assert not ExceptionItem.objects.filter(pk__in=[i.pk for i in others], status=ExceptionStatus.RESOLVED).exists()
    events = AuditEvent.objects.filter(action=AuditAction.EXCEPTION_RESOLVED, actor=ops_person)
    assert sorted(events.values_list("exception_id", flat=True)) == sorted(i.pk for i in failed)


def test_items_that_cannot_change_are_skipped_with_the_reason(api, outage, ops_person):
    failed, _ = outage
    rita = UserFactory(username="rita", first_name="Rita", last_name="Reyes")
    exception_resolve(item=failed[0], by=rita, resolution=Resolution.SPAM, note="bot")
    ids = [failed[0].pk, failed[1].pk, 999_999]
    answer = api.post(BULK, {"action": "resolve", "ids": ids, "code": "duplicate", "note": "same lead"}, format="json")
    assert answer.json()["done"] == 1
    skipped = {entry["id"]: entry["reason"] for entry in answer.json()["skipped"]}
    assert skipped[999_999] == "no such item"
    assert "already resolved" in skipped[failed[0].pk] and "Rita Reyes" in skipped[failed[0].pk]


def test_acknowledge_assign_and_reopen_over_a_filter(api, outage, ops_person):
    failed, others = outage
    alan = UserFactory(username="alan")
    alan.groups.add(*ops_person.groups.all())
    everything = {"reason": "delivery_failed"}
    assert api.post(BULK, {"action": "acknowledge", "filter": everything}, format="json").json()["done"] == 60
    assigned = api.post(BULK, {"action": "assign", "filter": everything, "assignee": "alan"}, format="json")
    assert assigned.json() == {"done": 60, "skipped": []}
    assert set(ExceptionItem.objects.filter(reason="delivery_failed").values_list("status", "assignee")) == {
        (ExceptionStatus.ACKNOWLEDGED, alan.pk)
    }
    api.post(BULK, {"action": "resolve", "ids": [failed[0].pk], "code": "duplicate", "note": "x"}, format="json")
    reopened = api.post(BULK, {"action": "reopen", "filter": {**everything, "status": ["resolved"]}}, format="json")
    assert reopened.json() == {"done": 1, "skipped": []}
    assert ExceptionItem.objects.get(pk=failed[0].pk).status == ExceptionStatus.OPEN


def test_a_bad_request_says_what_to_fix(api, outage):
    failed, _ = outage
    cases = [
        ({"action": "acknowledge"}, "ids"),
        ({"action": "acknowledge", "ids": [failed[0].pk], "filter": {}}, "ids"),
        ({"action": "explode", "ids": [failed[0].pk]}, "action"),
        ({"action": "acknowledge", "filter": {"queue": "not-a-queue"}}, "queue"),
        ({"action": "assign", "ids": [failed[0].pk], "assignee": "nobody"}, "assignee"),
        ({"action": "acknowledge", "filter": {"reason": "no_matching_rule", "queue": 999_999}}, "queue"),
    ]
    for body, field in cases:
        answer = api.post(BULK, body, format="json")
        assert answer.status_code == 400, (body, answer.json())
        assert field in str(answer.json()), (body, answer.json())
    assert not AuditEvent.objects.filter(action=AuditAction.EXCEPTION_ACKNOWLEDGED).exists()


def test_a_filter_matching_more_than_the_cap_is_refused_whole(api, outage, monkeypatch):
    monkeypatch.setattr(bulk, "MAX_BULK_ITEMS", 50)
    answer = api.post(BULK, {"action": "acknowledge", "filter": {"reason": "delivery_failed"}}, format="json")
    assert answer.status_code == 400 and "at most 50 at once" in str(answer.json())
    assert not ExceptionItem.objects.filter(status=ExceptionStatus.ACKNOWLEDGED).exists()


def test_capture_sources_cannot_use_it(source_client, outage):
    failed, _ = outage
    answer = source_client.post(BULK, {"action": "acknowledge", "ids": [failed[0].pk]}, format="json")
    assert answer.status_code == 403


def test_the_console_resolves_all_items_matching_the_filter_beyond_the_page(client, ops_person, outage):
    failed, others = outage
    client.force_login(ops_person)
    page = client.get("/console/items/", {"reason": "delivery_failed"}).content.decode()
    assert "Apply to all 60 matching this filter" in page
    answer = client.post(
        "/console/items/bulk/",
        {
            "action": "resolve",
            "scope": "filter",
            "filter": "reason=delivery_failed",
            "resolution": "fixed_upstream",
            "note": "CRM back",
            "next": "/console/items/?reason=delivery_failed",
        },
        follow=True,
    )
    assert "Resolved 60 item(s)." in answer.content.decode()
    assert ExceptionItem.objects.filter(reason="delivery_failed", status=ExceptionStatus.RESOLVED).count() == 60
    assert not ExceptionItem.objects.filter(pk__in=[i.pk for i in others], status=ExceptionStatus.RESOLVED).exists()


def test_the_console_says_why_a_bulk_resolve_was_refused(client, ops_person, outage):
    failed, _ = outage
    client.force_login(ops_person)
    answer = client.post(
        "/console/items/bulk/", {"action": "resolve", "items": [failed[0].pk], "resolution": ""}, follow=True
    )
    page = answer.content.decode()
    assert "Choose a resolution code" in page and "Give a note" in page
    assert ExceptionItem.objects.get(pk=failed[0].pk).status == ExceptionStatus.OPEN
