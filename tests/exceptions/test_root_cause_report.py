"""The monthly root-cause report: counts by reason, source and rule, time to resolve (median, P95), repeat causes
and postmortems owed; in the console and by email on the first days of the next month, once."""

import datetime as dt

import pytest
import time_machine
from django.core import mail
from django.test import Client

from audit.models import AuditAction, AuditEvent
from exceptions.models import ExceptionIncident, ExceptionReason, ExceptionStatus
from exceptions.root_cause import root_cause_report, root_cause_report_send
from exceptions.tasks import root_cause_report_task
from routing.accounts.models import LeadIdentity
from tests.factories import ExceptionItemFactory, LeadFactory, QueueFactory, RuleFactory, SourceFactory, UserFactory

pytestmark = pytest.mark.django_db

MARCH = dt.date(2026, 3, 1)
T = dt.datetime(2026, 3, 10, 9, 0, tzinfo=dt.UTC)
NO_RULE, DELIVERY, MISSING = (
    ExceptionReason.NO_MATCHING_RULE,
    ExceptionReason.DELIVERY_FAILED,
    ExceptionReason.MISSING_CONTACT,
)


def item(lead, reason, *, minutes=None, opened=T):
    """An item opened at `opened`, resolved `minutes` later (None: still open)."""
    if minutes is None:
        return ExceptionItemFactory(lead=lead, reason=reason, opened_at=opened)
    return ExceptionItemFactory(
        lead=lead,
        reason=reason,
        opened_at=opened,
        status=ExceptionStatus.RESOLVED,
        resolved_at=opened + dt.timedelta(minutes=minutes),
        resolution="fixed_data",
    )


def same_person(lead, email_key):
    LeadIdentity.objects.create(lead=lead, email_key=email_key, linked_at=lead.received_at)


@pytest.fixture
def march():
    """Six items opened in March (five resolved: in 10, 20, 30, 40 and 100 minutes), one in February, one in April."""
    web, chat = SourceFactory(name="web"), SourceFactory(name="chat")
    rule = RuleFactory(name="Enterprise EMEA")
    lead_a = LeadFactory(origin=web, rule=rule)
    lead_b, lead_c = LeadFactory(origin=web), LeadFactory(origin=web)
    same_person(lead_b, "pat@example.com")
    same_person(lead_c, "pat@example.com")
    item(lead_a, NO_RULE, minutes=10)
    item(lead_a, DELIVERY, minutes=40)
    item(lead_b, NO_RULE, minutes=20)
    item(lead_c, NO_RULE, minutes=30)
    item(LeadFactory(origin=chat), MISSING, minutes=100)
    item(LeadFactory(origin=chat), MISSING)
    item(LeadFactory(origin=web), NO_RULE, minutes=5, opened=T - dt.timedelta(days=30))  # February
    item(LeadFactory(origin=chat), DELIVERY, minutes=5, opened=T + dt.timedelta(days=30))  # April
    return {"web": web, "chat": chat, "rule": rule, "lead_a": lead_a}


def test_counts_by_reason_source_and_rule_cover_the_month_only(march):
    report = root_cause_report(month=MARCH)

    assert (report.total, report.resolved) == (6, 5)
    assert [(r["reason"], r["count"], r["resolved"]) for r in report.by_reason] == [
        (NO_RULE, 3, 3),
        (MISSING, 2, 1),
        (DELIVERY, 1, 1),
    ]
    assert {r["name"]: r["count"] for r in report.by_source} == {"web": 4, "chat": 2}
    assert {r["name"]: r["count"] for r in report.by_rule} == {"Enterprise EMEA": 2, None: 4}


def test_time_to_resolve_is_the_median_and_95th_percentile_of_resolved_items(march):
    report = root_cause_report(month=MARCH)

    assert report.median_to_resolve == dt.timedelta(minutes=30)
    assert report.p95_to_resolve == dt.timedelta(minutes=88)  # 40 + 0.8 × (100 - 40), interpolated
    no_rule = next(r for r in report.by_reason if r["reason"] == NO_RULE)
    assert (no_rule["median"], no_rule["p95"]) == (dt.timedelta(minutes=20), dt.timedelta(minutes=29))
    assert (report.median_text, no_rule["p95_text"]) == ("30 min", "29 min")


