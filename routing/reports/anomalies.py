"""The daily anomaly report: yesterday against the trailing 14 days, for route latency, exception queue
size, rules with repeated manual overrides, dead-letter growth and parity discrepancies. A measure is
flagged when yesterday moved beyond the band: more than HANDOFF_ANOMALY_SIGMAS standard deviations from
the trailing mean, with the deviation floored at HANDOFF_ANOMALY_MIN_SHARE of the mean (and at 1), so a
flat history does not flag every small wobble. Stored, shown in the console, emailed to whom it concerns."""

import datetime as dt
import logging
import statistics
from collections import defaultdict

from django.conf import settings
from django.core.mail import EmailMessage
from django.db.models import Count, F, Q, Sum
from django.db.models.functions import TruncDate
from django.urls import reverse
from django.utils import timezone

from audit.models import Override
from config.mail import send_batch
from exceptions.models import ExceptionItem
from routing.days import day_bounds, days_bounds
from routing.integrations.models import OutboxEvent, OutboxStatus
from routing.models import DailyLeadStat, Lead, LeadStatus, RejectionDay, Rule, Source
from routing.reports.models import AnomalyReport, ReconciliationReport, ReportKind

logger = logging.getLogger(__name__)
TRAILING_DAYS = 14
REJECTIONS_WORTH_FLAGGING = 5


def band_check(history: list[float], value: float) -> dict:
    """Is `value` beyond the band around `history`? Returns the figures that say why."""
    mean = statistics.fmean(history) if history else 0.0
    spread = statistics.pstdev(history) if len(history) > 1 else 0.0
    floor = max(spread, settings.HANDOFF["ANOMALY_MIN_SHARE"] * abs(mean), 1.0)
    limit = mean + settings.HANDOFF["ANOMALY_SIGMAS"] * floor
    return {"value": value, "mean": round(mean, 3), "limit": round(limit, 3), "flagged": value > limit}


def _days(day: dt.date) -> list[dt.date]:
    return [day - dt.timedelta(days=n) for n in range(TRAILING_DAYS, 0, -1)]


def _per_day(queryset, field: str) -> dict[dt.date, int]:
    rows = queryset.annotate(day=TruncDate(field, tzinfo=dt.UTC)).values("day").annotate(n=Count("id"))
    return {row["day"]: row["n"] for row in rows}


def _latency(day: dt.date) -> dict:
    """Median conversion → assignment latency (minutes) per day."""
    start, end = days_bounds(day - dt.timedelta(days=TRAILING_DAYS), day)
    per_day: dict[dt.date, list[float]] = defaultdict(list)
    rows = (
        Lead.objects.filter(status=LeadStatus.ASSIGNED, assigned_at__gte=start, assigned_at__lt=end)
        .annotate(latency=F("assigned_at") - F("occurred_at"))
        .values_list("assigned_at", "latency")
    )
    for assigned_at, latency in rows.iterator(chunk_size=5000):
        per_day[assigned_at.astimezone(dt.UTC).date()].append(max(latency.total_seconds(), 0.0) / 60)
    history = [statistics.median(per_day[d]) for d in _days(day) if per_day.get(d)]
    if not per_day.get(day):
        return {"measure": "Route latency, median minutes", "value": None, "flagged": False, "link": ""}
    return {
        "measure": "Route latency, median minutes",
        **band_check(history, round(statistics.median(per_day[day]), 2)),
        "link": reverse("console:rules"),
    }


def _open_items_at(moment: dt.datetime) -> int:
    return (
        ExceptionItem.objects.filter(opened_at__lt=moment)
        .filter(Q(resolved_at__isnull=True) | Q(resolved_at__gte=moment))
        .count()
    )


def _exception_queue(day: dt.date) -> dict:
    """Unresolved exception items at the end of each day."""

    def end_of(d):
        return day_bounds(d)[1]

    history = [_open_items_at(end_of(d)) for d in _days(day)]
    return {
        "measure": "Open exception items at the end of the day",
        **band_check(history, _open_items_at(end_of(day))),
        "link": reverse("console:items"),
    }


