"""Daily parity: per origin, the leads captured on a day against those routed (assigned or sent to an
exception), those delivered to each target and those handed off (confirmed by every target). A gap above the
threshold opens an incident and tells the system owner; stuck work (leads still `received`, events undelivered
past their grace) is listed and sent again. Set-based queries: a day of 100k leads is a handful of GROUP BYs."""

import datetime as dt
import logging

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from config.mail import send_batch
from routing.days import day_bounds
from routing.dispatch import deliveries_enqueue, routing_enqueue
from routing.integrations.models import DeliveryTarget, EventType, OutboxEvent, OutboxStatus
from routing.models import Lead, LeadStatus
from routing.reports.models import Incident, IncidentStatus, ReconciliationReport, ReportKind

logger = logging.getLogger(__name__)
STUCK_LISTED = 200


def _share(missing: int, expected: int) -> float:
    return missing / expected if expected else 0.0


def parity_reconcile(*, day: dt.date, by=None, now: dt.datetime | None = None) -> ReconciliationReport:
    """Reconcile the leads received on `day` (UTC), store the report, and act on what it finds."""
    now = now or timezone.now()
    start, end = day_bounds(day)
    threshold = settings.HANDOFF["PARITY_THRESHOLD"]
    leads = Lead.objects.filter(received_at__gte=start, received_at__lt=end)
    per_origin = {
        row["origin__name"]: row
        for row in leads.values("origin__name").annotate(
            accepted=Count("id"),
            routed=Count("id", filter=Q(status__in=[LeadStatus.ASSIGNED, LeadStatus.EXCEPTION])),
            assigned=Count("id", filter=Q(status=LeadStatus.ASSIGNED)),
            waiting=Count("id", filter=Q(status=LeadStatus.RECEIVED)),
            # Confirmed by every target subscribed to the assignment (routing/integrations/handoff.py).
            handed_off=Count("id", filter=Q(status=LeadStatus.ASSIGNED, handed_off_at__isnull=False)),
        )
    }
    targets = [t for t in DeliveryTarget.objects.filter(is_active=True) if EventType.LEAD_ASSIGNED in t.events]
    delivered, confirmed = {}, {}
    for row in (
        OutboxEvent.objects.filter(
            event_type=EventType.LEAD_ASSIGNED,
            status=OutboxStatus.DELIVERED,
            lead__received_at__gte=start,
            lead__received_at__lt=end,
        )
        .values("lead__origin__name", "target__name")
        .annotate(
            n=Count("lead", distinct=True), confirmed=Count("lead", distinct=True, filter=Q(confirmed_at__isnull=False))
        )
    ):
        key = (row["lead__origin__name"], row["target__name"])
        delivered[key], confirmed[key] = row["n"], row["confirmed"]
    origins, gaps = [], []
    for name, row in sorted(per_origin.items()):
        routing_gap = _share(row["accepted"] - row["routed"], row["accepted"])
        deliveries, confirmations = {}, {}
        for target in targets:
            count = delivered.get((name, target.name), 0)
            gap = _share(row["assigned"] - count, row["assigned"])
            deliveries[target.name] = {"delivered": count, "expected": row["assigned"], "gap": gap}
            confirmations[target.name] = {"confirmed": confirmed.get((name, target.name), 0), "delivered": count}
            if gap > threshold:
                gaps.append(f"{name} → {target.name}: {count} of {row['assigned']} assigned leads delivered")
        if routing_gap > threshold:
            gaps.append(f"{name}: {row['routed']} of {row['accepted']} accepted leads routed")
        origins.append(
            {
                "origin": name,
                "accepted": row["accepted"],
                "routed": row["routed"],
                "assigned": row["assigned"],
                "waiting": row["waiting"],
                "routing_gap": routing_gap,
                "deliveries": deliveries,
                # captured → routed → confirmed: reported, not flagged (each unconfirmed handoff already opens
                # handoff_unconfirmed once its target's grace has passed).
                "handed_off": row["handed_off"],
                "handoff_gap": _share(row["assigned"] - row["handed_off"], row["assigned"]),
                "confirmations": confirmations,
            }
        )
    variance = max(
        [o["routing_gap"] for o in origins] + [d["gap"] for o in origins for d in o["deliveries"].values()],
        default=0.0,
    )
    stuck_leads, stuck_events = _stuck(now)
    with transaction.atomic():
        report = ReconciliationReport.objects.create(
            kind=ReportKind.PARITY,
            period_start=start,
            period_end=end,
            created_at=now,
            created_by=by,
            data={
                "threshold": threshold,
                "origins": origins,
                "gaps": gaps,
                "stuck_leads": stuck_leads,
                "stuck_events": stuck_events,
            },
            variance=variance,
            flagged=bool(gaps),
        )
        # A re-run of a day (after a fix) opens no second incident while that day's first is still unresolved.
        already = Incident.objects.filter(report__kind=ReportKind.PARITY, report__period_start=start).exclude(
            status=IncidentStatus.RESOLVED
        )
        if gaps and not already.exists():
            _open_incident(report, day, gaps, now)
    return report


