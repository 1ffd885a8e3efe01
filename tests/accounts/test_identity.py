"""Identity: leads of one person linked by normalised email or shared lead ids, sticky ownership within the
window, and one exception item per person and cause."""

import datetime as dt
import io

import pytest
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditAction, AuditEvent
from exceptions.models import ExceptionItem
from routing.accounts.models import LeadIdentity
from routing.models import AssignTo, Lead, LeadStatus, Source
from routing.services import lead_route
from tests.factories import LeadFactory, MembershipFactory, QueueFactory, RuleFactory, SourceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def sales():
    queue = QueueFactory(name="Sales")
    MembershipFactory(queue=queue, user__username="alan")
    MembershipFactory(queue=queue, user__username="bea")
    return queue


@pytest.fixture
def everyone(sales, rule_owner):
    return RuleFactory(owner=rule_owner, condition={"field": "email", "op": "exists"}, queue=sales)


def routed(**fields):
    lead = LeadFactory(**fields)
    lead_route(lead_id=lead.id)
    lead.refresh_from_db()
    return lead


def decision(lead):
    return AuditEvent.objects.get(lead=lead, action=AuditAction.ROUTING_DECISION)


def test_leads_with_the_same_normalised_email_are_linked_across_sources(everyone, ops_person, client):
    web_form = SourceFactory(name="web")
    first = routed(email="jo.doe@gmail.com", origin=web_form)
    second = routed(email="jodoe+demo@googlemail.com", origin=SourceFactory(name="chat"))
    other = routed(email="someone@gmail.com")
    assert LeadIdentity.objects.get(lead=second).known_person
    assert not LeadIdentity.objects.get(lead=first).known_person
    api = APIClient()
    api.force_authenticate(ops_person)
    identity = api.get(f"/api/v1/leads/{second.pk}/").json()["identity"]
    assert identity == [{"id": first.pk, "lead_id": first.lead_id, "origin": "web"}]
    assert [x["id"] for x in api.get(f"/api/v1/leads/{first.pk}/").json()["identity"]] == [second.pk]
    assert api.get(f"/api/v1/leads/{other.pk}/").json()["identity"] == []
    web = APIClient()
    web.credentials(HTTP_AUTHORIZATION=f"Token {web_form.token}")
    assert web.get(f"/api/v1/leads/{first.pk}/").json()["identity"] == []  # a source sees only its own leads
    client.force_login(ops_person)
    page = client.get(f"/console/leads/{first.pk}/").content.decode()
    assert second.lead_id in page and "Same person" in page


def test_routing_a_persons_first_lead_again_does_not_make_it_a_known_person(everyone):
    first = routed(email="jo@acme.example")
    second = routed(email="jo@acme.example")
    Lead.objects.filter(pk=first.pk).update(status=LeadStatus.RECEIVED)  # as a re-route after an edit does
    lead_route(lead_id=first.pk)
    assert LeadIdentity.objects.get(lead=first).known_person is False
    assert LeadIdentity.objects.get(lead=second).known_person is True


def test_a_lead_id_shared_between_sharing_sources_links_leads(everyone):
    crm, forms = SourceFactory(name="crm", shares_lead_ids=True), SourceFactory(name="forms", shares_lead_ids=True)
    loner = SourceFactory(name="loner")
    a = routed(lead_id="P-42", email="a@one.com", origin=crm)
    b = routed(lead_id="P-42", email="b@two.com", origin=forms)
    c = routed(lead_id="P-42", email="c@three.com", origin=loner)
    assert decision(b).inputs["identity"]["same_person"] == [a.pk]
    assert decision(c).inputs["identity"]["same_person"] == []


def test_a_persons_new_lead_sticks_to_the_owner_of_their_open_lead(everyone):
    first = routed(email="jo@acme.com")
    second = routed(email="JO@acme.com")
    assert second.assignee == first.assignee
    event = decision(second)
    assert event.data["assigned_by"] == "sticky" and first.lead_id in event.data["assignee_note"]
    stranger = routed(email="x@acme.com")
    assert stranger.assignee != first.assignee  # round robin carried on


def test_two_leads_of_one_person_in_one_batch_go_to_one_owner(everyone):
    """A batch defers a person's second lead until the first is routed, as if they had come one by one."""
    from routing.services import leads_route

    first, second, stranger = LeadFactory(email="jo@acme.com"), LeadFactory(email="JO@acme.com"), LeadFactory()
    routed = leads_route(lead_ids=[first.pk, second.pk, stranger.pk])
    assert {lead.pk for lead in routed} == {first.pk, second.pk, stranger.pk}
    first.refresh_from_db()
    second.refresh_from_db()
    assert second.assignee == first.assignee
    assert decision(second).data["assigned_by"] == "sticky"
    assert decision(second).inputs["identity"]["same_person"] == [first.pk]


