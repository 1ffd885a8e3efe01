"""Assignment strategies, eligibility, caps and overflow; fairness when membership changes."""

from collections import Counter

import pytest
from django.db import transaction

from exceptions.models import ExceptionReason
from routing.assignment import pick_assignee
from routing.models import AssignmentStrategy, LeadStatus
from routing.services import lead_route
from tests.factories import LeadFactory, MembershipFactory, QueueFactory, RuleFactory, UserFactory

pytestmark = pytest.mark.django_db


def picks(queue, n):
    names = []
    for _ in range(n):
        with transaction.atomic():
            pick = pick_assignee(queue_id=queue.id)
            names.append(pick.assignee.username if pick.assignee else None)
    return names


def members(queue, *usernames, **fields):
    return [MembershipFactory(queue=queue, user=UserFactory(username=name), **fields) for name in usernames]


def test_round_robin_rotates_exactly_in_join_order():
    queue = QueueFactory()
    members(queue, "a", "b", "c")
    assert picks(queue, 7) == ["a", "b", "c", "a", "b", "c", "a"]


def test_unavailable_members_are_skipped_and_rejoin_without_a_burst():
    queue = QueueFactory()
    a, b, c = members(queue, "a", "b", "c")
    b.is_available = False
    b.save()
    assert picks(queue, 4) == ["a", "c", "a", "c"]
    b.is_available = True
    b.save()
    # b rejoins the current round in its usual place: no burst of leads to catch up.
    assert picks(queue, 6) == ["a", "b", "c", "a", "b", "c"]


def test_a_new_member_joins_the_rotation_without_resetting_the_others():
    queue = QueueFactory()
    members(queue, "a", "b")
    assert picks(queue, 3) == ["a", "b", "a"]
    members(queue, "c")
    later = picks(queue, 9)
    assert Counter(later) == {"a": 3, "b": 3, "c": 3}
    assert later[:3] == ["b", "c", "a"]


def test_a_removed_member_leaves_the_rest_in_order():
    queue = QueueFactory()
    a, b, c = members(queue, "a", "b", "c")
    assert picks(queue, 2) == ["a", "b"]
    b.delete()
    assert picks(queue, 4) == ["c", "a", "c", "a"]


def test_weighted_round_robin_shares_by_weight():
    queue = QueueFactory(strategy=AssignmentStrategy.WEIGHTED_ROUND_ROBIN)
    MembershipFactory(queue=queue, user=UserFactory(username="heavy"), weight=3)
    MembershipFactory(queue=queue, user=UserFactory(username="light"), weight=1)
    sequence = picks(queue, 40)
    assert Counter(sequence) == {"heavy": 30, "light": 10}
    assert max(len(run) for run in "".join("h" if s == "heavy" else "l" for s in sequence).split("l")) <= 3


def test_least_loaded_picks_the_member_with_fewest_open_leads():
    queue = QueueFactory(strategy=AssignmentStrategy.LEAST_LOADED)
    busy, idle = members(queue, "busy", "idle")
    LeadFactory.create_batch(3, assignee=busy.user, status=LeadStatus.ASSIGNED)
    LeadFactory.create_batch(2, assignee=idle.user, status=LeadStatus.EXCEPTION)  # not open assignments
    assert picks(queue, 1) == ["idle"]


def test_cap_of_open_leads_is_respected():
    queue = QueueFactory(max_open_per_member=2)
    full, free = members(queue, "full", "free")
    LeadFactory.create_batch(2, assignee=full.user, status=LeadStatus.ASSIGNED)
    assert picks(queue, 3) == ["free", "free", "free"]


def test_a_member_at_the_cap_does_not_hold_the_round_back():
    queue = QueueFactory(max_open_per_member=5)
    a, b, capped = members(queue, "a", "b", "capped")
    LeadFactory.create_batch(5, assignee=capped.user, status=LeadStatus.ASSIGNED)
    assert Counter(picks(queue, 20)) == {"a": 10, "b": 10}
    members(queue, "newcomer")
    # the newcomer joins the current round: no run of leads to catch up with a and b
    assert Counter(picks(queue, 6)) == {"a": 2, "b": 2, "newcomer": 2}


def test_inactive_accounts_are_not_eligible():
    queue = QueueFactory()
    gone, here = members(queue, "gone", "here")
    gone.user.is_active = False
    gone.user.save()
    assert picks(queue, 2) == ["here", "here"]


def test_no_eligible_member_overflows_to_the_overflow_queue():
    spill = QueueFactory(name="Spill")
    members(spill, "s")
    queue = QueueFactory(overflow_queue=spill)
    members(queue, "away", is_available=False)
    with transaction.atomic():
        pick = pick_assignee(queue_id=queue.id)
    assert (pick.queue, pick.assignee.username, pick.overflowed_from) == (spill, "s", (queue.name,))


def test_overflow_cycles_end_in_no_assignee():
    first, second = QueueFactory(), QueueFactory()
    first.overflow_queue, second.overflow_queue = second, first
    first.save()
    second.save()
    with transaction.atomic():
        pick = pick_assignee(queue_id=first.id)
    assert pick.assignee is None and pick.queue == first


def test_nobody_eligible_opens_no_eligible_assignee_never_silently_unassigned():
    queue = QueueFactory(name="Empty")
    RuleFactory(condition={"field": "email", "op": "exists"}, queue=queue)
    lead = LeadFactory()
    lead_route(lead_id=lead.id)
    lead.refresh_from_db()
    assert lead.status == LeadStatus.EXCEPTION and lead.queue == queue and lead.assignee is None
    assert lead.exceptions.get().reason == ExceptionReason.NO_ELIGIBLE_ASSIGNEE