def test_repeat_causes_name_the_lead_the_person_and_the_source_and_reason_that_came_back(march):
    report = root_cause_report(month=MARCH)

    assert [(r["lead"], r["count"]) for r in report.repeat_leads] == [(march["lead_a"].pk, 2)]
    assert report.repeat_people == [{"person": "pat@example.com", "leads": 2, "count": 2}]
    assert [(r["source"], r["reason"], r["count"], r["last_month"]) for r in report.recurring] == [
        ("web", NO_RULE, 3, 1)
    ]


def test_the_report_takes_a_bounded_number_of_queries(march, django_assert_num_queries):
    for _ in range(20):  # more data, same queries
        item(LeadFactory(origin=march["chat"]), NO_RULE, minutes=7)

    with django_assert_num_queries(10):  # nine, and reconciliation incidents' postmortems owed
        root_cause_report(month=MARCH)


def test_incidents_and_postmortems_still_owed_are_listed(march):
    queue = QueueFactory(name="Triage")
    owed = ExceptionIncident.objects.create(
        cause="c1",
        reason=DELIVERY,
        title="CRM down",
        queue=queue,
        status=ExceptionStatus.RESOLVED,
        opened_at=T,
        ack_due_at=T,
        resolve_due_at=T,
        postmortem_required=True,
        postmortem_due_at=T + dt.timedelta(days=5),
    )

    report = root_cause_report(month=MARCH)

    assert report.incidents == {"opened": 1, "resolved": 1, "required": 1, "written": 0, "due": 1}
    assert report.postmortems_due == [owed]


def test_the_console_page_shows_the_asked_month(march, ops_person):
    client = Client()
    client.force_login(ops_person)

    html = client.get("/console/root-causes/?month=2026-03").content.decode()

    assert "March 2026" in html
    assert "<strong>6</strong> items opened, 5 resolved" in html
    assert "median 30 min, 95th percentile 88 min" in html
    assert "web / No matching rule: 3 (month before: 1)" in html


def test_a_month_that_is_not_one_is_a_400_that_says_the_format(ops_person):
    client = Client()
    client.force_login(ops_person)

    response = client.get("/console/root-causes/?month=March")

    assert response.status_code == 400
    assert "use YYYY-MM" in response.content.decode()


def test_the_monthly_email_goes_to_admins_and_queue_owners_once(march):
    UserFactory(username="ada", email="ada@example.com", is_superuser=True)
    QueueFactory(name="Sales", owner=UserFactory(username="sam", email="sam@example.com"))

    assert root_cause_report_send(month=MARCH) == 2
    assert root_cause_report_send(month=MARCH) == 0  # a second tick finds it sent

    (message,) = mail.outbox
    assert sorted(message.to) == ["ada@example.com", "sam@example.com"]
    assert message.subject == "[Handoff] Root causes, March 2026: 6 item(s), 0 postmortem(s) due"
    assert "web / No matching rule: 3 (month before: 1)" in message.body
    assert "/console/root-causes/?month=2026-03" in message.body
    event = AuditEvent.objects.get(action=AuditAction.REPORT_RUN)
    assert event.data == {"report": "root_cause", "month": "2026-03", "recipients": 2}


def test_the_task_on_the_first_of_april_emails_march(march):
    UserFactory(username="ada", email="ada@example.com", is_superuser=True)

    with time_machine.travel(dt.datetime(2026, 4, 1, 7, 0, tzinfo=dt.UTC), tick=False):
        assert root_cause_report_task() == 1

    assert mail.outbox[0].subject.startswith("[Handoff] Root causes, March 2026")


def test_a_mail_server_that_is_down_leaves_the_month_unsent_for_the_next_run(march, settings):
    UserFactory(username="ada", email="ada@example.com", is_superuser=True)
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2  # nothing listens

    assert root_cause_report_send(month=MARCH) == 0
    assert not AuditEvent.objects.filter(action=AuditAction.REPORT_RUN).exists()

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"  # the server is back
    assert root_cause_report_send(month=MARCH) == 1


def test_a_month_at_the_ends_of_the_calendar_is_a_400_not_an_overflow(ops_person):
    client = Client()
    client.force_login(ops_person)

    for month in ("0001-01", "9999-12"):
        response = client.get(f"/console/root-causes/?month={month}")
        assert response.status_code == 400, month
        assert "choose a month from 2000-01 to this one" in response.content.decode()
