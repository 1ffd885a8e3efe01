"""Who is actually there: the rotation skips members away or out of hours (time zones, a daylight-saving
change), keeps place or catches up as the queue says (round robin, weighted, least loaded), counts every pick
in the distribution ledger, and holds, raises or overflows when everyone is away."""

import datetime as dt
from collections import Counter
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import transaction

from audit.models import AuditAction, AuditEvent
from routing import engine
from routing.accounts.leads import Availability
from routing.assignment import Pick, period_start, pick_assignee, pick_assignees
from routing.availability.ledger import ledger_credit_back
from routing.availability.models import DistributionDay
from routing.models import AssignmentStrategy, DistributionPeriod, EveryoneAway, LeadStatus, ReturnPolicy
from routing.services import lead_route
from tests.factories import (
    LeadFactory,
    MembershipFactory,
    QueueFactory,
    RuleFactory,
    TimeOffFactory,
    UserFactory,
    WorkingHoursFactory,
)

pytestmark = pytest.mark.django_db

UTC = dt.UTC
SATURDAY = dt.datetime(2026, 12, 5, 10, 0, tzinfo=UTC)
MONDAY = dt.datetime(2026, 12, 7, 8, 0, tzinfo=UTC)  # 09:00 in Berlin, 03:00 in New York, 17:00 in Tokyo
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")


@pytest.fixture(autouse=True)
def fresh_rule_cache(monkeypatch):
    monkeypatch.setattr(engine, "_cached", None)


def member(queue, name, **fields):
    return MembershipFactory(queue=queue, user=UserFactory(username=name), **fields)


def hours(membership, zone, start="09:00", end="17:00", days=WEEKDAYS):
    WorkingHoursFactory(user=membership.user, timezone=zone, hours={day: [[start, end]] for day in days})


def away(membership, start, end, note="Holiday"):
    return TimeOffFactory(user=membership.user, start=start, end=end, note=note)


def picks(queue, n, at):
    """n picks, each in its own transaction (as n separate leads routed one after another)."""
    names = []
    for _ in range(n):
        with transaction.atomic():
            pick = pick_assignee(queue_id=queue.id, at=at)
        names.append(pick.assignee.username if pick.assignee else None)
    return names


def ledger(queue):
    rows = DistributionDay.objects.filter(queue=queue).select_related("user")
    return {row.user.username: row for row in rows}


# Who is in: time zones, daylight saving, time off.


def test_members_out_of_hours_in_other_time_zones_are_skipped():
    queue = QueueFactory()
    hours(member(queue, "berlin"), "Europe/Berlin")  # 09:00 local: in
    hours(member(queue, "newyork"), "America/New_York")  # 03:00 local: out
    hours(member(queue, "tokyo"), "Asia/Tokyo")  # 17:00 local: the day has just ended (half-open)
    member(queue, "anytime")  # no working hours: around the clock
    assert picks(queue, 4, MONDAY) == ["berlin", "anytime", "berlin", "anytime"]
    evening = MONDAY + dt.timedelta(hours=14)  # 22:00 UTC: 23:00 Berlin, 17:00 New York, 07:00 Tuesday Tokyo
    assert picks(queue, 2, evening) == ["anytime", "anytime"]
    # 21:00 UTC: 22:00 Berlin, 16:00 New York, 06:00 Tuesday Tokyo
    assert picks(queue, 2, MONDAY + dt.timedelta(hours=13)) == ["newyork", "anytime"]


def test_working_hours_follow_the_daylight_saving_change():
    """Berlin moves to summer time on Sunday 29 March 2026: 07:00 UTC is 08:00 on the Friday before, 09:00 on the
    Monday after."""
    queue = QueueFactory()
    hours(member(queue, "berlin"), "Europe/Berlin")
    member(queue, "anytime")
    friday, monday = dt.datetime(2026, 3, 27, 7, tzinfo=UTC), dt.datetime(2026, 3, 30, 7, tzinfo=UTC)
    assert picks(queue, 2, friday) == ["anytime", "anytime"]
    assert picks(queue, 2, monday) == ["berlin", "anytime"]
    assert picks(queue, 1, dt.datetime(2026, 3, 30, 15, 0, tzinfo=UTC)) == ["anytime"]  # 17:00 CEST: gone home
    anytime = queue.memberships.get(user__username="anytime")
    with transaction.atomic():
        words = pick_assignee(queue_id=queue.id, at=friday, exclude_user_id=anytime.user_id).why_nobody
    assert words == f"Nobody eligible in {queue.name}: berlin out of hours until 09:00 Europe/Berlin (Fri 27 Mar)."