def _dead_letters(day: dt.date) -> dict:
    start, end = days_bounds(day - dt.timedelta(days=TRAILING_DAYS), day)
    per_day = _per_day(
        OutboxEvent.objects.filter(status=OutboxStatus.DEAD, dead_at__gte=start, dead_at__lt=end), "dead_at"
    )
    history = [per_day.get(d, 0) for d in _days(day)]
    return {
        "measure": "New dead letters",
        **band_check(history, per_day.get(day, 0)),
        "link": reverse("console:dead-letters"),
    }


def _overrides(day: dt.date) -> list[dict]:
    """Rules overridden repeatedly yesterday compared with their own trailing days."""
    start, end = days_bounds(day - dt.timedelta(days=TRAILING_DAYS), day)
    rows = (
        Override.objects.filter(at__gte=start, at__lt=end, rule__isnull=False)
        .annotate(day=TruncDate("at", tzinfo=dt.UTC))
        .values("rule_id", "day")
        .annotate(n=Count("id"))
    )
    counts: dict[int, dict[dt.date, int]] = defaultdict(dict)
    for row in rows:
        counts[row["rule_id"]][row["day"]] = row["n"]
    rules = Rule.objects.in_bulk(list(counts))
    out = []
    for rule_id, per_day in sorted(counts.items()):
        value = per_day.get(day, 0)
        if value < 2:
            continue  # one override is a decision, not a pattern
        check = band_check([per_day.get(d, 0) for d in _days(day)], value)
        # As many in one day as flag a rule for a whole week is repeated, whatever the history.
        check["flagged"] = check["flagged"] or value >= settings.HANDOFF["OVERRIDE_FLAG_THRESHOLD"]
        rule = rules[rule_id]
        out.append(
            {
                "measure": f"Manual overrides of {rule.name}",
                **check,
                "rule_id": rule_id,
                "owner_email": rule.owner.email if rule.owner_id else "",
                "link": reverse("console:rule", args=[rule_id]),
            }
        )
    return out


def _rejections(day: dt.date) -> list[dict]:
    """Per capture source with posts refused in the window: the share of what it sent that intake refused,
    yesterday against its own trailing days. A source that starts sending a new field (or a broken form)
    shows here the next morning, and its owner is told."""
    start = day - dt.timedelta(days=TRAILING_DAYS)
    refused: dict[int, dict[dt.date, int]] = defaultdict(dict)
    rows = RejectionDay.objects.filter(day__gte=start, day__lte=day).values_list("source_id", "day")
    for source_id, d, n in rows.annotate(n=Sum("count")).order_by():
        refused[source_id][d] = n
    if not refused:
        return []
    received: dict[int, dict[dt.date, int]] = defaultdict(dict)
    stats = DailyLeadStat.objects.filter(day__gte=start, day__lte=day, origin_id__in=list(refused))
    for origin_id, d, n in stats.values_list("origin_id", "day").annotate(n=Sum("received")).order_by():
        received[origin_id][d] = n

    def share(source_id: int, d: dt.date) -> float:
        bad = refused[source_id].get(d, 0)
        total = bad + received[source_id].get(d, 0)
        return round(100 * bad / total, 2) if total else 0.0

    sources = Source.objects.select_related("owner").in_bulk(list(refused))
    out = []
    for source_id in sorted(refused):
        source = sources[source_id]
        check = band_check([share(source_id, d) for d in _days(day)], share(source_id, day))
        # A handful of refusals is a typo, not a broken integration.
        check["flagged"] = check["flagged"] and refused[source_id].get(day, 0) >= REJECTIONS_WORTH_FLAGGING
        out.append(
            {
                "measure": f"Posts refused from {source.name}, % of what it sent",
                **check,
                "owner_email": source.owner.email if source.owner_id else "",
                "link": reverse("console:rejected-posts") + f"?source={source_id}&status=",
            }
        )
    return out


