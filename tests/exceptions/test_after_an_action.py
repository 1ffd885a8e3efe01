"""After an action that finishes the person's part on an item (resolve, mark waiting, assign to someone else, a
re-route or a hand assignment that resolves it) the queue's next item opens, or the list, as the person chose on
the form ("Then", remembered in the session); acknowledge and assign to me stay. Resolve, waiting and assign
offer an Undo for 10 seconds that reverses them: reopen, resume, give the item back."""

import datetime as dt

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from exceptions.models import ExceptionItem, ExceptionStatus
from exceptions.services import exception_acknowledge, exception_assign
from exceptions.views import AFTER_ACTION, UNDO, UNDO_ASSIGN
from routing.models import LeadStatus
from tests.factories import MembershipFactory, QueueFactory, RuleFactory, UserFactory, open_exception

pytestmark = pytest.mark.django_db


@pytest.fixture
def ops_client(ops_person):
    client = Client()
    client.force_login(ops_person)
    return client


@pytest.fixture
def colleague():
    person = UserFactory(username="pat")
    person.groups.add(Group.objects.get_or_create(name="ops")[0])
    return person


@pytest.fixture
def queue():
    return QueueFactory(name="Triage")


@pytest.fixture
def first(queue):
    return open_exception(queue=queue, lifecycle_stage="customer")


@pytest.fixture
def second(queue, first):
    return open_exception(queue=queue)  # opened just after: due just after


def act(client, item, action, **form):
    return client.post(reverse("console:item-action", args=[item.pk, action]), form)


def item_url(item) -> str:
    return reverse("console:item", args=[item.pk])


def moving(item, colleague, queue):
    """Each action that finishes the person's part, as its form posts it."""
    target = QueueFactory(name="AE")
    MembershipFactory(queue=target, user=UserFactory(username="alan"))
    RuleFactory(condition={"field": "lifecycle_stage", "op": "eq", "value": "mql"}, queue=target)
    return {
        "resolve": {"resolution": "fixed_data"},
        "waiting": {"note": "the customer's reply"},
        "assign": {"version": item.version, "assignee": colleague.pk},
        "reroute": {"version": item.version, "email": item.lead.email, "lifecycle_stage": "mql"},
        "manual_assign": {"queue": target.pk, "reason": "Known account"},
    }


@pytest.mark.parametrize("action", ["resolve", "waiting", "assign", "reroute", "manual_assign"])
def test_each_action_that_finishes_the_persons_part_opens_the_queues_next_item(
    ops_client, first, second, colleague, queue, action
):
    form = moving(first, colleague, queue)[action]

    response = act(ops_client, first, action, **form)

    assert response.status_code == 302 and response["Location"] == item_url(second)
    first.refresh_from_db()
    assert {
        "resolve": first.status == ExceptionStatus.RESOLVED,
        "waiting": first.status == ExceptionStatus.WAITING,
        "assign": first.assignee == colleague,
        "reroute": (first.status, first.lead.status) == (ExceptionStatus.RESOLVED, LeadStatus.ASSIGNED),
        "manual_assign": first.status == ExceptionStatus.RESOLVED,
    }[action]


@pytest.mark.parametrize("action", ["resolve", "waiting", "assign", "reroute", "manual_assign"])
def test_then_back_to_the_list_on_any_of_those_forms_goes_to_the_list_and_is_remembered(
    ops_client, first, second, colleague, queue, action
):
    form = moving(first, colleague, queue)[action]

    response = act(ops_client, first, action, then="list", **form)

    assert response["Location"] == reverse("console:items")
    assert ops_client.session[AFTER_ACTION] == "list"
    page = ops_client.get(item_url(second)).content.decode()
    for name in ("resolve", "waiting", "assign", "reroute", "manual_assign"):  # every form shows the choice
        assert f'<select name="then" id="id_{name}_then">' in page
    assert page.count('<option value="list" selected>go back to the list</option>') == 5
    # A form posted without a choice (a hand-made request) keeps the preference.
    assert act(ops_client, second, "resolve", resolution="spam", note="bot")["Location"] == reverse("console:items")


def test_with_no_next_item_in_the_queue_the_list_opens(ops_client, first, queue):
    other_queue_item = open_exception(queue=QueueFactory(name="Sales"))

    response = act(ops_client, first, "waiting", note="reply", then="next")

    assert response["Location"] == reverse("console:items")
    assert other_queue_item.pk  # the next item is the same queue's, never another queue's


@pytest.mark.parametrize("action", ["acknowledge", "assign_to_me", "assign"])
def test_acknowledge_and_assign_to_me_stay_on_the_item(ops_client, ops_person, first, second, action):
    form = {"assign": {"version": first.version, "assignee": ops_person.pk}}.get(action, {})

    response = act(ops_client, first, action, **form)

    assert response["Location"] == item_url(first)
    assert UNDO not in ops_client.session


def test_a_re_route_that_leaves_the_item_open_stays_on_it(ops_client, first, second):
    response = act(ops_client, first, "reroute", version=first.version, email=first.lead.email, company="Other")

    assert response["Location"] == item_url(first)
    assert ExceptionItem.objects.get(pk=first.pk).status == ExceptionStatus.OPEN


def test_an_action_refused_stays_on_the_item_and_changes_nothing(ops_client, first, second):
    refused = act(ops_client, first, "resolve", resolution="")
    bad_then = act(ops_client, first, "waiting", note="x", then="elsewhere")

    assert refused["Location"] == bad_then["Location"] == item_url(first)
    assert ExceptionItem.objects.get(pk=first.pk).status == ExceptionStatus.OPEN
    assert AFTER_ACTION not in ops_client.session


