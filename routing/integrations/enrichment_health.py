"""Enrichment held to its target: success rate and latency per provider, read from the calls' receipts, and
an incident while the provider is below target.

Each minute (beat) the active provider's answered share of the last hour's calls is judged, once there are
ENRICHMENT_MIN_CALLS of them: below ENRICHMENT_SUCCESS_TARGET an enrichment incident opens (the exception
incidents of exceptions.incidents, cause `enrichment_failed`: the one an outage's items gather into, so the
leads it sends to a person join it), which alerts and notifies the review queue. While it is open a lead gets
one attempt and no waits (enrichment.py), a lead whose enrichment failed goes to a person whatever its intent
(routing/services.py), and leads still waiting for the provider are sent there before
ENRICHMENT_FALLBACK_MINUTES have passed since they came in. When the last hour's calls, however few, meet the
target again (or there were none), the incident this check opened resolves itself; its unresolved items stay
with people, on their own clocks."""

import datetime as dt
import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Aggregate, Count, F, FilteredRelation, FloatField, Q
from django.utils import timezone

from audit.models import AuditAction
from audit.services import audit_record
from exceptions import alerts
from exceptions.incidents import enrichment_cause, enrichment_incident_open, incident_notify
from exceptions.models import (
    UNRESOLVED,
    ExceptionIncident,
    ExceptionItem,
    ExceptionReason,
    ExceptionStatus,
    NotificationKind,
    Resolution,
)
from exceptions.services import exception_due_times
from routing.integrations.models import EnrichmentOutcome, EnrichmentProvider, EnrichmentReceipt, EnrichmentStatus
from routing.models import Lead, LeadStatus
from routing.queue_owners import enrichment_review_queue

logger = logging.getLogger(__name__)
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(hours=24)
# The beat interval of the check: a lead is sent to a person on the tick before its wait would pass the limit.
TICK = dt.timedelta(minutes=1)
# How the incidents this check opens are told from the ones an outage's items gathered (which their items close).
TITLE = "Enrichment below its success target"


class Percentile(Aggregate):
    """PostgreSQL's percentile_cont: the value below which `fraction` of the rows fall, interpolated."""

    function = "percentile_cont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression, fraction: float, **extra):
        super().__init__(expression, fraction=float(fraction), **extra)


@dataclass(frozen=True)
class Figures:
    """One provider's calls over a window: how many, how many answered with valid values, P95 latency."""

    calls: int
    ok: int
    p95_ms: float | None

    @property
    def success(self) -> float | None:
        return self.ok / self.calls if self.calls else None


@dataclass(frozen=True)
class ProviderFigures:
    provider_id: int
    name: str
    is_active: bool
    hour: Figures
    day: Figures


def enrichment_figures(*, now: dt.datetime | None = None) -> list[ProviderFigures]:
    """Per provider that is active or was called in the last 24 h: its last hour and last 24 h (one query; the
    receipts are reached through the (provider, at) index)."""
    now = now or timezone.now()
    recent = FilteredRelation("receipts", condition=Q(receipts__at__gt=now - DAY, receipts__at__lte=now))
    in_hour = Q(recent__at__gt=now - HOUR)
    ok = Q(recent__outcome=EnrichmentOutcome.OK)
    rows = (
        EnrichmentProvider.objects.annotate(recent=recent)
        .annotate(
            calls_day=Count("recent__id"),
            ok_day=Count("recent__id", filter=ok),
            p95_day=Percentile("recent__latency_ms", 0.95),
            calls_hour=Count("recent__id", filter=in_hour),
            ok_hour=Count("recent__id", filter=in_hour & ok),
            p95_hour=Percentile("recent__latency_ms", 0.95, filter=in_hour),
        )
        .filter(Q(is_active=True) | Q(calls_day__gt=0))
        .order_by("name")
        .values_list("id", "name", "is_active", "calls_hour", "ok_hour", "p95_hour", "calls_day", "ok_day", "p95_day")
    )
    return [
        ProviderFigures(pk, name, active, Figures(c_hour, ok_hour, p95_hour), Figures(c_day, ok_day, p95_day))
        for pk, name, active, c_hour, ok_hour, p95_hour, c_day, ok_day, p95_day in rows
    ]


def last_hour(*, provider: EnrichmentProvider, now: dt.datetime) -> Figures:
    """The provider's calls in the hour before `now` (one query by the (provider, at) index)."""
    row = EnrichmentReceipt.objects.filter(provider=provider, at__gt=now - HOUR, at__lte=now).aggregate(
        calls=Count("id"), ok=Count("id", filter=Q(outcome=EnrichmentOutcome.OK))
    )
    return Figures(row["calls"], row["ok"], None)


@dataclass(frozen=True)
class HealthCheck:
    figures: Figures | None  # None: no active provider
    below_target: bool
    incident: ExceptionIncident | None  # the enrichment incident open after the check
    opened: bool = False
    resolved: ExceptionIncident | None = None
    sent_to_review: tuple[int, ...] = ()  # leads that stopped waiting: the caller publishes their routing


