"""How a running experiment ends: stopped by a person, its end time passed, or superseded by a change to its
rule's staging or production version (README: Experiments). The lead count ending one is routing's
(arms.py), in the routing transaction.

Governance calls `experiment_supersede` from its promotions, so this module imports nothing of governance:
services.py, which promotes a candidate, does."""

from django.db import transaction
from django.utils import timezone

from audit.models import AuditAction
from audit.services import audit_record
from routing.experiments.models import Experiment, ExperimentEnd, ExperimentStatus


def experiment_end(*, experiment: Experiment, reason: str, by=None, at=None) -> bool:
    """End a running experiment and audit it, in the caller's transaction. The update is conditional on it
    still running, so a second stop, a beat tick and the last routed lead never end it twice: False when
    something else ended it first."""
    at = at or timezone.now()
    ended = Experiment.objects.filter(pk=experiment.pk, status=ExperimentStatus.RUNNING).update(
        status=ExperimentStatus.ENDED, end_reason=reason, ended_at=at, ended_by=by
    )
    if ended != 1:
        return False
    experiment.status, experiment.end_reason, experiment.ended_at, experiment.ended_by = (
        ExperimentStatus.ENDED,
        reason,
        at,
        by,
    )
    audit_record(
        action=AuditAction.EXPERIMENT_ENDED,
        actor=by,
        rule=experiment.rule,
        rule_version=experiment.candidate.number,
        outcome=ExperimentEnd(reason).label,
        at=at,
        data={"experiment": experiment.pk, "end_reason": reason, "enrolled": _enrolled(experiment)},
    )
    return True


def experiment_supersede(*, rule, by=None, at=None) -> Experiment | None:
    """The rule's staging or production version just changed (a promotion, a rollback, a forced change): its
    running experiment no longer compares what it was started on, so it ends (superseded). Call it inside the
    transaction of the change. Returns the experiment it ended, if any."""
    experiment = (
        Experiment.objects.select_related("rule", "candidate")
        .filter(rule_id=rule.pk, status=ExperimentStatus.RUNNING)
        .first()
    )
    if experiment is None or not experiment_end(experiment=experiment, reason=ExperimentEnd.SUPERSEDED, by=by, at=at):
        return None
    return experiment


def experiments_end_due(*, now=None) -> int:
    """End the running experiments whose end time has passed (beat, every minute). Returns how many ended."""
    now = now or timezone.now()
    due = Experiment.objects.select_related("rule", "candidate").filter(
        status=ExperimentStatus.RUNNING, ends_at__lte=now
    )
    ended = 0
    for experiment in due:
        with transaction.atomic():  # each end with its audit event
            ended += experiment_end(experiment=experiment, reason=ExperimentEnd.ENDS_AT, at=now)
    return ended


def _enrolled(experiment: Experiment) -> int:
    return Experiment.objects.filter(pk=experiment.pk).values_list("enrolled", flat=True).get()
