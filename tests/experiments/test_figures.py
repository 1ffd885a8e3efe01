"""Each arm's figures, their intervals and the criteria's verdicts (routing/experiments/figures.py)."""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.models import AuditAction
from audit.services import audit_record
from routing.experiments.figures import (
    MIN_LEADS_PER_ARM,
    Verdict,
    experiment_figures,
    median_ranks,
    wilson_interval,
)
from routing.experiments.models import Arm
from tests.factories import ExceptionItemFactory, ExperimentFactory, ExperimentLeadFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def experiment(mql_rule):
    return ExperimentFactory(rule=mql_rule, criteria={"route_latency": -50})


def _enrol(experiment, arm, seconds: float | None, **lead):
    """A lead enrolled in `arm`, assigned `seconds` after it was received (None: not assigned yet)."""
    received = timezone.now() - dt.timedelta(hours=1)
    assigned = None if seconds is None else received + dt.timedelta(seconds=seconds)
    return ExperimentLeadFactory(
        experiment=experiment, arm=arm, lead__received_at=received, lead__assigned_at=assigned, **lead
    )


def test_wilson_interval_matches_the_textbook_values():
    low, high = wilson_interval(5, 10)
    assert (round(low, 4), round(high, 4)) == (0.2366, 0.7634)
    low, high = wilson_interval(0, 10)
    assert (low, round(high, 4)) == (0.0, 0.2775)  # never below 0, unlike p ± 1.96 se
    assert wilson_interval(0, 0) is None


def test_the_median_interval_ranks_need_eight_values():
    assert median_ranks(7) is None
    assert median_ranks(8) == (1, 8)
    assert median_ranks(10) == (1, 10)
    assert median_ranks(100) == (40, 61)


def test_each_arm_counts_its_own_leads_and_what_happened_to_them(experiment):
    production = [_enrol(experiment, Arm.PRODUCTION, seconds) for seconds in range(1, 11)]
    waiting = _enrol(experiment, Arm.PRODUCTION, None)
    candidate = [_enrol(experiment, Arm.CANDIDATE, seconds) for seconds in (0.2, 0.4, 0.6, 0.8)]
    person = UserFactory()
    # Exceptions: two production leads after enrolment count; one opened before it does not.
    ExceptionItemFactory(lead=production[0].lead, opened_at=production[0].at + dt.timedelta(minutes=1))
    ExceptionItemFactory(lead=production[1].lead, opened_at=production[1].at + dt.timedelta(minutes=1))
    ExceptionItemFactory(
        lead=production[1].lead, opened_at=production[1].at + dt.timedelta(minutes=2), reason="delivery_failed"
    )  # a second item on one lead: the lead counts once
    ExceptionItemFactory(lead=production[2].lead, opened_at=production[2].at - dt.timedelta(minutes=1))
    # Manual touches: a person's, twice on one lead, count once; the engine's and a non-touch do not.
    for _ in range(2):
        audit_record(action=AuditAction.LEAD_OVERRIDE, actor=person, lead=candidate[0].lead)
    audit_record(action=AuditAction.EXCEPTION_ESCALATED, actor=None, lead=candidate[1].lead)
    audit_record(action=AuditAction.ROUTING_DECISION, actor=person, lead=candidate[2].lead)
    for enrolled in (production[0], production[5], waiting, candidate[3]):
        enrolled.lead.converted_at = timezone.now()
        enrolled.lead.save(update_fields=["converted_at"])

    arms = {arm.name: arm for arm in experiment_figures(experiment).arms}

    made = arms["production"]
    assert (made.leads, made.assigned, made.exceptions, made.manual_touches, made.converted) == (11, 10, 2, 0, 3)
    assert made.route_latency_p50_ms == 5500.0
    assert made.route_latency_ci_ms == (1000.0, 10000.0)
    assert made.exception_rate == pytest.approx(2 / 11)
    assert made.exception_ci == pytest.approx(wilson_interval(2, 11))
    assert made.conversion_rate == pytest.approx(3 / 11)
    assert made.manual_touch_ci == pytest.approx(wilson_interval(0, 11))
    tried = arms["candidate"]
    assert (tried.leads, tried.assigned, tried.exceptions, tried.manual_touches, tried.converted) == (4, 4, 0, 1, 1)
    assert tried.route_latency_p50_ms == 500.0
    assert tried.route_latency_ci_ms is None  # 4 assigned leads: too few for an interval


