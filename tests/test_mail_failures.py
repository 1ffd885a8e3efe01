"""Every mail sender against a mail server that is down (a loopback port nothing listens on): one warning
line for the batch naming what was not sent, how many and the error, never an exception or a traceback, and
nothing lost: what was not sent stays marked unsent, and the sender's next run, with the server back, sends
it (once). Notifications have their own file (tests/exceptions/test_notification_mail.py), and the Monday
checklist's retries on a real worker theirs (tests/faults/test_mail_retry.py)."""

import datetime as dt
import logging

import pytest
import time_machine

from audit.models import Override
from routing.governance.models import SignOffReminder
from routing.governance.reminders import sign_off_reminders_send
from routing.governance.tasks import sign_off_reminders_task
from routing.models import LeadStatus
from routing.reports.anomalies import anomaly_report_build, anomaly_report_send
from routing.reports.checklist import monday_checklist
from routing.reports.mail import checklist_send
from routing.reports.models import AnomalyReport, Incident, IncidentStatus, ReconciliationReport
from routing.reports.parity import INCIDENT_EMAIL_UNSENT, parity_reconcile
from routing.reports.tasks import anomaly_report_task, monday_checklist_task, reconcile_daily
from tests.factories import DeliveryTargetFactory, LeadFactory, RuleFactory, UserFactory
from tests.mail_server import FakeSMTP, refusing_port, use_smtp

pytestmark = pytest.mark.django_db