def test_members_on_time_off_are_skipped_until_it_ends():
    queue = QueueFactory()
    member(queue, "ann")
    bob = member(queue, "bob")
    away(bob, MONDAY - dt.timedelta(days=1), MONDAY + dt.timedelta(hours=2))
    assert picks(queue, 3, MONDAY) == ["ann", "ann", "ann"]
    assert picks(queue, 2, MONDAY + dt.timedelta(hours=2)) == ["ann", "bob"]  # half-open: back at the end


def test_pick_assignee_decides_at_the_current_instant_by_default():
    queue = QueueFactory()
    hours(member(queue, "berlin"), "Europe/Berlin")
    member(queue, "anytime")
    with time_machine.travel(SATURDAY, tick=False):
        assert picks(queue, 2, None) == ["anytime", "anytime"]


# Return policy: keep place or catch up, per distribution period.


def away_for_picks(queue, who, n, at):
    """`who` on time off while n leads are picked at `at`; back right after."""
    period = away(who, at - dt.timedelta(minutes=1), at + dt.timedelta(minutes=1))
    sequence = picks(queue, n, at)
    period.delete()
    return sequence


def test_keep_place_gives_a_member_back_from_10_picks_away_no_extra_turns():
    queue = QueueFactory(return_policy=ReturnPolicy.KEEP_PLACE)
    member(queue, "a")
    b = member(queue, "b")
    assert picks(queue, 2, MONDAY) == ["a", "b"]
    assert away_for_picks(queue, b, 10, MONDAY) == ["a"] * 10
    assert picks(queue, 10, MONDAY) == ["a", "b"] * 5  # straight back into the round being served
    assert {name: row.assigned for name, row in ledger(queue).items()} == {"a": 16, "b": 6}


def test_catch_up_gives_a_member_back_from_10_picks_away_exactly_the_missed_turns():
    queue = QueueFactory(return_policy=ReturnPolicy.CATCH_UP)
    member(queue, "a")
    b = member(queue, "b")
    assert picks(queue, 2, MONDAY) == ["a", "b"]
    assert away_for_picks(queue, b, 10, MONDAY) == ["a"] * 10  # b missed 5 turns
    # served until level with a (5 more than under keep place), never more: then the round again
    assert picks(queue, 14, MONDAY) == ["b"] * 10 + ["a", "b", "a", "b"]
    assert {name: row.assigned for name, row in ledger(queue).items()} == {"a": 13, "b": 13}


def test_catch_up_gives_back_exactly_the_missed_turns_then_the_round():
    queue = QueueFactory(return_policy=ReturnPolicy.CATCH_UP)
    member(queue, "a")
    member(queue, "b")
    c = member(queue, "c")
    assert picks(queue, 3, MONDAY) == ["a", "b", "c"]
    assert away_for_picks(queue, c, 6, MONDAY) == ["a", "b"] * 3  # c missed 2 turns (6 picks among 3)
    # c is served until level with a and b (4 each), then a, b, c as before
    assert picks(queue, 9, MONDAY) == ["c", "c", "c", "a", "b", "c", "a", "b", "c"]
    day = ledger(queue)
    assert (day["a"].assigned, day["b"].assigned, day["c"].assigned) == (6, 6, 6)


