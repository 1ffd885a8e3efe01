"""The Monday-morning checklist: six questions about the past week, each answered with a yes or no, the
figures behind it and a link to the list they count (the operating model's weekly review)."""

import datetime as dt
import statistics
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import Count, F, Q
from django.urls import reverse
from django.utils import timezone

from audit.models import Override
from exceptions.models import UNRESOLVED, ExceptionItem
from exceptions.unreached import UnreachedEscalations, unreached_escalations
from routing.days import day_start
from routing.governance.metrics import MetricStatus, success_metrics
from routing.governance.models import RuleSignOff
from routing.governance.selectors import iso_week_start
from routing.governance.sign_offs import changes_after_sign_off
from routing.integrations.models import OutboxEvent, OutboxStatus
from routing.models import Lead, LeadStatus, Rule
from routing.reports.models import ReconciliationReport, ReportKind

TOP_RULES = 5
DEAD_LETTER_AGE = dt.timedelta(hours=1)


@dataclass
class Answer:
    question: str
    ok: bool | None  # None: nothing to judge (no data)
    summary: str
    link: str
    details: list[str] = field(default_factory=list)


@dataclass
class Checklist:
    week_start: dt.datetime  # the Monday 00:00 UTC that starts the week reviewed
    week_end: dt.datetime
    answers: list[Answer]
    # Escalations that reached nobody (exceptions.unreached): shown beside the answers, and failing the week.
    escalations: UnreachedEscalations | None = None

    @property
    def all_ok(self) -> bool:
        return all(answer.ok is not False for answer in self.answers) and not (
            self.escalations and self.escalations.failing
        )


def _open_at(moment: dt.datetime) -> dict[str, int]:
    """Unresolved exception items per queue as they stood at `moment`."""
    rows = (
        ExceptionItem.objects.filter(opened_at__lte=moment)
        .filter(Q(resolved_at__isnull=True) | Q(resolved_at__gt=moment))
        .values("queue__name")
        .annotate(n=Count("id"))
    )
    return {row["queue__name"]: row["n"] for row in rows}


def _queues_smaller(end: dt.datetime) -> Answer:
    at_end, week_before = _open_at(end), _open_at(end - dt.timedelta(days=7))
    grew = sorted(q for q in at_end.keys() | week_before.keys() if at_end.get(q, 0) > week_before.get(q, 0))
    total_end, total_before = sum(at_end.values()), sum(week_before.values())
    # The week's figures are as they stood at its end; the live count beside them says what is open today.
    live = ExceptionItem.objects.filter(UNRESOLVED).count()
    return Answer(
        "Are exception queues smaller this week than last?",
        total_end <= total_before and not grew,
        f"{total_end} open at the week's end ({end:%a %d %b}) against {total_before} a week before"
        + (f"; grew: {', '.join(grew)}" if grew else "; no queue grew")
        + f" — {live} open right now",
        reverse("console:overview"),
        [f"{q}: {week_before.get(q, 0)} → {at_end.get(q, 0)}" for q in sorted(at_end.keys() | week_before.keys())],
    )


def _overridden_or_unsigned(start: dt.datetime, end: dt.datetime) -> Answer:
    overridden = dict(
        Override.objects.filter(at__gte=start, at__lt=end, rule__isnull=False)
        .values("rule__name")
        .annotate(n=Count("id"))
        .values_list("rule__name", "n")
    )
    # Draft edits, promotions, forced changes and rollbacks in the week with no sign-off after them: a change
    # after the week's sign-off reopens it, and those come first.
    week = iso_week_start(start)
    changed = changes_after_sign_off(week=week, signed_only=False, start=start, end=end)
    names = dict(Rule.objects.filter(pk__in=list(changed)).values_list("pk", "name"))
    signed = set(RuleSignOff.objects.filter(week=week, rule_id__in=list(changed)).values_list("rule_id", flat=True))
    reopened = sorted((names[pk], pk) for pk in changed if pk in signed)
    unsigned = sorted(names[pk] for pk in changed if pk not in signed)
    unsigned_edits = [name for name, _ in reopened] + unsigned
    details = [f"{name}: overridden {n}×" for name, n in sorted(overridden.items())]
    details += [
        f"{name}: changed since its sign-off that week — "
        + "; ".join(f"{c.label} {c.at:%a %d %b %H:%M}" + (f" by {c.by}" if c.by else "") for c in changed[pk])
        for name, pk in reopened
    ]
    details += [f"{name}: changed without a sign-off that week" for name in unsigned]
    return Answer(
        "Which rules were manually overridden or edited without owner sign-off?",
        not overridden and not unsigned_edits,
        f"{len(overridden)} rule(s) overridden, {len(unsigned_edits)} changed without sign-off"
        if overridden or unsigned_edits
        else "None",
        reverse("console:rules"),
        details,
    )


def _top_rules_owned(start: dt.datetime, end: dt.datetime) -> Answer:
    top = list(
        Lead.objects.filter(routed_at__gte=start, routed_at__lt=end, rule__isnull=False)
        .values("rule_id", "rule__name", "rule__owner__username", "rule__production_version__sla_minutes")
        .annotate(n=Count("id"))
        .order_by("-n", "rule_id")[:TOP_RULES]
    )
    missing = [
        row["rule__name"]
        for row in top
        if not row["rule__owner__username"] or not row["rule__production_version__sla_minutes"]
    ]
    # A deactivated owner answers for nothing (right now, whatever the volume): flagged until reassigned.
    orphaned = list(
        Rule.objects.filter(owner__is_active=False)
        .exclude(production_version=None)
        .order_by("name")
        .values_list("name", "owner__username")
    )
    summary = "No: " + ", ".join(missing) if missing else "Yes"
    summary = summary if top else "No leads routed by a rule this week"
    if orphaned:
        summary += f"; {len(orphaned)} production rule(s) with a deactivated owner right now"
    return Answer(
        f"Do the top {TOP_RULES} routing rules (by volume) have owners and SLAs?",
        False if orphaned else (None if not top else not missing),
        summary,
        reverse("console:rules"),
        [
            f"{row['rule__name']}: {row['n']} leads, owner {row['rule__owner__username'] or '—'}, "
            f"SLA {row['rule__production_version__sla_minutes'] or '—'} min"
            for row in top
        ]
        + [
            f"{name}: owner {username} is deactivated; reassign it (Edit draft → Owner) before it can be promoted"
            for name, username in orphaned
        ],
    )