def _stuck(now: dt.datetime) -> tuple[dict, dict]:
    """Leads still `received` past the requeue grace and events pending past the delivery grace: listed,
    and published again (the routing and delivery claims make a second publish harmless)."""
    lead_grace = dt.timedelta(seconds=settings.HANDOFF["REQUEUE_GRACE_SECONDS"])
    event_grace = dt.timedelta(seconds=settings.HANDOFF["DELIVERY_GRACE_SECONDS"])
    lead_ids = list(
        Lead.objects.filter(status=LeadStatus.RECEIVED, received_at__lt=now - lead_grace)
        # A lead held for its queue's working hours is not stuck: the beat routes it when they start.
        .filter(Q(waiting_until__isnull=True) | Q(waiting_until__lte=now))
        .order_by("received_at")
        .values_list("id", flat=True)
    )
    event_ids = list(
        OutboxEvent.objects.filter(status=OutboxStatus.PENDING, created_at__lt=now - event_grace)
        .order_by("created_at")
        .values_list("id", flat=True)
    )
    if lead_ids:
        logger.warning("Reconciliation re-queues %d leads still waiting for routing.", len(lead_ids))
        transaction.on_commit(lambda: routing_enqueue(lead_ids))
    if event_ids:
        logger.warning("Reconciliation re-sends %d events still undelivered.", len(event_ids))
        OutboxEvent.objects.filter(pk__in=event_ids, status=OutboxStatus.PENDING).update(next_attempt_at=now)
        transaction.on_commit(lambda: deliveries_enqueue(event_ids))
    return (
        {"count": len(lead_ids), "ids": lead_ids[:STUCK_LISTED]},
        {"count": len(event_ids), "ids": event_ids[:STUCK_LISTED]},
    )


def _open_incident(report: ReconciliationReport, day: dt.date, gaps: list[str], now: dt.datetime) -> Incident:
    incident = Incident.objects.create(
        report=report,
        title=f"Parity gap on {day:%Y-%m-%d}: {len(gaps)} discrepanc{'y' if len(gaps) == 1 else 'ies'}",
        detail="\n".join(gaps),
        status=IncidentStatus.OPEN,
        opened_at=now,
    )
    if settings.HANDOFF["SYSTEM_OWNER_EMAIL"]:
        transaction.on_commit(lambda: incident_emails_send([incident]))
    else:
        logger.error("%s; set HANDOFF_SYSTEM_OWNER_EMAIL to have it emailed.", incident.title)
    return incident


# Marks a parity report whose incident's email the mail server did not take (see incident_emails_send).
INCIDENT_EMAIL_UNSENT = "incident_email_unsent"


def incident_emails_send(incidents: list[Incident]) -> int:
    """Email the system owner about each parity incident, over one connection; returns how many went out.
    The incident is open in the console whatever becomes of its email: one the mail server does not take is
    marked on its report and sent at the next reconciliation (incident_emails_send_unsent)."""
    owner = settings.HANDOFF["SYSTEM_OWNER_EMAIL"]
    if not owner or not incidents:
        return 0
    base = settings.HANDOFF["CONSOLE_URL"].rstrip("/")
    messages = {
        incident.report_id: EmailMessage(
            subject=f"[Handoff] {incident.title}",
            body=f"{incident.detail}\n\nReport: {base}/console/reconciliation/{incident.report_id}/\n",
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[owner],
        )
        for incident in incidents
    }
    unsent = send_batch(
        messages,
        what="parity incident email(s)",
        then="the incidents are open in the console, and their email is tried again at the next reconciliation.",
        logger=logger,
    )
    with transaction.atomic():
        for report in ReconciliationReport.objects.select_for_update().filter(pk__in=messages):
            if (report.pk in unsent) != (INCIDENT_EMAIL_UNSENT in report.data):
                if report.pk in unsent:
                    report.data[INCIDENT_EMAIL_UNSENT] = True
                else:
                    report.data.pop(INCIDENT_EMAIL_UNSENT)
                report.save(update_fields=["data"])
    return len(messages) - len(unsent)


def incident_emails_send_unsent() -> int:
    """Email the unresolved parity incidents whose email the mail server did not take earlier."""
    return incident_emails_send(
        list(
            Incident.objects.filter(report__kind=ReportKind.PARITY, report__data__has_key=INCIDENT_EMAIL_UNSENT)
            .exclude(status=IncidentStatus.RESOLVED)
            .order_by("opened_at", "id")
        )
    )
