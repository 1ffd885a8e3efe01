"""The monthly root-cause report: what opened exception items in a month and how long they took to resolve.

Items opened in the month (UTC) counted by reason, capture source and deciding rule; time to resolve (median and
95th percentile, from opening to resolution, of those resolved so far) overall and per reason; repeat causes:
leads with more than one item, people (one email key) whose different leads had items, and source + reason
pairs that also opened items the month before; and the month's incidents with their postmortems (and the
postmortems reconciliation incidents still owe, routing.reports.models.Incident). A handful of
grouped queries, whatever the month's size (each list is capped at REPEATS_SHOWN).

Shown in the console (exceptions.root_cause_views) and emailed on the 1st of each month for the month before
(`root_cause_report_send`, beat) to admins, queue owners, the system owner and HANDOFF_ROOT_CAUSE_RECIPIENTS.
"""

import datetime as dt
import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage
from django.db.models import Aggregate, Count, DurationField, F, Q
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditAction, AuditEvent
from audit.services import audit_record
from config.mail import send_batch
from exceptions.models import ExceptionIncident, ExceptionItem, ExceptionReason, ExceptionStatus
from routing.models import Queue
from routing.reports.models import Incident as ReconciliationIncident

logger = logging.getLogger(__name__)
REPEATS_SHOWN = 20
SENT_OUTCOME = "root_cause emailed"


class Percentile(Aggregate):
    """PostgreSQL's percentile_cont over an interval: Percentile(expr, fraction=0.95)."""

    function = "percentile_cont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = DurationField()

    def __init__(self, expression, *, fraction: float, **extra):
        super().__init__(expression, fraction=float(fraction), **extra)


def month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def previous_month(day: dt.date) -> dt.date:
    return month_start(month_start(day) - dt.timedelta(days=1))


def next_month(day: dt.date) -> dt.date:
    return month_start(month_start(day) + dt.timedelta(days=32))