def percentile(sorted_values: list[float], share: float) -> float:
    """Linear interpolation between closest ranks (PostgreSQL's percentile_cont)."""
    if len(sorted_values) == 1:
        return sorted_values[0]
    rank = share * (len(sorted_values) - 1)
    low = int(rank)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (rank - low)


def _latency_within_sla(start: dt.datetime, end: dt.datetime) -> Answer:
    rows = (
        Lead.objects.filter(status=LeadStatus.ASSIGNED, assigned_at__gte=start, assigned_at__lt=end)
        .exclude(rule__isnull=True)
        .annotate(latency=F("assigned_at") - F("occurred_at"))
        .values_list("rule__name", "rule__production_version__sla_minutes", "latency")
    )
    by_rule: dict[str, tuple[int | None, list[float]]] = {}
    for name, sla, latency in rows.iterator(chunk_size=5000):
        by_rule.setdefault(name, (sla, []))[1].append(max(latency.total_seconds(), 0.0) / 60)
    if not by_rule:
        return Answer("Is route latency within SLA (median, P95)?", None, "No assignments this week", _leads_link())
    details, late = [], []
    for name, (sla, minutes) in sorted(by_rule.items()):
        minutes.sort()
        median, p95 = statistics.median(minutes), percentile(minutes, 0.95)
        within = sla is None or p95 <= sla
        if not within:
            late.append(name)
        details.append(f"{name}: median {median:.1f} min, P95 {p95:.1f} min, SLA {sla or '—'} min")
    everything = sorted(m for _, values in by_rule.values() for m in values)
    return Answer(
        "Is route latency within SLA (median, P95)?",
        not late,
        f"Overall median {statistics.median(everything):.1f} min, P95 {percentile(everything, 0.95):.1f} min"
        + (f"; P95 over SLA: {', '.join(late)}" if late else "; every rule's P95 within its SLA"),
        _leads_link(),
        details,
    )


def _leads_link() -> str:
    return reverse("console:rules")


def _attribution(start: dt.datetime, end: dt.datetime) -> Answer:
    report = (
        ReconciliationReport.objects.filter(kind=ReportKind.ATTRIBUTION, created_at__gte=start, created_at__lt=end)
        .order_by("-created_at")
        .first()
    )
    if report is None:
        return Answer(
            "Has the attribution reconciliation run, and is its variance under the threshold?",
            False,
            "No attribution reconciliation this week",
            reverse("console:attribution"),
        )
    threshold = settings.HANDOFF["PARITY_THRESHOLD"]
    return Answer(
        "Has the attribution reconciliation run, and is its variance under the threshold?",
        not report.flagged,
        f"Ran {report.created_at:%Y-%m-%d %H:%M}: variance {report.variance:.1%} (threshold {threshold:.1%})",
        reverse("console:attribution-report", args=[report.pk]),
    )


def _old_dead_letters(now: dt.datetime) -> Answer:
    old = OutboxEvent.objects.filter(status=OutboxStatus.DEAD, dead_at__lte=now - DEAD_LETTER_AGE)
    count = old.count()
    return Answer(
        "Is there any dead-letter item older than 1 hour?",
        count == 0,
        f"Yes: {count}" if count else "No",
        reverse("console:dead-letters") + "?older_than_hours=1",
    )


def _targets_met(start: dt.datetime, end: dt.datetime, now: dt.datetime) -> Answer:
    """Success metrics of the week per production rule (routing/governance/metrics.py): one line per rule
    that missed a target; rules without targets or with too few leads are named in the summary only."""
    results = list(success_metrics(start=start, end=end, now=now).values())
    judged = [r for r in results if any(m.status in (MetricStatus.MET, MetricStatus.MISSED) for m in r.metrics)]
    missed = [r for r in results if r.missed]
    untargeted = sum(1 for r in results if len(r.without_target) == len(r.metrics))
    summary = f"{len(missed)} of {len(judged)} rule(s) judged missed a target" if judged else "No target to judge"
    if untargeted:
        summary += f"; {untargeted} production rule(s) set no target"
    details = [f"{r.rule.name}: " + "; ".join(m.against_target for m in r.missed) for r in missed]
    return Answer(
        "Did every production rule meet its success targets?",
        None if not judged else not missed,
        summary,
        reverse("console:rules"),
        details,
    )


def monday_checklist(*, now: dt.datetime | None = None) -> Checklist:
    """The checklist for the last full ISO week (Monday to Monday, UTC) before `now`."""
    now = now or timezone.now()
    this_monday = day_start(iso_week_start(now.astimezone(dt.UTC)))
    start, end = this_monday - dt.timedelta(days=7), this_monday
    return Checklist(
        week_start=start,
        week_end=end,
        answers=[
            _queues_smaller(end),
            _overridden_or_unsigned(start, end),
            _top_rules_owned(start, end),
            _latency_within_sla(start, end),
            _attribution(start, end),
            _old_dead_letters(now),
            _targets_met(start, end, now),
        ],
        escalations=unreached_escalations(start=start, end=end),
    )
