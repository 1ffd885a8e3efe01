"""The daily anomaly report on known histories: what moves beyond the band is flagged, what stays inside
is not, and the flagged measures reach the system owner and the rule's owner."""

import datetime as dt

import pytest
import time_machine
from django.core import mail

from audit.models import AuditAction, AuditEvent, Override
from exceptions.models import ExceptionStatus
from routing.integrations.models import OutboxEvent, OutboxStatus
from routing.models import LeadStatus
from routing.reports.anomalies import anomaly_report_build, anomaly_report_send, band_check
from routing.reports.models import AnomalyReport, ReconciliationReport, ReportKind
from tests.factories import (
    DeliveryTargetFactory,
    ExceptionItemFactory,
    LeadFactory,
    QueueFactory,
    RuleFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

DAY = dt.date(2026, 11, 20)


def at(day: dt.date, hour: int = 12) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC)


def trailing():
    return [DAY - dt.timedelta(days=n) for n in range(14, 0, -1)]


def measure(report, name):
    return next(m for m in report.data["measures"] if m["measure"] == name)


def test_band_check_floors_the_deviation_so_a_flat_history_needs_a_real_move():
    # Flat history of 2: deviation floored at max(0, 25% × 2, 1) = 1, band up to 2 + 3 × 1 = 5.
    assert band_check([2.0] * 14, 5) == {"value": 5, "mean": 2.0, "limit": 5.0, "flagged": False}
    assert band_check([2.0] * 14, 6)["flagged"] is True
    # A noisy history widens the band: mean 10, σ 4 → up to 22.
    assert band_check([6.0, 14.0] * 7, 21)["flagged"] is False


def dead_letters(day, n, target):
    for _ in range(n):
        OutboxEvent.objects.create(
            target=target,
            event_type="lead.assigned",
            payload={},
            created_at=at(day),
            next_attempt_at=at(day),
            status=OutboxStatus.DEAD,
            dead_at=at(day),
        )


def test_dead_letter_growth_beyond_the_band_is_flagged_and_a_normal_day_is_not():
    target = DeliveryTargetFactory()
    for day in trailing():
        dead_letters(day, 2, target)
    dead_letters(DAY, 6, target)
    report = anomaly_report_build(day=DAY)
    assert measure(report, "New dead letters") == {
        "measure": "New dead letters",
        "value": 6,
        "mean": 2.0,
        "limit": 5.0,
        "flagged": True,
        "link": "/console/dead-letters/",
    }
    quiet = anomaly_report_build(day=DAY - dt.timedelta(days=1))
    assert measure(quiet, "New dead letters")["flagged"] is False


def test_route_latency_and_the_exception_queue_are_compared_with_their_trailing_days():
    rule = RuleFactory()
    queue = QueueFactory(name="Triage")
    for day in trailing():
        LeadFactory(
            status=LeadStatus.ASSIGNED,
            rule=rule,
            occurred_at=at(day) - dt.timedelta(minutes=5),
            assigned_at=at(day),
            routed_at=at(day),
        )
        item = ExceptionItemFactory(queue=queue, opened_at=at(day, 9))
        item.status, item.resolved_at = ExceptionStatus.RESOLVED, at(day, 10)
        item.save()
    LeadFactory(
        status=LeadStatus.ASSIGNED,
        rule=rule,
        occurred_at=at(DAY) - dt.timedelta(minutes=45),
        assigned_at=at(DAY),
        routed_at=at(DAY),
    )
    for _ in range(8):
        ExceptionItemFactory(queue=queue, opened_at=at(DAY, 9))  # left open at the end of the day
    report = anomaly_report_build(day=DAY)
    latency = measure(report, "Route latency, median minutes")
    assert (latency["value"], latency["mean"], latency["flagged"]) == (45.0, 5.0, True)
    queue_size = measure(report, "Open exception items at the end of the day")
    assert (queue_size["value"], queue_size["mean"], queue_size["flagged"]) == (8, 0.0, True)


def test_repeated_overrides_of_a_rule_are_flagged_and_mailed_to_its_owner(settings):
    settings.HANDOFF = {**settings.HANDOFF, "SYSTEM_OWNER_EMAIL": "ops-lead@example.com"}
    owner = UserFactory(username="rhea", email="rhea@example.com")
    rule = RuleFactory(name="Partners", owner=owner)
    by = UserFactory(username="oz")
    for _ in range(3):
        Override.objects.create(
            lead=LeadFactory(), rule=rule, rule_version=1, to_queue=rule.queue, by=by, at=at(DAY), reason="x"
        )
    Override.objects.create(  # a single override of another rule is a decision, not a pattern
        lead=LeadFactory(), rule=RuleFactory(), rule_version=1, to_queue=rule.queue, by=by, at=at(DAY), reason="x"
    )
    report = anomaly_report_build(day=DAY)
    flagged = [m["measure"] for m in report.data["measures"] if m["flagged"]]
    assert flagged == ["Manual overrides of Partners"]
    assert report.flagged == 1
    assert anomaly_report_send(report) == 2
    to = {tuple(email.to): email for email in mail.outbox}
    assert set(to) == {("ops-lead@example.com",), ("rhea@example.com",)}
    assert "Manual overrides of Partners: 3" in to[("rhea@example.com",)].body


def test_a_flagged_parity_report_is_an_anomaly_and_a_rerun_replaces_the_days_report():
    ReconciliationReport.objects.create(
        kind=ReportKind.PARITY,
        period_start=at(DAY, 0),
        period_end=at(DAY + dt.timedelta(days=1), 0),
        created_at=at(DAY + dt.timedelta(days=1), 6),
        data={"gaps": ["web: 9 of 10 accepted leads routed"]},
        variance=0.1,
        flagged=True,
    )
    first = anomaly_report_build(day=DAY)
    assert measure(first, "Parity discrepancies")["flagged"] is True
    again = anomaly_report_build(day=DAY)
    assert again.pk == first.pk


def test_the_anomaly_page_shows_a_days_report(client, ops_person):
    report = anomaly_report_build(day=DAY)
    client.force_login(ops_person)
    page = client.get(f"/console/anomalies/?day={DAY}").content.decode()
    assert "Route latency, median minutes" in page and str(report.day.year) in page
    assert "No report for 2020-01-01" in client.get("/console/anomalies/?day=2020-01-01").content.decode()


def test_run_now_builds_yesterdays_report_from_the_console_audited_and_without_email(client, ops_person):
    client.force_login(ops_person)
    with time_machine.travel(dt.datetime(2026, 11, 21, 9, 0, tzinfo=dt.UTC), tick=False):
        page = client.post("/console/anomalies/", follow=True).content.decode()
        again = client.post("/console/anomalies/", follow=True)
    assert "Anomaly report for 2026-11-20 run now: 0 flagged." in page
    assert again.status_code == 200 and AnomalyReport.objects.filter(day=DAY).count() == 1  # once per day
    assert AuditEvent.objects.filter(action=AuditAction.REPORT_RUN, actor=ops_person).count() == 2
    assert mail.outbox == []
