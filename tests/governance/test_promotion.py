"""Stages move one way (draft → staging → production), production only ever runs a frozen staging version,
rollback re-promotes the previous production version, and only the owner or an admin moves a rule."""

import pytest
from django.core.exceptions import PermissionDenied

from audit.models import AuditAction, AuditEvent
from routing.governance.models import PromotionKind, RulePromotion, RuleVersion
from routing.governance.services import GovernanceError, rule_promote, rule_rollback
from routing.models import Rule, RuleStage
from tests.factories import LeadFactory, RuleFactory, case, promote_live
from tests.governance.helpers import edit, replay, routed, stage

pytestmark = pytest.mark.django_db


@pytest.fixture
def rule(sales, rule_owner):
    """In production as v1: MQLs to Sales."""
    return RuleFactory(name="MQL to sales", owner=rule_owner, queue=sales)


def to_partners(partners):
    return {"queue": partners, "test_cases": [case("an MQL", "Partners", lifecycle_stage="mql")]}


# One-way stages


@pytest.mark.parametrize("target", [RuleStage.DRAFT, "archived"])
def test_promoting_to_anything_but_staging_or_production_is_refused(rule, rule_owner, target):
    with pytest.raises(GovernanceError, match="Stages move one way"):
        rule_promote(rule=rule, to=target, by=rule_owner)
    rule.refresh_from_db()
    assert (rule.stage, rule.production_version.number, RulePromotion.objects.count()) == ("production", 1, 1)


def test_a_first_staging_promotion_moves_a_draft_to_staging(sales, rule_owner):
    draft = RuleFactory(stage=RuleStage.DRAFT, owner=rule_owner, queue=sales)

    promotion = rule_promote(rule=draft, to=RuleStage.STAGING, by=rule_owner)

    draft.refresh_from_db()
    assert (draft.stage, draft.staging_version, draft.production_version) == ("staging", promotion.version, None)
    assert (promotion.kind, promotion.version.number, promotion.replaced) == (PromotionKind.STAGING, 1, None)
    event = AuditEvent.objects.get(action=AuditAction.RULE_PROMOTED)
    assert (event.rule, event.rule_version, event.outcome, event.actor) == (draft, 1, "staging", rule_owner)


def test_staging_a_production_rule_leaves_production_and_its_stage_alone(rule, partners):
    stage(rule, **to_partners(partners))

    assert rule.stage == RuleStage.PRODUCTION
    assert (rule.production_version.number, rule.staging_version.number) == (1, 2)


def test_production_takes_the_staging_version_not_the_later_draft(rule, sales, partners, rule_owner):
    stage(rule, **to_partners(partners))
    edit(rule, queue=sales, description="Changed again after staging.")  # a draft edit, not staged
    replay(by=rule_owner)

    promotion = rule_promote(rule=rule, to=RuleStage.PRODUCTION, by=rule_owner)

    rule.refresh_from_db()
    assert promotion.version.number == 2
    assert rule.production_version == promotion.version
    assert (rule.production_version.queue, rule.production_version.description) == (partners, "Routes test leads.")
    assert RuleVersion.objects.filter(rule=rule).count() == 2  # production froze nothing new


def test_after_a_production_promotion_the_staging_version_is_cleared(rule, partners, rule_owner):
    stage(rule, **to_partners(partners))
    replay(by=rule_owner)

    rule_promote(rule=rule, to=RuleStage.PRODUCTION, by=rule_owner)

    rule.refresh_from_db()
    assert (rule.stage, rule.staging_version, rule.production_version.number) == ("production", None, 2)


def test_draft_edits_after_production_do_not_change_what_routing_uses(rule, sales, partners, rule_owner):
    before = routed(LeadFactory(lifecycle_stage="mql"))

    edit(rule, queue=partners, condition={"field": "lifecycle_stage", "op": "eq", "value": "sql"})
    after_mql = routed(LeadFactory(lifecycle_stage="mql"))
    after_sql = routed(LeadFactory(lifecycle_stage="sql"))

    assert (before.queue, before.rule, before.rule_version) == (sales, rule, 1)
    assert (after_mql.queue, after_mql.rule, after_mql.rule_version) == (sales, rule, 1)
    assert after_sql.status == "exception"  # the edited condition is not live


def test_saving_a_draft_from_a_copy_read_before_a_promotion_keeps_the_promotion(rule, partners, rule_owner):
    """A person's edit (admin form, import) saves a copy of the rule read before a promotion committed: the
    draft save must not put the old stage and version pointers back."""
    copy_read_earlier = Rule.objects.get(pk=rule.pk)
    promote_live(rule, **to_partners(partners))  # production v2
    assert rule.production_version.number == 2

    copy_read_earlier.description = "A typo fixed in the draft."
    edit(copy_read_earlier)

    rule.refresh_from_db()
    assert rule.production_version.number == 2
    lead = routed(LeadFactory(lifecycle_stage="mql"))
    assert (lead.queue, lead.rule_version) == (partners, 2)


def test_editing_the_draft_after_promoting_it_keeps_the_staging_version(sales, rule_owner):
    """rule_promote works on its own locked copy of the rule; the caller's object is the one edited next."""
    rule = RuleFactory(stage=RuleStage.DRAFT, owner=rule_owner, queue=sales)
    rule_promote(rule=rule, to=RuleStage.STAGING, by=rule_owner)

    edit(rule, description="Next change, still a draft.")

    stored = Rule.objects.get(pk=rule.pk)
    assert (stored.stage, stored.staging_version and stored.staging_version.number) == ("staging", 1)


# Rollback


