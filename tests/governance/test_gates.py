"""Promotion gates (routing/governance/gates.py, services.py): each missing piece blocks the promotion with
its own message, and a blocked promotion writes nothing."""

import pytest
from django.utils import timezone

from audit.models import AuditAction, AuditEvent
from routing.governance.gates import inactive_owner_message
from routing.governance.models import ReplayRun, ReplayStatus, RulePromotion, RuleVersion
from routing.governance.replay import replay_request
from routing.governance.services import PromotionBlocked, rule_promote
from routing.models import Rule, RuleStage
from tests.factories import RuleFactory, UserFactory, case
from tests.governance.helpers import replay, stage

pytestmark = pytest.mark.django_db

GB = {"field": "country", "op": "eq", "value": "GB"}


def snapshot(rule: Rule) -> tuple:
    """What a promotion would change: the rule's stage and pointers, and the append-only records."""
    stored = Rule.objects.get(pk=rule.pk)
    return (
        stored.stage,
        stored.staging_version_id,
        stored.production_version_id,
        RuleVersion.objects.count(),
        RulePromotion.objects.count(),
        AuditEvent.objects.filter(action=AuditAction.RULE_PROMOTED).count(),
    )


def blocked(rule: Rule, to: str, by) -> list[tuple[str, str]]:
    """Promote, expecting the gates to refuse; returns the failed gates as (gate, message) and checks that
    nothing was written."""
    before = snapshot(rule)
    with pytest.raises(PromotionBlocked) as refused:
        rule_promote(rule=rule, to=to, by=by)
    assert snapshot(rule) == before
    assert str(refused.value) == " ".join(gate.message for gate in refused.value.failures)
    return [(gate.gate, gate.message) for gate in refused.value.failures]


@pytest.fixture
def draft(sales, rule_owner):
    """A complete draft of a rule that has never been promoted: every gate passes as it is."""
    return RuleFactory(
        name="UK leads",
        stage=RuleStage.DRAFT,
        owner=rule_owner,
        queue=sales,
        condition=GB,
        test_cases=[case("a GB lead", "Sales", country="GB")],
    )


def test_a_complete_draft_passes_every_gate_into_staging(draft, rule_owner):
    promotion = rule_promote(rule=draft, to=RuleStage.STAGING, by=rule_owner)

    gates = {result["gate"]: result["passed"] for result in promotion.gate_results}
    assert gates == {
        "owner": True,
        "description": True,
        "inputs": True,
        "outputs": True,
        "rollback_plan": True,
        "sla": True,
        "condition": True,
        "test:a GB lead": True,
    }


@pytest.mark.parametrize(
    ("changes", "gate", "message"),
    [
        pytest.param(
            {"owner": None}, "owner", "Name an owner: every rule needs a person who answers for it.", id="no-owner"
        ),
        pytest.param({"description": ""}, "description", "Write a description: what the rule is for.", id="desc"),
        pytest.param({"description": "  \n "}, "description", "Write a description: what the rule is for.", id="blank"),
        pytest.param({"inputs": ""}, "inputs", "List the inputs: the lead fields the rule reads.", id="inputs"),
        pytest.param(
            {"outputs": ""},
            "outputs",
            "Describe the outputs: where matching leads go and what happens next.",
            id="outputs",
        ),
        pytest.param(
            {"rollback_plan": ""},
            "rollback_plan",
            "Write a rollback plan: what to do if the rule misroutes.",
            id="rollback-plan",
        ),
        pytest.param({"sla_minutes": None}, "sla", "Set the SLA: minutes to assignment.", id="no-sla"),
        pytest.param({"sla_minutes": 0}, "sla", "Set the SLA: minutes to assignment.", id="zero-sla"),
        pytest.param(
            {"test_cases": []},
            "test_cases",
            "Add at least one test case: a sample lead and the expected outcome (a queue, or no match).",
            id="no-test-cases",
        ),
        pytest.param(
            {"test_cases": [{"name": "half a case", "lead": {"country": "GB"}}]},
            "test_cases",
            "Fix the test cases: test_cases[0]: 'expect' is a required property",
            id="malformed-test-case",
        ),
    ],
)
def test_each_missing_piece_of_the_contract_blocks_staging_with_its_own_message(draft, admin, changes, gate, message):
    for name, value in changes.items():
        setattr(draft, name, value)
    draft.save()

    assert blocked(draft, RuleStage.STAGING, admin) == [(gate, message)]


def test_an_inactive_owner_blocks_staging(draft, admin):
    draft.owner = UserFactory(username="gone", is_active=False)
    draft.save()

    assert blocked(draft, RuleStage.STAGING, admin) == [("owner", inactive_owner_message(draft.owner))]


def test_an_invalid_condition_blocks_staging_naming_where_it_is_wrong(draft, admin):
    draft.condition = {"all": [GB, {"field": "shoe_size", "op": "eq", "value": 42}]}
    draft.save()

    ((gate, message),) = blocked(draft, RuleStage.STAGING, admin)

    assert gate == "condition"
    assert message.startswith("Fix the condition: when.all[1].field: unknown field 'shoe_size'; use one of ")


def test_a_failing_test_case_names_the_case_expected_got_and_the_first_failing_condition(draft, admin):
    draft.condition = {"all": [GB, {"field": "company_size", "op": "gte", "value": 100}]}
    draft.test_cases = [
        case("a big GB company", "Sales", country="GB", company_size=500),
        case("a small GB company", "Sales", country="GB", company_size=12),
        case("a US company is not ours", country="US", company_size=500),
    ]
    draft.save()

    assert blocked(draft, RuleStage.STAGING, admin) == [
        (
            "test:a small GB company",
            "Test case 'a small GB company' failed: expected Sales, got no match "
            "(company_size ≥ 100 — company_size was 12).",
        )
    ]


