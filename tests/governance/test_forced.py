"""Forced changes (rule_force_production): admins only, with a reason, straight into production, and shown
to the owner as unsigned until they sign the rule off."""

import datetime as dt

import pytest
import time_machine
from django.core.exceptions import PermissionDenied

from audit.models import AuditAction, AuditEvent
from routing.governance.models import PromotionKind, RuleVersion
from routing.governance.selectors import my_rules, rule_rows, unsigned_production_rules
from routing.governance.services import GovernanceError, rule_force_production
from routing.models import RuleStage
from tests.factories import LeadFactory, RuleFactory, case
from tests.governance.helpers import edit, reviewed_sign_off, routed, stage

pytestmark = pytest.mark.django_db

TUESDAY = dt.datetime(2026, 11, 17, 10, 0, tzinfo=dt.UTC)  # ISO week 2026-W47


@pytest.fixture
def rule(sales, rule_owner):
    with time_machine.travel(TUESDAY - dt.timedelta(days=30), tick=False):
        return RuleFactory(name="MQL to sales", owner=rule_owner, queue=sales)


def forced_ids(owner, now) -> list[int]:
    (view,) = my_rules(owner=owner, now=now)
    return [change.ref for change in view.forced]  # the forced promotions' ids


@pytest.mark.parametrize("persona", ["rule_owner", "ops_person", "outsider"])
def test_only_an_admin_can_force_a_change(rule, partners, persona, request):
    edit(rule, queue=partners)

    with pytest.raises(PermissionDenied, match="Only an admin can force a change into production."):
        rule_force_production(rule=rule, by=request.getfixturevalue(persona), reason="Urgent")
    rule.refresh_from_db()
    assert (rule.production_version.number, RuleVersion.objects.count()) == (1, 1)


@pytest.mark.parametrize("reason", ["", "   \n", None])
def test_a_forced_change_needs_a_reason(rule, partners, admin, reason):
    edit(rule, queue=partners)

    with pytest.raises(GovernanceError, match="Give a reason for forcing a change past the gates"):
        rule_force_production(rule=rule, by=admin, reason=reason)
    assert RuleVersion.objects.count() == 1


def test_a_forced_change_creates_a_forced_version_live_in_production(rule, sales, partners, admin):
    edit(rule, queue=partners, description="")  # past the gates: an empty description would block a promotion

    promotion = rule_force_production(rule=rule, by=admin, reason="  Sales are offsite today  ")

    rule.refresh_from_db()
    version = rule.production_version
    assert (version.number, version.forced, version.created_by, version.queue) == (2, True, admin, partners)
    assert (rule.stage, rule.staging_version) == (RuleStage.PRODUCTION, None)
    assert (promotion.kind, promotion.version, promotion.replaced.number, promotion.by, promotion.comment) == (
        PromotionKind.FORCED,
        version,
        1,
        admin,
        "Sales are offsite today",
    )
    event = AuditEvent.objects.get(action=AuditAction.RULE_FORCED)
    assert (event.rule, event.rule_version, event.actor) == (rule, 2, admin)
    assert event.data == {"replaced_version": 1, "withdrawn_staging_version": None, "reason": "Sales are offsite today"}
    lead = routed(LeadFactory())
    assert (lead.queue, lead.rule_version) == (partners, 2)


def test_a_draft_rule_can_be_forced_straight_into_production(sales, rule_owner, admin):
    draft = RuleFactory(stage=RuleStage.DRAFT, owner=rule_owner, queue=sales, test_cases=[])

    rule_force_production(rule=draft, by=admin, reason="Needed before the launch")

    draft.refresh_from_db()
    assert (draft.stage, draft.production_version.number, draft.production_version.forced) == ("production", 1, True)


def test_forcing_an_unchanged_draft_is_refused(rule, admin):
    with pytest.raises(GovernanceError, match="Nothing to force: the draft is the same as production v1."):
        rule_force_production(rule=rule, by=admin, reason="Urgent")


