"""The Monday checklist and the anomaly report in Chromium: answers with their links, and screenshots."""

import datetime as dt

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from routing.integrations.models import OutboxEvent, OutboxStatus
from routing.models import LeadStatus
from routing.reports.anomalies import anomaly_report_build
from tests.factories import DeliveryTargetFactory, LeadFactory, MembershipFactory, QueueFactory, RuleFactory

pytestmark = pytest.mark.django_db(transaction=True)


def last_week():
    """Leads routed last week by two owned rules, and a dead letter two hours old."""
    now = timezone.now()
    monday = (now - dt.timedelta(days=now.weekday() + 7)).replace(hour=10, minute=0, second=0, microsecond=0)
    queue = QueueFactory(name="Sales")
    MembershipFactory(queue=queue, user__username="sam")
    for name, minutes in (("Inbound North America", 6), ("Partner referrals", 40)):
        rule = RuleFactory(name=name, queue=queue, sla_minutes=30)
        for day in range(5):
            at = monday + dt.timedelta(days=day)
            LeadFactory(
                status=LeadStatus.ASSIGNED,
                rule=rule,
                rule_version=1,
                queue=queue,
                routed_at=at,
                assigned_at=at,
                occurred_at=at - dt.timedelta(minutes=minutes),
            )
    OutboxEvent.objects.create(
        target=DeliveryTargetFactory(name="CRM"),
        event_type="lead.assigned",
        payload={},
        created_at=now - dt.timedelta(hours=3),
        next_attempt_at=now,
        status=OutboxStatus.DEAD,
        dead_at=now - dt.timedelta(hours=2),
        last_error="HTTP 422: unknown owner",
    )


def test_the_checklist_answers_each_question_and_links_to_what_it_counts(ops_page, tmp_path):
    last_week()
    ops_page.get_by_role("link", name="Checklist").click()
    items = ops_page.locator("#checklist > li")
    expect(items).to_have_count(7)
    latency = items.nth(3)
    expect(latency).to_contain_text("P95 over SLA: Partner referrals")
    expect(latency).to_have_class("fail")
    dead = items.nth(5)
    expect(dead).to_contain_text("Yes: 1")
    expect(items.nth(6)).to_contain_text("meet its success targets")
    ops_page.screenshot(path=tmp_path / "checklist.png", full_page=True)
    dead.get_by_role("link", name="Yes: 1").click()
    expect(ops_page.get_by_role("heading", name="Dead letters")).to_be_visible()
    expect(ops_page.locator("#dead")).to_contain_text("HTTP 422: unknown owner")


def test_the_anomaly_report_flags_what_moved(ops_page):
    last_week()
    anomaly_report_build(day=timezone.now().date() - dt.timedelta(days=1))
    ops_page.get_by_role("link", name="Anomalies").click()
    expect(ops_page.locator("#measures")).to_contain_text("New dead letters")
    expect(ops_page.locator("#measures")).to_contain_text("Route latency, median minutes")
