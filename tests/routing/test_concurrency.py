"""Races against real PostgreSQL: duplicate intake and concurrent round robin."""

import json
import threading
from collections import Counter

import pytest
from django.db import connection
from rest_framework.test import APIClient

from routing.models import Lead, LeadStatus
from routing.services import lead_route
from tests.factories import LeadFactory, LeadPayloadFactory, MembershipFactory, QueueFactory, RuleFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def run_together(n, work):
    """Run work(i) in n threads released at the same instant; each thread has its own connection."""
    barrier = threading.Barrier(n)
    results, errors = [None] * n, []

    def target(i):
        try:
            barrier.wait()
            results[i] = work(i)
        except Exception as exc:  # surfaced below, with the thread's index
            errors.append((i, exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    return results


def test_the_same_lead_posted_concurrently_is_stored_once(source):
    payload = json.dumps(LeadPayloadFactory(lead_id="raced"))

    def post(_):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {source.token}")
        response = client.post("/api/v1/leads/", data=payload, content_type="application/json")
        return response.status_code, response.json()["id"]

    results = run_together(12, post)
    assert Counter(code for code, _ in results) == {202: 1, 200: 11}
    assert len({lead_id for _, lead_id in results}) == 1
    assert Lead.objects.count() == 1


def test_overlapping_batches_store_each_lead_once(source):
    items = LeadPayloadFactory.build_batch(50)

    def post(i):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {source.token}")
        batch = items[i * 10 :] + items[: i * 10]  # same leads, different order per thread
        response = client.post("/api/v1/leads/batch/", data=json.dumps(batch), content_type="application/json")
        return Counter(r["status"] for r in response.json()["results"])

    totals = sum(run_together(5, post), Counter())
    assert totals == {"accepted": 50, "duplicate": 200}
    assert Lead.objects.count() == 50


def test_concurrent_routing_keeps_round_robin_exact():
    queue = QueueFactory()
    for name in ("a", "b", "c"):
        MembershipFactory(queue=queue, user=UserFactory(username=name))
    RuleFactory(condition={"field": "email", "op": "exists"}, queue=queue)
    leads = LeadFactory.create_batch(30)

    run_together(6, lambda i: [lead_route(lead_id=lead.id) for lead in leads[i::6]])

    assigned = Lead.objects.filter(status=LeadStatus.ASSIGNED)
    assert assigned.count() == 30
    assert Counter(assigned.values_list("assignee__username", flat=True)) == {"a": 10, "b": 10, "c": 10}


def test_the_same_lead_routed_concurrently_is_assigned_once():
    queue = QueueFactory()
    for name in ("a", "b"):
        MembershipFactory(queue=queue, user=UserFactory(username=name))
    RuleFactory(condition={"field": "email", "op": "exists"}, queue=queue)
    lead = LeadFactory()

    run_together(8, lambda _: lead_route(lead_id=lead.id))

    from audit.models import AuditAction, AuditEvent

    assert AuditEvent.objects.filter(lead=lead, action=AuditAction.ROUTING_DECISION).count() == 1
    assert sum(m.rotation_pass for m in queue.memberships.all()) == 1.0  # one turn handed out, not eight


def test_a_queue_held_for_a_pick_does_not_hold_back_commits_that_name_it():
    """PostgreSQL checks Django's (deferred) foreign keys at commit with FOR KEY SHARE on the row they name: if
    a pick held its queue FOR UPDATE, every transaction writing a lead of that queue would wait at COMMIT for
    the whole routing batch holding it (what serialised two bulk workers and held the live lane back)."""
    from django.db import transaction

    from routing.assignment import pick_assignee
    from tests.faults.helpers import raw_connection

    queue = QueueFactory(name="AE")
    MembershipFactory(queue=queue, user=UserFactory(username="alan"))
    lead = LeadFactory()
    picked, release = threading.Event(), threading.Event()

    def pick():
        try:
            with transaction.atomic():
                pick_assignee(queue_id=queue.id)
                picked.set()
                release.wait(10)
        finally:
            connection.close()

    holder = threading.Thread(target=pick)
    holder.start()
    try:
        assert picked.wait(10)
        with raw_connection() as other:
            other.execute("SET lock_timeout = '3s'")  # waiting for the pick fails here instead of hanging
            other.execute("UPDATE routing_lead SET queue_id = %s WHERE id = %s", [queue.id, lead.id])
            other.commit()
    finally:
        release.set()
        holder.join()
    assert Lead.objects.get(pk=lead.pk).queue_id == queue.id
