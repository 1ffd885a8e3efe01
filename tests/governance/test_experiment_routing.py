"""Routing under a running experiment: which leads it enrols, which arm routes each, and its lead count kept
exactly (routing/experiments/arms.py, routing/services.py)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit.models import AuditAction, AuditEvent
from routing.engine import routing_rulesets
from routing.experiments.arms import arm_for
from routing.experiments.models import Arm, Experiment, ExperimentEnd, ExperimentLead, ExperimentStatus
from routing.governance.preview import lead_explanation
from routing.models import Lead, LeadStatus
from routing.services import leads_route
from tests.factories import ExperimentFactory, LeadFactory, RuleFactory, case
from tests.governance.helpers import stage

pytestmark = pytest.mark.django_db


@pytest.fixture
def mql_rule(sales, uk):
    """Production v1 sends MQLs to Sales; the staged v2 sends them to UK."""
    rule = RuleFactory(name="MQLs", queue=sales, priority=10)
    return stage(rule, queue=uk, test_cases=[case("an MQL", "UK", lifecycle_stage="mql")])


def _expected_arm(experiment, lead) -> str:
    return arm_for(seed=experiment.seed, origin_id=lead.origin_id, lead_id=lead.lead_id, percent=experiment.percent)


def test_arm_is_stable_for_a_lead_and_follows_the_percent():
    arms = [arm_for(seed="s", origin_id=1, lead_id=f"lead-{n}", percent=30) for n in range(10_000)]
    share = arms.count(Arm.CANDIDATE) / len(arms)
    assert 0.28 < share < 0.32
    assert arms == [arm_for(seed="s", origin_id=1, lead_id=f"lead-{n}", percent=30) for n in range(10_000)]
    other_seed = [arm_for(seed="t", origin_id=1, lead_id=f"lead-{n}", percent=30) for n in range(10_000)]
    assert other_seed != arms  # another experiment splits the same leads differently


def test_each_arm_routes_its_leads_and_the_decision_says_which(mql_rule, sales, uk):
    experiment = ExperimentFactory(rule=mql_rule, percent=50, max_leads=None)
    leads = LeadFactory.create_batch(40, lifecycle_stage="mql")

    leads_route(lead_ids=[lead.pk for lead in leads])

    enrolled = dict(ExperimentLead.objects.filter(experiment=experiment).values_list("lead_id", "arm"))
    assert enrolled == {lead.pk: _expected_arm(experiment, lead) for lead in leads}
    assert {Arm.CANDIDATE, Arm.PRODUCTION} <= set(enrolled.values())
    for lead in Lead.objects.filter(pk__in=enrolled):
        assert lead.status == LeadStatus.ASSIGNED
        if enrolled[lead.pk] == Arm.CANDIDATE:
            assert (lead.queue, lead.rule_version) == (uk, 2)
        else:
            assert (lead.queue, lead.rule_version) == (sales, 1)
    decisions = AuditEvent.objects.filter(action=AuditAction.ROUTING_DECISION, lead__in=leads)
    assert {event.lead_id: event.inputs["experiment"] for event in decisions} == {
        pk: {"id": experiment.pk, "arm": arm} for pk, arm in enrolled.items()
    }
    experiment.refresh_from_db()
    assert experiment.enrolled == 40 and experiment.status == ExperimentStatus.RUNNING


def test_leads_the_rule_decides_on_neither_side_are_not_enrolled(mql_rule, partners):
    RuleFactory(name="Partners", queue=partners, priority=5, condition={"field": "country", "op": "eq", "value": "FR"})
    experiment = ExperimentFactory(rule=mql_rule)
    french = LeadFactory(country="FR", lifecycle_stage="mql")  # the Partners rule decides it first on both sides
    unmatched = LeadFactory(country="GB", lifecycle_stage="sql")  # no rule on either side

    leads_route(lead_ids=[french.pk, unmatched.pk])

    assert not ExperimentLead.objects.filter(experiment=experiment).exists()
    french.refresh_from_db()
    assert french.queue == partners
    assert "experiment" not in AuditEvent.objects.get(lead=french, action=AuditAction.ROUTING_DECISION).inputs


def test_a_lead_only_the_candidate_matches_is_enrolled(sales, uk):
    rule = RuleFactory(
        name="Scores",
        queue=sales,
        condition={"field": "engagement_score", "op": "gt", "value": 90},
        test_cases=[case("engaged", "Sales", engagement_score=95)],
    )
    stage(rule, condition={"field": "engagement_score", "op": "gt", "value": 50})
    experiment = ExperimentFactory(rule=rule, percent=99)
    lead = LeadFactory(engagement_score=75)  # production v1: no rule; the candidate v2: this rule

    leads_route(lead_ids=[lead.pk])

    arm = _expected_arm(experiment, lead)
    assert ExperimentLead.objects.get(lead=lead).arm == arm
    lead.refresh_from_db()
    if arm == Arm.CANDIDATE:
        assert (lead.status, lead.rule_version) == (LeadStatus.ASSIGNED, 2)
    else:
        assert lead.status == LeadStatus.EXCEPTION


def test_the_lead_count_is_exact_and_the_batch_that_fills_it_ends_the_experiment(mql_rule, sales):
    experiment = ExperimentFactory(rule=mql_rule, percent=50, max_leads=5)
    leads = LeadFactory.create_batch(8, lifecycle_stage="mql")

    leads_route(lead_ids=[lead.pk for lead in leads])

    experiment.refresh_from_db()
    assert (experiment.enrolled, experiment.status, experiment.end_reason) == (
        5,
        ExperimentStatus.ENDED,
        ExperimentEnd.MAX_LEADS,
    )
    assert experiment.ended_at is not None
    enrolled = set(ExperimentLead.objects.values_list("lead_id", flat=True))
    assert enrolled == {lead.pk for lead in leads[:5]}  # in lead order, as the batch reads them
    for lead in Lead.objects.filter(pk__in=[lead.pk for lead in leads[5:]]):
        assert (lead.queue, lead.rule_version) == (sales, 1)  # no place left: production routes them

    later = LeadFactory(lifecycle_stage="mql")
    leads_route(lead_ids=[later.pk])
    assert routing_rulesets().experiment is None
    assert not ExperimentLead.objects.filter(lead=later).exists()


def test_an_experiment_stopped_after_the_rules_were_read_enrols_nobody(mql_rule, sales):
    experiment = ExperimentFactory(rule=mql_rule)
    rulesets = routing_rulesets()
    assert rulesets.experiment is not None and rulesets.experiment.id == experiment.pk
    Experiment.objects.filter(pk=experiment.pk).update(status=ExperimentStatus.ENDED, end_reason=ExperimentEnd.STOPPED)
    lead = LeadFactory(lifecycle_stage="mql")

    leads_route(lead_ids=[lead.pk], rulesets=rulesets)

    lead.refresh_from_db()
    assert (lead.queue, lead.rule_version) == (sales, 1)
    assert not ExperimentLead.objects.exists()


def test_a_lead_routed_again_keeps_its_arm_and_takes_no_new_place(mql_rule):
    experiment = ExperimentFactory(rule=mql_rule, percent=50)
    leads = LeadFactory.create_batch(6, lifecycle_stage="mql")
    leads_route(lead_ids=[lead.pk for lead in leads])
    arms = dict(ExperimentLead.objects.values_list("lead_id", "arm"))
    # Back to `received`, as a person sending a lead back to routing leaves it.
    Lead.objects.filter(pk__in=arms).update(status=LeadStatus.RECEIVED, assignee=None, assigned_at=None)

    leads_route(lead_ids=list(arms))

    assert dict(ExperimentLead.objects.values_list("lead_id", "arm")) == arms
    experiment.refresh_from_db()
    assert experiment.enrolled == 6
    for lead in Lead.objects.filter(pk__in=arms):
        assert lead.rule_version == (2 if arms[lead.pk] == Arm.CANDIDATE else 1)


def test_a_lead_another_experiment_enrolled_routes_by_production(mql_rule, sales):
    lead = LeadFactory(lifecycle_stage="mql")
    first = ExperimentFactory(rule=mql_rule, status=ExperimentStatus.KEPT)
    ExperimentLead.objects.create(experiment=first, lead=lead, arm=Arm.CANDIDATE, at=first.started_at)
    second = ExperimentFactory(rule=mql_rule, percent=99)

    leads_route(lead_ids=[lead.pk])

    lead.refresh_from_db()
    assert (lead.queue, lead.rule_version) == (sales, 1)
    assert ExperimentLead.objects.get(lead=lead).experiment == first
    second.refresh_from_db()
    assert second.enrolled == 0


def test_an_experiment_costs_a_batch_four_queries(sales):
    """Earlier enrolments, the experiment's locked row, its count, and one insert of the batch's enrolments:
    however many leads the batch holds (both arms route to one queue here, so only the experiment differs)."""
    rule = stage(RuleFactory(name="MQLs", queue=sales), sla_minutes=5)
    baseline_leads = LeadFactory.create_batch(10, lifecycle_stage="mql")
    rulesets = routing_rulesets()
    with CaptureQueriesContext(connection) as without:
        leads_route(lead_ids=[lead.pk for lead in baseline_leads], rulesets=rulesets)

    ExperimentFactory(rule=rule, percent=50, max_leads=None)
    rulesets = routing_rulesets()
    leads = LeadFactory.create_batch(10, lifecycle_stage="mql")
    with CaptureQueriesContext(connection) as with_experiment:
        leads_route(lead_ids=[lead.pk for lead in leads], rulesets=rulesets)

    assert len(with_experiment) - len(without) == 4


def test_the_explanation_of_a_candidate_arm_lead_names_the_candidate_version(mql_rule, uk):
    experiment = ExperimentFactory(rule=mql_rule, percent=50)
    leads = LeadFactory.create_batch(12, lifecycle_stage="mql")
    leads_route(lead_ids=[lead.pk for lead in leads])
    arms = dict(ExperimentLead.objects.filter(experiment=experiment).values_list("lead_id", "arm"))

    for lead in Lead.objects.filter(pk__in=arms):
        decided = lead_explanation(lead).decided
        assert decided.version.number == (2 if arms[lead.pk] == Arm.CANDIDATE else 1)
        assert decided.version.queue.name == ("UK" if arms[lead.pk] == Arm.CANDIDATE else "Sales")
