"""Success metrics: a rule's targets in its contract, its actuals over a window, the verdict of each, where
they show, and the SLA check that tells owners once a week when adherence falls below target."""

import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.urls import reverse

from audit.models import Override
from exceptions.models import ExceptionReason
from routing.governance.forms import DraftForm
from routing.governance.metrics import MIN_LEADS, MetricStatus, sla_target_check, success_metrics
from routing.governance.models import RuleNotice, RuleNoticeKind
from routing.models import Lead, LeadStatus, RuleStage
from tests.factories import ExceptionItemFactory, LeadFactory, RuleFactory, UserFactory, personal_token

NOW = dt.datetime(2026, 11, 18, 12, 0, tzinfo=dt.UTC)  # a Wednesday, ISO week 2026-W47

pytestmark = pytest.mark.django_db


def decided(rule, *, received_ago, took=None, at=NOW, **fields) -> Lead:
    """A lead `rule` decided, received `received_ago` before `at` and assigned `took` after that (None: not)."""
    received = at - received_ago
    return LeadFactory(
        rule=rule,
        rule_version=1,
        queue=rule.queue,
        received_at=received,
        occurred_at=received,
        routed_at=received,
        assigned_at=None if took is None else received + took,
        **{"status": LeadStatus.RECEIVED if took is None else LeadStatus.ASSIGNED, **fields},
    )


def override(lead, *, at):
    return Override.objects.create(
        lead=lead, rule=lead.rule, rule_version=1, to_queue=lead.queue, by=lead.rule.owner, at=at
    )


def targeted_rule(**targets):
    return RuleFactory(
        sla_minutes=15,
        **{
            "target_exception_rate": Decimal("10"),
            "target_latency_p95_minutes": Decimal("5"),
            "target_overrides_per_week": 2,
            "target_sla_adherence": Decimal("90"),
            **targets,
        },
    )


@time_machine.travel(NOW, tick=False)
def test_actuals_are_computed_from_the_leads_the_rule_decided_in_the_window_and_judged_against_its_targets():
    rule = targeted_rule(target_latency_p95_minutes=Decimal("1.5"))
    fast = [
        decided(rule, received_ago=dt.timedelta(days=1, minutes=n), took=dt.timedelta(seconds=90)) for n in range(19)
    ]
    ExceptionItemFactory(lead=fast[0], reason=ExceptionReason.DELIVERY_FAILED, queue=rule.queue)  # not the rule's
    decided(rule, received_ago=dt.timedelta(days=2), took=dt.timedelta(minutes=30))  # assigned late
    stuck = decided(rule, received_ago=dt.timedelta(days=3), status=LeadStatus.EXCEPTION)  # never assigned
    ExceptionItemFactory(lead=stuck, reason=ExceptionReason.NO_ELIGIBLE_ASSIGNEE, queue=rule.queue)
    decided(rule, received_ago=dt.timedelta(minutes=5))  # still inside its SLA: decided, not judged yet
    old = decided(rule, received_ago=dt.timedelta(days=8), status=LeadStatus.EXCEPTION)  # before the window
    ExceptionItemFactory(lead=old, reason=ExceptionReason.NO_ELIGIBLE_ASSIGNEE, queue=rule.queue)
    for n in range(3):
        override(fast[n], at=NOW - dt.timedelta(hours=n + 1))
    override(old, at=NOW - dt.timedelta(days=8))
    other = targeted_rule()
    decided(other, received_ago=dt.timedelta(days=1), took=dt.timedelta(hours=5))

    result = success_metrics()[rule.pk]

    assert (result.decided, result.assigned, result.sla_judged, result.sla_met) == (22, 20, 21, 19)
    assert (result.rule_exception_leads, result.other_exception_leads, result.overrides) == (1, 1, 3)
    rate, latency, overrides, sla = result.metrics
    assert rate.actual == pytest.approx(100 / 22) and rate.status == MetricStatus.MET
    # 20 assigned: the 19th (P95 by nearest rank) took 90 s; the 20th, 30 minutes, is the 5% beyond.
    assert latency.actual == 1.5 and latency.status == MetricStatus.MET
    assert overrides.actual == 3 and overrides.status == MetricStatus.MISSED
    assert sla.actual == pytest.approx(100 * 19 / 21) and sla.status == MetricStatus.MET
    assert [m.key for m in result.missed] == ["target_overrides_per_week"]