def test_catch_up_never_gives_the_turns_of_a_previous_period():
    queue = QueueFactory(return_policy=ReturnPolicy.CATCH_UP, distribution_period=DistributionPeriod.DAY)
    member(queue, "a")
    b = member(queue, "b")
    sunday = MONDAY - dt.timedelta(days=1)
    assert away_for_picks(queue, b, 10, sunday) == ["a"] * 10  # Sunday: b away all day
    # Monday, a new period: b is still away for 4 picks, then back, owed only Monday's missed turns: b is
    # served until level with a over Monday (6 each), not over Sunday too
    assert away_for_picks(queue, b, 4, MONDAY) == ["a"] * 4
    assert picks(queue, 8, MONDAY) == ["b", "b", "b", "b", "a", "b", "a", "b"]
    queue.refresh_from_db()
    assert queue.period_started_at == dt.datetime(2026, 12, 7, tzinfo=UTC)
    assert queue.period_virtual_time == 10.0  # where the rotation stood when Monday's first pick came


def test_the_period_starts_in_the_queues_business_time_zone():
    berlin = ZoneInfo("Europe/Berlin")
    late_sunday = dt.datetime(2026, 3, 1, 23, 30, tzinfo=UTC)  # 00:30 on Monday 2 March in Berlin
    assert period_start(DistributionPeriod.DAY, late_sunday, berlin) == dt.datetime(2026, 3, 1, 23, tzinfo=UTC)
    assert period_start(DistributionPeriod.WEEK, late_sunday, berlin) == dt.datetime(2026, 3, 1, 23, tzinfo=UTC)
    assert period_start(DistributionPeriod.MONTH, late_sunday, berlin) == dt.datetime(2026, 2, 28, 23, tzinfo=UTC)
    summer = dt.datetime(2026, 4, 15, 12, tzinfo=UTC)
    assert period_start(DistributionPeriod.MONTH, summer, berlin) == dt.datetime(2026, 3, 31, 22, tzinfo=UTC)


@pytest.mark.parametrize("policy, light_after", [(ReturnPolicy.KEEP_PLACE, 2), (ReturnPolicy.CATCH_UP, 4)])
def test_weighted_round_robin_honours_the_return_policy(policy, light_after):
    queue = QueueFactory(strategy=AssignmentStrategy.WEIGHTED_ROUND_ROBIN, return_policy=policy)
    member(queue, "heavy", weight=3)
    light = member(queue, "light", weight=1)
    assert Counter(picks(queue, 4, MONDAY)) == {"heavy": 3, "light": 1}
    assert away_for_picks(queue, light, 8, MONDAY) == ["heavy"] * 8  # light missed 2 of 8
    after = picks(queue, 8, MONDAY)
    # keep place: light's usual quarter of the next 8; catch up: that plus the 2 it missed
    assert Counter(after) == {"light": light_after, "heavy": 8 - light_after}


@pytest.mark.parametrize("policy", [ReturnPolicy.KEEP_PLACE, ReturnPolicy.CATCH_UP])
def test_least_loaded_honours_the_return_policy(policy):
    """b is away for 6 leads, which a takes (6 open leads). Catch up: b, with fewer open leads, gets the next 6.
    Keep place: the 3 b missed count as b's load and a's 3 extra as a's (the ledger), so they alternate.
    (These picks are not committed as leads, so the loads stay as they are after the first 6.)"""
    queue = QueueFactory(strategy=AssignmentStrategy.LEAST_LOADED, return_policy=policy)
    a = member(queue, "a")
    b = member(queue, "b")
    assert away_for_picks(queue, b, 6, MONDAY) == ["a"] * 6
    LeadFactory.create_batch(6, assignee=a.user, status=LeadStatus.ASSIGNED)
    after = picks(queue, 6, MONDAY)
    expected = ["b"] * 6 if policy == ReturnPolicy.CATCH_UP else ["a", "b"] * 3
    assert after == expected


def test_least_loaded_serves_the_fewest_open_leads_first_whatever_the_policy():
    queue = QueueFactory(strategy=AssignmentStrategy.LEAST_LOADED, return_policy=ReturnPolicy.CATCH_UP)
    member(queue, "a")
    b = member(queue, "b")
    LeadFactory.create_batch(3, assignee=b.user, status=LeadStatus.ASSIGNED)
    with transaction.atomic():
        batch = pick_assignees(queue_id=queue.id, count=5, at=MONDAY)
    # a from 0 open leads, b from 3: level at 3, then the tags (b has not been served yet)
    assert [p.assignee.username for p in batch] == ["a", "a", "a", "b", "a"]


