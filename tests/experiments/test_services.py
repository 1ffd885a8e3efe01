"""Starting, ending and deciding experiments (routing/experiments/services.py, lifecycle.py)."""

import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from audit.models import AuditAction, AuditEvent
from routing.experiments.lifecycle import experiments_end_due
from routing.experiments.models import Arm, Experiment, ExperimentEnd, ExperimentStatus
from routing.experiments.services import (
    ExperimentConflict,
    ExperimentInputError,
    PromotionBlocked,
    experiment_decide,
    experiment_start,
    experiment_stop,
)
from routing.governance.services import rule_force_production, rule_promote, rule_rollback
from routing.models import RuleStage
from tests.factories import ExperimentLeadFactory, RuleFactory, UserFactory, case, promote_live
from tests.governance.helpers import edit, replay, stage

pytestmark = pytest.mark.django_db


def _start(rule, by=None, **overrides):
    fields = {"percent": 50, "max_leads": 1000, "criteria": {"route_latency": -50, "manual_touches": -70}}
    return experiment_start(rule=rule, by=by or rule.owner, **{**fields, **overrides})


def test_the_owner_starts_an_experiment_on_the_staging_version_and_it_is_audited(mql_rule):
    experiment = _start(mql_rule, percent=30, criteria={"route_latency": -50, "conversion": 10})

    assert experiment.status == ExperimentStatus.RUNNING
    assert (experiment.candidate.number, experiment.baseline.number) == (2, 1)
    assert (experiment.percent, experiment.max_leads, experiment.enrolled) == (30, 1000, 0)
    assert len(experiment.seed) == 32
    event = AuditEvent.objects.get(action=AuditAction.EXPERIMENT_STARTED)
    assert (event.actor, event.rule_id, event.rule_version) == (mql_rule.owner, mql_rule.pk, 2)
    assert event.data["experiment"] == experiment.pk
    assert event.data["criteria"] == {"route_latency": -50, "conversion": 10}


def test_an_admin_may_start_one_but_nobody_else(mql_rule, admin, ops_person):
    with pytest.raises(PermissionDenied, match=r"Only the rule's owner \(rowan\) or an admin can start"):
        _start(mql_rule, by=ops_person)
    assert _start(mql_rule, by=admin).started_by == admin


def test_a_rule_without_a_staging_version_has_nothing_to_test(rule_owner, sales):
    rule = RuleFactory(owner=rule_owner, queue=sales)
    with pytest.raises(ExperimentInputError) as refused:
        _start(rule)
    assert refused.value.problems == {
        "rule": [f"{rule.name!r} has no staging version to test: promote its draft to staging first."]
    }


@pytest.mark.parametrize(
    "fields, field, message",
    [
        ({"percent": 0}, "percent", "from 1 to 99"),
        ({"percent": 100}, "percent", "from 1 to 99"),
        ({"max_leads": 0}, "max_leads", "From 1 to 100,000,000 leads"),
        ({"max_leads": 100_000_001}, "max_leads", "From 1 to 100,000,000 leads"),
        ({"max_leads": None, "ends_at": None}, "max_leads", "an experiment needs an end"),
        ({"ends_at": timezone.now() - dt.timedelta(minutes=1)}, "ends_at", "must be in the future"),
        ({"criteria": {"latency": -50}}, "criteria", "'latency' is not a criterion; use route_latency, manual"),
        ({"criteria": {"route_latency": "-50"}}, "criteria", "route_latency: give the relative change in percent"),
        ({"criteria": {"conversion": True}}, "criteria", "conversion: give the relative change"),
        ({"criteria": {"manual_touches": -100}}, "criteria", "manual_touches: -100% is not a change to aim for"),
        ({"criteria": {"exception_rate": 0}}, "criteria", "exception_rate: 0% is not a change"),
        ({"criteria": ["route_latency"]}, "criteria", "criteria is an object"),
    ],
)
def test_each_bad_setting_is_refused_naming_its_field(mql_rule, fields, field, message):
    with pytest.raises(ExperimentInputError) as refused:
        _start(mql_rule, **fields)
    assert list(refused.value.problems) == [field]
    assert message in " ".join(refused.value.problems[field])
    assert not Experiment.objects.exists()


def test_an_end_time_alone_is_enough(mql_rule):
    ends_at = timezone.now() + dt.timedelta(days=7)
    experiment = _start(mql_rule, max_leads=None, ends_at=ends_at)
    assert (experiment.max_leads, experiment.ends_at) == (None, ends_at)