@time_machine.travel(NOW, tick=False)
def test_a_rule_without_targets_says_so_and_one_with_few_leads_is_not_enough_data():
    bare = RuleFactory(sla_minutes=15)
    few = targeted_rule()
    for rule in (bare, few):
        for n in range(MIN_LEADS - 1):
            decided(rule, received_ago=dt.timedelta(hours=n + 1), took=dt.timedelta(hours=1))

    results = success_metrics()

    assert {m.status for m in results[bare.pk].metrics} == {MetricStatus.NO_TARGET}
    statuses = {m.key: m.status for m in results[few.pk].metrics}
    assert statuses == {
        "target_exception_rate": MetricStatus.NOT_ENOUGH_DATA,
        "target_latency_p95_minutes": MetricStatus.NOT_ENOUGH_DATA,
        "target_overrides_per_week": MetricStatus.MET,  # a count: zero overrides is a verdict
        "target_sla_adherence": MetricStatus.NOT_ENOUGH_DATA,
    }


@time_machine.travel(NOW, tick=False)
def test_targets_come_from_the_production_version_not_the_unpromoted_draft():
    rule = targeted_rule(target_sla_adherence=Decimal("99"))
    rule.target_sla_adherence = Decimal("10")
    rule.save()
    for n in range(MIN_LEADS):
        decided(rule, received_ago=dt.timedelta(hours=n + 1), took=dt.timedelta(minutes=20 if n < 2 else 1))

    sla = success_metrics()[rule.pk].metric("target_sla_adherence")

    assert (sla.target, sla.actual, sla.status) == (Decimal("99"), 90, MetricStatus.MISSED)


@pytest.mark.parametrize("rules", [2, 6])
@time_machine.travel(NOW, tick=False)
def test_metrics_for_every_production_rule_take_a_fixed_number_of_queries(rules, django_assert_num_queries):
    for _ in range(rules):
        rule = targeted_rule()
        lead = decided(rule, received_ago=dt.timedelta(hours=1), took=dt.timedelta(minutes=1))
        ExceptionItemFactory(lead=lead, reason=ExceptionReason.ROUTING_SLA_BREACHED, queue=rule.queue)
        override(lead, at=NOW - dt.timedelta(minutes=10))
    RuleFactory(stage=RuleStage.DRAFT)  # never in production: not measured

    with django_assert_num_queries(4):  # rules, lead figures, latency, overrides
        results = success_metrics()

    assert len(results) == rules
    assert all(r.decided == 1 and r.rule_exception_leads == 1 and r.overrides == 1 for r in results.values())


def late_leads(rule, *, late: int, total: int, at=NOW):
    for n in range(total):
        took = dt.timedelta(minutes=40 if n < late else 2)
        decided(rule, received_ago=dt.timedelta(hours=n + 1), took=took, at=at)


def late_rule(*, late: int, total: int, target="95"):
    rule = targeted_rule(target_sla_adherence=Decimal(target))
    late_leads(rule, late=late, total=total)
    return rule


def console_person(user):
    user.groups.add(Group.objects.get_or_create(name="rule_owners")[0])
    return user


@time_machine.travel(NOW, tick=False)
def test_an_sla_below_target_notices_the_owner_once_a_week():
    rule = late_rule(late=3, total=MIN_LEADS)  # 85% < 95%

    assert sla_target_check() == 1
    assert sla_target_check() == 0  # the same week: already told

    notice = RuleNotice.objects.get()
    assert (notice.rule, notice.recipient, notice.kind) == (rule, rule.owner, RuleNoticeKind.SLA_BELOW_TARGET)
    assert notice.key == f"rule:{rule.pk}:sla:2026-W47"
    assert "85.0%" in notice.message and "3 of 20 leads" in notice.message

    next_week = NOW + dt.timedelta(days=7)
    late_leads(rule, late=4, total=MIN_LEADS, at=next_week)  # still late a week later
    with time_machine.travel(next_week, tick=False):
        assert sla_target_check() == 1  # a new week: told again
    assert RuleNotice.objects.count() == 2


