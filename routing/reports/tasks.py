"""Beat tasks for the reports: the daily parity, the daily anomaly report and the Monday checklist."""

from celery import shared_task

from routing.days import yesterday
from routing.dispatch import TaskName
from routing.reports.anomalies import anomaly_report_build, anomaly_report_send
from routing.reports.checklist import monday_checklist
from routing.reports.mail import checklist_send
from routing.reports.parity import parity_reconcile


@shared_task(name=TaskName.ANOMALY_REPORT, acks_late=True)
def anomaly_report_task() -> int:
    """Each morning: yesterday (UTC) against the trailing 14 days; emails what moved beyond the band."""
    report = anomaly_report_build(day=yesterday())
    anomaly_report_send(report)
    return report.flagged


@shared_task(name=TaskName.MONDAY_CHECKLIST, acks_late=True)
def monday_checklist_task() -> int:
    return checklist_send(monday_checklist())


@shared_task(name=TaskName.RECONCILE_DAILY, acks_late=True)
def reconcile_daily() -> int:
    """Beat, each morning: yesterday's parity (UTC day)."""
    day = yesterday()
    return parity_reconcile(day=day).pk