def test_one_experiment_runs_at_a_time_and_the_refusal_names_it(mql_rule, rule_owner, uk):
    running = _start(mql_rule)
    other = stage(RuleFactory(name="Partners", owner=rule_owner, queue=uk, priority=20), priority=25)
    with pytest.raises(ExperimentConflict) as refused:
        _start(other)
    assert refused.value.experiment == running
    assert f"Experiment #{running.pk} on 'MQLs' (rule {mql_rule.pk}) is running" in refused.value.message
    experiment_stop(experiment=running, by=rule_owner)
    assert _start(other).rule == other  # once it has ended, another may start


def test_stop_ends_it_once_and_audits_who(mql_rule, rule_owner):
    experiment = _start(mql_rule)
    experiment_stop(experiment=experiment, by=rule_owner)
    experiment.refresh_from_db()
    assert (experiment.status, experiment.end_reason, experiment.ended_by) == (
        ExperimentStatus.ENDED,
        ExperimentEnd.STOPPED,
        rule_owner,
    )
    event = AuditEvent.objects.get(action=AuditAction.EXPERIMENT_ENDED)
    assert (event.actor, event.outcome, event.data["end_reason"]) == (rule_owner, "Stopped by a person", "stopped")
    with pytest.raises(ExperimentConflict, match="has already ended \\(stopped by a person\\); it awaits a decision"):
        experiment_stop(experiment=experiment, by=rule_owner)
    assert AuditEvent.objects.filter(action=AuditAction.EXPERIMENT_ENDED).count() == 1


def test_only_the_owner_or_an_admin_stops_it(mql_rule, ops_person):
    experiment = _start(mql_rule)
    with pytest.raises(PermissionDenied):
        experiment_stop(experiment=experiment, by=ops_person)
    assert Experiment.objects.get().status == ExperimentStatus.RUNNING


def test_experiments_end_when_their_end_time_has_passed(mql_rule):
    ends_at = timezone.now() + dt.timedelta(hours=2)
    experiment = _start(mql_rule, ends_at=ends_at)

    assert experiments_end_due(now=ends_at - dt.timedelta(seconds=1)) == 0
    assert experiments_end_due(now=ends_at) == 1
    assert experiments_end_due(now=ends_at + dt.timedelta(minutes=1)) == 0  # the next tick finds none
    experiment.refresh_from_db()
    assert (experiment.status, experiment.end_reason, experiment.ended_at) == (
        ExperimentStatus.ENDED,
        ExperimentEnd.ENDS_AT,
        ends_at,
    )
    event = AuditEvent.objects.get(action=AuditAction.EXPERIMENT_ENDED)
    assert (event.actor, event.actor_label) == (None, "engine")


def test_a_new_staging_version_supersedes_the_running_experiment(mql_rule, rule_owner):
    experiment = _start(mql_rule)
    edit(
        mql_rule, test_cases=[case("an MQL", "UK", lifecycle_stage="mql"), case("an SQL", None, lifecycle_stage="sql")]
    )
    rule_promote(rule=mql_rule, to=RuleStage.STAGING, by=rule_owner)
    experiment.refresh_from_db()
    assert (experiment.status, experiment.end_reason) == (ExperimentStatus.ENDED, ExperimentEnd.SUPERSEDED)


def test_promoting_the_candidate_to_production_outside_the_experiment_supersedes_it(mql_rule, rule_owner):
    experiment = _start(mql_rule)
    replay()
    rule_promote(rule=mql_rule, to=RuleStage.PRODUCTION, by=rule_owner)
    experiment.refresh_from_db()
    assert experiment.end_reason == ExperimentEnd.SUPERSEDED
    event = AuditEvent.objects.get(action=AuditAction.EXPERIMENT_ENDED)
    assert (event.actor, event.data["end_reason"]) == (rule_owner, "superseded")


def test_a_rollback_or_a_forced_change_supersedes_it(rule_owner, sales, uk, admin):
    rule = RuleFactory(name="Twice", owner=rule_owner, queue=sales, priority=10)
    promote_live(rule, queue=uk, test_cases=[case("an MQL", "UK", lifecycle_stage="mql")])  # production v2
    stage(rule, priority=11)
    experiment = _start(rule)
    rule_rollback(rule=rule, by=rule_owner)
    experiment.refresh_from_db()
    assert experiment.end_reason == ExperimentEnd.SUPERSEDED

    rule.refresh_from_db()
    stage(rule, priority=12)
    forced = _start(rule)
    edit(rule, priority=13)
    rule_force_production(rule=rule, by=admin, reason="Hotfix")
    forced.refresh_from_db()
    assert forced.end_reason == ExperimentEnd.SUPERSEDED


