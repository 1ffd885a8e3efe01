"""Credit back: a lead the strategy gave someone, taken from them by hand, gives them their turn back."""

import pytest
from rest_framework.test import APIClient

from audit.models import AuditAction, AuditEvent
from audit.services import audit_record
from exceptions.triage import lead_assign_manually
from routing.availability.models import DistributionDay
from routing.governance.remediate import leads_reroute
from routing.governance.services import rule_rollback
from routing.models import AssignmentStrategy, QueueMembership
from routing.services import lead_route
from tests.factories import (
    LeadFactory,
    MembershipFactory,
    QueueFactory,
    RuleFactory,
    UserFactory,
    case,
    promote_live,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def queue():
    queue = QueueFactory(name="AEs")
    for name in ("ann", "bob", "cat"):
        MembershipFactory(queue=queue, user=UserFactory(username=name))
    RuleFactory(queue=queue)
    return queue


def route(n=1):
    leads = [LeadFactory() for _ in range(n)]
    for lead in leads:
        lead_route(lead_id=lead.pk)
    for lead in leads:
        lead.refresh_from_db()
    return leads


def owners(leads):
    return [lead.assignee.username for lead in leads]


def take(lead, to, queue):
    return lead_assign_manually(lead=lead, queue=queue, assignee=to, reason="customer asked for Olga", by=to)


def test_a_lead_taken_by_an_override_gives_its_assignee_the_next_turn(queue):
    (first,) = route()
    assert owners([first]) == ["ann"]
    olga = UserFactory(username="olga")

    take(first, olga, queue)

    # ann's owed turn first; then bob and cat, and a new round: ann kept the one turn the strategy gave her.
    assert owners(route(4)) == ["ann", "bob", "cat", "ann"]
    (event,) = AuditEvent.objects.filter(action=AuditAction.LEAD_CREDITED_BACK)
    assert (event.lead_id, event.actor, event.data) == (
        first.pk,
        olga,
        {"queue": "AEs", "member": "ann", "how": "override"},
    )
    assert DistributionDay.objects.get(queue=queue, user__username="ann").credited_back == 1


def test_the_credit_holds_however_many_rounds_pass_before_the_next_pick(queue):
    leads = route(7)  # ann bob cat ann bob cat ann
    take(leads[0], UserFactory(username="olga"), queue)
    assert owners(route(2)) == ["ann", "bob"]


def test_no_credit_when_the_queue_turns_it_off(queue):
    queue.credit_back = False
    queue.save()
    (first,) = route()
    take(first, UserFactory(username="olga"), queue)
    assert owners(route(2)) == ["bob", "cat"]
    assert not AuditEvent.objects.filter(action=AuditAction.LEAD_CREDITED_BACK).exists()


def test_a_lead_reassigned_twice_credits_only_the_one_the_strategy_gave_it_to(queue):
    (first,) = route()
    olga, pat = UserFactory(username="olga"), UserFactory(username="pat")
    take(first, olga, queue)
    first.refresh_from_db()
    take(first, pat, queue)  # olga got it by hand: nothing owed to her
    assert AuditEvent.objects.filter(action=AuditAction.LEAD_CREDITED_BACK).count() == 1
    assert QueueMembership.objects.get(user__username="ann").turn_credits == 1


def test_a_member_who_left_the_queue_is_not_credited(queue):
    (first,) = route()
    QueueMembership.objects.filter(user__username="ann").delete()
    take(first, UserFactory(username="olga"), queue)
    assert not AuditEvent.objects.filter(action=AuditAction.LEAD_CREDITED_BACK).exists()


def test_weighted_queue_credits_a_whole_turn(queue):
    queue.strategy = AssignmentStrategy.WEIGHTED_ROUND_ROBIN
    queue.save()
    QueueMembership.objects.filter(user__username="ann").update(weight=2)
    leads = route(4)
    assert owners(leads) == ["ann", "bob", "cat", "ann"]
    take(leads[3], UserFactory(username="olga"), queue)
    assert owners(route(1)) == ["ann"]


def test_a_reassignment_through_the_api_credits_the_member_and_the_next_lead_is_theirs(queue, ops_person):
    (first,) = route()
    api = APIClient()
    api.force_authenticate(ops_person)
    response = api.post(
        f"/api/v1/leads/{first.pk}/assign/",
        {"queue": queue.pk, "assignee": "bob", "reason": "Territory"},
        format="json",
    )
    assert response.status_code == 200
    (event,) = AuditEvent.objects.filter(action=AuditAction.LEAD_CREDITED_BACK)
    assert (event.actor, event.data["member"]) == (ops_person, "ann")
    assert DistributionDay.objects.get(queue=queue, user__username="ann").credited_back == 1
    assert owners(route(1)) == ["ann"]


def test_a_lead_given_by_account_owner_and_taken_away_is_not_credited(queue):
    ann = QueueMembership.objects.get(user__username="ann").user
    lead = LeadFactory(queue=queue, assignee=ann)
    audit_record(
        action=AuditAction.ROUTING_DECISION,
        lead=lead,
        outcome="assigned",
        data={"queue": "AEs", "assignee": "ann", "assigned_by": "account_owner"},
    )
    take(lead, UserFactory(username="olga"), queue)
    assert not AuditEvent.objects.filter(action=AuditAction.LEAD_CREDITED_BACK).exists()
    assert QueueMembership.objects.get(user__username="ann").turn_credits == 0


def test_a_lead_moved_by_rule_remediation_gives_its_assignee_the_turn_back(rule_owner):
    sales, partners = QueueFactory(name="Sales"), QueueFactory(name="Partners")
    MembershipFactory(queue=sales, user=UserFactory(username="alan"))
    for name in ("pia", "pat"):
        MembershipFactory(queue=partners, user=UserFactory(username=name))
    rule = RuleFactory(name="MQL to sales", owner=rule_owner, queue=sales)
    promote_live(rule, queue=partners, test_cases=[case("an MQL", "Partners", lifecycle_stage="mql")])
    (lead,) = route()
    assert owners([lead]) == ["pia"]
    rule_rollback(rule=rule, by=rule_owner, comment="v2 misroutes")

    leads_reroute(version=rule.versions.get(number=2), by=rule_owner)

    (event,) = AuditEvent.objects.filter(action=AuditAction.LEAD_CREDITED_BACK)
    assert (event.lead_id, event.data["member"], event.data["how"]) == (lead.pk, "pia", "remediation")
    assert QueueMembership.objects.get(queue=partners, user__username="pia").turn_credits == 1


def test_a_lead_that_goes_round_by_hand_back_to_its_first_assignee_credits_them_once(queue):
    (first,) = route()
    olga, pat = UserFactory(username="olga"), UserFactory(username="pat")
    ann = queue.members.get(username="ann")
    for person in (olga, ann, pat):  # ann -> olga -> ann -> pat
        first.refresh_from_db()
        take(first, person, queue)
    assert AuditEvent.objects.filter(action=AuditAction.LEAD_CREDITED_BACK).count() == 1
    assert QueueMembership.objects.get(user=ann).turn_credits == 1
