"""Daily parity on a known sample with planted gaps: exact counts per origin and target, the gap list, the
incident and the email, stuck work listed and sent again, the command, and incident acknowledge/resolve."""

import datetime as dt
import io

import pytest
from django.core import mail
from django.core.management import CommandError, call_command
from django.utils import timezone

from audit.models import AuditAction, AuditEvent
from exceptions.services import InvalidAction
from routing.integrations.models import EventType, OutboxEvent, OutboxStatus
from routing.models import LeadStatus
from routing.reports.incidents import incident_acknowledge, incident_resolve
from routing.reports.models import Incident
from routing.reports.parity import parity_reconcile
from tests.factories import DeliveryTargetFactory, LeadFactory, SourceFactory

pytestmark = pytest.mark.django_db

DAY = dt.date(2026, 11, 20)
NOON = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)
NEXT_MORNING = dt.datetime(2026, 11, 21, 6, 0, tzinfo=dt.UTC)


def leads(origin, n, status, *, at=NOON):
    return [LeadFactory(origin=origin, status=status, received_at=at) for _ in range(n)]


def delivered(target, lead, status=OutboxStatus.DELIVERED, created_at=NOON):
    return OutboxEvent.objects.create(
        target=target,
        event_type=EventType.LEAD_ASSIGNED,
        lead=lead,
        payload={},
        created_at=created_at,
        next_attempt_at=created_at,
        status=status,
    )


@pytest.fixture
def sample(settings):
    """web: 10 leads (8 assigned, 1 exception, 1 still received), 7 of the 8 delivered to the CRM.
    chat: 5 assigned, all delivered. A web lead from the next day does not count."""
    settings.HANDOFF = {**settings.HANDOFF, "PARITY_THRESHOLD": 0.01, "SYSTEM_OWNER_EMAIL": "ops-lead@example.com"}
    web, chat = SourceFactory(name="web"), SourceFactory(name="chat")
    crm = DeliveryTargetFactory(name="CRM", events=["lead.assigned"])
    DeliveryTargetFactory(name="Analytics", events=["exception.resolved"])  # not expected to get assignments
    web_assigned = leads(web, 8, LeadStatus.ASSIGNED)
    leads(web, 1, LeadStatus.EXCEPTION)
    (stuck,) = leads(web, 1, LeadStatus.RECEIVED)
    for lead in web_assigned[:7]:
        delivered(crm, lead)
    delivered(crm, web_assigned[7], status=OutboxStatus.PENDING)  # the eighth never got through
    for lead in leads(chat, 5, LeadStatus.ASSIGNED):
        delivered(crm, lead)
    leads(web, 3, LeadStatus.RECEIVED, at=NOON + dt.timedelta(days=1))
    return {"stuck": stuck, "undelivered": web_assigned[7]}


