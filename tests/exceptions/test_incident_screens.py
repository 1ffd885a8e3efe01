"""Incidents in the console and the API: the group row above the item list, the incident page and its actions,
notifications grouped by incident, and /api/v1/incidents/."""

import re

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from audit.models import AuditAction, AuditEvent
from exceptions.incidents import Cause, incidents_sweep
from exceptions.models import ExceptionIncident, ExceptionItem, ExceptionReason, Notification
from exceptions.services import exception_open
from tests.factories import LeadFactory, MembershipFactory, QueueFactory, open_exception, personal_token

pytestmark = pytest.mark.django_db

CRM_DOWN = Cause("delivery_failed:1:HTTP 5xx", "Deliveries to CRM fail: HTTP 5xx")


def incident_of(count, cause=CRM_DOWN, queue=None) -> ExceptionIncident:
    """`count` delivery_failed items of one cause, opened the way delivery opens them: one incident."""
    queue = queue or QueueFactory(name="Triage")
    for _ in range(count):
        exception_open(lead=LeadFactory(), reason=ExceptionReason.DELIVERY_FAILED, queue=queue, cause=cause)
    return ExceptionIncident.objects.get(cause=cause.key)


@pytest.fixture
def ops_client(ops_person):
    client = Client()
    client.force_login(ops_person)
    return client


@pytest.fixture
def api(ops_person):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {personal_token(ops_person)}")
    return client


def listed_item_ids(html: str) -> set[int]:
    return {int(pk) for pk in re.findall(r'<tr data-item="(\d+)"', html)}


