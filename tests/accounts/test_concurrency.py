"""One person's leads routed at once by several workers (threads, each with its own connection)."""

import threading
import time

import pytest
from django.db import connection, transaction

from exceptions.models import ExceptionItem
from routing.models import LeadStatus
from routing.services import lead_route, leads_route
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


def test_a_batch_routes_around_a_person_another_worker_holds_then_routes_them(rule_owner):
    """A bulk batch that shares one person with another worker's batch does not wait for the whole of it: the
    other leads route at once, that person's lead right after the other batch commits."""
    queue = QueueFactory(name="Sales")
    MembershipFactory(queue=queue, user__username="alan")
    RuleFactory(owner=rule_owner, condition={"field": "email", "op": "exists"}, queue=queue)
    held, free = LeadFactory(email="jo@acme.com"), LeadFactory(email="kim@globex.com")
    holding, release = threading.Event(), threading.Event()

    def other_worker():  # routing jo's earlier lead: holds jo's person lock until it commits
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 13))", ["person:jo@acme.com"])
                holding.set()
                release.wait(10)
        finally:
            connection.close()

    def bulk_worker():
        try:
            leads_route(lead_ids=[held.pk, free.pk])
        finally:
            connection.close()

    thread = threading.Thread(target=other_worker)
    thread.start()
    assert holding.wait(10)
    bulk = threading.Thread(target=bulk_worker)
    bulk.start()
    # kim's lead is routed and committed while jo's person is still held (before, the batch waited for it first).
    for _ in range(200):
        free.refresh_from_db()
        if free.status == LeadStatus.ASSIGNED:
            break
        time.sleep(0.05)
    held.refresh_from_db()
    assert (free.status, held.status) == (LeadStatus.ASSIGNED, LeadStatus.RECEIVED)
    release.set()
    thread.join()
    bulk.join()
    held.refresh_from_db()
    assert held.status == LeadStatus.ASSIGNED