def test_other_rules_changes_leave_it_running(mql_rule, rule_owner, uk):
    experiment = _start(mql_rule)
    stage(RuleFactory(name="Other", owner=rule_owner, queue=uk, priority=30), priority=31)
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.RUNNING


def _enrol(experiment, arm, count, **lead):
    return ExperimentLeadFactory.create_batch(count, experiment=experiment, arm=arm, **lead)


def test_keep_production_records_the_figures_in_the_experiment_and_the_audit_trail(mql_rule, rule_owner):
    experiment = _start(mql_rule)
    _enrol(experiment, Arm.PRODUCTION, 3)
    _enrol(experiment, Arm.CANDIDATE, 2)

    decided = experiment_decide(experiment=experiment, by=rule_owner, decision="keep", note="Not convincing yet")

    assert (decided.status, decided.end_reason) == (ExperimentStatus.KEPT, ExperimentEnd.STOPPED)
    assert (decided.decided_by, decided.decision_note) == (rule_owner, "Not convincing yet")
    arms = {arm["name"]: arm for arm in decided.final_figures["arms"]}
    assert (arms["production"]["leads"], arms["candidate"]["leads"]) == (3, 2)
    assert [v["criterion"] for v in decided.final_figures["verdicts"]] == ["route_latency", "manual_touches"]
    event = AuditEvent.objects.get(action=AuditAction.EXPERIMENT_DECIDED)
    assert (event.actor, event.outcome, event.rule_version) == (rule_owner, "Production kept", 2)
    assert event.data["decision"] == "keep" and event.data["figures"] == decided.final_figures
    mql_rule.refresh_from_db()
    assert (mql_rule.production_version.number, mql_rule.staging_version.number) == (1, 2)  # nothing promoted


def test_promote_takes_the_candidate_to_production_through_the_gates(mql_rule, rule_owner):
    experiment = _start(mql_rule)
    _enrol(experiment, Arm.CANDIDATE, 2)
    experiment_stop(experiment=experiment, by=rule_owner)
    replay()  # the production gate's evidence: the experiment's figures do not stand in for it

    decided = experiment_decide(experiment=experiment, by=rule_owner, decision="promote", note="Faster")

    mql_rule.refresh_from_db()
    assert (mql_rule.production_version.number, mql_rule.staging_version) == (2, None)
    promotion = mql_rule.promotions.filter(kind="production").latest("id")
    assert (promotion.by, promotion.comment) == (rule_owner, f"Experiment #{experiment.pk}: Faster")
    assert decided.status == ExperimentStatus.PROMOTED
    event = AuditEvent.objects.get(action=AuditAction.EXPERIMENT_DECIDED)
    assert (event.data["decision"], event.data["promotion"]) == ("promote", promotion.pk)
    assert event.data["figures"]["arms"][1]["leads"] == 2


def test_a_refused_promotion_leaves_the_experiment_running(mql_rule, rule_owner):
    experiment = _start(mql_rule)
    with pytest.raises(PromotionBlocked, match="Run a replay with staging v2"):
        experiment_decide(experiment=experiment, by=rule_owner, decision="promote")
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.RUNNING
    assert not AuditEvent.objects.filter(action__startswith="experiment.").exclude(action="experiment.started")


def test_deciding_twice_conflicts(mql_rule, rule_owner):
    experiment = _start(mql_rule)
    experiment_decide(experiment=experiment, by=rule_owner, decision="keep")
    with pytest.raises(ExperimentConflict, match=f"Experiment #{experiment.pk} is decided: production kept"):
        experiment_decide(experiment=experiment, by=rule_owner, decision="promote")


def test_a_superseded_candidate_cannot_be_promoted(mql_rule, rule_owner):
    experiment = _start(mql_rule)
    edit(mql_rule, priority=12)
    rule_promote(rule=mql_rule, to=RuleStage.STAGING, by=rule_owner)  # v3 replaces v2 in staging
    with pytest.raises(ExperimentConflict, match="v2 is no longer 'MQLs''s staging version"):
        experiment_decide(experiment=experiment, by=rule_owner, decision="promote")
    assert experiment_decide(experiment=experiment, by=rule_owner, decision="keep").status == ExperimentStatus.KEPT


def test_a_decision_is_the_owners_or_an_admins(mql_rule):
    experiment = _start(mql_rule)
    with pytest.raises(PermissionDenied):
        experiment_decide(experiment=experiment, by=UserFactory(), decision="keep")
    with pytest.raises(ExperimentInputError, match="decision"):
        experiment_decide(experiment=experiment, by=mql_rule.owner, decision="maybe")
