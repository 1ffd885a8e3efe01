"""Finding 10 (docs/security.md): a rule's owner is whoever saves it, unless an admin names someone else. The
owner answers for the rule (sign-off, reminders, the audit trail), so nobody may put a rule on another's name."""

import pytest
from django.core.exceptions import PermissionDenied
from django.urls import reverse

from routing.governance.services import rule_draft_save
from routing.models import Rule, RuleStage
from tests.factories import AccountFactory, RuleFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def colleague(db):
    return UserFactory(username="cora", first_name="Cora", last_name="Colleague")


def draft_form(queue, owner, name="Everything to Sales"):
    return {
        "name": name,
        "owner": owner.pk,
        "priority": 50,
        "queue": queue.pk,
        "sla_minutes": 15,
        "condition": '{"field": "email", "op": "exists"}',
        "test_cases": "[]",
    }


def test_a_rule_owner_cannot_create_a_rule_owned_by_someone_else(rule_owner, colleague, sales):
    draft = RuleFactory.build(owner=colleague, queue=sales, stage=RuleStage.DRAFT)

    with pytest.raises(PermissionDenied, match="Only an admin makes someone else the owner"):
        rule_draft_save(rule=draft, by=rule_owner)

    assert not Rule.objects.filter(name=draft.name).exists()


def test_a_rule_owner_cannot_hand_their_rule_to_someone_else(rule_owner, colleague):
    rule = RuleFactory(owner=rule_owner)
    rule.owner = colleague

    with pytest.raises(PermissionDenied, match="Only an admin makes someone else the owner"):
        rule_draft_save(rule=rule, by=rule_owner)

    rule.refresh_from_db()
    assert rule.owner == rule_owner


def test_the_console_editor_refuses_another_owner_for_a_new_rule(client, rule_owner, colleague, sales):
    client.force_login(rule_owner)

    answer = client.post(reverse("console:rule-new"), draft_form(sales, owner=colleague))

    assert answer.status_code == 400
    assert "Select a valid choice" in answer.content.decode()
    assert not Rule.objects.filter(name="Everything to Sales").exists()


def test_the_console_editor_offers_a_rule_owner_only_themselves_as_owner(client, rule_owner, colleague, sales):
    client.force_login(rule_owner)

    page = client.get(reverse("console:rule-new")).content.decode()

    assert f'value="{rule_owner.pk}"' in page
    assert f'value="{colleague.pk}"' not in page


def test_a_new_rule_saved_by_a_rule_owner_is_theirs(client, rule_owner, sales):
    client.force_login(rule_owner)

    answer = client.post(reverse("console:rule-new"), draft_form(sales, owner=rule_owner))

    assert answer.status_code == 302
    assert Rule.objects.get(name="Everything to Sales").owner == rule_owner


def test_an_admin_may_assign_a_rule_to_someone_else(client, admin, colleague, sales):
    client.force_login(admin)

    answer = client.post(reverse("console:rule-new"), draft_form(sales, owner=colleague))

    assert answer.status_code == 302
    assert Rule.objects.get(name="Everything to Sales").owner == colleague


def test_saving_a_condition_on_an_account_attribute_no_account_has_warns(client, rule_owner, sales):
    AccountFactory(account_id="A-1", name="Acme", attributes={"tier": "gold"})
    client.force_login(rule_owner)
    condition = (
        '{"all": [{"field": "account.teritory", "op": "eq", "value": "West"},'
        ' {"field": "account.tier", "op": "exists"}]}'
    )
    answer = client.post(
        reverse("console:rule-new"), {**draft_form(sales, owner=rule_owner), "condition": condition}, follow=True
    )
    page = answer.content.decode()
    assert "saved." in page
    assert "No account has account.teritory: the condition reads nothing there" in page
    assert "account.tier:" not in page and "account.tier," not in page