@time_machine.travel(NOW, tick=False)
def test_an_sla_that_meets_its_target_or_has_too_few_leads_notices_nobody():
    late_rule(late=1, total=MIN_LEADS)  # 95%: meets 95
    late_rule(late=1, total=2)  # 50%, but two leads do not page anyone
    RuleFactory(sla_minutes=15)  # no target

    assert sla_target_check() == 0
    assert not RuleNotice.objects.exists()


def draft_data(rule, **changes):
    data = {
        "name": rule.name,
        "owner": rule.owner_id,
        "priority": rule.priority,
        "queue": rule.queue_id,
        "assign_to": rule.assign_to,
        "sla_minutes": rule.sla_minutes,
        "condition": '{"field": "lifecycle_stage", "op": "eq", "value": "mql"}',
        "test_cases": "[]",
        "source_of_truth": "Salesforce",
    }
    return {**data, **changes}


def test_the_draft_form_refuses_targets_out_of_range_with_what_to_fix():
    rule = RuleFactory(stage=RuleStage.DRAFT)
    form = DraftForm(
        data=draft_data(rule, target_exception_rate="150", target_sla_adherence="-1", target_latency_p95_minutes="0"),
        instance=rule,
    )

    assert not form.is_valid()
    assert "a percentage from 0 to 100 (got 150)" in form.errors["target_exception_rate"][0]
    assert "a percentage from 0 to 100 (got -1)" in form.errors["target_sla_adherence"][0]
    assert "minutes above 0" in form.errors["target_latency_p95_minutes"][0]


def test_the_draft_form_saves_targets_and_the_source_of_truth():
    rule = RuleFactory(stage=RuleStage.DRAFT)
    form = DraftForm(data=draft_data(rule, target_sla_adherence="97.5", target_overrides_per_week="3"), instance=rule)

    assert form.is_valid(), form.errors
    form.save()
    rule.refresh_from_db()
    assert (rule.target_sla_adherence, rule.target_overrides_per_week, rule.source_of_truth) == (
        Decimal("97.5"),
        3,
        "Salesforce",
    )


def test_the_api_sets_targets_on_the_draft_and_refuses_bad_ones(client):
    rule = RuleFactory(stage=RuleStage.PRODUCTION, owner=console_person(UserFactory()))
    auth = {"HTTP_AUTHORIZATION": f"Token {personal_token(rule.owner)}"}
    url = reverse("rule-targets", args=[rule.pk])

    bad = client.patch(url, {"target_sla_adherence": 120, "target_latency_p95_minutes": -2}, "application/json", **auth)
    assert bad.status_code == 400
    assert "a percentage from 0 to 100 (got 120" in str(bad.json())
    assert "minutes above 0" in str(bad.json())

    good = client.patch(url, {"target_sla_adherence": 95, "source_of_truth": "HubSpot"}, "application/json", **auth)
    assert good.status_code == 200, good.content
    assert good.json()["target_sla_adherence"] == "95.00" and good.json()["source_of_truth"] == "HubSpot"
    # The draft changed; production keeps its frozen (empty) target until promoted.
    sla = next(m for m in good.json()["actuals"] if m["key"] == "target_sla_adherence")
    assert sla["target"] is None and sla["status"] == MetricStatus.NO_TARGET
    rule.refresh_from_db()
    assert rule.target_sla_adherence == Decimal("95") and rule.production_version.target_sla_adherence is None
    detail = client.get(reverse("rule-detail", args=[rule.pk]), **auth).json()
    assert detail["target_sla_adherence"] == "95.00" and detail["source_of_truth"] == "HubSpot"


