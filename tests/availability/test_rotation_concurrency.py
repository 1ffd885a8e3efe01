"""Concurrent routing workers keep the rotation exact while members go away and come back (real PostgreSQL):
every member ends with what a serial rotation over the same picks gives them."""

import datetime as dt
import threading
from collections import Counter

import pytest
from django.db import connection, transaction
from django.utils import timezone

from routing import engine
from routing.assignment import pick_assignee
from routing.availability.models import DistributionDay, TimeOff
from routing.models import Lead, LeadStatus, ReturnPolicy
from routing.services import leads_route
from tests.factories import LeadFactory, MembershipFactory, QueueFactory, RuleFactory, TimeOffFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

WORKERS = 4
PER_PHASE = 24
NAMES = ("ann", "bob", "cat", "dan")


@pytest.fixture(autouse=True)
def fresh_rule_cache(monkeypatch):
    monkeypatch.setattr(engine, "_cached", None)


def route_together(lead_ids):
    """Each worker routes its own batch (a thread with its own connection), all released at the same instant."""
    barrier = threading.Barrier(WORKERS)
    errors = []

    def work(i):
        try:
            barrier.wait()
            leads_route(lead_ids=lead_ids[i::WORKERS], skip_locked=False)
        except Exception as exc:  # surfaced below
            errors.append((i, exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors


def serial(queue, n):
    """The same number of picks one after another, in a twin queue: the rotation with nobody racing."""
    names = []
    for _ in range(n):
        with transaction.atomic():
            names.append(pick_assignee(queue_id=queue.id).assignee.username)
    return Counter(names)


@pytest.mark.parametrize("policy", [ReturnPolicy.KEEP_PLACE, ReturnPolicy.CATCH_UP])
def test_concurrent_batches_keep_the_rotation_exact_while_members_go_and_come_back(policy, rule_owner):
    sales, twin = QueueFactory(name="Sales", return_policy=policy), QueueFactory(name="Twin", return_policy=policy)
    users = {name: UserFactory(username=name) for name in NAMES}
    for name in NAMES:
        MembershipFactory(queue=sales, user=users[name])
        MembershipFactory(queue=twin, user=users[name])
    RuleFactory(owner=rule_owner, condition={"field": "email", "op": "exists"}, queue=sales)

    def away(*names):
        """Only `names` on time off from now on (one hour either side of the phase's batches)."""
        TimeOff.objects.all().delete()
        now = timezone.now()
        for name in names:
            TimeOffFactory(user=users[name], start=now - dt.timedelta(hours=1), end=now + dt.timedelta(hours=1))

    expected = Counter()
    for gone in [(), ("bob",), ("cat", "dan"), (), ("ann",), ()]:
        away(*gone)
        leads = LeadFactory.create_batch(PER_PHASE)
        route_together([lead.pk for lead in leads])
        phase = serial(twin, PER_PHASE)
        assert not set(gone) & set(phase)  # nobody away was given a lead
        expected += phase
        routed = Lead.objects.filter(queue=sales, status=LeadStatus.ASSIGNED)
        assert Counter(routed.values_list("assignee__username", flat=True)) == expected

    assert expected.total() == 6 * PER_PHASE
    ledger = DistributionDay.objects.filter(queue=sales).values_list("user__username", "assigned", "skipped_away")
    assigned, skipped = Counter(), Counter()
    for name, given, away_count in ledger:
        assigned[name] += given
        skipped[name] += away_count
    assert assigned == expected
    assert skipped == {"ann": PER_PHASE, "bob": PER_PHASE, "cat": PER_PHASE, "dan": PER_PHASE}
    if policy == ReturnPolicy.CATCH_UP:  # each member away for one phase caught up within the month
        assert set(expected.values()) == {6 * PER_PHASE // len(NAMES)}