def test_two_leads_of_one_person_without_contact_in_one_batch_share_one_item(everyone):
    from routing.services import leads_route

    crm = SourceFactory(name="crm", shares_lead_ids=True)
    first = LeadFactory(lead_id="P-7", email=None, phone=None, origin=crm)
    second = LeadFactory(lead_id="P-7", email=None, phone=None, origin=SourceFactory(name="web", shares_lead_ids=True))
    leads_route(lead_ids=[first.pk, second.pk])
    assert ExceptionItem.objects.count() == 1
    assert decision(second).data["exception_of_same_person"] is True


def test_sticky_ownership_ends_with_the_window(everyone):
    first = routed(email="jo@acme.com")
    Lead.objects.filter(pk=first.pk).update(assigned_at=timezone.now() - dt.timedelta(days=31))
    second = routed(email="jo@acme.com")
    assert second.assignee != first.assignee and decision(second).data["assigned_by"] == "queue"
    assert decision(second).data["assignee_note"] == (
        f"not sticky: the person's open lead {first.lead_id} is {first.assignee.get_username()}'s, but it was"
        " assigned 31 days ago, past the 30-day window"
    )


def test_a_zero_window_turns_sticky_ownership_off(everyone, settings):
    settings.HANDOFF = {**settings.HANDOFF, "STICKY_OWNERSHIP_DAYS": 0}
    first = routed(email="jo@acme.com")
    assert routed(email="jo@acme.com").assignee != first.assignee


def test_a_rule_that_says_queue_is_not_sticky(sales, rule_owner):
    RuleFactory(owner=rule_owner, condition={"field": "email", "op": "exists"}, queue=sales, assign_to=AssignTo.QUEUE)
    first = routed(email="jo@acme.com")
    assert routed(email="jo@acme.com").assignee != first.assignee


def test_an_unavailable_sticky_owner_falls_back_and_says_why(everyone, sales):
    first = routed(email="jo@acme.com")
    sales.memberships.filter(user=first.assignee).update(is_available=False)
    second = routed(email="jo@acme.com")
    assert second.assignee != first.assignee
    assert "unavailable" in decision(second).data["assignee_note"]


def test_a_person_gets_one_exception_item_per_cause_while_it_is_open(rule_owner):
    QueueFactory(name="Triage")
    RuleFactory(owner=rule_owner, condition={"field": "country", "op": "eq", "value": "FR"})
    first = routed(email="jo@acme.com", country="GB")
    second = routed(email="jo@acme.com", country="GB")
    assert first.status == second.status == LeadStatus.EXCEPTION
    item = ExceptionItem.objects.get()
    assert item.lead == first
    data = decision(second).data
    assert data["exception_id"] == item.pk and data["exception_of_same_person"]
    assert f"item #{item.pk} is still open" in data["detail"]
    item.status = "resolved"
    item.save()
    routed(email="jo@acme.com", country="GB")
    assert ExceptionItem.objects.count() == 2


def test_create_source_can_declare_shared_ids():
    call_command("create_source", "crm", "--shares-lead-ids", stdout=io.StringIO())
    assert Source.objects.get(name="crm").shares_lead_ids


def test_a_batch_links_its_own_leads_of_one_person_and_records_every_match():
    from routing.accounts.identity import leads_link_identities
    from routing.accounts.leads import leads_match_accounts
    from routing.accounts.models import AccountMatch
    from tests.factories import AccountFactory

    AccountFactory(account_id="A-1", name="Acme Corporation", domains=["acme.com"])
    earlier = LeadFactory(email="jo@acme.com")
    LeadIdentity.objects.create(lead=earlier, email_key="jo@acme.com", linked_at=timezone.now())
    one, two, other = LeadFactory(email="jo@acme.com"), LeadFactory(email="Jo@Acme.com"), LeadFactory(email="x@y.io")
    now = timezone.now()
    identities = leads_link_identities(leads=[one, two, other], at=now)
    assert [lead.pk for lead in identities[two.pk].others] == [one.pk, earlier.pk]
    assert [lead.pk for lead in identities[one.pk].others] == [earlier.pk]
    assert identities[other.pk].others == []
    matches = leads_match_accounts(leads=[one, two, other], at=now)
    assert matches[one.pk].account.account_id == "A-1" and matches[other.pk].account is None
    assert AccountMatch.objects.filter(lead__in=[one, two, other]).count() == 3