# The ledger.


@pytest.fixture
def crowd():
    """A queue with a cap of 2 on Monday 09:00 in Berlin: ann and bob in, cat on time off, dan marked unavailable,
    eve at the cap, fay out of hours (starts at 10:00 in Berlin), gus inactive (not counted)."""
    queue = QueueFactory(name="Sales", max_open_per_member=2)
    member(queue, "ann")
    member(queue, "bob")
    away(member(queue, "cat"), MONDAY - dt.timedelta(days=2), MONDAY + dt.timedelta(days=2))
    member(queue, "dan", is_available=False)
    eve = member(queue, "eve")
    LeadFactory.create_batch(2, assignee=eve.user, status=LeadStatus.ASSIGNED)
    hours(member(queue, "fay"), "Europe/Berlin", start="10:00")
    gus = member(queue, "gus")
    gus.user.is_active = False
    gus.user.save()
    return queue


def test_the_ledger_counts_every_pick_exactly(crowd, django_assert_num_queries):
    # lock the queue, members, working hours, time off, lock the people, their loads, the passes, the queue,
    # the time off notes (nobody was in for the 5th), the ledger
    with transaction.atomic(), django_assert_num_queries(10):
        batch = pick_assignees(queue_id=crowd.id, count=5, at=MONDAY)
    assert [p.assignee.username if p.assignee else None for p in batch] == ["ann", "bob", "ann", "bob", None]
    day = ledger(crowd)
    assert set(day) == {"ann", "bob", "cat", "dan", "eve", "fay"}  # gus is inactive: not a member for routing
    assert {name: row.assigned for name, row in day.items()} == {n: 2 if n in ("ann", "bob") else 0 for n in day}
    for row in day.values():
        assert row.day == MONDAY.date()
        assert row.expected_if_always_in == pytest.approx(5 / 6)  # 5 picks, 6 active members, weight 1
    # picks 1-3: ann and bob eligible (1/2 each); pick 4: ann at the cap, bob alone; pick 5: nobody
    assert {name: row.expected for name, row in day.items()} == pytest.approx(
        {"ann": 1.5, "bob": 2.5, "cat": 0.0, "dan": 0.0, "eve": 0.0, "fay": 0.0}
    )
    skipped = {
        name: (row.skipped_away, row.skipped_out_of_hours, row.skipped_at_cap, row.skipped_unavailable)
        for name, row in day.items()
    }
    assert skipped == {
        "ann": (0, 0, 2, 0),  # the 4th and 5th picks: at the cap by then
        "bob": (0, 0, 1, 0),  # the 5th
        "cat": (5, 0, 0, 0),
        "dan": (0, 0, 0, 5),
        "eve": (0, 0, 5, 0),
        "fay": (0, 5, 0, 0),
    }


def test_the_ledger_adds_up_over_batches_and_credit_backs(crowd):
    crowd.max_open_per_member = None
    crowd.save()
    for _ in range(3):
        with transaction.atomic():
            pick_assignees(queue_id=crowd.id, count=3, at=MONDAY)
    ann = crowd.memberships.get(user__username="ann").user
    ledger_credit_back(crowd.id, ann.id, MONDAY.date())
    ledger_credit_back(crowd.id, ann.id, MONDAY.date())
    day = ledger(crowd)
    assert (day["ann"].assigned, day["bob"].assigned, day["eve"].assigned) == (3, 3, 3)
    assert (day["ann"].credited_back, day["bob"].credited_back) == (2, 0)
    assert day["cat"].skipped_away == 9 and day["dan"].skipped_unavailable == 9
    assert day["ann"].expected == pytest.approx(3.0)
    assert sum(row.expected_if_always_in for row in day.values()) == pytest.approx(9.0)


