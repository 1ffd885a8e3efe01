"""Success metrics: each production rule's actuals over a window against the targets its production version
froze (exception rate, route latency P95, overrides per week, SLA adherence), and the daily SLA check that
tells owners when adherence falls below target.

Set-based: four queries for every production rule at once, whatever their number. The cohort is the leads
received in the window that the rule decided (`Lead.rule`, any version of it):

- exception rate: % of them with an exception item the rule causes (no eligible assignee, routing SLA
  breached); delivery failures (failed, handoff unconfirmed) and enrichment failures (failed, invalid
  answer) are downstream of the rule: counted apart and never held against it;
- route latency P95: received → assigned, in minutes, exact (nearest rank, as the dashboard's percentiles);
- overrides per week: manual overrides of its leads in the window, scaled to seven days;
- SLA adherence: % of its leads with an SLA (that of the version that decided them) assigned within it,
  counted from received_at as the live routing SLA is; a lead still unassigned inside its SLA is not judged
  yet, one unassigned past it has missed."""

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import connection, models
from django.db.models import Count, Q
from django.utils import timezone

from audit.models import Override
from exceptions.models import ExceptionItem, ExceptionReason
from routing.governance.models import RuleNoticeKind, iso_week_start
from routing.governance.notices import rule_notice
from routing.models import Rule

WINDOW = dt.timedelta(days=7)
# Fewer judged leads than this in the window and a rate says "not enough data" (and the SLA check stays
# quiet): at 20, one late lead moves adherence by 5 points, so 1 late lead of 2 never pages anyone.
MIN_LEADS = 20
# Exception reasons the rule's own decision causes: its queue had nobody eligible, or nobody took the lead
# within the rule's SLA. (Manual overrides of its decisions are counted too, as overrides.)
RULE_REASONS = (ExceptionReason.NO_ELIGIBLE_ASSIGNEE, ExceptionReason.ROUTING_SLA_BREACHED)
# Downstream of the rule, not caused by it: shown apart, never held against it. Exceptions of any other reason
# (missing contact, no matching rule, routing failed) come before a rule decides, so none counts for a rule.
DELIVERY_REASONS = (ExceptionReason.DELIVERY_FAILED, ExceptionReason.HANDOFF_UNCONFIRMED)
ENRICHMENT_REASONS = (ExceptionReason.ENRICHMENT_FAILED, ExceptionReason.ENRICHMENT_INVALID)
OTHER_REASONS = DELIVERY_REASONS + ENRICHMENT_REASONS


def _plural(n: int, one: str) -> str:
    return f"{n} {one}{'' if n == 1 else 's'}"


def downstream_text(*, delivery: int, enrichment: int) -> str:
    """E.g. "Downstream of this rule, not caused by it: 3 delivery failures, 1 enrichment failure"; "" for none."""
    parts = [
        _plural(n, label) for n, label in ((delivery, "delivery failure"), (enrichment, "enrichment failure")) if n
    ]
    return f"Downstream of this rule, not caused by it: {', '.join(parts)}" if parts else ""


@dataclass
class RuleExceptions:
    """One rule's exception items in a window, split by who caused them."""

    caused: list  # the newest items of RULE_REASONS (at most `newest`)
    caused_count: int
    delivery: int
    enrichment: int

    @property
    def downstream_text(self) -> str:
        return downstream_text(delivery=self.delivery, enrichment=self.enrichment)


def rule_exceptions(*, rule: Rule, start: dt.datetime, end: dt.datetime, newest: int = 50) -> RuleExceptions:
    """Exception items opened in [start, end) on leads the rule decided: those it caused (listed), and the
    delivery and enrichment failures downstream of it (counted apart). Two queries."""
    items = ExceptionItem.objects.filter(lead__rule=rule, opened_at__gte=start, opened_at__lt=end)
    counts = items.aggregate(
        caused=Count("id", filter=Q(reason__in=RULE_REASONS)),
        delivery=Count("id", filter=Q(reason__in=DELIVERY_REASONS)),
        enrichment=Count("id", filter=Q(reason__in=ENRICHMENT_REASONS)),
    )
    caused = items.filter(reason__in=RULE_REASONS).select_related("lead", "queue").order_by("-opened_at")
    return RuleExceptions(
        caused=list(caused[:newest]),
        caused_count=counts["caused"],
        delivery=counts["delivery"],
        enrichment=counts["enrichment"],
    )


