"""Beat tasks for the weekly and daily operating reviews."""

import datetime as dt

from celery import shared_task
from django.utils import timezone

from routing.operations.anomalies import anomaly_report_build, anomaly_report_send
from routing.operations.checklist import monday_checklist
from routing.operations.mail import checklist_send


@shared_task(acks_late=True)
def anomaly_report_task() -> int:
    """Each morning: yesterday (UTC) against the trailing 14 days; emails what moved beyond the band."""
    report = anomaly_report_build(day=(timezone.now() - dt.timedelta(days=1)).date())
    anomaly_report_send(report)
    return report.flagged


@shared_task(acks_late=True)
def monday_checklist_task() -> int:
    return checklist_send(monday_checklist())