def test_a_batch_costs_the_same_queries_for_5_or_50_leads(django_assert_num_queries):
    queue = QueueFactory()
    for name in ("ann", "bob", "cat"):
        hours(member(queue, name), "Europe/Berlin")
    with transaction.atomic():
        pick_assignees(queue_id=queue.id, count=1, at=MONDAY)  # the first pick of the month rolls the period
    for count in (5, 50):
        # lock the queue, members, working hours, time off, the passes, the queue, the ledger
        with transaction.atomic(), django_assert_num_queries(7):
            assert all(p.assignee for p in pick_assignees(queue_id=queue.id, count=count, at=MONDAY))
    assert sum(row.assigned for row in DistributionDay.objects.filter(queue=queue)) == 56


# Everyone away: hold, exception, overflow.


@pytest.fixture
def weekend():
    """Saturday morning: ann works Berlin weekdays, bob is on holiday until Monday, cat is at the cap; the
    overflow queue has someone in."""
    spill = QueueFactory(name="Spill")
    member(spill, "sid")
    queue = QueueFactory(name="Sales", overflow_queue=spill, max_open_per_member=5)
    hours(member(queue, "ann"), "Europe/Berlin")
    away(member(queue, "bob"), SATURDAY - dt.timedelta(days=1), dt.datetime(2026, 12, 7, tzinfo=UTC))
    cat = member(queue, "cat")
    LeadFactory.create_batch(5, assignee=cat.user, status=LeadStatus.ASSIGNED)
    return queue


WEEKEND_WHY = (
    "Nobody eligible in Sales: ann out of hours until 09:00 Europe/Berlin (Mon 7 Dec); bob away (time off: Holiday)"
    " until 2026-12-07; cat at the cap of 5 open leads."
)


def batch(queue, count=2, at=SATURDAY):
    with transaction.atomic():
        return pick_assignees(queue_id=queue.id, count=count, at=at)


def test_everyone_away_holds_until_the_first_member_is_back(weekend):
    weekend.when_everyone_away = EveryoneAway.HOLD
    weekend.save()
    held = Pick(weekend, None, (), hold_until=dt.datetime(2026, 12, 7, tzinfo=UTC), why_nobody=WEEKEND_WHY)
    assert batch(weekend) == [held, held]  # bob's holiday ends before ann's Monday starts; sid is not asked
    assert not DistributionDay.objects.filter(queue__name="Spill").exists()
    assert ledger(weekend)["bob"].skipped_away == 2


def test_everyone_away_with_nobody_back_within_the_horizon_is_an_exception(weekend):
    weekend.when_everyone_away = EveryoneAway.HOLD
    weekend.save()
    weekend.memberships.filter(user__username="ann").update(is_available=False)
    bob = weekend.memberships.get(user__username="bob")
    bob.user.time_off.update(end=SATURDAY + dt.timedelta(days=800))
    (pick,) = batch(weekend, count=1)
    assert pick.assignee is None and pick.hold_until is None and pick.queue == weekend
    assert pick.why_nobody == (
        "Nobody eligible in Sales: ann marked unavailable; bob away (time off: Holiday) until 2029-02-12 10:00 UTC;"
        " cat at the cap of 5 open leads."
    )


def test_everyone_away_raises_an_exception_without_overflowing(weekend):
    weekend.when_everyone_away = EveryoneAway.EXCEPTION
    weekend.save()
    assert batch(weekend) == [Pick(weekend, None, (), why_nobody=WEEKEND_WHY)] * 2
    assert not DistributionDay.objects.filter(queue__name="Spill").exists()


def test_everyone_away_overflows_by_default(weekend):
    spill = weekend.overflow_queue
    assert batch(weekend) == [Pick(spill, spill.memberships.get().user, ("Sales",))] * 2


def test_nobody_marked_available_overflows_whatever_the_queue_says(weekend):
    """Only away or out-of-hours members are waited for: marked unavailable or at the cap is today's case."""
    weekend.when_everyone_away = EveryoneAway.HOLD
    weekend.save()
    weekend.memberships.exclude(user__username="cat").update(is_available=False)
    spill = weekend.overflow_queue
    assert batch(weekend, count=1) == [Pick(spill, spill.memberships.get().user, ("Sales",))]