class MetricStatus(models.TextChoices):
    MET = "met", "Met"
    MISSED = "missed", "Missed"
    NO_TARGET = "no_target", "No target"
    NOT_ENOUGH_DATA = "not_enough_data", "Not enough data"


@dataclass(frozen=True)
class Metric:
    key: str  # the target's field name on the rule and its versions
    label: str
    target: Decimal | int | None
    actual: float | None
    unit: str  # "%", "min" or "/week"
    status: str  # MetricStatus
    at_most: bool  # the target is a ceiling (else a floor)

    @property
    def against_target(self) -> str:
        """e.g. "SLA adherence 85.0 % (target ≥ 95.00 %)"."""
        target = "none" if self.target is None else f"{'≤' if self.at_most else '≥'} {self.target} {self.unit}"
        return f"{self.label} {self.actual_shown} {self.unit} (target {target})"

    @property
    def status_label(self) -> str:
        return MetricStatus(self.status).label

    @property
    def actual_shown(self) -> str:
        if self.actual is None:
            return "–"
        return f"{self.actual:.1f}"


@dataclass
class RuleMetrics:
    rule: Rule
    start: dt.datetime
    end: dt.datetime
    decided: int = 0
    assigned: int = 0
    rule_exception_leads: int = 0
    # Leads with delivery / enrichment failures: downstream of the rule, reported, never held against it.
    delivery_exception_leads: int = 0
    enrichment_exception_leads: int = 0
    sla_judged: int = 0
    sla_met: int = 0
    overrides: int = 0
    latency_p95_seconds: float | None = None
    metrics: list[Metric] = field(default_factory=list)

    @property
    def missed(self) -> list[Metric]:
        return [m for m in self.metrics if m.status == MetricStatus.MISSED]

    @property
    def without_target(self) -> list[Metric]:
        return [m for m in self.metrics if m.status == MetricStatus.NO_TARGET]

    def metric(self, key: str) -> Metric:
        return next(m for m in self.metrics if m.key == key)

    @property
    def other_exception_leads(self) -> int:
        return self.delivery_exception_leads + self.enrichment_exception_leads

    @property
    def downstream_text(self) -> str:
        return downstream_text(delivery=self.delivery_exception_leads, enrichment=self.enrichment_exception_leads)


def _seconds(later: str, earlier: str) -> str:
    """SQL for the seconds from `earlier` to `later` (as routing/dashboard/rollups.latency_sql does)."""
    if connection.vendor == "postgresql":
        return f"EXTRACT(EPOCH FROM ({later} - {earlier}))"
    return f"ROUND((julianday({later}) - julianday({earlier})) * 86400.0, 3)"


def _floor() -> str:
    return "FLOOR({})" if connection.vendor == "postgresql" else "CAST({} AS INTEGER)"


def _in_list(values) -> str:
    return ", ".join(f"'{value}'" for value in values)  # our own TextChoices values, never input