def enrichment_health_check(*, provider: EnrichmentProvider | None, now: dt.datetime | None = None) -> HealthCheck:
    """Judge the provider's last hour; open the incident below target, resolve the one this check opened when
    the rate is back; while an enrichment incident is open, stop the leads waiting too long for the provider."""
    now = now or timezone.now()
    target = settings.HANDOFF["ENRICHMENT_SUCCESS_TARGET"]
    incident = enrichment_incident_open()
    figures = last_hour(provider=provider, now=now) if provider is not None else None
    below = (
        figures is not None
        and figures.calls >= settings.HANDOFF["ENRICHMENT_MIN_CALLS"]
        and figures.ok < target * figures.calls
    )
    recovered = figures is None or figures.ok >= target * figures.calls  # however few calls (none: nothing failed)
    opened, resolved = False, None
    if incident is None and below:
        incident, opened = _incident_open(provider, figures, now)
    elif incident is not None and recovered and incident.title.startswith(TITLE):
        resolved = incident if _incident_recover(incident, figures, now) else None
        incident = None if resolved else incident
    sent = leads_stop_waiting(now=now) if incident is not None else []
    return HealthCheck(figures, below, incident, opened, resolved, tuple(sent))


def leads_stop_waiting(*, now: dt.datetime) -> list[int]:
    """Leads still waiting for enrichment whose wait would pass ENRICHMENT_FALLBACK_MINUTES before the next
    tick: marked failed, so routing sends them to a person (while the incident is open). Rows another worker
    holds are skipped until the next tick; a lead held for working hours is not waiting for enrichment. Returns
    their ids."""
    limit = now - dt.timedelta(minutes=settings.HANDOFF["ENRICHMENT_FALLBACK_MINUTES"]) + TICK
    with transaction.atomic():
        waiting = list(
            Lead.objects.filter(status=LeadStatus.RECEIVED, enrichment_status__isnull=True, received_at__lte=limit)
            .filter(waiting_until__isnull=True)
            .select_for_update(skip_locked=True, no_key=True)
            .order_by("received_at")
            .values_list("pk", flat=True)[:5000]
        )
        Lead.objects.filter(pk__in=waiting).update(enrichment_status=EnrichmentStatus.FAILED, enrich_after=None)
    if waiting:
        logger.warning("Enrichment incident open: %d lead(s) waiting for the provider go to a person.", len(waiting))
    return waiting


def _describe(figures: Figures) -> str:
    return f"{figures.ok} of {figures.calls} calls answered in the last hour ({figures.success:.1%})"


def _incident_open(
    provider: EnrichmentProvider, figures: Figures, now: dt.datetime
) -> tuple[ExceptionIncident | None, bool]:
    """The enrichment incident, opened now (audited, alerted, the queue notified), and True; or the one another
    check or an outage's items opened meanwhile, and False."""
    queue = enrichment_review_queue()
    ack_due_at, resolve_due_at = exception_due_times(queue=queue, start=now)
    target = settings.HANDOFF["ENRICHMENT_SUCCESS_TARGET"]
    title = f"{TITLE} ({target:.0%}): {provider.name}, {_describe(figures)}"
    try:
        with transaction.atomic():
            incident = ExceptionIncident.objects.create(
                cause=enrichment_cause().key,
                reason=ExceptionReason.ENRICHMENT_FAILED,
                title=title[:300],
                queue=queue,
                opened_at=now,
                ack_due_at=ack_due_at,
                resolve_due_at=resolve_due_at,
            )
            audit_record(
                action=AuditAction.ITEM_INCIDENT_OPENED,
                incident=incident,
                outcome="open",
                at=now,
                data={
                    "cause": incident.cause,
                    "title": incident.title,
                    "queue": queue.name,
                    "provider": provider.name,
                    "calls": figures.calls,
                    "answered": figures.ok,
                    "target": target,
                },
            )
            alerts.alert_incident_opened(incident=incident)
            incident_notify(incident, NotificationKind.INCIDENT, recipient_id=None, at=now)
    except IntegrityError:
        return enrichment_incident_open(), False
    logger.error("Enrichment incident #%s opened: %s", incident.pk, title)
    return incident, True


def _incident_recover(incident: ExceptionIncident, figures: Figures | None, now: dt.datetime) -> bool:
    """The rate is back: the incident resolves (fixed upstream) and its unresolved items leave it for their own
    clocks: each lead still needs a person. False if someone resolved it meanwhile."""
    note = (
        f"Recovered: {_describe(figures)}."
        if figures is not None and figures.calls
        else "Recovered: no enrichment call failed in the last hour."
    )
    with transaction.atomic():
        changes = {
            "status": ExceptionStatus.RESOLVED,
            "resolved_at": now,
            "resolution": Resolution.FIXED_UPSTREAM,
            "resolution_note": note,
            "version": F("version") + 1,
        }
        if (
            not ExceptionIncident.objects.filter(pk=incident.pk)
            .exclude(status=ExceptionStatus.RESOLVED)
            .update(**changes)
        ):
            return False
        left = ExceptionItem.objects.filter(UNRESOLVED, incident=incident).update(
            incident=None, version=F("version") + 1
        )
        audit_record(
            action=AuditAction.ITEM_INCIDENT_RESOLVED,
            incident=incident,
            outcome=Resolution.FIXED_UPSTREAM,
            at=now,
            data={
                "resolution": Resolution.FIXED_UPSTREAM,
                "note": note,
                "why": "the success rate recovered",
                "items_left": left,
            },
        )
        alerts.alert_incident_resolved(incident_id=incident.pk, by=None, note=note)
    logger.info("Enrichment incident #%s resolved: %s", incident.pk, note)
    return True
