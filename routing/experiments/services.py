"""Starting, stopping and deciding experiments (README: Experiments). The rule's owner or an admin does each;
every change and its audit event share a transaction.

A decision to promote takes the normal governance path (rule_promote to production) with its gates, the
replay among them: the experiment's figures do not stand in for the replay. They measure the candidate on the
share of leads its rule concerned; the replay shows what the whole candidate set does to every recent lead,
including those another rule now catches. A promotion the gates refuse leaves the experiment ended, awaiting
a decision, with the gates' messages (run the replay, then decide again)."""

import datetime as dt
import math
import secrets

from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.models import AuditAction
from audit.services import audit_record
from routing.experiments.figures import CRITERIA, experiment_figures
from routing.experiments.lifecycle import experiment_end
from routing.experiments.models import Experiment, ExperimentEnd, ExperimentStatus
from routing.governance.services import (  # the errors: what a decision to promote raises, for screens to catch
    GovernanceError,  # noqa: F401
    PromotionBlocked,  # noqa: F401
    can_govern,
    rule_promote,
)
from routing.models import Rule, RuleSetGeneration, RuleStage

MAX_CRITERION_PERCENT = 1000  # a target beyond +1000% (or below -100%) is a typo, not a plan
MAX_LEADS_LIMIT = 100_000_000  # far above any real experiment, well inside the column's range


class Decision:
    PROMOTE = "promote"
    KEEP = "keep"
    ALL = (PROMOTE, KEEP)


class ExperimentInputError(ValueError):
    """What to fix, by field: {"percent": ["..."]}."""

    def __init__(self, problems: dict[str, list[str]]):
        self.problems = problems
        super().__init__(" ".join(f"{field}: {' '.join(messages)}" for field, messages in problems.items()))


class ExperimentConflict(Exception):
    """The experiment, or another one, is not in a state this action applies to: the message says which."""

    def __init__(self, message: str, experiment: Experiment | None = None):
        self.message = message
        self.experiment = experiment
        super().__init__(message)


def may_run_experiments(user, rule: Rule) -> bool:
    """The rule's owner or an admin starts, stops and decides its experiments, as they promote it."""
    return can_govern(user, rule)


def _require(user, rule: Rule, action: str) -> None:
    if not may_run_experiments(user, rule):
        owner = rule.owner.get_username() if rule.owner_id else "nobody yet"
        raise PermissionDenied(
            f"Only the rule's owner ({owner}) or an admin can {action} an experiment on {rule.name!r}."
        )


def criteria_problems(criteria) -> list[str]:
    """What is wrong with declared criteria: {"route_latency": -50, ...}, each a relative change in percent."""
    if not isinstance(criteria, dict):
        return ['criteria is an object such as {"route_latency": -50, "manual_touches": -70}.']
    problems = []
    known = ", ".join(CRITERIA)
    for key, target in criteria.items():
        if key not in CRITERIA:
            problems.append(f"{key!r} is not a criterion; use {known}.")
        elif isinstance(target, bool) or not isinstance(target, int | float) or not math.isfinite(target):
            problems.append(
                f"{key}: give the relative change in percent as a number, e.g. -50 for half; not {target!r}."
            )
        elif target == 0 or not -100 < target <= MAX_CRITERION_PERCENT:
            problems.append(
                f"{key}: {target:g}% is not a change to aim for; give one above -100 and up to +1000, not 0."
            )
    return problems


def start_problems(*, percent, max_leads, ends_at, criteria, now: dt.datetime) -> dict[str, list[str]]:
    problems: dict[str, list[str]] = {}
    if isinstance(percent, bool) or not isinstance(percent, int) or not 1 <= percent <= 99:
        problems["percent"] = ["The candidate's share of the leads, a whole number from 1 to 99."]
    if max_leads is not None and (
        isinstance(max_leads, bool) or not isinstance(max_leads, int) or not 1 <= max_leads <= MAX_LEADS_LIMIT
    ):
        problems["max_leads"] = [f"From 1 to {MAX_LEADS_LIMIT:,} leads, or leave it out and give an end time."]
    if ends_at is not None and ends_at <= now:
        problems["ends_at"] = [f"The end time must be in the future (it is {now:%Y-%m-%d %H:%M} UTC now)."]
    if max_leads is None and ends_at is None:
        problems["max_leads"] = ["Give a lead count, an end time, or both: an experiment needs an end."]
    if criteria_problems(criteria or {}):
        problems["criteria"] = criteria_problems(criteria)
    return problems


def _running_message(running: Experiment) -> str:
    return (
        f"Experiment #{running.pk} on {running.rule.name!r} (rule {running.rule_id}) is running: one runs at a "
        "time, so that every enrolled lead differs from production by one change. Stop it first."
    )