OWNER = "ops-lead@example.com"
MONDAY_W47 = dt.datetime(2026, 11, 16, 8, 0, tzinfo=dt.UTC)
DAY = dt.date(2026, 11, 20)
NOON = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)
NEXT_MORNING = dt.datetime(2026, 11, 21, 6, 30, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def system_owner(settings):
    settings.HANDOFF = {**settings.HANDOFF, "SYSTEM_OWNER_EMAIL": OWNER, "PARITY_THRESHOLD": 0.01}


def one_warning(caplog, logger: str, starts: str) -> logging.LogRecord:
    """The one record the sender logged: a warning that starts so, and no traceback anywhere."""
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    (record,) = [r for r in caplog.records if r.name == logger]
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith(starts), record.getMessage()
    return record


def test_sign_off_reminders_wait_for_the_mail_server_and_go_at_the_next_tick(settings, caplog):
    rowan, tess = UserFactory(username="rowan"), UserFactory(username="tess")
    RuleFactory(name="MQL to sales", owner=rowan)
    RuleFactory(name="Tess's rule", owner=tess)
    use_smtp(settings, refusing_port())
    with caplog.at_level(logging.WARNING):
        assert sign_off_reminders_send(now=MONDAY_W47) == 0
    record = one_warning(
        caplog, "routing.governance.reminders", "Could not email 2 of 2 sign-off reminder(s) (ConnectionRefusedError"
    )
    assert "tried again at the next tick" in record.getMessage()
    assert not SignOffReminder.objects.exists()  # nobody counts as reminded

    with FakeSMTP() as server, time_machine.travel(MONDAY_W47 + dt.timedelta(hours=1), tick=False):
        use_smtp(settings, server.server_address[1])
        assert sign_off_reminders_task() == 2  # beat's next tick
        assert sign_off_reminders_task() == 0  # and once only
    assert sorted(server.received) == [rowan.email, tess.email]
    assert SignOffReminder.objects.count() == 2


def test_sign_off_reminders_cut_off_mid_batch_send_only_the_rest_next(settings, caplog):
    owners = [UserFactory(username=f"owner{n}") for n in range(3)]
    for owner in owners:
        RuleFactory(owner=owner)
    with FakeSMTP(accept=1) as server, caplog.at_level(logging.WARNING):
        use_smtp(settings, server.server_address[1])
        assert sign_off_reminders_send(now=MONDAY_W47) == 1
    one_warning(caplog, "routing.governance.reminders", "Could not email 2 of 3 sign-off reminder(s) (SMTPServer")
    assert list(SignOffReminder.objects.values_list("owner__email", flat=True)) == server.received
    with FakeSMTP() as again:
        use_smtp(settings, again.server_address[1])
        assert sign_off_reminders_send(now=MONDAY_W47 + dt.timedelta(hours=1)) == 2
    assert sorted(server.received + again.received) == sorted(owner.email for owner in owners)


@pytest.fixture
def anomaly_report():
    """A report for DAY flagging Partners, overridden three times: its owner and the system owner get it."""
    rule = RuleFactory(name="Partners", owner=UserFactory(username="rhea", email="rhea@example.com"))
    by = UserFactory(username="oz")
    for _ in range(3):
        Override.objects.create(
            lead=LeadFactory(), rule=rule, rule_version=1, to_queue=rule.queue, by=by, at=NOON, reason="x"
        )
    return anomaly_report_build(day=DAY)


def test_the_anomaly_report_email_waits_for_the_mail_server_and_goes_at_the_next_run(anomaly_report, settings, caplog):
    use_smtp(settings, refusing_port())
    with caplog.at_level(logging.WARNING):
        assert anomaly_report_send(anomaly_report) == 0
    one_warning(
        caplog,
        "routing.reports.anomalies",
        "Could not email 2 of 2 anomaly report email(s) for 2026-11-20 (ConnectionRefusedError",
    )
    anomaly_report.refresh_from_db()
    assert anomaly_report.data["unsent_to"] == [OWNER, "rhea@example.com"]
    assert anomaly_report_build(day=DAY).data["unsent_to"] == [OWNER, "rhea@example.com"]  # a re-run keeps it

    with FakeSMTP() as server, time_machine.travel(NEXT_MORNING + dt.timedelta(days=1), tick=False):
        use_smtp(settings, server.server_address[1])
        anomaly_report_task()  # the next morning's run: its own day, and DAY's email
        anomaly_report_task()
    assert sorted(server.received) == [OWNER, "rhea@example.com"]  # once each
    assert "unsent_to" not in AnomalyReport.objects.get(day=DAY).data


def test_an_anomaly_report_cut_off_mid_batch_emails_only_the_rest_again(anomaly_report, settings, caplog):
    with FakeSMTP(accept=1) as server, caplog.at_level(logging.WARNING):
        use_smtp(settings, server.server_address[1])
        assert anomaly_report_send(anomaly_report) == 1
    one_warning(caplog, "routing.reports.anomalies", "Could not email 1 of 2 anomaly report email(s)")
    anomaly_report.refresh_from_db()
    assert anomaly_report.data["unsent_to"] == sorted({OWNER, "rhea@example.com"} - set(server.received))
    with FakeSMTP() as again:
        use_smtp(settings, again.server_address[1])
        assert anomaly_report_send(anomaly_report) == 1
    assert sorted(server.received + again.received) == [OWNER, "rhea@example.com"]


def test_the_monday_checklist_is_one_warning_when_the_mail_server_is_down(settings, caplog):
    settings.HANDOFF = {**settings.HANDOFF, "CHECKLIST_RECIPIENTS": ["lead@example.com"]}
    use_smtp(settings, refusing_port())
    with caplog.at_level(logging.WARNING):
        assert checklist_send(monday_checklist(now=MONDAY_W47)) == 0
    record = one_warning(
        caplog, "routing.reports.mail", "Could not email 1 of 1 Monday checklist email(s) (ConnectionRefusedError"
    )
    assert "tried again in 300 s; its 2 recipient(s) can read the checklist in the console: " in record.getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        checklist_send(monday_checklist(now=MONDAY_W47), last_try=True)
    assert "this was the last try; its 2 recipient(s)" in caplog.records[-1].getMessage()
    with FakeSMTP() as server:
        use_smtp(settings, server.server_address[1])
        assert monday_checklist_task() == 2
    assert sorted(server.received) == ["lead@example.com", OWNER]


def test_a_parity_incident_opens_without_its_email_and_the_email_goes_at_the_next_reconciliation(
    settings, caplog, django_capture_on_commit_callbacks
):
    DeliveryTargetFactory(name="CRM", events=["lead.assigned"])
    LeadFactory(status=LeadStatus.ASSIGNED, received_at=NOON)  # assigned, never delivered: a gap
    use_smtp(settings, refusing_port())
    with caplog.at_level(logging.WARNING), django_capture_on_commit_callbacks(execute=True):
        report = parity_reconcile(day=DAY, now=NEXT_MORNING)
    one_warning(
        caplog, "routing.reports.parity", "Could not email 1 of 1 parity incident email(s) (ConnectionRefusedError"
    )
    incident = Incident.objects.get(report=report)
    assert incident.status == IncidentStatus.OPEN
    report.refresh_from_db()
    assert report.data[INCIDENT_EMAIL_UNSENT] is True

    with FakeSMTP() as server:
        use_smtp(settings, server.server_address[1])
        reconcile_daily()  # the next morning's run
        reconcile_daily()
    assert server.received == [OWNER]  # once
    assert INCIDENT_EMAIL_UNSENT not in ReconciliationReport.objects.get(pk=report.pk).data


def test_a_resolved_incident_is_not_emailed_again(settings, caplog, django_capture_on_commit_callbacks):
    DeliveryTargetFactory(name="CRM", events=["lead.assigned"])
    LeadFactory(status=LeadStatus.ASSIGNED, received_at=NOON)
    use_smtp(settings, refusing_port())
    with caplog.at_level(logging.WARNING), django_capture_on_commit_callbacks(execute=True):
        report = parity_reconcile(day=DAY, now=NEXT_MORNING)
    Incident.objects.filter(report=report).update(status=IncidentStatus.RESOLVED)
    with FakeSMTP() as server:
        use_smtp(settings, server.server_address[1])
        reconcile_daily()
    assert server.received == []
