"""Beat tasks for the reports: the daily parity, the daily anomaly report and the Monday checklist."""

import datetime as dt

from celery import shared_task
from django.conf import settings

from routing.days import yesterday
from routing.dispatch import TaskName
from routing.reports.anomalies import (
    TRAILING_DAYS,
    anomaly_report_build,
    anomaly_report_send,
    anomaly_reports_send_unsent,
)
from routing.reports.checklist import monday_checklist
from routing.reports.mail import checklist_recipients, checklist_send
from routing.reports.parity import incident_emails_send_unsent, parity_reconcile

# Tries of the Monday checklist email (the first and the retries): an hour, at the default 5 minutes apart.
CHECKLIST_MAIL_TRIES = 12


@shared_task(name=TaskName.ANOMALY_REPORT, acks_late=True)
def anomaly_report_task() -> int:
    """Each morning: yesterday (UTC) against the trailing 14 days; emails what moved beyond the band, and
    what the mail server did not take on earlier mornings."""
    day = yesterday()
    anomaly_reports_send_unsent(since=day - dt.timedelta(days=TRAILING_DAYS))
    report = anomaly_report_build(day=day)
    anomaly_report_send(report)
    return report.flagged


@shared_task(name=TaskName.MONDAY_CHECKLIST, bind=True, acks_late=True, max_retries=CHECKLIST_MAIL_TRIES - 1)
def monday_checklist_task(self) -> int:
    """Monday morning: the checklist by email. The mail server not taking it (one warning a try) is tried again
    every HANDOFF_CHECKLIST_RETRY_SECONDS (5 minutes), CHECKLIST_MAIL_TRIES times in all: it has no stored
    copy a later run could send."""
    last_try = self.request.retries >= self.max_retries
    sent = checklist_send(monday_checklist(), last_try=last_try)
    if not sent and checklist_recipients() and not last_try:
        raise self.retry(countdown=settings.HANDOFF["CHECKLIST_RETRY_SECONDS"])
    return sent


@shared_task(name=TaskName.RECONCILE_DAILY, acks_late=True)
def reconcile_daily() -> int:
    """Beat, each morning: yesterday's parity (UTC day), after the email of earlier incidents the mail server
    did not take."""
    incident_emails_send_unsent()
    day = yesterday()
    return parity_reconcile(day=day).pk