def _lead_figures(rule_ids, start, end, now) -> dict[int, dict]:
    if not rule_ids:
        return {}
    adapt = connection.ops.adapt_datetimefield_value
    taken = _seconds("l.assigned_at", "l.received_at")
    waited = _seconds("%s", "l.received_at")
    exists = "EXISTS (SELECT 1 FROM exceptions_exceptionitem e WHERE e.lead_id = l.id AND e.reason IN ({}))"
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT l.rule_id, COUNT(*), COUNT(l.assigned_at),
                SUM(CASE WHEN {exists.format(_in_list(RULE_REASONS))} THEN 1 ELSE 0 END),
                SUM(CASE WHEN {exists.format(_in_list(DELIVERY_REASONS))} THEN 1 ELSE 0 END),
                SUM(CASE WHEN {exists.format(_in_list(ENRICHMENT_REASONS))} THEN 1 ELSE 0 END),
                SUM(CASE WHEN v.sla_minutes IS NOT NULL AND (l.assigned_at IS NOT NULL
                         OR {waited} > v.sla_minutes * 60) THEN 1 ELSE 0 END),
                SUM(CASE WHEN v.sla_minutes IS NOT NULL AND l.assigned_at IS NOT NULL
                         AND {taken} <= v.sla_minutes * 60 THEN 1 ELSE 0 END)
            FROM routing_lead l
            LEFT JOIN routing_ruleversion v ON v.rule_id = l.rule_id AND v.number = l.rule_version
            WHERE l.received_at >= %s AND l.received_at < %s AND l.rule_id IN ({", ".join(["%s"] * len(rule_ids))})
            GROUP BY l.rule_id
            """,
            [adapt(now), adapt(start), adapt(end), *rule_ids],
        )
        return {
            row[0]: dict(
                zip(
                    (
                        "decided",
                        "assigned",
                        "rule_exception_leads",
                        "delivery_exception_leads",
                        "enrichment_exception_leads",
                        "sla_judged",
                        "sla_met",
                    ),
                    (int(n or 0) for n in row[1:]),
                    strict=True,
                )
            )
            for row in cursor.fetchall()
        }


def _latency_p95(rule_ids, start, end) -> dict[int, float]:
    """Each rule's P95 of received → assigned, in seconds, by nearest rank (the k-th smallest of n with
    k = ceil(0.95 n), as the dashboard's percentiles): exact, one sort per rule in the database."""
    if not rule_ids:
        return {}
    seconds = _seconds("l.assigned_at", "l.received_at")
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT rule_id, seconds FROM (
                SELECT l.rule_id, (CASE WHEN {seconds} < 0 THEN 0 ELSE {seconds} END) AS seconds,
                    ROW_NUMBER() OVER (PARTITION BY l.rule_id ORDER BY {seconds}, l.id) AS k,
                    COUNT(*) OVER (PARTITION BY l.rule_id) AS n
                FROM routing_lead l
                WHERE l.received_at >= %s AND l.received_at < %s AND l.assigned_at IS NOT NULL
                    AND l.rule_id IN ({", ".join(["%s"] * len(rule_ids))})
            ) ranked
            WHERE k = (95 * n + 99) / 100
            """,
            [adapt(start), adapt(end), *rule_ids],
        )
        return {rule_id: float(value) for rule_id, value in cursor.fetchall()}


def _judge(*, key, label, unit, target, actual, enough, at_most=True) -> Metric:
    if target is None:
        status = MetricStatus.NO_TARGET
    elif not enough or actual is None:
        status = MetricStatus.NOT_ENOUGH_DATA
    else:
        ok = actual <= float(target) if at_most else actual >= float(target)
        status = MetricStatus.MET if ok else MetricStatus.MISSED
    return Metric(key=key, label=label, target=target, actual=actual, unit=unit, status=status, at_most=at_most)


def _judge_all(figures: RuleMetrics, contract) -> list[Metric]:
    f = figures
    weeks = (f.end - f.start) / WINDOW
    latency = f.latency_p95_seconds
    return [
        _judge(
            key="target_exception_rate",
            label="Exception rate",
            unit="%",
            target=contract.target_exception_rate,
            actual=100 * f.rule_exception_leads / f.decided if f.decided else None,
            enough=f.decided >= MIN_LEADS,
        ),
        _judge(
            key="target_latency_p95_minutes",
            label="Route latency P95",
            unit="min",
            target=contract.target_latency_p95_minutes,
            actual=None if latency is None else latency / 60,
            enough=f.assigned >= MIN_LEADS,
        ),
        _judge(
            key="target_overrides_per_week",
            label="Overrides per week",
            unit="/week",
            target=contract.target_overrides_per_week,
            actual=f.overrides / weeks if weeks > 0 else None,
            enough=True,  # a count, not a rate: any number of overrides is evidence
        ),
        _judge(
            key="target_sla_adherence",
            label="SLA adherence",
            unit="%",
            target=contract.target_sla_adherence,
            actual=100 * f.sla_met / f.sla_judged if f.sla_judged else None,
            enough=f.sla_judged >= MIN_LEADS,
            at_most=False,
        ),
    ]


def success_metrics(
    *, start: dt.datetime | None = None, end: dt.datetime | None = None, now=None, rule_ids=None
) -> dict[int, RuleMetrics]:
    """Every production rule's (or those of `rule_ids`) actuals over [start, end) (default: the last seven
    days) against its production version's targets, by rule id. Four queries whatever the rule count."""
    now = now or timezone.now()
    end = min(end or now, now)
    start = start or end - WINDOW
    rules = Rule.objects.filter(production_version__isnull=False).select_related("production_version", "owner")
    if rule_ids is not None:
        rules = rules.filter(pk__in=list(rule_ids))
    rules = list(rules.order_by("priority", "id"))
    ids = [rule.pk for rule in rules]
    figures = _lead_figures(ids, start, end, now)
    latency = _latency_p95(ids, start, end)
    overrides = dict(
        Override.objects.filter(at__gte=start, at__lt=end, rule_id__in=ids)
        .values("rule_id")
        .annotate(n=Count("id"))
        .values_list("rule_id", "n")
    )
    out = {}
    for rule in rules:
        result = RuleMetrics(
            rule=rule,
            start=start,
            end=end,
            overrides=overrides.get(rule.pk, 0),
            latency_p95_seconds=latency.get(rule.pk),
            **figures.get(rule.pk, {}),
        )
        result.metrics = _judge_all(result, rule.production_version)
        out[rule.pk] = result
    return out