def test_rollback_re_promotes_the_previous_production_version(rule, sales, partners, rule_owner):
    promote_live(rule, **to_partners(partners))
    assert routed(LeadFactory()).queue == partners

    promotion = rule_rollback(rule=rule, by=rule_owner, comment="v2 misroutes")

    rule.refresh_from_db()
    assert rule.production_version.number == 1
    assert (promotion.kind, promotion.version.number, promotion.replaced.number, promotion.by) == (
        PromotionKind.ROLLBACK,
        1,
        2,
        rule_owner,
    )
    event = AuditEvent.objects.get(action=AuditAction.RULE_ROLLED_BACK)
    assert (event.rule, event.rule_version, event.actor, event.outcome) == (rule, 1, rule_owner, "rolled back")
    assert event.data == {"from_version": 2, "to_version": 1, "comment": "v2 misroutes"}
    lead = routed(LeadFactory())
    assert (lead.queue, lead.rule_version) == (sales, 1)


def test_rollback_freezes_no_new_version(rule, partners, rule_owner):
    promote_live(rule, **to_partners(partners))

    rule_rollback(rule=rule, by=rule_owner)

    assert list(rule.versions.order_by("number").values_list("number", flat=True)) == [1, 2]


def test_rollback_with_no_earlier_production_version_is_refused(rule, rule_owner):
    with pytest.raises(GovernanceError, match="has no earlier production version to roll back to"):
        rule_rollback(rule=rule, by=rule_owner)
    assert not AuditEvent.objects.filter(action=AuditAction.RULE_ROLLED_BACK).exists()


def test_rollback_of_a_rule_never_in_production_is_refused(sales, rule_owner):
    staged_only = RuleFactory(stage=RuleStage.STAGING, owner=rule_owner, queue=sales)

    with pytest.raises(GovernanceError):
        rule_rollback(rule=staged_only, by=rule_owner)


def test_a_second_rollback_after_the_first_has_nowhere_to_go(rule, partners, rule_owner):
    promote_live(rule, **to_partners(partners))
    rule_rollback(rule=rule, by=rule_owner)
    rule.refresh_from_db()

    with pytest.raises(GovernanceError):
        rule_rollback(rule=rule, by=rule_owner)


def test_a_staging_version_never_in_production_is_not_a_rollback_target(rule, partners, uk, rule_owner):
    stage(rule, **to_partners(partners))  # v2: staged, replaced in staging before it ever went live
    stage(rule, queue=uk, test_cases=[case("an MQL", "UK", lifecycle_stage="mql")])  # v3
    replay(by=rule_owner)
    rule_promote(rule=rule, to=RuleStage.PRODUCTION, by=rule_owner)  # v3 replaces v1 in production
    rule.refresh_from_db()

    assert rule_rollback(rule=rule, by=rule_owner).version.number == 1


def test_rollback_after_an_earlier_rollback_returns_to_the_version_that_ran_before(rule, sales, partners, rule_owner):
    """v1 → v2 (rolled back as bad) → v1 → v3: rolling v3 back must restore v1, which v3 replaced, not the
    v2 that was taken out of production."""
    promote_live(rule, **to_partners(partners))  # v2
    rule_rollback(rule=rule, by=rule_owner, comment="v2 misroutes")  # v1 again
    rule.refresh_from_db()
    v3 = promote_live(
        rule, queue=sales, description="v3: the fix.", test_cases=[case("an MQL", "Sales", lifecycle_stage="mql")]
    )
    assert (v3.version.number, v3.replaced.number) == (3, 1)

    promotion = rule_rollback(rule=rule, by=rule_owner)

    assert (promotion.version.number, promotion.replaced.number) == (1, 3)


# Who may move a rule


@pytest.mark.parametrize("persona", ["outsider", "ops_person"])
def test_someone_not_owner_nor_admin_cannot_promote(rule, partners, persona, request):
    other = request.getfixturevalue(persona)
    edit(rule, **to_partners(partners))

    with pytest.raises(PermissionDenied, match=r"Only the rule's owner \(rowan\) or an admin can promote"):
        rule_promote(rule=rule, to=RuleStage.STAGING, by=other)
    with pytest.raises(PermissionDenied):
        rule_promote(rule=rule, to=RuleStage.PRODUCTION, by=other)
    assert RuleVersion.objects.filter(rule=rule).count() == 1


@pytest.mark.parametrize("persona", ["outsider", "ops_person"])
def test_someone_not_owner_nor_admin_cannot_roll_back(rule, partners, persona, request):
    other = request.getfixturevalue(persona)
    promote_live(rule, **to_partners(partners))

    with pytest.raises(PermissionDenied, match=r"Only the rule's owner \(rowan\) or an admin can roll back"):
        rule_rollback(rule=rule, by=other)
    rule.refresh_from_db()
    assert rule.production_version.number == 2


def test_nobody_signed_in_cannot_promote(rule, partners):
    edit(rule, **to_partners(partners))

    with pytest.raises(PermissionDenied):
        rule_promote(rule=rule, to=RuleStage.STAGING, by=None)


def test_an_admin_may_promote_and_roll_back_a_rule_they_do_not_own(rule, partners, admin):
    edit(rule, **to_partners(partners))

    staged = rule_promote(rule=rule, to=RuleStage.STAGING, by=admin)
    replay(by=admin)
    live = rule_promote(rule=rule, to=RuleStage.PRODUCTION, by=admin)
    rolled_back = rule_rollback(rule=rule, by=admin)

    assert [(p.kind, p.version.number, p.by) for p in (staged, live, rolled_back)] == [
        ("staging", 2, admin),
        ("production", 2, admin),
        ("rollback", 1, admin),
    ]
