"""One person's leads routed at once by several workers (threads, each with its own connection)."""

import threading

import pytest
from django.db import connection

from exceptions.models import ExceptionItem
from routing.models import LeadStatus
from routing.services import lead_route
from tests.factories import LeadFactory, MembershipFactory, QueueFactory, RuleFactory

pytestmark = pytest.mark.django_db(transaction=True)


def route_together(leads):
    barrier = threading.Barrier(len(leads))
    errors = []

    def target(lead):
        try:
            barrier.wait()
            lead_route(lead_id=lead.pk)
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=target, args=(lead,)) for lead in leads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors


def test_concurrent_leads_of_one_person_open_one_item(rule_owner):
    QueueFactory(name="Triage")
    RuleFactory(owner=rule_owner, condition={"field": "country", "op": "eq", "value": "FR"})
    leads = [LeadFactory(email="jo@acme.com", country="GB") for _ in range(6)]
    route_together(leads)
    assert ExceptionItem.objects.count() == 1
    assert all(lead.status == LeadStatus.EXCEPTION for lead in type(leads[0]).objects.all())


def test_concurrent_leads_of_one_person_go_to_one_owner(rule_owner):
    queue = QueueFactory(name="Sales")
    for name in ("alan", "bea", "cy"):
        MembershipFactory(queue=queue, user__username=name)
    RuleFactory(owner=rule_owner, condition={"field": "email", "op": "exists"}, queue=queue)
    leads = [LeadFactory(email="jo@acme.com") for _ in range(6)]
    route_together(leads)
    owners = {lead.assignee_id for lead in type(leads[0]).objects.all()}
    assert len(owners) == 1
