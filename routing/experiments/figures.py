"""Each arm's figures and the criteria's verdicts (README: Experiments). Two queries whatever the number of
leads: one counts per arm, one takes the route latency's median and its confidence bounds per arm, in SQL.

- route latency: assigned_at - received_at of the arm's assigned leads; the P50 with a 95% confidence interval
  from order statistics (the j-th and k-th smallest of n, j = floor(n/2 - 0.98 sqrt n), k = ceil(1 + n/2 +
  0.98 sqrt n)), which needs no assumption about the distribution; none below 8 assigned leads.
- exceptions, manual touches, converted: how many of the arm's leads had an exception item opened, were
  touched by a person (the dashboard's manual touches: a person acknowledging, assigning, resolving, editing,
  re-routing or overriding), or converted (Lead.converted_at, from the attribution upload), after they were
  enrolled; each as a rate with a Wilson 95% interval.

A criterion is the candidate's relative change against production (percent). Its verdict is "too early to
tell" while either arm has fewer than MIN_LEADS_PER_ARM leads to measure or the arms' intervals overlap;
otherwise "met" when the change reaches the target in its direction, else "not met"."""

import math
from dataclasses import asdict, dataclass

from django.db import connection
from django.db.models import Count, Exists, OuterRef, Q

from audit.models import AuditAction, AuditEvent
from exceptions.models import ExceptionItem
from routing.experiments.models import Arm, Experiment, ExperimentLead
from routing.models import Lead

Z_95 = 1.96
MIN_LEADS_PER_ARM = 30  # below this, no verdict: an interval of a handful of leads says little
MIN_LATENCY_LEADS = 8  # the fewest assigned leads with an order-statistic interval for the median

# As the dashboard counts them (routing/dashboard/rollups.py MANUAL_TOUCHES): a person acted on the lead.
MANUAL_TOUCHES = (
    AuditAction.EXCEPTION_ACKNOWLEDGED,
    AuditAction.EXCEPTION_ASSIGNED,
    AuditAction.EXCEPTION_RESOLVED,
    AuditAction.EXCEPTION_REOPENED,
    AuditAction.EXCEPTION_WAITING,
    AuditAction.EXCEPTION_RESUMED,
    AuditAction.LEAD_EDITED,
    AuditAction.LEAD_REROUTED,
    AuditAction.LEAD_OVERRIDE,
)

# Criterion → (label, the arm figure it compares).
CRITERIA = {
    "route_latency": ("Route latency (P50)", "route_latency_p50_ms"),
    "manual_touches": ("Manual touches (share of leads)", "manual_touch_rate"),
    "exception_rate": ("Exception rate", "exception_rate"),
    "conversion": ("Conversion rate", "conversion_rate"),
}
INTERVALS = {
    "route_latency_p50_ms": "route_latency_ci_ms",
    "manual_touch_rate": "manual_touch_ci",
    "exception_rate": "exception_ci",
    "conversion_rate": "conversion_ci",
}


class Verdict:
    MET = "met"
    NOT_MET = "not met"
    TOO_EARLY = "too early to tell"


@dataclass(frozen=True)
class ArmFigures:
    name: str
    leads: int
    assigned: int
    route_latency_p50_ms: float | None
    route_latency_ci_ms: tuple[float, float] | None
    exceptions: int
    exception_rate: float | None
    exception_ci: tuple[float, float] | None
    manual_touches: int
    manual_touch_rate: float | None
    manual_touch_ci: tuple[float, float] | None
    converted: int
    conversion_rate: float | None
    conversion_ci: tuple[float, float] | None


@dataclass(frozen=True)
class CriterionVerdict:
    criterion: str
    label: str
    target_percent: float
    production: float | None
    candidate: float | None
    change_percent: float | None  # the candidate against production; None while production's figure is 0 or none
    verdict: str
    why: str


