"""A rule whose owner was deactivated is flagged (rules list, rule page, checklist, API) and moves no stage
(staging, production, rollback, an admin's force) until someone active owns it; each refusal says how to
reassign it."""

import datetime as dt

import pytest
import time_machine
from django.urls import reverse
from rest_framework.test import APIClient

from routing.governance.gates import inactive_owner_message
from routing.governance.models import RuleVersion
from routing.governance.services import (
    GovernanceError,
    PromotionBlocked,
    rule_draft_save,
    rule_force_production,
    rule_promote,
    rule_rollback,
)
from routing.models import RuleStage
from routing.reports.checklist import monday_checklist
from tests.factories import RuleFactory, UserFactory, personal_token, promote_live
from tests.governance.helpers import edit, replay, stage

pytestmark = pytest.mark.django_db

MONDAY = dt.datetime(2026, 11, 16, 9, 0, tzinfo=dt.UTC)
REASSIGN = "An admin opens the rule's draft editor (Edit draft), picks an active owner under Owner and saves."


@pytest.fixture
def rule(sales, rule_owner):
    return RuleFactory(name="MQL to sales", owner=rule_owner, queue=sales)


def deactivate(user):
    user.is_active = False
    user.save()


def test_the_message_names_the_owner_and_how_to_reassign(rule_owner):
    message = inactive_owner_message(rule_owner)

    assert message.startswith("The owner rowan is not an active account (deactivated): reassign the rule")
    assert message.endswith(REASSIGN)


def test_a_deactivated_owner_blocks_staging(rule, rule_owner, admin):
    edit(rule, sla_minutes=10)
    deactivate(rule_owner)

    with pytest.raises(PromotionBlocked) as blocked:
        rule_promote(rule=rule, to=RuleStage.STAGING, by=admin)

    assert [(g.gate, g.message) for g in blocked.value.failures] == [("owner", inactive_owner_message(rule_owner))]


def test_a_deactivated_owner_blocks_production_of_a_staged_version(rule, rule_owner, admin):
    stage(rule, sla_minutes=10)
    replay()
    deactivate(rule_owner)

    with pytest.raises(PromotionBlocked) as blocked:
        rule_promote(rule=rule, to=RuleStage.PRODUCTION, by=admin)

    assert ("owner", inactive_owner_message(rule_owner)) in [(g.gate, g.message) for g in blocked.value.failures]
    rule.refresh_from_db()
    assert rule.production_version.number == 1


def test_a_deactivated_owner_blocks_a_rollback(rule, rule_owner, admin):
    promote_live(rule, sla_minutes=10)
    deactivate(rule_owner)

    with pytest.raises(GovernanceError) as refused:
        rule_rollback(rule=rule, by=admin)

    assert str(refused.value) == inactive_owner_message(rule_owner)
    rule.refresh_from_db()
    assert rule.production_version.number == 2


def test_a_deactivated_owner_blocks_an_admin_s_force(rule, rule_owner, admin, partners):
    rule.queue = partners
    rule.save()
    deactivate(rule_owner)

    with pytest.raises(GovernanceError, match="reassign the rule before it is promoted, forced or rolled back"):
        rule_force_production(rule=rule, by=admin, reason="Urgent")
    assert RuleVersion.objects.count() == 1


def test_once_an_admin_reassigns_the_rule_it_rolls_back_and_forces_again(rule, rule_owner, admin, partners):
    promote_live(rule, sla_minutes=10)
    deactivate(rule_owner)
    bea = UserFactory(username="bea")
    rule.owner = bea
    rule_draft_save(rule=rule, by=admin)

    rule_rollback(rule=rule, by=admin)
    rule.queue = partners
    rule.save()
    promotion = rule_force_production(rule=rule, by=admin, reason="Urgent")

    assert (promotion.version.owner, promotion.version.forced) == (bea, True)


def test_the_rules_list_rule_page_and_api_flag_the_deactivated_owner(client, rule, rule_owner, admin):
    deactivate(rule_owner)
    client.force_login(admin)

    listing = client.get(reverse("console:rules")).content.decode()
    page = client.get(reverse("console:rule", args=[rule.pk])).content.decode()

    assert "deactivated — reassign" in listing
    assert 'id="owner-inactive"' in page and "cannot be promoted, forced or rolled back until it is reassigned" in page
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {personal_token(admin)}")
    assert api.get(f"/api/v1/rules/{rule.pk}/").json()["owner_active"] is False


def test_an_active_owner_is_not_flagged(client, rule, admin):
    client.force_login(admin)

    assert "deactivated" not in client.get(reverse("console:rules")).content.decode()
    assert 'id="owner-inactive"' not in client.get(reverse("console:rule", args=[rule.pk])).content.decode()


def test_a_console_promotion_says_to_reassign_the_owner(client, rule, rule_owner, admin):
    edit(rule, sla_minutes=10)
    deactivate(rule_owner)
    client.force_login(admin)

    response = client.post(reverse("console:rule-action", args=[rule.pk, "promote_staging"]), follow=True)

    [message] = [str(m) for m in response.context["messages"]]
    assert message == "Promotion blocked: " + inactive_owner_message(rule_owner)


def test_the_checklist_flags_production_rules_with_a_deactivated_owner(rule, rule_owner):
    with time_machine.travel(MONDAY, tick=False):
        deactivate(rule_owner)

        top = monday_checklist(now=MONDAY).answers[2]

    assert top.ok is False
    assert top.summary == "No leads routed by a rule this week; 1 production rule(s) with a deactivated owner right now"
    assert top.details == [
        "MQL to sales: owner rowan is deactivated; reassign it (Edit draft → Owner) before it can be promoted"
    ]
