"""The exceptions API: person auth only, filters and pages, actions with 409 on conflicting states."""

import threading
from collections import Counter

import pytest
from django.db import connection
from rest_framework.test import APIClient

from audit.models import AuditAction, AuditEvent
from exceptions.models import ExceptionItem
from exceptions.services import exception_resolve
from tests.factories import MembershipFactory, QueueFactory, RuleFactory, UserFactory, open_exception, personal_token

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(ops_person):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {personal_token(ops_person)}")
    return client


@pytest.fixture
def item():
    return open_exception(queue=QueueFactory(name="Triage"), lifecycle_stage="customer")


def url(item, action=""):
    return f"/api/v1/exceptions/{item.pk}/" + (f"{action}/" if action else "")


def test_anonymous_is_401_and_capture_sources_are_403(item, source_client):
    assert APIClient().get("/api/v1/exceptions/").status_code == 401
    response = source_client.get("/api/v1/exceptions/")
    assert response.status_code == 403
    assert "capture-source tokens cannot use it" in response.json()["detail"]
    assert source_client.post(url(item, "acknowledge")).status_code == 403


def test_a_person_outside_the_groups_is_403(item, outsider):
    client = APIClient()
    client.force_authenticate(outsider)
    assert client.get("/api/v1/exceptions/").status_code == 403


def test_session_auth_works_and_needs_csrf_for_actions(item, ops_person):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(ops_person)
    assert client.get("/api/v1/exceptions/").status_code == 200
    assert client.post(url(item, "acknowledge")).status_code == 403  # no CSRF token


def test_list_filters_and_pages(api, ops_person):
    triage, other = QueueFactory(name="Triage"), QueueFactory(name="Other")
    for _ in range(3):
        open_exception(queue=triage)
    missing = open_exception(queue=other, reason="missing_contact")
    body = api.get("/api/v1/exceptions/", {"queue": other.pk}).json()
    assert body["count"] == 1 and body["results"][0]["id"] == missing.pk
    assert body["results"][0]["lead"]["lead_id"] == missing.lead.lead_id
    assert api.get("/api/v1/exceptions/", {"reason": "missing_contact"}).json()["count"] == 1
    assert api.get("/api/v1/exceptions/", {"page_size": 2}).json()["next"] is not None
    bad = api.get("/api/v1/exceptions/", {"status": "sleeping"})
    assert bad.status_code == 400 and "status" in bad.json()


def test_list_is_sorted_by_due_time(api):
    queue = QueueFactory(name="Triage", ack_sla_minutes=30)
    urgent_queue = QueueFactory(name="Urgent", ack_sla_minutes=5)
    later, sooner = open_exception(queue=queue), open_exception(queue=urgent_queue)
    ids = [row["id"] for row in api.get("/api/v1/exceptions/").json()["results"]]
    assert ids.index(sooner.pk) < ids.index(later.pk)


def test_detail(api, item):
    body = api.get(url(item)).json()
    assert (body["id"], body["reason"], body["status"], body["queue"]) == (
        item.pk,
        "no_matching_rule",
        "open",
        "Triage",
    )
    assert api.get("/api/v1/exceptions/999999/").status_code == 404


def test_acknowledge_twice_is_409_saying_who(api, item, ops_person):
    first = api.post(url(item, "acknowledge"))
    assert first.status_code == 200 and first.json()["acknowledged_by"] == ops_person.username
    second = api.post(url(item, "acknowledge"))
    assert second.status_code == 409
    assert second.json()["detail"].startswith(f"Cannot acknowledge item #{item.pk}: it is already acknowledged by")
    assert second.json()["item"]["status"] == "acknowledged"


def test_resolve(api, item):
    response = api.post(url(item, "resolve"), {"resolution": "duplicate", "note": "same as 41"}, format="json")
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["resolution"]) == ("resolved", "duplicate")
    again = api.post(url(item, "resolve"), {"resolution": "spam", "note": "bot"}, format="json")
    assert again.status_code == 409 and "already resolved (Duplicate)" in again.json()["detail"]


def test_duplicate_spam_and_not_a_lead_need_a_note(api, item):
    for code in ("duplicate", "spam", "not_a_lead"):
        response = api.post(url(item, "resolve"), {"resolution": code, "note": "  "}, format="json")
        assert response.status_code == 400 and "Give a note" in response.json()["note"][0]
    assert api.post(url(item, "resolve"), {"resolution": "fixed_data"}, format="json").status_code == 200


def test_resolve_with_an_unknown_code_is_400(api, item):
    response = api.post(url(item, "resolve"), {"resolution": "done"}, format="json")
    assert response.status_code == 400 and "resolution" in response.json()


def test_reroute_with_corrections_assigns_the_lead(api, item):
    queue = QueueFactory(name="AE")
    MembershipFactory(queue=queue, user=UserFactory(username="alan"))
    RuleFactory(condition={"field": "lifecycle_stage", "op": "eq", "value": "mql"}, queue=queue)
    response = api.post(url(item, "reroute"), {"lead": {"lifecycle_stage": "MQL"}}, format="json")
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["resolution"]) == ("resolved", "rerouted")
    assert response.json()["lead"]["status"] == "assigned"


def test_reroute_with_invalid_corrections_is_400_and_changes_nothing(api, item):
    response = api.post(url(item, "reroute"), {"lead": {"email": "nope", "lead_id": "x"}}, format="json")
    assert response.status_code == 400
    assert response.json() == {"lead": {"lead_id": ["This field cannot be edited."]}}
    response = api.post(url(item, "reroute"), {"lead": {"email": "nope"}}, format="json")
    assert response.json() == {"lead": {"email": ["Enter a valid email address."]}}
    item.lead.refresh_from_db()
    assert item.lead.email != "nope"


def test_reroute_of_a_resolved_item_is_409(api, item, ops_person):
    exception_resolve(item=item, by=ops_person, resolution="spam")
    response = api.post(url(item, "reroute"), {}, format="json")
    assert response.status_code == 409 and "reopen it" in response.json()["detail"]


@pytest.mark.django_db(transaction=True)
def test_two_people_acknowledging_at_once_get_one_200_and_one_409():
    from django.contrib.auth.models import Group

    item = open_exception(queue=QueueFactory(name="Triage"))
    ops = Group.objects.get_or_create(name="ops")[0]
    tokens = []
    for name in ("ana", "bo"):
        person = UserFactory(username=name)
        person.groups.add(ops)
        tokens.append(personal_token(person))
    barrier, codes = threading.Barrier(2), []

    def acknowledge(token):
        try:
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
            barrier.wait()
            codes.append(client.post(url(item, "acknowledge")).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=acknowledge, args=(t,)) for t in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Counter(codes) == {200: 1, 409: 1}
    assert AuditEvent.objects.filter(exception=item, action=AuditAction.EXCEPTION_ACKNOWLEDGED).count() == 1
    assert ExceptionItem.objects.get(pk=item.pk).status == "acknowledged"