def test_an_experiment_with_no_leads_yet_has_empty_arms_and_no_verdict(experiment):
    figures = experiment_figures(experiment)
    assert [(arm.name, arm.leads, arm.route_latency_p50_ms, arm.exception_rate) for arm in figures.arms] == [
        ("production", 0, None, None),
        ("candidate", 0, None, None),
    ]
    assert figures.verdicts[0].verdict == Verdict.TOO_EARLY
    assert figures.verdicts[0].why == f"Each arm needs {MIN_LEADS_PER_ARM} assigned leads; the smaller has 0."


def _arms_of(experiment, production_seconds, candidate_seconds):
    for seconds in production_seconds:
        _enrol(experiment, Arm.PRODUCTION, seconds)
    for seconds in candidate_seconds:
        _enrol(experiment, Arm.CANDIDATE, seconds)


@pytest.mark.parametrize(
    "target, verdict",
    [(-50, Verdict.MET), (-90, Verdict.NOT_MET)],
)
def test_a_clear_difference_meets_or_misses_its_target(experiment, target, verdict):
    experiment.criteria = {"route_latency": target}
    _arms_of(experiment, [10 + n / 10 for n in range(40)], [2 + n / 10 for n in range(40)])

    (judged,) = experiment_figures(experiment).verdicts

    assert judged.change_percent == pytest.approx(-(10 + 1.95 - (2 + 1.95)) / (10 + 1.95) * 100, abs=0.1)
    assert (judged.verdict, judged.criterion, judged.target_percent) == (verdict, "route_latency", target)


def test_overlapping_intervals_are_too_early_to_tell(experiment):
    _arms_of(experiment, [n for n in range(1, 41)], [n - 0.5 for n in range(1, 41)])
    (judged,) = experiment_figures(experiment).verdicts
    assert judged.verdict == Verdict.TOO_EARLY
    assert "overlap" in judged.why


def test_too_few_leads_in_one_arm_is_too_early_whatever_the_difference(experiment):
    _arms_of(experiment, [10] * 40, [1] * (MIN_LEADS_PER_ARM - 1))
    (judged,) = experiment_figures(experiment).verdicts
    assert judged.verdict == Verdict.TOO_EARLY
    assert judged.why == f"Each arm needs {MIN_LEADS_PER_ARM} assigned leads; the smaller has {MIN_LEADS_PER_ARM - 1}."


def test_a_rate_criterion_compares_the_rates(experiment):
    experiment.criteria = {"conversion": 20}
    for n in range(40):
        production = _enrol(experiment, Arm.PRODUCTION, 1)
        candidate = _enrol(experiment, Arm.CANDIDATE, 1)
        for enrolled, converted in ((production, n < 4), (candidate, n < 36)):
            if converted:
                enrolled.lead.converted_at = timezone.now()
                enrolled.lead.save(update_fields=["converted_at"])
    (judged,) = experiment_figures(experiment).verdicts
    assert (judged.production, judged.candidate) == (0.1, 0.9)
    assert (judged.change_percent, judged.verdict) == (800.0, Verdict.MET)


def test_figures_take_two_queries_however_many_leads(experiment):
    _arms_of(experiment, [1, 2], [3])
    with CaptureQueriesContext(connection) as few:
        experiment_figures(experiment)
    _arms_of(experiment, range(1, 60), range(1, 60))
    with CaptureQueriesContext(connection) as many:
        experiment_figures(experiment)
    assert len(few) == len(many) == 2