def test_parity_counts_each_origin_and_target_and_lists_the_planted_gaps(sample, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        report = parity_reconcile(day=DAY, now=NEXT_MORNING)
    web, chat = sorted(report.data["origins"], key=lambda row: row["origin"], reverse=True)
    assert (web["origin"], web["accepted"], web["routed"], web["assigned"], web["waiting"]) == ("web", 10, 9, 8, 1)
    assert web["deliveries"] == {"CRM": {"delivered": 7, "expected": 8, "gap": 0.125}}
    assert (chat["accepted"], chat["routed"], chat["deliveries"]["CRM"]["delivered"]) == (5, 5, 5)
    assert report.data["gaps"] == [
        "web → CRM: 7 of 8 assigned leads delivered",
        "web: 9 of 10 accepted leads routed",
    ]
    assert (report.variance, report.flagged) == (0.125, True)
    incident = Incident.objects.get()
    assert incident.title == "Parity gap on 2026-11-20: 2 discrepancies"
    (email,) = mail.outbox
    assert email.to == ["ops-lead@example.com"] and "web: 9 of 10 accepted leads routed" in email.body


def test_stuck_leads_and_events_are_listed_and_sent_again(sample, settings):
    settings.HANDOFF = {**settings.HANDOFF, "DELIVERY_GRACE_SECONDS": 3600}
    report = parity_reconcile(day=DAY, now=NEXT_MORNING)
    stuck_leads = report.data["stuck_leads"]
    # Only the day's waiting lead: the next day's three arrive after NEXT_MORNING.
    assert stuck_leads == {"count": 1, "ids": [sample["stuck"].pk]}
    assert report.data["stuck_events"]["ids"] == [OutboxEvent.objects.get(lead=sample["undelivered"]).pk]
    event = OutboxEvent.objects.get(lead=sample["undelivered"])
    assert event.next_attempt_at == NEXT_MORNING  # due now, for the delivery sweep


def test_a_gap_under_the_threshold_is_reported_without_an_incident(sample, settings):
    settings.HANDOFF = {**settings.HANDOFF, "PARITY_THRESHOLD": 0.2}
    report = parity_reconcile(day=DAY, now=NEXT_MORNING)
    assert (report.flagged, report.data["gaps"], Incident.objects.count()) == (False, [], 0)


def test_the_reconcile_command_prints_the_day_and_refuses_a_bad_date(sample):
    out = io.StringIO()
    call_command("reconcile", "--date", "2026-11-20", stdout=out)
    text = out.getvalue()
    assert "  web: accepted 10, routed 9, still waiting 1; delivered CRM 7/8" in text
    assert "  chat: accepted 5, routed 5, still waiting 0; delivered CRM 5/5" in text
    assert "Discrepancies above the threshold" in text
    with pytest.raises(CommandError, match="is not a date"):
        call_command("reconcile", "--date", "yesterday")


def test_an_incident_is_acknowledged_once_and_resolved_with_a_note(sample, ops_person, rule_owner):
    parity_reconcile(day=DAY, now=timezone.now())
    incident = Incident.objects.get()
    incident_acknowledge(incident=incident, by=ops_person)
    with pytest.raises(InvalidAction, match="already acknowledged"):
        incident_acknowledge(incident=incident, by=rule_owner)
    with pytest.raises(InvalidAction, match="Say what was found"):
        incident_resolve(incident=incident, by=ops_person, note=" ")
    resolved = incident_resolve(incident=incident, by=ops_person, note="CRM was down 02:00-02:20; replayed.")
    assert (resolved.status, resolved.acknowledged_by, resolved.resolved_by) == ("resolved", ops_person, ops_person)


def test_the_reconciliation_screens_show_reports_and_take_incident_actions(client, sample, ops_person, outsider):
    report = parity_reconcile(day=DAY, now=NEXT_MORNING)
    client.force_login(ops_person)
    page = client.get("/console/reconciliation/").content.decode()
    assert "Parity gap on 2026-11-20: 2 discrepancies" in page
    detail = client.get(f"/console/reconciliation/{report.pk}/").content.decode()
    assert "7 / 8" in detail and "web → CRM: 7 of 8 assigned leads delivered" in detail
    incident = Incident.objects.get()
    response = client.post(f"/console/reconciliation/incidents/{incident.pk}/acknowledge/", follow=True)
    assert "Incident #" in response.content.decode()
    assert Incident.objects.get().status == "acknowledged"
    client.force_login(outsider)
    assert client.get("/console/reconciliation/").status_code == 403


def test_a_day_is_re_run_from_the_console_after_a_fix_without_a_second_incident(client, sample, ops_person):
    client.force_login(ops_person)
    first = client.post("/console/reconciliation/run/", {"day": DAY.isoformat()}, follow=True)
    assert "Parity for 2026-11-20 run now: 2 gap(s)." in first.content.decode()
    assert Incident.objects.count() == 1
    # The fix: the eighth assignment reaches the CRM; the stuck lead is still there, so one gap remains.
    OutboxEvent.objects.filter(lead=sample["undelivered"]).update(status=OutboxStatus.DELIVERED)
    again = client.post("/console/reconciliation/run/", {"day": DAY.isoformat()}, follow=True)
    assert "Parity for 2026-11-20 run now: 1 gap(s)." in again.content.decode()
    assert Incident.objects.count() == 1  # the day's open incident is not opened twice
    runs = AuditEvent.objects.filter(action=AuditAction.REPORT_RUN, actor=ops_person)
    assert [e.data["flagged"] for e in runs.order_by("id")] == [True, True]
    refused = client.post("/console/reconciliation/run/", {"day": "1970-01-01"}, follow=True)
    assert "Not run:" in refused.content.decode()