def test_a_test_case_expecting_no_match_fails_when_the_rule_matches(draft, admin):
    draft.test_cases = [case("GB is not ours", country="GB")]
    draft.save()

    assert blocked(draft, RuleStage.STAGING, admin) == [
        ("test:GB is not ours", "Test case 'GB is not ours' failed: expected no match, got Sales.")
    ]


def test_every_failed_gate_is_reported_at_once(draft, admin):
    draft.description = ""
    draft.sla_minutes = None
    draft.test_cases = []
    draft.save()

    assert [gate for gate, _ in blocked(draft, RuleStage.STAGING, admin)] == ["description", "sla", "test_cases"]


def test_an_unchanged_draft_of_a_production_rule_has_nothing_to_promote(sales, rule_owner):
    rule = RuleFactory(owner=rule_owner, queue=sales)  # production v1, the draft as frozen

    assert blocked(rule, RuleStage.STAGING, rule_owner) == [
        ("changed", "Nothing to promote: the draft is the same as production v1.")
    ]


def test_an_unchanged_draft_of_a_staged_rule_has_nothing_to_promote(sales, rule_owner):
    rule = stage(RuleFactory(owner=rule_owner, queue=sales), description="Routes MQLs to sales.")

    assert blocked(rule, RuleStage.STAGING, rule_owner) == [
        ("changed", "Nothing to promote: the draft is the same as staging v2.")
    ]


STAGING_FIRST = ("staging", "Promote to staging first: production only takes a version that ran there.")


def test_a_draft_cannot_go_to_production_without_a_staging_version(draft, rule_owner):
    assert blocked(draft, RuleStage.PRODUCTION, rule_owner) == [STAGING_FIRST]


def test_a_production_rule_with_an_edited_draft_still_needs_staging_first(sales, rule_owner):
    rule = RuleFactory(owner=rule_owner, queue=sales)
    rule.description = "Edited, not staged."
    rule.save()
    replay(by=rule_owner)

    assert blocked(rule, RuleStage.PRODUCTION, rule_owner) == [STAGING_FIRST]


def test_production_without_a_replay_is_blocked(sales, rule_owner):
    rule = stage(RuleFactory(owner=rule_owner, queue=sales), description="Routes MQLs to sales.")

    assert blocked(rule, RuleStage.PRODUCTION, rule_owner) == [
        ("replay", "Run a replay with staging v2: none has finished since the last rule change.")
    ]


def test_a_replay_that_has_not_finished_is_not_evidence(sales, rule_owner):
    rule = stage(RuleFactory(owner=rule_owner, queue=sales), description="Routes MQLs to sales.")
    run = replay_request(by=rule_owner)
    assert run.status == ReplayStatus.QUEUED

    assert [gate for gate, _ in blocked(rule, RuleStage.PRODUCTION, rule_owner)] == ["replay"]


def test_a_replay_older_than_the_last_staging_promotion_is_not_accepted(sales, partners, rule_owner):
    rule = stage(RuleFactory(owner=rule_owner, queue=sales), description="Routes MQLs to sales.")
    stale = replay(by=rule_owner)
    assert stale.candidate[str(rule.pk)] == 2  # it did evaluate this staging version...
    other = RuleFactory(owner=rule_owner, queue=partners)
    stage(other, description="Another rule changes the candidate set.")  # ...but the set changed since

    assert blocked(rule, RuleStage.PRODUCTION, rule_owner) == [
        ("replay", "Run a replay with staging v2: none has finished since the last rule change.")
    ]

    fresh = replay(by=rule_owner)
    promotion = rule_promote(rule=rule, to=RuleStage.PRODUCTION, by=rule_owner)
    assert promotion.replay == fresh


def test_a_replay_whose_candidate_did_not_include_this_staging_version_is_not_accepted(sales, rule_owner):
    rule = stage(RuleFactory(owner=rule_owner, queue=sales), description="Routes MQLs to sales.")
    ReplayRun.objects.create(
        requested_by=rule_owner,
        requested_at=timezone.now(),
        candidate={str(rule.pk): 1},  # production v1, not staging v2
        status=ReplayStatus.DONE,
        result={"before": {}, "after": {}, "moved": [], "moved_count": 0},
    )

    assert blocked(rule, RuleStage.PRODUCTION, rule_owner) == [
        ("replay", "Run a replay with staging v2: none has finished since the last rule change.")
    ]


def test_production_is_granted_on_a_replay_of_the_staging_version_and_records_it(sales, rule_owner):
    rule = stage(RuleFactory(owner=rule_owner, queue=sales), description="Routes MQLs to sales.")
    run = replay(by=rule_owner)

    promotion = rule_promote(rule=rule, to=RuleStage.PRODUCTION, by=rule_owner)

    assert (promotion.kind, promotion.version.number, promotion.replaced.number, promotion.replay) == (
        "production",
        2,
        1,
        run,
    )
    replay_gate = next(result for result in promotion.gate_results if result["gate"] == "replay")
    assert replay_gate == {"gate": "replay", "passed": True, "message": f"Replay #{run.pk}: 0 leads, 0 would move."}


def test_production_gates_check_the_frozen_staging_version_not_the_draft(sales, rule_owner):
    rule = stage(RuleFactory(owner=rule_owner, queue=sales), description="Routes MQLs to sales.")
    replay(by=rule_owner)
    rule.description = ""  # the draft loses its description after staging; staging v2 still has one
    rule.save()

    promotion = rule_promote(rule=rule, to=RuleStage.PRODUCTION, by=rule_owner)

    assert promotion.version.description == "Routes MQLs to sales."
