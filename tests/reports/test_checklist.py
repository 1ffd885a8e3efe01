"""The Monday checklist on a known week with planted problems: each answer's verdict and figures."""

import datetime as dt

import pytest
import time_machine
from django.core import mail

from audit.models import Override
from exceptions.models import ExceptionStatus
from routing.integrations.models import OutboxEvent, OutboxStatus
from routing.models import LeadStatus
from routing.reports.checklist import monday_checklist, percentile
from routing.reports.mail import checklist_send
from tests.factories import (
    DeliveryTargetFactory,
    ExceptionItemFactory,
    LeadFactory,
    QueueFactory,
    RuleFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

MONDAY = dt.datetime(2026, 11, 23, 8, 0, tzinfo=dt.UTC)  # reviews 2026-11-16 … 2026-11-22
IN_WEEK = dt.datetime(2026, 11, 18, 10, 0, tzinfo=dt.UTC)
BEFORE = dt.datetime(2026, 11, 10, 10, 0, tzinfo=dt.UTC)


def assigned(rule, minutes: float, at=IN_WEEK):
    return LeadFactory(
        status=LeadStatus.ASSIGNED,
        rule=rule,
        rule_version=1,
        queue=rule.queue,
        occurred_at=at - dt.timedelta(minutes=minutes),
        routed_at=at,
        assigned_at=at,
    )


@pytest.fixture
def week(rule_owner):
    with time_machine.travel(BEFORE, tick=False):
        fast = RuleFactory(name="Fast lane", owner=rule_owner, sla_minutes=15)
        steady = RuleFactory(name="Steady", owner=rule_owner, sla_minutes=15)
        edited = RuleFactory(name="Edited quietly", owner=rule_owner)
    for minutes in (2, 4, 30):
        assigned(fast, minutes)
    for minutes in (1, 3):
        assigned(steady, minutes)
    # Queues: A shrinks 3 → 1, B grows 0 → 1.
    a, b = QueueFactory(name="A"), QueueFactory(name="B")
    for n in range(3):
        item = ExceptionItemFactory(queue=a, opened_at=BEFORE)
        if n < 2:
            item.status, item.resolved_at = ExceptionStatus.RESOLVED, IN_WEEK
            item.save()
    ExceptionItemFactory(queue=b, opened_at=IN_WEEK)
    # Overrides: Fast lane twice this week, once the week before.
    ops = UserFactory(username="olive")
    for at in (IN_WEEK, IN_WEEK, BEFORE):
        lead = assigned(fast, 5, at=at)
        Override.objects.create(lead=lead, rule=fast, rule_version=1, to_queue=fast.queue, by=ops, at=at, reason="x")
    # A draft edit this week with no sign-off.
    with time_machine.travel(IN_WEEK, tick=False):
        edited.description = "Tweaked without telling anyone."
        edited.save()
    # One dead letter from two hours ago.
    OutboxEvent.objects.create(
        target=DeliveryTargetFactory(),
        event_type="lead.assigned",
        payload={},
        created_at=MONDAY - dt.timedelta(hours=3),
        next_attempt_at=MONDAY,
        status=OutboxStatus.DEAD,
        dead_at=MONDAY - dt.timedelta(hours=2),
    )


def test_each_answer_on_a_known_week(week):
    checklist = monday_checklist(now=MONDAY)
    assert (checklist.week_start, checklist.week_end) == (
        dt.datetime(2026, 11, 16, tzinfo=dt.UTC),
        dt.datetime(2026, 11, 23, tzinfo=dt.UTC),
    )
    queues, overrides, top, latency, attribution, dead = checklist.answers[:6]  # then success targets (governance)
    assert (queues.ok, queues.summary) == (
        False,
        "2 open at the week's end (Mon 23 Nov) against 3 a week before; grew: B — 2 open right now",
    )
    assert (overrides.ok, overrides.details) == (
        False,
        ["Fast lane: overridden 2×", "Edited quietly: changed without a sign-off that week"],
    )
    assert top.ok is True and top.details[0].startswith("Fast lane: 5 leads, owner rowan, SLA 15 min")
    assert latency.ok is False
    # Fast lane: 2, 4, 5, 5, 30 min → median 5, P95 at rank 3.8 = 5 + (30 - 5) × 0.8 = 25; Steady: 1, 3.
    assert latency.details == [
        "Fast lane: median 5.0 min, P95 25.0 min, SLA 15 min",
        "Steady: median 2.0 min, P95 2.9 min, SLA 15 min",
    ]
    # All seven: 1, 2, 3, 4, 5, 5, 30 → median 4, P95 at rank 5.7 = 5 + 25 × 0.7 = 22.5.
    assert latency.summary == "Overall median 4.0 min, P95 22.5 min; P95 over SLA: Fast lane"
    assert (attribution.ok, attribution.summary) == (False, "No attribution reconciliation this week")
    assert (dead.ok, dead.summary) == (False, "Yes: 1")
    assert not checklist.all_ok


def test_percentile_interpolates_like_percentile_cont():
    assert percentile([1.0, 2.0, 3.0, 4.0, 30.0], 0.5) == 3.0
    assert percentile([1.0, 2.0, 3.0, 4.0, 30.0], 0.95) == pytest.approx(24.8)
    assert percentile([7.0], 0.95) == 7.0


def test_the_checklist_is_emailed_to_the_system_owner_and_listed_recipients(week, settings):
    settings.HANDOFF = {
        **settings.HANDOFF,
        "SYSTEM_OWNER_EMAIL": "ops-lead@example.com",
        "CHECKLIST_RECIPIENTS": ["gtm@example.com"],
    }
    assert checklist_send(monday_checklist(now=MONDAY)) == 2
    (email,) = mail.outbox
    assert sorted(email.to) == ["gtm@example.com", "ops-lead@example.com"]
    assert email.subject == "[Handoff] Monday checklist, week of 2026-11-16: 5 to look at"
    assert "!! Is there any dead-letter item older than 1 hour?" in email.body


def test_the_checklist_page_answers_with_links(client, week, ops_person):
    client.force_login(ops_person)
    page = client.get("/console/checklist/").content.decode()
    assert "Are exception queues smaller this week than last?" in page
    assert 'href="/console/dead-letters/?older_than_hours=1"' in page


def test_on_a_thursday_the_checklist_says_which_week_it_reviews_and_what_is_open_right_now(week, client, ops_person):
    thursday = MONDAY + dt.timedelta(days=3)
    for _ in range(95):
        ExceptionItemFactory(queue=QueueFactory(name="B"), opened_at=thursday - dt.timedelta(hours=1))
    queues = monday_checklist(now=thursday).answers[0]
    assert queues.summary.startswith("2 open at the week's end (Mon 23 Nov)")
    assert queues.summary.endswith("— 97 open right now")
    client.force_login(ops_person)
    with time_machine.travel(thursday, tick=False):
        page = client.get("/console/checklist/").content.decode()
    assert "The week reviewed: Mon 16 Nov 2026 to Mon 23 Nov 2026" in page