@dataclass(frozen=True)
class Figures:
    arms: list[ArmFigures]  # production first
    verdicts: list[CriterionVerdict]
    min_leads_per_arm: int

    def as_json(self) -> dict:
        """For Experiment.final_figures and the audit event (intervals as two-item lists)."""
        return {
            "arms": [asdict(arm) for arm in self.arms],
            "verdicts": [asdict(verdict) for verdict in self.verdicts],
            "min_leads_per_arm": self.min_leads_per_arm,
        }


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion (sound near 0 and 1, unlike p ± z·se); None for no trials."""
    if n <= 0:
        return None
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def median_ranks(n: int) -> tuple[int, int] | None:
    """The 1-based ranks bounding a 95% interval for the median of n values, or None when n is too small."""
    low = math.floor(n / 2 - Z_95 / 2 * math.sqrt(n))
    high = math.ceil(1 + n / 2 + Z_95 / 2 * math.sqrt(n))
    return (low, high) if low >= 1 and high <= n else None


def experiment_figures(experiment: Experiment) -> Figures:
    counts = _counts(experiment)
    latencies = _latencies(experiment)
    arms = [_arm(name, counts.get(name, {}), latencies.get(name)) for name in (Arm.PRODUCTION, Arm.CANDIDATE)]
    verdicts = [_verdict(key, target, *arms) for key, target in (experiment.criteria or {}).items() if key in CRITERIA]
    return Figures(arms=arms, verdicts=verdicts, min_leads_per_arm=MIN_LEADS_PER_ARM)


def _counts(experiment: Experiment) -> dict[str, dict]:
    """Per arm: leads, assigned, and those with an exception, a manual touch or a conversion since enrolment."""
    enrolled = ExperimentLead.objects.filter(experiment_id=experiment.pk)
    had_exception = Exists(ExceptionItem.objects.filter(lead_id=OuterRef("lead_id"), opened_at__gte=OuterRef("at")))
    touched = Exists(
        AuditEvent.objects.filter(
            lead_id=OuterRef("lead_id"),
            actor__isnull=False,
            action__in=MANUAL_TOUCHES,
            occurred_at__gte=OuterRef("at"),
        )
    )
    rows = (
        enrolled.values("arm")
        .annotate(
            leads=Count("pk"),
            assigned=Count("pk", filter=Q(lead__assigned_at__isnull=False)),
            exceptions=Count("pk", filter=Q(had_exception)),
            manual_touches=Count("pk", filter=Q(touched)),
            converted=Count("pk", filter=Q(lead__converted_at__isnull=False)),
        )
        .order_by()
    )
    return {row.pop("arm"): row for row in rows}


def _latencies(experiment: Experiment) -> dict[str, tuple[float, float | None, float | None]]:
    """Per arm: (P50 ms, the interval's lower and upper bound in ms, None below MIN_LATENCY_LEADS)."""
    enrolled, lead = ExperimentLead._meta.db_table, Lead._meta.db_table
    sql = f"""
        WITH latency AS (
            SELECT e.arm, EXTRACT(EPOCH FROM (l.assigned_at - l.received_at)) * 1000.0 AS ms,
                   row_number() OVER (PARTITION BY e.arm ORDER BY l.assigned_at - l.received_at) AS rank,
                   count(*) OVER (PARTITION BY e.arm) AS n
            FROM {enrolled} e JOIN {lead} l ON l.id = e.lead_id
            WHERE e.experiment_id = %s AND l.assigned_at IS NOT NULL
        )
        SELECT arm, n,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY ms),
               max(ms) FILTER (WHERE rank = floor(n / 2.0 - %s * sqrt(n))),
               max(ms) FILTER (WHERE rank = ceil(1 + n / 2.0 + %s * sqrt(n)))
        FROM latency GROUP BY arm, n
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [experiment.pk, Z_95 / 2, Z_95 / 2])
        rows = cursor.fetchall()
    answer = {}
    for arm, n, median, low, high in rows:
        bounded = median_ranks(n) is not None
        answer[arm] = (float(median), float(low) if bounded else None, float(high) if bounded else None)
    return answer


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _arm(name: str, counts: dict, latency) -> ArmFigures:
    leads = counts.get("leads", 0)
    median, low, high = latency if latency else (None, None, None)
    return ArmFigures(
        name=str(name),
        leads=leads,
        assigned=counts.get("assigned", 0),
        route_latency_p50_ms=None if median is None else round(median, 1),
        route_latency_ci_ms=None if low is None else (round(low, 1), round(high, 1)),
        exceptions=counts.get("exceptions", 0),
        exception_rate=_rate(counts.get("exceptions", 0), leads),
        exception_ci=wilson_interval(counts.get("exceptions", 0), leads),
        manual_touches=counts.get("manual_touches", 0),
        manual_touch_rate=_rate(counts.get("manual_touches", 0), leads),
        manual_touch_ci=wilson_interval(counts.get("manual_touches", 0), leads),
        converted=counts.get("converted", 0),
        conversion_rate=_rate(counts.get("converted", 0), leads),
        conversion_ci=wilson_interval(counts.get("converted", 0), leads),
    )


def _verdict(key: str, target, production: ArmFigures, candidate: ArmFigures) -> CriterionVerdict:
    label, field = CRITERIA[key]
    before, after = getattr(production, field), getattr(candidate, field)
    change = None if before in (None, 0) or after is None else round((after - before) / before * 100, 1)
    measured = "assigned" if key == "route_latency" else "leads"
    fewest = min(getattr(production, measured), getattr(candidate, measured))
    what = "assigned leads" if measured == "assigned" else "leads"
    verdict, why = Verdict.TOO_EARLY, ""
    if fewest < MIN_LEADS_PER_ARM:
        why = f"Each arm needs {MIN_LEADS_PER_ARM} {what}; the smaller has {fewest}."
    elif change is None:
        why = "Production's figure is 0, so no relative change can be taken."
    elif _overlap(getattr(production, INTERVALS[field]), getattr(candidate, INTERVALS[field])):
        why = "The arms' 95% intervals overlap: the difference may be chance so far."
    else:
        reached = change <= target if target < 0 else change >= target
        verdict = Verdict.MET if reached else Verdict.NOT_MET
        why = f"{change:+.1f}% against a target of {target:+g}%."
    return CriterionVerdict(
        criterion=key,
        label=label,
        target_percent=target,
        production=before,
        candidate=after,
        change_percent=change,
        verdict=verdict,
        why=why,
    )


def _overlap(one, other) -> bool:
    if one is None or other is None:
        return True  # no interval: nothing shows the arms apart
    return one[0] <= other[1] and other[0] <= one[1]