def messages_of(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


# --- the item list ----------------------------------------------------------------------------------------


def test_the_item_list_shows_an_incident_as_one_group_and_not_its_items(ops_client):
    incident = incident_of(6)
    loose = open_exception(queue=QueueFactory(name="Triage"))

    html = ops_client.get("/console/items/").content.decode()

    assert listed_item_ids(html) == {loose.pk}
    assert f'data-incident="{incident.pk}"' in html
    assert "Deliveries to CRM fail: HTTP 5xx" in html and "<strong>6 items</strong>" in html
    assert '<span class="count" id="list-count">1</span>' in html  # the list's count: the loose item
    assert html.count('<li><a href="/console/items/') == 5  # the first five inside the group


def test_asking_for_an_incident_lists_its_items(ops_client):
    incident = incident_of(4)
    open_exception(queue=QueueFactory(name="Triage"))

    html = ops_client.get(f"/console/items/?incident={incident.pk}").content.decode()

    assert listed_item_ids(html) == set(incident.items.values_list("pk", flat=True))
    assert "data-incident=" not in html


def test_apply_to_all_matching_acts_on_the_items_the_list_shows_not_the_incidents(ops_client):
    incident = incident_of(3)
    loose = open_exception(queue=QueueFactory(name="Triage"))
    page = ops_client.get("/console/items/").content.decode()
    query = re.search(r'name="filter" value="([^"]*)"', page).group(1).replace("&amp;", "&")

    ops_client.post(
        "/console/items/bulk/", {"action": "acknowledge", "scope": "filter", "filter": query, "next": "/console/items/"}
    )

    loose.refresh_from_db()
    assert loose.status == "acknowledged"
    assert set(incident.items.values_list("status", flat=True)) == {"open"}


def test_the_list_looks_for_incidents_in_one_query_and_shows_them_in_two_more_however_many(ops_client):
    def count():
        with CaptureQueriesContext(connection) as queries:
            assert ops_client.get("/console/items/").status_code == 200
        return len(queries)

    open_exception(queue=QueueFactory(name="Triage"))
    count()  # the session remembers the list the person is on (written once)
    without = count()
    incident_of(3)
    with_one = count()
    incident_of(20, cause=Cause("no_matching_rule:7", "No production rule matches leads from form"))
    assert with_one == without + 2
    assert count() == with_one  # a second incident adds no query


# --- the incident page ----------------------------------------------------------------------------------


def test_the_incident_page_shows_its_clock_items_and_history(ops_client):
    incident = incident_of(3)
    html = ops_client.get(f"/console/incidents/{incident.pk}/").content.decode()
    assert "Deliveries to CRM fail: HTTP 5xx" in html
    assert "3 items from one cause, 3 unresolved" in html
    for item in incident.items.all():
        assert f'href="/console/items/{item.pk}/"' in html
    assert "Incident opened (items of one cause)" in html
    assert 'id="incident-resolve"' in html and "csrfmiddlewaretoken" in html


def test_resolving_on_the_incident_page_resolves_its_items_and_says_so(ops_client, ops_person):
    incident = incident_of(3)
    response = ops_client.post(
        f"/console/incidents/{incident.pk}/resolve/", {"resolution": "fixed_upstream", "note": "CRM is back"}
    )
    assert response.status_code == 302
    assert f"Resolved incident #{incident.pk} as Fixed upstream, and 3 item(s) with it." in messages_of(response)
    assert set(incident.items.values_list("status", flat=True)) == {"resolved"}


def test_resolving_without_a_note_or_code_says_why_and_changes_nothing(ops_client):
    incident = incident_of(3)
    response = ops_client.post(f"/console/incidents/{incident.pk}/resolve/", {"resolution": "", "note": ""})
    (message,) = messages_of(response)
    assert message.startswith("Nothing was changed:")
    assert "Choose a resolution code." in message and "recorded on every item" in message
    incident.refresh_from_db()
    assert incident.status == "open"


def test_acknowledging_twice_says_who_did_it_first(ops_client, ops_person):
    incident = incident_of(3)
    ops_client.post(f"/console/incidents/{incident.pk}/acknowledge/")
    response = ops_client.post(f"/console/incidents/{incident.pk}/acknowledge/")
    assert messages_of(response)[-1] == (
        f"Cannot acknowledge incident #{incident.pk}: it is already acknowledged by Olga Ops."
    )


def test_the_incidents_page_lists_unresolved_incidents(ops_client):
    incident = incident_of(3)
    html = ops_client.get("/console/incidents/").content.decode()
    assert f'href="/console/incidents/{incident.pk}/"' in html and "3 (3)" in html


def test_incident_screens_need_console_access(outsider, rule_owner):
    incident = incident_of(3)
    anonymous = Client()
    assert anonymous.get("/console/incidents/").status_code == 302
    client = Client()
    client.force_login(outsider)
    assert client.get(f"/console/incidents/{incident.pk}/").status_code == 403
    assert client.post(f"/console/incidents/{incident.pk}/acknowledge/").status_code == 403


def test_an_item_page_says_which_incident_it_is_part_of(ops_client):
    incident = incident_of(3)
    item = incident.items.first()
    html = ops_client.get(f"/console/items/{item.pk}/").content.decode()
    assert f'Part of <a href="/console/incidents/{incident.pk}/">incident #{incident.pk}' in html


def test_a_title_with_markup_is_escaped(ops_client):
    incident = incident_of(3, cause=Cause("no_matching_rule:9", "No rule matches leads from <script>x</script>"))
    for url in ("/console/items/", f"/console/incidents/{incident.pk}/", "/console/incidents/"):
        html = ops_client.get(url).content.decode()
        assert "<script>x</script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html


# --- notifications ----------------------------------------------------------------------------------------


def test_notifications_show_an_incident_stream_as_one_row_with_a_link_to_all(ops_client, ops_person):
    queue = QueueFactory(name="Triage", owner=ops_person, ack_sla_minutes=0)
    incident = incident_of(3, queue=queue)
    MembershipFactory(queue=queue, user=ops_person)
    incidents_sweep()  # breached at once: level 1 to the owner
    assert Notification.objects.filter(incident=incident).count() == 2

    html = ops_client.get("/console/notifications/").content.decode()
    assert html.count(f'href="/console/incidents/{incident.pk}/"') == 1
    assert f'href="?incident={incident.pk}">all 2 notifications about it</a>' in html

    stream = ops_client.get(f"/console/notifications/?incident={incident.pk}").content.decode()
    assert stream.count(f'href="/console/incidents/{incident.pk}/"') == 2


# --- the API ------------------------------------------------------------------------------------------------


def test_the_api_lists_and_shows_incidents(api):
    incident = incident_of(3)
    body = api.get("/api/v1/incidents/?status=open").json()
    assert [row["id"] for row in body["results"]] == [incident.pk]
    detail = api.get(f"/api/v1/incidents/{incident.pk}/").json()
    assert detail["title"] == "Deliveries to CRM fail: HTTP 5xx"
    assert (detail["item_count"], detail["unresolved_count"], detail["status"]) == (3, 3, "open")
    items = api.get(f"/api/v1/exceptions/?incident={incident.pk}").json()
    assert {row["incident"] for row in items["results"]} == {incident.pk} and items["count"] == 3


def test_the_api_refuses_an_unknown_status_saying_which(api):
    response = api.get("/api/v1/incidents/?status=closed")
    assert response.status_code == 400
    assert "Unknown status closed" in response.json()["status"][0]


def test_the_api_acknowledges_assigns_and_resolves_an_incident(api, ops_person):
    incident = incident_of(3)
    ack = api.post(f"/api/v1/incidents/{incident.pk}/acknowledge/")
    assert ack.status_code == 200 and ack.json()["done"] == 3
    assigned = api.post(f"/api/v1/incidents/{incident.pk}/assign/", {"assignee": "olga"}, format="json")
    assert assigned.json()["incident"]["assignee"] == "olga"
    resolved = api.post(
        f"/api/v1/incidents/{incident.pk}/resolve/", {"code": "fixed_upstream", "note": "back"}, format="json"
    )
    assert resolved.status_code == 200
    assert resolved.json()["done"] == 3 and resolved.json()["incident"]["status"] == "resolved"
    assert AuditEvent.objects.filter(incident=incident, action=AuditAction.ITEM_INCIDENT_RESOLVED, actor=ops_person)
    again = api.post(
        f"/api/v1/incidents/{incident.pk}/resolve/", {"code": "fixed_upstream", "note": "x"}, format="json"
    )
    assert again.status_code == 409 and "already resolved" in again.json()["detail"]
    assert again.json()["incident"]["id"] == incident.pk


def test_the_api_says_what_a_resolve_is_missing(api):
    incident = incident_of(3)
    response = api.post(f"/api/v1/incidents/{incident.pk}/resolve/", {"code": "nope"}, format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"code", "note"}
    assert not ExceptionItem.objects.filter(status="resolved").exists()


def test_capture_sources_cannot_reach_incidents(source_client):
    incident = incident_of(3)
    assert source_client.get("/api/v1/incidents/").status_code == 403
    assert source_client.post(f"/api/v1/incidents/{incident.pk}/acknowledge/").status_code == 403
    assert APIClient().get("/api/v1/incidents/").status_code == 401


def test_the_api_takes_resolution_as_the_code_too_and_lists_the_codes_on_a_wrong_one(api):
    incident = incident_of(3)
    wrong = api.post(f"/api/v1/incidents/{incident.pk}/resolve/", {"code": "crm_down", "note": "x"}, format="json")
    assert wrong.status_code == 400
    assert wrong.json()["code"] == [
        '"crm_down" is not a resolution code: use one of '
        + ", ".join(["rerouted", "fixed_data", "duplicate", "spam", "not_a_lead", "fixed_upstream"])
        + "."
    ]
    done = api.post(
        f"/api/v1/incidents/{incident.pk}/resolve/", {"resolution": "fixed_upstream", "note": "back"}, format="json"
    )
    assert done.status_code == 200 and done.json()["incident"]["resolution"] == "fixed_upstream"


def test_an_unknown_incident_is_named_in_the_404(api):
    assert api.get("/api/v1/incidents/999999/").json() == {"detail": "No incident #999999."}
    assert api.post("/api/v1/incidents/999999/acknowledge/").json() == {"detail": "No incident #999999."}


def test_a_refused_resolve_keeps_the_chosen_code_and_note_on_the_page(ops_client):
    incident = incident_of(3)
    response = ops_client.post(
        f"/console/incidents/{incident.pk}/resolve/", {"resolution": "fixed_data", "note": "", "shown": "3"}
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert '<option value="fixed_data" selected>' in html
    assert "Nothing was changed: Give a note" in html


def test_resolving_says_how_many_items_joined_after_the_page_was_opened(ops_client):
    incident = incident_of(3)
    for _ in range(2):  # the outage goes on while the page is open
        exception_open(lead=LeadFactory(), reason=ExceptionReason.DELIVERY_FAILED, queue=incident.queue, cause=CRM_DOWN)
    response = ops_client.post(
        f"/console/incidents/{incident.pk}/resolve/", {"resolution": "fixed_upstream", "note": "back", "shown": "3"}
    )
    assert messages_of(response) == [
        f"Resolved incident #{incident.pk} as Fixed upstream, and 5 item(s) with it."
        " 2 of them joined the incident after you opened its page."
    ]


def test_the_queue_overview_counts_each_queues_incidents_and_their_breaches(ops_client):
    incident = incident_of(3)
    ExceptionIncident.objects.filter(pk=incident.pk).update(ack_breached_at=incident.ack_due_at)
    html = ops_client.get("/console/").content.decode()
    row = html[html.index('data-queue="Triage"') :]
    assert 'data-count="incidents"><a href="/console/incidents/">1 (1 breached)</a>' in row.split("</tr>")[0]


def test_an_empty_notifications_page_says_whose_notifications_it_shows(ops_client):
    html = ops_client.get("/console/notifications/").content.decode()
    assert "the queues you are a member of (none: an admin adds members" in html


def test_the_list_filters_take_the_names_the_rows_show(api, ops_person):
    queue = QueueFactory(name="Triage")
    item = open_exception(queue=queue)
    exception_open(lead=LeadFactory(), reason=ExceptionReason.MISSING_CONTACT, queue=QueueFactory(name="Sales"))
    from exceptions.services import exception_assign

    exception_assign(item=item, to=ops_person, by=ops_person)
    origin = item.lead.origin.name
    for query in ("queue=Triage", f"queue={queue.pk}", "assignee=olga", f"origin={origin}"):
        body = api.get(f"/api/v1/exceptions/?{query}").json()
        assert [row["id"] for row in body["results"]] == [item.pk], query
    wrong = api.get("/api/v1/exceptions/?queue=Nowhere")
    assert wrong.status_code == 400
    assert wrong.json()["queue"] == ["Nothing is named 'Nowhere' here: give its id or its exact name."]


# --- bulk and search around incidents ----------------------------------------------------------------------


def test_a_bulk_filter_leaves_incident_items_out_unless_it_names_the_incident(api):
    incident = incident_of(3)
    loose = open_exception(queue=QueueFactory(name="Triage"))
    everything = api.post("/api/v1/exceptions/bulk/", {"action": "acknowledge", "filter": {}}, format="json")
    assert everything.json() == {"done": 1, "skipped": []}
    loose.refresh_from_db()
    assert loose.status == "acknowledged"
    assert set(incident.items.values_list("status", flat=True)) == {"open"}
    named = api.post(
        "/api/v1/exceptions/bulk/", {"action": "acknowledge", "filter": {"incident": incident.pk}}, format="json"
    )
    assert named.json()["done"] == 3


def test_a_code_or_note_with_another_bulk_action_is_refused_not_dropped(api):
    item = open_exception(queue=QueueFactory(name="Triage"))
    response = api.post(
        "/api/v1/exceptions/bulk/", {"action": "acknowledge", "ids": [item.pk], "note": "CRM back"}, format="json"
    )
    assert response.status_code == 400
    assert "go with resolve only, not acknowledge" in response.json()["detail"]
    item.refresh_from_db()
    assert item.status == "open"


def test_a_refused_bulk_action_comes_back_with_its_choices_and_ticks(ops_client):
    items = [open_exception(queue=QueueFactory(name="Triage")) for _ in range(3)]
    response = ops_client.post(
        "/console/items/bulk/",
        {
            "action": "resolve",
            "resolution": "fixed_data",
            "note": "",
            "scope": "selected",
            "items": [items[0].pk, items[2].pk],
            "next": "/console/items/",
        },
        follow=True,
    )
    html = response.content.decode()
    assert "Nothing was changed: Give a note" in html
    assert '<option value="resolve" selected>Resolve</option>' in html
    assert '<option value="fixed_data" selected>Fixed data</option>' in html
    for item, ticked in zip(items, (True, False, True), strict=True):
        assert (f'aria-label="Select item {item.pk}" checked>' in html) == ticked
    again = ops_client.get("/console/items/").content.decode()  # once only
    assert '<option value="resolve" selected>' not in again


def test_a_search_shows_matches_inside_incidents_on_the_list_naming_their_incident(ops_client):
    incident = incident_of(3)
    wanted = incident.items.first()
    html = ops_client.get(f"/console/items/?q={wanted.lead.lead_id}").content.decode()
    assert listed_item_ids(html) == {wanted.pk}
    assert f"in incident #{incident.pk}</a>" in html
    assert "data-incident=" not in html  # no group: the rows are the answer


def test_the_next_item_after_a_resolve_is_never_one_of_an_incident_the_list_hides(ops_client):
    queue = QueueFactory(name="Triage")
    first = open_exception(queue=queue)
    incident_of(3, queue=queue)  # due between the two loose items
    second = open_exception(queue=queue)
    response = ops_client.post(
        f"/console/items/{first.pk}/resolve/", {"resolution": "fixed_data", "note": "", "then": "next"}
    )
    assert response.status_code == 302 and response["Location"] == f"/console/items/{second.pk}/"


def test_the_in_an_incident_filter_reads_no_while_the_list_leaves_them_out(ops_client):
    incident_of(3)
    grouped = ops_client.get("/console/items/").content.decode()
    assert '<option value="false" selected>No</option>' in grouped
    ticked = re.findall(r'name="status" value="(\w+)" id="id_status_\d" checked', grouped)
    assert ticked == ["open", "acknowledged", "waiting"]  # the default statuses read as ticked, as they apply
    every = ops_client.get("/console/items/?in_incident=unknown").content.decode()
    assert '<option value="unknown" selected>Any</option>' in every
    assert len(listed_item_ids(every)) == 3


def test_assigning_from_a_stale_page_does_not_take_the_incident_from_who_just_claimed_it(ops_client, ops_person):
    from exceptions.incident_actions import incident_assign
    from tests.factories import UserFactory

    incident = incident_of(3)
    seen = incident.version
    sam = UserFactory(username="sam")
    incident_assign(incident=incident, to=sam, by=sam)  # claimed meanwhile
    response = ops_client.post(
        f"/console/incidents/{incident.pk}/assign/", {"assignee": ops_person.pk, "version": seen}
    )
    assert messages_of(response)[-1] == (
        f"Incident #{incident.pk} changed since you opened it (it is sam's now); nothing was done."
    )
    incident.refresh_from_db()
    assert incident.assignee == sam


def test_an_item_the_system_resolved_says_so_on_its_page(ops_client):
    from exceptions.services import exception_resolve

    item = open_exception(queue=QueueFactory(name="Triage"))
    exception_resolve(item=item, by=None, resolution="fixed_upstream", note="Event 4 was delivered on a replay.")
    html = ops_client.get(f"/console/items/{item.pk}/").content.decode()
    assert "by the system: Event 4 was delivered on a replay." in html
    assert "by  " not in html and "by :" not in html


def test_the_next_item_is_the_next_of_the_list_the_person_came_from(ops_client):
    queue = QueueFactory(name="Triage")
    first = open_exception(queue=queue, company="Globex")
    open_exception(queue=queue, company="Initech")  # due in between, not on the list
    third = open_exception(queue=queue, company="Globex")
    ops_client.get("/console/items/?q=globex")  # the list the person works from

    detail = ops_client.get(f"/console/items/{first.pk}/").content.decode()
    assert f'data-next="/console/items/{third.pk}/"' in detail
    response = ops_client.post(
        f"/console/items/{first.pk}/resolve/", {"resolution": "fixed_data", "note": "", "then": "next"}
    )
    assert response["Location"] == f"/console/items/{third.pk}/"