@transaction.atomic
def experiment_start(
    *, rule: Rule, by, percent: int, max_leads: int | None = None, ends_at=None, criteria=None, now=None
) -> Experiment:
    """Run the rule's staging version against production on `percent` of the leads the rule concerns, until
    `max_leads` are enrolled or `ends_at` passes. Raises PermissionDenied, ExperimentInputError (what to fix,
    by field) or ExperimentConflict (another experiment runs)."""
    _require(by, rule, "start")
    now = now or timezone.now()
    problems = start_problems(percent=percent, max_leads=max_leads, ends_at=ends_at, criteria=criteria, now=now)
    rule = (
        Rule.objects.select_for_update(of=("self",))
        .select_related("owner", "staging_version", "production_version")
        .get(pk=rule.pk)
    )
    if rule.staging_version_id is None:
        problems["rule"] = [f"{rule.name!r} has no staging version to test: promote its draft to staging first."]
    if problems:
        raise ExperimentInputError(problems)
    running = Experiment.objects.select_related("rule").filter(status=ExperimentStatus.RUNNING).first()
    if running is not None:
        raise ExperimentConflict(_running_message(running), running)
    try:
        with transaction.atomic():
            experiment = Experiment.objects.create(
                rule=rule,
                candidate=rule.staging_version,
                baseline=rule.production_version,
                percent=percent,
                max_leads=max_leads,
                ends_at=ends_at,
                criteria=criteria or {},
                seed=secrets.token_hex(16),
                started_by=by,
                started_at=now,
            )
    except IntegrityError:  # another start committed between the check and the insert
        running = Experiment.objects.select_related("rule").get(status=ExperimentStatus.RUNNING)
        raise ExperimentConflict(_running_message(running), running) from None
    audit_record(
        action=AuditAction.EXPERIMENT_STARTED,
        actor=by,
        rule=rule,
        rule_version=rule.staging_version.number,
        outcome="started",
        at=now,
        data={
            "experiment": experiment.pk,
            "candidate_version": rule.staging_version.number,
            "baseline_version": rule.production_version.number if rule.production_version_id else None,
            "percent": percent,
            "max_leads": max_leads,
            "ends_at": ends_at.isoformat() if ends_at else None,
            "criteria": criteria or {},
        },
    )
    return experiment


def _not_running_message(experiment: Experiment) -> str:
    if experiment.status == ExperimentStatus.ENDED:
        reason = ExperimentEnd(experiment.end_reason).label.lower() if experiment.end_reason else "ended"
        return f"Experiment #{experiment.pk} has already ended ({reason}); it awaits a decision."
    return f"Experiment #{experiment.pk} is decided: {experiment.get_status_display().lower()}."


@transaction.atomic
def experiment_stop(*, experiment: Experiment, by) -> Experiment:
    """End a running experiment now; its figures stay, for the decision."""
    _require(by, experiment.rule, "stop")
    if not experiment_end(experiment=experiment, reason=ExperimentEnd.STOPPED, by=by):
        experiment.refresh_from_db()
        raise ExperimentConflict(_not_running_message(experiment), experiment)
    return experiment


@transaction.atomic
def experiment_decide(*, experiment: Experiment, by, decision: str, note: str = "") -> Experiment:
    """Promote the candidate to production (through the gates) or keep production, recording the arms' figures
    and the verdicts in the experiment and the audit trail. A running experiment is stopped first, in the same
    transaction: a refused promotion leaves it running."""
    _require(by, experiment.rule, "decide")
    if decision not in Decision.ALL:
        raise ExperimentInputError({"decision": ['"promote" (the candidate goes to production) or "keep".']})
    note = (note or "").strip()
    # Promotions lock the rule set generation, then the rule, then end the rule's experiment: same order here.
    RuleSetGeneration.objects.select_for_update().filter(pk=1).exists()
    experiment = (
        Experiment.objects.select_for_update(of=("self",))
        .select_related("rule", "rule__owner", "candidate", "baseline")
        .get(pk=experiment.pk)
    )
    if experiment.status in (ExperimentStatus.PROMOTED, ExperimentStatus.KEPT):
        raise ExperimentConflict(_not_running_message(experiment), experiment)
    now = timezone.now()
    if experiment.status == ExperimentStatus.RUNNING:
        experiment_end(experiment=experiment, reason=ExperimentEnd.STOPPED, by=by, at=now)
    figures = experiment_figures(experiment).as_json()
    promotion = None
    if decision == Decision.PROMOTE:
        rule = Rule.objects.get(pk=experiment.rule_id)
        if rule.staging_version_id != experiment.candidate_id:
            raise ExperimentConflict(
                f"v{experiment.candidate.number} is no longer {rule.name!r}'s staging version (a promotion, "
                "rollback or forced change since): there is nothing of this experiment to promote; keep production.",
                experiment,
            )
        comment = f"Experiment #{experiment.pk}" + (f": {note}" if note else "")
        promotion = rule_promote(rule=rule, to=RuleStage.PRODUCTION, by=by, comment=comment)
    status = ExperimentStatus.PROMOTED if decision == Decision.PROMOTE else ExperimentStatus.KEPT
    Experiment.objects.filter(pk=experiment.pk).update(
        status=status, decided_at=now, decided_by=by, decision_note=note, final_figures=figures
    )
    audit_record(
        action=AuditAction.EXPERIMENT_DECIDED,
        actor=by,
        rule=experiment.rule,
        rule_version=experiment.candidate.number,
        outcome=ExperimentStatus(status).label,
        at=now,
        data={
            "experiment": experiment.pk,
            "decision": decision,
            "note": note,
            "end_reason": experiment.end_reason,
            "enrolled": Experiment.objects.values_list("enrolled", flat=True).get(pk=experiment.pk),
            "promotion": promotion.pk if promotion else None,
            "figures": figures,
        },
    )
    experiment.refresh_from_db()
    return experiment