def test_undo_of_waiting_resumes_the_item(ops_client, first, second):
    exception_acknowledge(item=first, by=UserFactory(username="rita"))

    act(ops_client, first, "waiting", note="reply")
    page = ops_client.get(item_url(second)).content.decode()

    undo = reverse("console:item-action", args=[first.pk, "resume"])
    assert f'<form method="post" action="{undo}" id="undo"' in page
    assert f"Undo: resume item #{first.pk} (no longer waiting)" in page
    response = ops_client.post(undo)
    assert response["Location"] == item_url(first)  # back on the item undone
    first.refresh_from_db()
    assert first.status == ExceptionStatus.ACKNOWLEDGED and first.waiting_since is None


def test_undo_of_resolve_reopens_the_item(ops_client, first, second):
    act(ops_client, first, "resolve", resolution="fixed_data")
    page = ops_client.get(item_url(second)).content.decode()

    undo = reverse("console:item-action", args=[first.pk, "reopen"])
    assert f'action="{undo}" id="undo"' in page and f"Undo: reopen item #{first.pk}" in page
    ops_client.post(undo)
    assert ExceptionItem.objects.get(pk=first.pk).status == ExceptionStatus.OPEN


def test_undo_of_an_assign_gives_the_item_back_to_whom_it_was_taken_from(ops_client, first, second, colleague):
    rita = UserFactory(username="rita")
    rita.groups.add(Group.objects.get(name="ops"))
    first = exception_assign(item=first, to=rita, by=rita)

    act(ops_client, first, "assign", version=first.version, assignee=colleague.pk)
    page = ops_client.get(item_url(second)).content.decode()

    undo = reverse("console:item-action", args=[first.pk, "assign_back"])
    assert f'action="{undo}" id="undo"' in page and f"Undo: give item #{first.pk} back to rita" in page
    response = ops_client.post(undo, {"assignee": colleague.pk})  # what to restore comes from the session
    assert response["Location"] == item_url(first)
    assert ExceptionItem.objects.get(pk=first.pk).assignee == rita
    again = ops_client.post(undo, follow=True)
    assert f"Nothing to undo on item #{first.pk}" in again.content.decode()
    assert ExceptionItem.objects.get(pk=first.pk).assignee == rita


def test_undo_of_assigning_an_unassigned_item_unassigns_it_again(ops_client, first, second, colleague):
    act(ops_client, first, "assign", version=first.version, assignee=colleague.pk)
    assert f"Undo: unassign item #{first.pk} again" in ops_client.get(item_url(second)).content.decode()

    ops_client.post(reverse("console:item-action", args=[first.pk, "assign_back"]))

    assert ExceptionItem.objects.get(pk=first.pk).assignee is None


def test_an_assign_cannot_be_undone_after_the_time_is_up_or_once_someone_changed_the_item(
    ops_client, first, second, colleague
):
    undo = reverse("console:item-action", args=[first.pk, "assign_back"])
    # Relative to now: the test client's session (8 h) must outlive every instant the test visits.
    start = dt.datetime.now(dt.UTC)
    with time_machine.travel(start, tick=False):
        act(ops_client, first, "assign", version=first.version, assignee=colleague.pk)
    with time_machine.travel(start + dt.timedelta(seconds=16), tick=False):
        late = ops_client.post(undo, follow=True)
    assert "an assignment can be undone for 10 seconds" in late.content.decode()
    assert ExceptionItem.objects.get(pk=first.pk).assignee == colleague

    fresh = ExceptionItem.objects.get(pk=first.pk)
    zed = UserFactory(username="zed")
    zed.groups.add(Group.objects.get(name="ops"))
    with time_machine.travel(start + dt.timedelta(seconds=30), tick=False):
        act(ops_client, fresh, "assign", version=fresh.version, assignee=zed.pk)
        exception_acknowledge(item=fresh, by=colleague)  # someone acts on it meanwhile
        stale = ops_client.post(undo, follow=True)
    assert "changed since you opened it" in stale.content.decode()
    assert ExceptionItem.objects.get(pk=first.pk).assignee.username == "zed"


def test_an_undo_offered_for_one_item_does_not_apply_to_another(ops_client, first, second, colleague):
    act(ops_client, first, "assign", version=first.version, assignee=colleague.pk)

    response = ops_client.post(reverse("console:item-action", args=[second.pk, "assign_back"]), follow=True)

    assert f"Nothing to undo on item #{second.pk}" in response.content.decode()
    assert UNDO_ASSIGN in ops_client.session  # still there for the first item


def test_after_acknowledge_then_resolve_the_next_is_the_soonest_due_not_one_due_after_the_resolve_time(
    ops_client, ops_person, first, second
):
    act(ops_client, first, "acknowledge")  # its due time is now its resolve time, after second's acknowledge time
    first.refresh_from_db()
    assert first.due_at > ExceptionItem.objects.get(pk=second.pk).due_at

    response = act(ops_client, first, "resolve", resolution="fixed_data")

    assert response["Location"] == item_url(second)


def test_items_due_at_the_same_time_are_each_others_next_and_previous(ops_client, queue):
    items = [open_exception(queue=queue) for _ in range(3)]
    ExceptionItem.objects.filter(pk__in=[i.pk for i in items]).update(due_at=items[0].due_at)  # opened together

    page = ops_client.get(item_url(items[1])).content.decode()
    assert f'data-next="{item_url(items[2])}"' in page and f'data-previous="{item_url(items[0])}"' in page
    first = ExceptionItem.objects.get(pk=items[0].pk)
    assert act(ops_client, first, "resolve", resolution="fixed_data")["Location"] == item_url(items[1])