def test_forcing_a_rule_without_an_owner_is_refused(sales, admin):
    orphan = RuleFactory(stage=RuleStage.DRAFT, owner=None, queue=sales)

    with pytest.raises(GovernanceError, match="Name an owner first"):
        rule_force_production(rule=orphan, by=admin, reason="Urgent")


def test_forcing_a_condition_that_does_not_compile_is_refused(rule, admin):
    rule.condition = {"field": "shoe_size", "op": "eq", "value": 42}
    rule.save()

    with pytest.raises(GovernanceError, match="The condition does not compile: when.field: unknown field"):
        rule_force_production(rule=rule, by=admin, reason="Urgent")


def test_a_forced_change_shows_as_unsigned_until_the_owner_signs_off(rule, partners, rule_owner, admin):
    with time_machine.travel(TUESDAY, tick=False):
        edit(rule, queue=partners)
        promotion = rule_force_production(rule=rule, by=admin, reason="Sales are offsite today")

    assert forced_ids(rule_owner, TUESDAY + dt.timedelta(hours=1)) == [promotion.pk]

    reviewed_sign_off(rule=rule, by=rule_owner, at=TUESDAY + dt.timedelta(hours=2))

    assert forced_ids(rule_owner, TUESDAY + dt.timedelta(hours=3)) == []


def test_a_change_forced_after_the_last_sign_off_shows_again(rule, partners, sales, rule_owner, admin):
    reviewed_sign_off(rule=rule, by=rule_owner, at=TUESDAY - dt.timedelta(days=7))
    with time_machine.travel(TUESDAY - dt.timedelta(days=2), tick=False):  # after that sign-off
        edit(rule, queue=partners)
        first = rule_force_production(rule=rule, by=admin, reason="Sales are offsite")
    rule.refresh_from_db()
    with time_machine.travel(TUESDAY, tick=False):
        edit(rule, queue=sales)
        second = rule_force_production(rule=rule, by=admin, reason="Sales are back")

    assert sorted(forced_ids(rule_owner, TUESDAY + dt.timedelta(hours=1))) == sorted([first.pk, second.pk])


def test_a_forced_change_withdraws_an_older_staging_version(rule, partners, uk, admin):
    stage(rule, queue=uk, test_cases=[case("MQL", uk.name, lifecycle_stage="mql")])
    edit(rule, queue=partners)
    rule_force_production(rule=rule, by=admin, reason="Partners take these now")
    rule.refresh_from_db()
    assert (rule.staging_version, rule.production_version.queue) == (None, partners)


def test_a_change_forced_after_this_weeks_sign_off_needs_the_owner_again_the_same_week(
    rule, partners, rule_owner, admin
):
    reviewed_sign_off(rule=rule, by=rule_owner, at=TUESDAY, comment="fine")
    assert unsigned_production_rules(week=TUESDAY.date() - dt.timedelta(days=1)) == []
    with time_machine.travel(TUESDAY + dt.timedelta(hours=1), tick=False):
        edit(rule, queue=partners)
        rule_force_production(rule=rule, by=admin, reason="Urgent")
    monday = TUESDAY.date() - dt.timedelta(days=1)
    assert unsigned_production_rules(week=monday) == [rule]
    (row,) = rule_rows(now=TUESDAY + dt.timedelta(hours=2))
    assert not row.signed_this_week

    again = reviewed_sign_off(rule=rule, by=rule_owner, at=TUESDAY + dt.timedelta(hours=3), comment="seen the fix")
    assert (again.comment, again.production_version) == ("seen the fix", 2)
    assert unsigned_production_rules(week=monday) == []
    with pytest.raises(GovernanceError, match="already signed off for 2026-W47"):
        reviewed_sign_off(rule=rule, by=rule_owner, at=TUESDAY + dt.timedelta(hours=4))