def _bounds(month: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(month_start(month), dt.time(), tzinfo=dt.UTC)
    return start, dt.datetime.combine(next_month(month), dt.time(), tzinfo=dt.UTC)


@dataclass
class RootCauseReport:
    month: dt.date
    total: int = 0
    resolved: int = 0
    median_to_resolve: dt.timedelta | None = None
    p95_to_resolve: dt.timedelta | None = None
    by_reason: list[dict] = field(default_factory=list)  # reason, label, count, resolved, median, p95
    by_source: list[dict] = field(default_factory=list)  # name, count
    by_rule: list[dict] = field(default_factory=list)  # name (None: decided by no rule), count
    repeat_leads: list[dict] = field(default_factory=list)  # lead, lead_id, source, count
    repeat_people: list[dict] = field(default_factory=list)  # person (email key), leads, count
    recurring: list[dict] = field(default_factory=list)  # source, reason, label, count, last_month
    incidents: dict = field(default_factory=dict)  # opened, resolved, required (a postmortem), written, due
    postmortems_due: list[ExceptionIncident] = field(default_factory=list)
    reconciliation_postmortems_due: list[ReconciliationIncident] = field(default_factory=list)

    @property
    def median_text(self) -> str:
        return duration_text(self.median_to_resolve)

    @property
    def p95_text(self) -> str:
        return duration_text(self.p95_to_resolve)


RESOLVE_TIME = F("resolved_at") - F("opened_at")
RESOLVED = Q(resolved_at__isnull=False)


def _resolve_times(**extra):
    return {
        "resolved": Count("id", filter=RESOLVED),
        "median": Percentile(RESOLVE_TIME, fraction=0.5, filter=RESOLVED),
        "p95": Percentile(RESOLVE_TIME, fraction=0.95, filter=RESOLVED),
        **extra,
    }


def root_cause_report(*, month: dt.date) -> RootCauseReport:
    """The report of the month containing `month` (ten queries)."""
    start, end = _bounds(month)
    report = RootCauseReport(month=month_start(month))
    items = ExceptionItem.objects.filter(opened_at__gte=start, opened_at__lt=end)
    overall = items.aggregate(total=Count("id"), **_resolve_times())
    report.total, report.resolved = overall["total"], overall["resolved"]
    report.median_to_resolve, report.p95_to_resolve = overall["median"], overall["p95"]
    labels = dict(ExceptionReason.choices)
    report.by_reason = [
        {
            **row,
            "label": labels.get(row["reason"], row["reason"]),
            "median_text": duration_text(row["median"]),
            "p95_text": duration_text(row["p95"]),
        }
        for row in items.values("reason").annotate(count=Count("id"), **_resolve_times()).order_by("-count", "reason")
    ]
    report.by_source = list(
        items.values(name=F("lead__origin__name")).annotate(count=Count("id")).order_by("-count", "name")
    )
    report.by_rule = list(items.values(name=F("lead__rule__name")).annotate(count=Count("id")).order_by("-count"))
    report.repeat_leads = list(
        items.values("lead", lead_ref=F("lead__lead_id"), source=F("lead__origin__name"))
        .annotate(count=Count("id"))
        .filter(count__gte=2)
        .order_by("-count", "lead")[:REPEATS_SHOWN]
    )
    report.repeat_people = list(
        items.exclude(lead__identity__email_key="")
        .filter(lead__identity__isnull=False)
        .values(person=F("lead__identity__email_key"))
        .annotate(leads=Count("lead", distinct=True), count=Count("id"))
        .filter(leads__gte=2)
        .order_by("-count", "person")[:REPEATS_SHOWN]
    )
    before, _ = _bounds(previous_month(month))
    report.recurring = [
        {**row, "label": labels.get(row["reason"], row["reason"])}
        for row in ExceptionItem.objects.filter(opened_at__gte=before, opened_at__lt=end)
        .values("reason", source=F("lead__origin__name"))
        .annotate(
            count=Count("id", filter=Q(opened_at__gte=start)), last_month=Count("id", filter=Q(opened_at__lt=start))
        )
        .filter(count__gt=0, last_month__gt=0)
        .order_by("-count", "source", "reason")[:REPEATS_SHOWN]
    ]
    incidents = ExceptionIncident.objects.filter(opened_at__gte=start, opened_at__lt=end)
    due = Q(postmortem_required=True, postmortem_written_at__isnull=True)
    report.incidents = incidents.aggregate(
        opened=Count("id"),
        resolved=Count("id", filter=Q(status=ExceptionStatus.RESOLVED)),
        required=Count("id", filter=Q(postmortem_required=True)),
        written=Count("id", filter=Q(postmortem_written_at__isnull=False)),
        due=Count("id", filter=due),
    )
    # Every postmortem still owed, whichever month its incident opened: the review is where they are chased.
    report.postmortems_due = list(
        ExceptionIncident.objects.filter(due).select_related("assignee").order_by("postmortem_due_at")[:REPEATS_SHOWN]
    )
    report.reconciliation_postmortems_due = list(
        ReconciliationIncident.objects.filter(due)
        .select_related("owner")
        .only("title", "postmortem_due_at", "owner", "owner__username")
        .order_by("postmortem_due_at", "id")[:REPEATS_SHOWN]
    )
    return report


def duration_text(value: dt.timedelta | None) -> str:
    if value is None:
        return "-"
    minutes = value.total_seconds() / 60
    if minutes < 120:
        return f"{minutes:.0f} min"
    hours = minutes / 60
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


def root_cause_text(report: RootCauseReport) -> str:
    base = settings.HANDOFF["CONSOLE_URL"].rstrip("/")
    lines = [
        f"Exception items opened in {report.month:%B %Y}: {report.total} ({report.resolved} resolved so far)",
        f"Time to resolve: median {duration_text(report.median_to_resolve)}, "
        f"95th percentile {duration_text(report.p95_to_resolve)}",
        "",
        "By reason:",
        *(
            f"  {row['count']:>6}  {row['label']} (median {row['median_text']}, p95 {row['p95_text']})"
            for row in report.by_reason
        ),
        "By source:",
        *(f"  {row['count']:>6}  {row['name']}" for row in report.by_source),
        "By rule:",
        *(f"  {row['count']:>6}  {row['name'] or '(no rule decided)'}" for row in report.by_rule),
    ]
    if report.recurring:
        lines += ["", "Causes that came back (also opened items the month before):"]
        lines += [
            f"  {row['source']} / {row['label']}: {row['count']} (month before: {row['last_month']})"
            for row in report.recurring
        ]
    if report.repeat_leads:
        lines += ["", f"Leads with more than one item: {len(report.repeat_leads)} (most first)"]
        lines += [f"  {row['source']} {row['lead_ref']}: {row['count']}" for row in report.repeat_leads]
    if report.repeat_people:
        lines += ["", f"People whose different leads had items: {len(report.repeat_people)}"]
        lines += [f"  {row['person']}: {row['count']} items on {row['leads']} leads" for row in report.repeat_people]
    stats = report.incidents
    lines += [
        "",
        f"Incidents: {stats['opened']} opened, {stats['required']} needing a postmortem, "
        f"{stats['written']} written, {stats['due']} still due",
    ]
    for incident in report.postmortems_due:
        owner = incident.assignee.get_username() if incident.assignee else "no owner"
        lines.append(
            f"  Postmortem due {incident.postmortem_due_at:%Y-%m-%d}: #{incident.pk} {incident.title} ({owner}) "
            f"{base}{reverse('console:incident', args=[incident.pk])}"
        )
    for incident in report.reconciliation_postmortems_due:
        owner = incident.owner.get_username() if incident.owner else "no owner"
        lines.append(
            f"  Postmortem due {incident.postmortem_due_at:%Y-%m-%d}: reconciliation #{incident.pk} {incident.title} "
            f"({owner}) {base}{reverse('console:parity-incident', args=[incident.pk])}"
        )
    lines.append(f"\nThe report: {base}{reverse('console:root-causes')}?month={report.month:%Y-%m}")
    return "\n".join(lines)


def root_cause_recipients() -> list[str]:
    """Admins (active superusers), queue owners, the system owner and HANDOFF_ROOT_CAUSE_RECIPIENTS, each once."""
    admins = get_user_model().objects.filter(is_superuser=True, is_active=True).exclude(email="")
    owners = Queue.objects.filter(owner__is_active=True).exclude(owner__email="")
    return sorted(
        {
            *admins.values_list("email", flat=True),
            *owners.values_list("owner__email", flat=True),
            *[settings.HANDOFF["SYSTEM_OWNER_EMAIL"], *settings.HANDOFF["ROOT_CAUSE_RECIPIENTS"]],
        }
        - {""}
    )


def root_cause_report_send(*, month: dt.date) -> int:
    """Email the month's report, once (a second beat tick, or a redelivered task, finds it recorded as sent);
    returns how many it went to. The mail server not taking it: a warning, and the next run (beat runs it on the
    1st, 2nd and 3rd) tries again."""
    key = f"{month_start(month):%Y-%m}"
    if AuditEvent.objects.filter(action=AuditAction.REPORT_RUN, outcome=SENT_OUTCOME, data__month=key).exists():
        return 0
    recipients = root_cause_recipients()
    if not recipients:
        return 0
    report = root_cause_report(month=month)
    message = EmailMessage(
        subject=f"[Handoff] Root causes, {report.month:%B %Y}: {report.total} item(s), "
        f"{report.incidents['due']} postmortem(s) due",
        body=root_cause_text(report),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=recipients,
    )
    unsent = send_batch(
        {"root_cause": message},
        what=f"root-cause report email for {key}",
        then="the report is in the console; the email is tried again at the next run.",
        logger=logger,
    )
    if unsent:
        return 0
    audit_record(
        action=AuditAction.REPORT_RUN,
        outcome=SENT_OUTCOME,
        at=timezone.now(),
        data={"report": "root_cause", "month": key, "recipients": len(recipients)},
    )
    return len(recipients)
