"""The console screens: access control, CSRF, escaping, actions and their messages, and query counts."""

import re

import pytest
from django.contrib.auth.models import Group
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from exceptions.models import ExceptionItem, ExceptionStatus, SavedView
from exceptions.services import exception_acknowledge, exception_resolve
from routing.models import LeadStatus
from tests.factories import (
    MembershipFactory,
    NotificationFactory,
    QueueFactory,
    RuleFactory,
    UserFactory,
    open_exception,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def item():
    return open_exception(queue=QueueFactory(name="Triage"), lifecycle_stage="customer")


@pytest.fixture
def ops_client(ops_person):
    client = Client()
    client.force_login(ops_person)
    return client


def screens(item):
    return [
        reverse("console:overview"),
        reverse("console:items"),
        reverse("console:item", args=[item.pk]),
        reverse("console:notifications"),
    ]


def messages_of(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_every_screen_needs_login(item):
    for url in screens(item):
        response = Client().get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/"), url


def test_a_person_outside_the_groups_gets_403_not_a_crash(item, outsider):
    client = Client()
    client.force_login(outsider)
    for url in screens(item):
        assert client.get(url).status_code == 403, url
    assert client.post(reverse("console:item-action", args=[item.pk, "acknowledge"])).status_code == 403
    assert ExceptionItem.objects.get(pk=item.pk).status == ExceptionStatus.OPEN


def test_rule_owners_and_admins_can_work_the_queues(item, rule_owner):
    from django.contrib.auth.models import Group

    rule_owner.groups.add(Group.objects.get(name="rule_owners"))
    admin = UserFactory(username="root", is_superuser=True, is_staff=True)
    for person in (rule_owner, admin):
        client = Client()
        client.force_login(person)
        assert all(client.get(url).status_code == 200 for url in screens(item))


def test_screens_render_for_ops(item, ops_client):
    assert b"Exception queues" in ops_client.get(reverse("console:overview")).content
    listing = ops_client.get(reverse("console:items")).content.decode()
    assert f'data-item="{item.pk}"' in listing and item.lead.lead_id in listing
    detail = ops_client.get(reverse("console:item", args=[item.pk])).content.decode()
    assert "No matching rule" in detail and "Acknowledge clock started" in detail


def test_the_overview_partial_is_served_to_htmx_polling(item, ops_client):
    response = ops_client.get(reverse("console:overview"), HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert "<html" not in body and 'data-queue="Triage"' in body


def test_forms_are_csrf_protected(item, ops_person):
    client = Client(enforce_csrf_checks=True)
    client.force_login(ops_person)
    response = client.post(reverse("console:item-action", args=[item.pk, "acknowledge"]))
    assert response.status_code == 403
    assert ExceptionItem.objects.get(pk=item.pk).status == ExceptionStatus.OPEN


def test_hostile_lead_data_is_escaped(ops_client):
    hostile = open_exception(
        queue=QueueFactory(name="Triage"), first_name='<script>alert("x")</script>', company='"quoted" & <b>bold</b>'
    )
    for url in (reverse("console:items"), reverse("console:item", args=[hostile.pk])):
        body = ops_client.get(url).content.decode()
        assert "<script>alert" not in body and "<b>bold</b>" not in body
    detail = ops_client.get(reverse("console:item", args=[hostile.pk])).content.decode()
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in detail


def test_acknowledge_then_again_says_who_did_it(item, ops_client, ops_person):
    url = reverse("console:item-action", args=[item.pk, "acknowledge"])
    first = ops_client.post(url, follow=True)
    assert f"Acknowledged item #{item.pk}." in messages_of(first) or b"Acknowledged item" in first.content
    second = ops_client.post(url, follow=True)
    assert f"already acknowledged by {ops_person.get_full_name()}" in second.content.decode()


def test_resolve_needs_a_resolution_code(item, ops_client):
    response = ops_client.post(
        reverse("console:item-action", args=[item.pk, "resolve"]), {"resolution": "meh"}, follow=True
    )
    assert "Select a valid choice" in response.content.decode()
    assert ExceptionItem.objects.get(pk=item.pk).status == ExceptionStatus.OPEN


def test_no_code_is_preselected_and_spam_needs_a_note(item, ops_client):
    page = ops_client.get(f"/console/items/{item.pk}/").content.decode()
    assert '<option value="" selected>Choose…</option>' in page
    action = reverse("console:item-action", args=[item.pk, "resolve"])
    nothing = ops_client.post(action, {"resolution": "", "note": ""}, follow=True).content.decode()
    assert "Choose a resolution code." in nothing
    spam = ops_client.post(action, {"resolution": "spam", "note": ""}, follow=True).content.decode()
    assert "Give a note: duplicate, spam and not a lead say why" in spam
    assert ExceptionItem.objects.get(pk=item.pk).status == ExceptionStatus.OPEN


def test_manual_assignment_needs_a_reason(item, ops_client):
    queue = QueueFactory(name="AE")
    response = ops_client.post(
        reverse("console:item-action", args=[item.pk, "manual_assign"]), {"queue": queue.pk, "reason": ""}, follow=True
    )
    assert "Reason: This field is required." in response.content.decode()
    assert item.lead.overrides.count() == 0


def test_manual_assignment_records_an_override_and_resolves(item, ops_client, ops_person):
    queue = QueueFactory(name="AE")
    person = MembershipFactory(queue=queue, user=UserFactory(username="alan")).user
    response = ops_client.post(
        reverse("console:item-action", args=[item.pk, "manual_assign"]),
        {"queue": queue.pk, "assignee": person.pk, "reason": "Known account"},
        follow=True,
    )
    assert "the override is recorded" in response.content.decode()
    override = item.lead.overrides.get()
    assert (override.to_queue, override.to_assignee, override.by, override.reason) == (
        queue,
        person,
        ops_person,
        "Known account",
    )
    item.refresh_from_db()
    assert (item.status, item.resolution) == ("resolved", "rerouted")
    item.lead.refresh_from_db()
    assert (item.lead.status, item.lead.assignee) == (LeadStatus.ASSIGNED, person)


def test_fix_data_and_reroute(item, ops_client):
    queue = QueueFactory(name="AE")
    MembershipFactory(queue=queue, user=UserFactory(username="alan"))
    RuleFactory(condition={"field": "lifecycle_stage", "op": "eq", "value": "mql"}, queue=queue)
    form = {"version": item.version, "email": item.lead.email, "lifecycle_stage": "mql"}
    response = ops_client.post(reverse("console:item-action", args=[item.pk, "reroute"]), form, follow=True)
    assert "Re-routed: assigned to alan in AE" in response.content.decode()
    item.refresh_from_db()
    assert (item.status, item.resolution) == ("resolved", "rerouted")


def test_reroute_with_bad_data_changes_nothing_and_says_why(item, ops_client):
    form = {"version": item.version, "email": "not-an-email", "lifecycle_stage": "mql"}
    response = ops_client.post(reverse("console:item-action", args=[item.pk, "reroute"]), form, follow=True)
    assert "The lead was not changed: email: Enter a valid email address." in response.content.decode()
    item.lead.refresh_from_db()
    assert item.lead.lifecycle_stage == "customer"


def test_reroute_from_a_stale_page_is_refused(item, ops_client, ops_person):
    stale_version = item.version
    exception_acknowledge(item=item, by=UserFactory(username="pat"))
    form = {"version": stale_version, "email": item.lead.email, "lifecycle_stage": "mql"}
    response = ops_client.post(reverse("console:item-action", args=[item.pk, "reroute"]), form, follow=True)
    assert "changed since you opened it" in response.content.decode()


def test_bulk_acknowledge_reports_what_it_did(ops_client):
    queue = QueueFactory(name="Triage")
    items = [open_exception(queue=queue) for _ in range(3)]
    response = ops_client.post(
        reverse("console:bulk"), {"items": [i.pk for i in items], "action": "acknowledge"}, follow=True
    )
    assert "Acknowledged 3 item(s)." in response.content.decode()
    assert set(ExceptionItem.objects.values_list("status", flat=True)) == {"acknowledged"}


def test_bulk_assign_needs_a_person(ops_client, item):
    response = ops_client.post(reverse("console:bulk"), {"items": [item.pk], "action": "assign"}, follow=True)
    assert "Choose who to assign the selected items to." in response.content.decode()


def test_bulk_without_a_selection_says_so(ops_client):
    response = ops_client.post(reverse("console:bulk"), {"action": "acknowledge"}, follow=True)
    assert "Select some items." in response.content.decode()


def list_queries(client, url) -> int:
    """The queries of a request for `url` once the person is on that page (the session already remembers the
    list they came from: the first request for a list writes it)."""
    client.get(url)
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


def test_the_item_list_costs_the_same_queries_for_5_or_50_rows(ops_client):
    queue = QueueFactory(name="Triage")
    plain = reverse("console:items")
    filtered = plain + f"?queue={queue.pk}&breached=false&sort=-age"
    for _ in range(5):
        open_exception(queue=queue)
    few = (list_queries(ops_client, plain), list_queries(ops_client, filtered))
    for _ in range(60):
        open_exception(queue=queue)
    many = (list_queries(ops_client, plain), list_queries(ops_client, filtered))
    # session, user, group check, count, page of ids, its 50 rows, the filter form's choices (+ the queue), the
    # person's saved views (none here; each saved one adds its count), the incidents among the items (none), and
    # for staff the count of queues without owner or escalation contact (the banner)
    assert few == many == (13, 14)


def test_the_list_shows_unresolved_items_unless_asked_otherwise(ops_client, ops_person):
    queue = QueueFactory(name="Triage")
    done, pending = open_exception(queue=queue), open_exception(queue=queue)
    exception_resolve(item=done, by=ops_person, resolution="spam")
    for query in ("", f"?queue={queue.pk}", "?page=1", "?sort=-age"):
        body = ops_client.get(reverse("console:items") + query).content.decode()
        assert f'data-item="{pending.pk}"' in body and f'data-item="{done.pk}"' not in body, query
    body = ops_client.get(reverse("console:items") + "?status=resolved").content.decode()
    assert f'data-item="{done.pk}"' in body and f'data-item="{pending.pk}"' not in body


def test_the_overview_costs_the_same_queries_for_any_number_of_queues(ops_client):
    open_exception(queue=QueueFactory(name="Triage"))
    few = list_queries(ops_client, reverse("console:overview"))
    for n in range(10):
        open_exception(queue=QueueFactory(name=f"Queue {n}"))
    assert list_queries(ops_client, reverse("console:overview")) == few


def test_assign_offers_the_queues_members_first_with_their_open_items(ops_client, ops_person, item):
    ops = Group.objects.get(name="ops")
    zed, amy = UserFactory(username="zed"), UserFactory(username="amy")
    for person in (zed, amy):
        person.groups.add(ops)
    MembershipFactory(queue=item.queue, user=zed)
    for _ in range(2):
        ExceptionItem.objects.filter(pk=open_exception(queue=item.queue).pk).update(assignee=zed)
    page = ops_client.get(f"/console/items/{item.pk}/").content.decode()
    assign = page[page.index('name="assignee"') : page.index("</select>", page.index('name="assignee"'))]
    assert '<optgroup label="Triage members">' in assign and '<optgroup label="Others">' in assign
    assert assign.index("zed (2 open)") < assign.index("amy (0 open)") < assign.index("olga (0 open)")


def test_notifications_are_paged_and_filtered_not_cut_at_200(ops_client, ops_person):
    triage, sales = QueueFactory(name="Triage"), QueueFactory(name="Sales")
    NotificationFactory.create_batch(55, recipient=ops_person, queue=triage)
    NotificationFactory.create_batch(3, recipient=ops_person, queue=sales, kind="escalation_1")
    NotificationFactory(recipient=ops_person, queue=sales, kind="escalation_1", read_at=timezone.now())
    first = ops_client.get("/console/notifications/")
    assert first.context["page"].paginator.count == 59 and len(first.context["page"].object_list) == 50
    assert len(ops_client.get("/console/notifications/", {"page": 2}).context["page"].object_list) == 9
    unread_escalations = ops_client.get("/console/notifications/", {"kind": "escalation_1", "unread": "on"})
    assert unread_escalations.context["page"].paginator.count == 3
    assert ops_client.get("/console/notifications/", {"queue": sales.pk}).context["page"].paginator.count == 4
    assert ops_client.get("/console/notifications/", {"kind": "bogus"}).status_code == 400


def test_the_items_history_shows_each_events_details_as_fields_not_python_text(ops_client, ops_person, item):
    exception_resolve(item=item, by=ops_person, resolution="spam", note="bot <b>")
    page = ops_client.get(f"/console/items/{item.pk}/").content.decode()
    history = page[page.index('id="history"') : page.index("</ol>", page.index('id="history"'))]
    assert "<dt>resolution</dt><dd>spam</dd>" in history and "<dt>note</dt><dd>bot &lt;b&gt;</dd>" in history
    assert "{&#x27;" not in history


def test_the_default_views_mine_breached_and_due_in_15_minutes(ops_client, ops_person):
    triage = QueueFactory(name="Triage")
    mine, breached, soon, later = (open_exception(queue=triage) for _ in range(4))
    now = timezone.now()
    ExceptionItem.objects.filter(pk=mine.pk).update(assignee=ops_person, due_at=now + timezone.timedelta(hours=3))
    ExceptionItem.objects.filter(pk=breached.pk).update(ack_breached_at=now, due_at=now - timezone.timedelta(minutes=5))
    ExceptionItem.objects.filter(pk=soon.pk).update(due_at=now + timezone.timedelta(minutes=10))
    ExceptionItem.objects.filter(pk=later.pk).update(due_at=now + timezone.timedelta(hours=2))
    page = ops_client.get("/console/items/").content.decode()
    views = page[page.index('id="views"') : page.index("</nav>", page.index('id="views"'))]
    links = {label: href for href, label in re.findall(r'<a href="([^"]+)">([^<]+)</a>', views)}

    def listed(label):
        return {item.pk for item in ops_client.get(links[label].replace("&amp;", "&")).context["page"].object_list}

    assert listed("Mine") == {mine.pk}
    assert listed("Breached") == {breached.pk}
    assert listed("Due in 15 min") == {breached.pk, soon.pk}  # overdue included
    assert listed("All unresolved") == {mine.pk, breached.pk, soon.pk, later.pk}


def test_a_person_saves_named_views_that_show_their_counts_and_only_to_them(ops_client, ops_person, client):
    triage, sales = QueueFactory(name="Triage"), QueueFactory(name="Sales")
    for _ in range(3):
        open_exception(queue=triage, reason="delivery_failed")
    open_exception(queue=sales)
    query = f"queue={triage.pk}&reason=delivery_failed&page=2"
    saved = ops_client.post("/console/items/views/", {"name": "  CRM   outage ", "query": query}, follow=True)
    assert "Saved the view &#x27;CRM outage&#x27;." in saved.content.decode()
    page = ops_client.get("/console/items/")
    [row] = page.context["saved_views"]
    assert (row["view"].name, row["view"].query, row["count"]) == (
        "CRM outage",
        f"queue={triage.pk}&reason=delivery_failed",
        3,
    )
    assert (
        f'href="/console/items/?queue={triage.pk}&amp;reason=delivery_failed">CRM outage</a>' in page.content.decode()
    )

    other = UserFactory(username="otto")
    other.groups.add(Group.objects.get(name="ops"))
    client.force_login(other)
    assert client.get("/console/items/").context["saved_views"] == []
    assert client.post("/console/items/views/", {"delete": row["view"].pk}).status_code == 302
    assert SavedView.objects.count() == 1  # not theirs to delete

    empty = ops_client.post("/console/items/views/", {"name": " ", "query": ""}, follow=True)
    assert "The view was not saved: Give the view a name." in empty.content.decode()
    ops_client.post("/console/items/views/", {"delete": row["view"].pk})
    assert not SavedView.objects.exists()