def test_nobody_anywhere_says_why_for_each_queue_tried(weekend):
    spill = weekend.overflow_queue
    spill.memberships.update(is_available=False)
    (pick,) = batch(weekend, count=1)
    assert (pick.queue, pick.assignee, pick.overflowed_from) == (weekend, None, ("Spill",))
    assert pick.why_nobody == f"{WEEKEND_WHY} Nobody eligible in Spill: sid marked unavailable."


def test_an_overflow_queue_that_holds_keeps_the_lead_and_says_why_for_each_queue():
    spill = QueueFactory(name="Spill", when_everyone_away=EveryoneAway.HOLD)
    hours(member(spill, "sid"), "Europe/Berlin")
    queue = QueueFactory(name="Sales", overflow_queue=spill)
    member(queue, "uma", is_available=False)
    (pick,) = batch(queue, count=1)
    assert pick == Pick(
        spill,
        None,
        ("Sales",),
        hold_until=dt.datetime(2026, 12, 7, 8, tzinfo=UTC),
        why_nobody="Nobody eligible in Sales: uma marked unavailable. Nobody eligible in Spill: sid out of hours"
        " until 09:00 Europe/Berlin (Mon 7 Dec).",
    )


def test_a_queue_without_members_says_so():
    queue = QueueFactory(name="Empty")
    assert batch(queue, count=1) == [
        Pick(queue, None, (), why_nobody="Nobody eligible in Empty: it has no active members.")
    ]


def test_a_held_batch_routes_once_someone_is_in(weekend):
    weekend.when_everyone_away = EveryoneAway.HOLD
    weekend.save()
    assert batch(weekend, at=dt.datetime(2026, 12, 7, tzinfo=UTC))[0].assignee.username == "bob"


# The sticky owner and the account owner.


def test_a_sticky_owner_out_of_hours_falls_back_to_the_queue(rule_owner):
    queue = QueueFactory(name="Sales")
    ann, bob = member(queue, "ann"), member(queue, "bob")
    hours(ann, "Europe/Berlin")
    RuleFactory(owner=rule_owner, condition={"field": "email", "op": "exists"}, queue=queue)
    with time_machine.travel(MONDAY + dt.timedelta(hours=1), tick=False):
        first = LeadFactory(email="jo@acme.com")
        lead_route(lead_id=first.id)
        first.refresh_from_db()
    assert first.assignee == ann.user
    with time_machine.travel(MONDAY + dt.timedelta(hours=10), tick=False):  # 19:00 in Berlin
        second = LeadFactory(email="jo@acme.com")
        lead_route(lead_id=second.id)
        second.refresh_from_db()
    assert second.assignee == bob.user
    note = AuditEvent.objects.get(lead=second, action=AuditAction.ROUTING_DECISION).data["assignee_note"]
    assert note == (
        f"the person's open lead {first.lead_id} is ann's, but ann is out of working hours until 09:00"
        " Europe/Berlin (Tue 8 Dec)"
    )


def test_availability_says_who_is_away_or_out_of_hours_at_the_batch_instant():
    queue = QueueFactory()
    ann, bob, cat = member(queue, "ann"), member(queue, "bob"), member(queue, "cat")
    hours(ann, "Europe/Berlin")
    away(bob, SATURDAY, dt.datetime(2026, 12, 9, tzinfo=UTC))
    at_saturday = Availability([ann.user, bob.user, cat.user], at=SATURDAY)
    assert at_saturday.unavailable_because(ann.user, queue.id) == (
        "ann is out of working hours until 09:00 Europe/Berlin (Mon 7 Dec)"
    )
    assert at_saturday.unavailable_because(bob.user, queue.id) == "bob is away (time off) until 2026-12-09"
    assert at_saturday.unavailable_because(cat.user, queue.id) == ""
    at_monday = Availability([ann.user, bob.user], at=MONDAY)
    assert at_monday.unavailable_because(ann.user, queue.id) == ""
    ann_unavailable = queue.memberships.filter(user=ann.user)
    ann_unavailable.update(is_available=False)
    assert Availability(at=MONDAY).unavailable_because(ann.user, queue.id) == "ann is marked unavailable in the queue"