def _parity(day: dt.date) -> dict:
    report = (
        ReconciliationReport.objects.filter(kind=ReportKind.PARITY, period_start__date=day)
        .order_by("-created_at")
        .first()
    )
    if report is None:
        return {"measure": "Parity discrepancies", "value": None, "flagged": False, "link": ""}
    return {
        "measure": "Parity discrepancies",
        "value": len(report.data.get("gaps", [])),
        "mean": None,
        "limit": 0,
        "flagged": report.flagged,
        "link": reverse("console:parity-report", args=[report.pk]),
    }


def anomaly_report_build(*, day: dt.date, now: dt.datetime | None = None) -> AnomalyReport:
    """Compute and store (replacing an earlier run for the same day) the report for `day`. Who its email has
    not reached yet (data["unsent_to"]) is kept: they get the new one when it is sent again."""
    measures = [
        _latency(day),
        _exception_queue(day),
        *_overrides(day),
        _dead_letters(day),
        *_rejections(day),
        _parity(day),
    ]
    flagged = [m for m in measures if m.get("flagged")]
    data = {"measures": measures, "trailing_days": TRAILING_DAYS}
    earlier = AnomalyReport.objects.filter(day=day, data__has_key="unsent_to").values_list("data", flat=True).first()
    if earlier is not None:
        data["unsent_to"] = earlier["unsent_to"]
    report, _ = AnomalyReport.objects.update_or_create(
        day=day,
        defaults={"created_at": now or timezone.now(), "data": data, "flagged": len(flagged)},
    )
    return report


def anomaly_report_send(report: AnomalyReport) -> int:
    """Email the flagged measures: each rule's owner gets its own, the system owner gets all. Returns how
    many went out. The addresses the mail server did not take are kept on the report (data["unsent_to"]):
    sending it again (anomaly_reports_send_unsent, at the next run) emails only them."""
    flagged = [m for m in report.data["measures"] if m.get("flagged")]
    recipients: dict[str, list[dict]] = defaultdict(list)
    if flagged and settings.HANDOFF["SYSTEM_OWNER_EMAIL"]:
        recipients[settings.HANDOFF["SYSTEM_OWNER_EMAIL"]] = flagged
    for measure in flagged:
        if measure.get("owner_email"):
            recipients[measure["owner_email"]].append(measure)
    retrying = "unsent_to" in report.data
    if retrying:
        recipients = {
            address: measures for address, measures in recipients.items() if address in report.data["unsent_to"]
        }
    base = settings.HANDOFF["CONSOLE_URL"].rstrip("/")
    messages = {
        address: EmailMessage(
            subject=f"[Handoff] {len(measures)} anomal{'y' if len(measures) == 1 else 'ies'} on {report.day:%Y-%m-%d}",
            body="\n".join(
                f"- {m['measure']}: {m['value']} (trailing mean {m.get('mean')}, band up to {m.get('limit')})"
                for m in measures
            )
            + f"\n\nReport: {base}{reverse('console:anomalies')}?day={report.day}\n",
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[address],
        )
        for address, measures in recipients.items()
    }
    unsent = send_batch(
        messages,
        what=f"anomaly report email(s) for {report.day:%Y-%m-%d}",
        then="the report is in the console, and they are tried again at the next run.",
        logger=logger,
    )
    if unsent:
        report.data["unsent_to"] = sorted(unsent)
    else:
        report.data.pop("unsent_to", None)
    if unsent or retrying:
        report.save(update_fields=["data"])
    return len(messages) - len(unsent)


def anomaly_reports_send_unsent(*, since: dt.date) -> int:
    """Email again the reports since `since` whose email the mail server did not take; returns how many
    emails went out."""
    return sum(
        anomaly_report_send(report)
        for report in AnomalyReport.objects.filter(day__gte=since, data__has_key="unsent_to").order_by("day")
    )