def test_someone_else_cannot_set_a_rules_targets(client):
    rule = RuleFactory()
    stranger = console_person(UserFactory())
    response = client.patch(
        reverse("rule-targets", args=[rule.pk]),
        {"target_sla_adherence": 95},
        "application/json",
        HTTP_AUTHORIZATION=f"Token {personal_token(stranger)}",
    )
    assert response.status_code == 403


@time_machine.travel(NOW, tick=False)
def test_the_rule_page_shows_targets_actuals_and_the_source_of_truth(client):
    rule = late_rule(late=3, total=MIN_LEADS)
    rule.source_of_truth = "Salesforce <CRM>"
    rule.save()
    client.force_login(console_person(rule.owner))

    page = client.get(reverse("console:rule", args=[rule.pk])).content.decode()

    assert 'id="success-metrics"' in page
    row = page.split('id="metric-target_sla_adherence"')[1].split("</tr>")[0]
    assert "≥ 95.00 %" in row and "85.0 %" in row and "Missed" in row
    assert "Salesforce &lt;CRM&gt;" in page


@time_machine.travel(NOW, tick=False)
def test_the_dashboard_lists_rules_missing_a_target_and_rules_without_any(client):
    missing = late_rule(late=3, total=MIN_LEADS)  # SLA adherence 85% < 95%
    late_rule(late=0, total=MIN_LEADS)  # meets every target
    bare = RuleFactory(name="No targets <here>")
    client.force_login(console_person(UserFactory()))

    page = client.get(reverse("console:dashboard")).content.decode()

    card = page.split('id="rule-targets"')[1].split("</table>")[0]
    assert f'data-rule="{missing.name}"' in card and card.count("data-rule=") == 1
    assert "SLA adherence 85.0 % (target ≥ 95.00 %)" in card
    assert f"{bare.pk}/" in page and "No targets &lt;here&gt;" in page


MONDAY = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)  # reviews ISO week 2026-W47 (16–23 Nov)


@time_machine.travel(MONDAY, tick=False)
def test_the_monday_checklist_says_which_rules_missed_their_targets_in_the_week_reviewed():
    from routing.reports.checklist import monday_checklist

    missing = late_rule(late=3, total=MIN_LEADS)  # leads of 17–18 Nov: inside the week reviewed
    late_rule(late=0, total=MIN_LEADS)
    RuleFactory()

    answer = monday_checklist(now=MONDAY).answers[-1]

    assert answer.question == "Did every production rule meet its success targets?"
    assert answer.ok is False
    assert answer.summary == "1 of 2 rule(s) judged missed a target; 1 production rule(s) set no target"
    assert answer.details == [
        f"{missing.name}: Route latency P95 40.0 min (target ≤ 5.00 min); SLA adherence 85.0 % (target ≥ 95.00 %)"
    ]


@time_machine.travel(NOW, tick=False)
def test_a_p95_above_its_target_is_missed():
    rule = targeted_rule(target_latency_p95_minutes=Decimal("5"))
    for n in range(MIN_LEADS):
        decided(rule, received_ago=dt.timedelta(hours=n + 1), took=dt.timedelta(minutes=7 if n < 2 else 1))

    latency = success_metrics()[rule.pk].metric("target_latency_p95_minutes")

    assert (latency.actual, latency.status) == (7, MetricStatus.MISSED)  # the 19th of 20 took 7 minutes


def test_a_target_or_source_of_truth_edit_shows_in_the_drafts_diff_against_production():
    from routing.governance.selectors import version_diff

    rule = targeted_rule()
    rule.target_sla_adherence = Decimal("97.50")
    rule.source_of_truth = "HubSpot"
    rule.save()

    changes = version_diff(rule.production_version, rule)
    assert [(c.field, [(line.kind, line.text) for line in c.lines]) for c in changes] == [
        ("target_sla_adherence", [("removed", "≥ 90%"), ("added", "≥ 97.5%")]),
        ("source_of_truth", [("added", "HubSpot")]),
    ]
