"""Saved views in the console's navigation: each of the person's views on every full console page, linking to
the item list with its filters and showing how many items it matches now; read in a fixed number of queries
however many views there are, and not at all for an htmx partial or for someone outside the console."""

import re

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from exceptions.services import exception_resolve
from tests.factories import LeadFactory, QueueFactory, SavedViewFactory, SourceFactory, UserFactory, open_exception

pytestmark = pytest.mark.django_db
NAV_LINK = re.compile(r'<a href="([^"]+)"( aria-current="page")?>([^<]+) <span class="count">([^<]+)</span></a>')


@pytest.fixture
def ops_client(ops_person):
    client = Client()
    client.force_login(ops_person)
    return client


def nav(html: str) -> list[tuple[str, str, str, bool]]:
    """(href, name, count, current) of each link in the saved-views navigation; [] when there is none."""
    if 'id="nav-saved-views"' not in html:
        return []
    start = html.index('id="nav-saved-views"')
    block = html[start : html.index("</nav>", start)]
    return [
        (href.replace("&amp;", "&"), name, count, bool(current))
        for href, current, name, count in NAV_LINK.findall(block)
    ]


def queries_of(client, url, **headers) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, **headers)
    assert response.status_code in (200, 403), url
    return [query["sql"] for query in captured.captured_queries]


def test_each_saved_view_is_in_the_navigation_with_its_count_on_every_console_page(ops_client, ops_person):
    triage, sales = QueueFactory(name="Triage"), QueueFactory(name="Sales")
    outage = [open_exception(queue=triage, reason="delivery_failed") for _ in range(2)]
    open_exception(queue=triage)
    open_exception(queue=sales)
    crm = f"queue={triage.pk}&reason=delivery_failed"
    SavedViewFactory(user=ops_person, name="CRM outage", query=crm)
    SavedViewFactory(user=ops_person, name="Everything", query="")
    SavedViewFactory(user=ops_person, name="<b>Gone</b>", query="queue=999999")  # its queue was deleted
    SavedViewFactory(name="Someone else's", query="")

    expected = [
        ("/console/items/?queue=999999", "&lt;b&gt;Gone&lt;/b&gt;", "?", False),
        (f"/console/items/?{crm}", "CRM outage", "2", False),
        ("/console/items/", "Everything", "4", False),
    ]
    for url in (
        reverse("console:overview"),
        reverse("console:notifications"),
        reverse("console:item", args=[outage[0].pk]),
        reverse("console:rules"),
        reverse("console:attribution"),
    ):
        assert nav(ops_client.get(url).content.decode()) == expected, url

    listing = ops_client.get(f"/console/items/?{crm}").content.decode()
    assert nav(listing)[1] == (f"/console/items/?{crm}", "CRM outage", "2", True)  # the view shown now
    assert [current for *_, current in nav(listing)] == [False, True, False]

    exception_resolve(item=outage[0], by=ops_person, resolution="fixed_upstream")
    assert nav(ops_client.get(reverse("console:overview")).content.decode())[1][2] == "1"  # counted anew


def test_someone_without_saved_views_gets_no_saved_views_navigation(ops_client):
    SavedViewFactory(name="Someone else's", query="")

    page = ops_client.get(reverse("console:overview")).content.decode()

    assert 'aria-label="Saved views"' not in page and "Someone else" not in page


def test_the_navigation_adds_the_same_queries_for_one_or_ten_saved_views(ops_client, ops_person):
    queue = QueueFactory(name="Triage")
    open_exception(queue=queue)
    overview = reverse("console:overview")

    base = queries_of(ops_client, overview)
    # With no saved view the navigation costs one query: reading the person's views.
    assert sum('FROM "exceptions_savedview"' in sql for sql in base) == 1

    SavedViewFactory(user=ops_person, name="Open", query="status=open")
    one = queries_of(ops_client, overview)
    for n in range(9):
        SavedViewFactory(user=ops_person, name=f"Due {n}", query=f"due_within={n * 10}&breached=false")
    ten = queries_of(ops_client, overview)
    # Views: one more query, counting every view at once (one aggregate per view, UNION ALL).
    assert len(one) == len(ten) == len(base) + 1
    assert sum("UNION ALL" in sql for sql in ten) == 1

    people = UserFactory.create_batch(3)
    for person in people:
        person.groups.add(Group.objects.get(name="ops"))
    sources = SourceFactory.create_batch(3)
    LeadFactory(origin=sources[0])
    for n in range(10):
        queue = QueueFactory(name=f"Queue {n}")
        query = f"queue={queue.pk}&assignee={people[n % 3].pk}&origin={sources[n % 3].pk}"
        SavedViewFactory(user=ops_person, name=f"Named {n}", query=query)
    named = queries_of(ops_client, overview)
    # Views naming queues, people and origins: one query each for those (however many views name them).
    assert len(named) == len(base) + 1 + 3
    shown = {name: count for _, name, count, _ in nav(ops_client.get(overview).content.decode())}
    assert [shown[f"Named {n}"] for n in range(10)] == ["0"] * 10  # valid views (an unknown one shows "?")


def test_the_item_list_and_the_navigation_share_one_reading_of_the_saved_views(ops_client, ops_person):
    for n in range(10):
        SavedViewFactory(user=ops_person, name=f"View {n}", query=f"due_within={n}")

    sql = queries_of(ops_client, reverse("console:items"))

    assert sum('FROM "exceptions_savedview"' in query for query in sql) == 1
    assert sum("UNION ALL" in query for query in sql) == 1


def test_no_saved_views_are_read_for_an_htmx_partial_or_outside_the_console(ops_person, outsider):
    SavedViewFactory(user=ops_person, name="Mine", query="")
    SavedViewFactory(user=outsider, name="Theirs", query="")
    ops = Client()
    ops.force_login(ops_person)
    partial = queries_of(ops, reverse("console:overview"), HTTP_HX_REQUEST="true")
    outside = Client()
    outside.force_login(outsider)
    refused = queries_of(outside, reverse("console:overview"))

    assert not [sql for sql in partial + refused if "exceptions_savedview" in sql]
    assert "Theirs" not in outside.get(reverse("console:overview")).content.decode()