def week_success_metrics(*, week: dt.date, now=None, rule_ids=None) -> dict[int, RuleMetrics]:
    """The same over one ISO week (its Monday, local time), up to now for the week in progress."""
    start = timezone.make_aware(dt.datetime.combine(week, dt.time.min))
    return success_metrics(start=start, end=start + WINDOW, now=now, rule_ids=rule_ids)


def sla_target_check(*, now=None) -> int:
    """Tell the owner (and backup owner) of each production rule whose SLA adherence over the last seven
    days is below its target, once per ISO week per rule (the notice's key); a rule with fewer than
    MIN_LEADS judged leads is not judged. Returns how many notices were written."""
    now = now or timezone.now()
    week = iso_week_start(timezone.localtime(now))
    iso = week.isocalendar()
    written = 0
    for result in success_metrics(now=now).values():
        metric = result.metric("target_sla_adherence")
        if metric.status != MetricStatus.MISSED:
            continue
        rule = result.rule
        message = (
            f"SLA adherence of {rule.name!r} over the last 7 days is {metric.actual:.1f}%, below its target of"
            f" {metric.target}%: {result.sla_judged - result.sla_met} of {result.sla_judged} leads were not"
            " assigned within the rule's SLA."
        )
        written += len(
            rule_notice(
                rule=rule,
                kind=RuleNoticeKind.SLA_BELOW_TARGET,
                key=f"sla:{iso.year}-W{iso.week:02d}",
                message=message,
                now=now,
            )
        )
    return written


# What each target may be: percentages within 0–100, latency above zero (0 would be a target nothing meets).
TARGET_FIELDS = (
    "target_exception_rate",
    "target_latency_p95_minutes",
    "target_overrides_per_week",
    "target_sla_adherence",
)
_PERCENT = {"target_exception_rate": "Exception rate target", "target_sla_adherence": "SLA adherence target"}


def target_problem(name: str, value) -> str | None:
    """Why a target's value is refused (None: fine, or empty meaning no target), in words that say what to fix."""
    if value is None or value == "":
        return None
    if name in _PERCENT:
        if not 0 <= value <= 100:
            return f"{_PERCENT[name]}: a percentage from 0 to 100 (got {value}); leave it empty for no target."
    elif name == "target_latency_p95_minutes":
        if value <= 0:
            return f"Latency P95 target: a number of minutes above 0 (got {value}); leave it empty for no target."
    elif name == "target_overrides_per_week" and value < 0:
        return f"Overrides per week target: 0 or more (got {value}); leave it empty for no target."
    return None


@dataclass
class TargetsCard:
    missing: list[RuleMetrics]  # production rules missing at least one target
    untargeted: list[RuleMetrics]  # production rules that set no target at all


def targets_card(*, now=None) -> TargetsCard:
    """The dashboard's "Rules against their targets": four queries, as success_metrics."""
    results = list(success_metrics(now=now).values())
    return TargetsCard(
        missing=[r for r in results if r.missed],
        untargeted=[r for r in results if len(r.without_target) == len(r.metrics)],
    )
