"""The condition builder's server side: the live check endpoint, the editor's refusals (no condition, a
catch-all without confirmation) and friendlier JSON errors."""

import json

import pytest
from django.urls import reverse
from django.utils import timezone

from routing.accounts.models import AccountMatch
from routing.governance.builder import condition_check
from routing.models import Rule
from tests.factories import LeadFactory, QueueFactory

pytestmark = pytest.mark.django_db

CHECK = "console:rule-condition-check"


def post_check(client, condition):
    return client.post(reverse(CHECK), json.dumps({"condition": condition}), content_type="application/json")


def test_check_counts_matches_among_the_newest_leads_with_examples(client, rule_owner):
    LeadFactory.create_batch(3, lifecycle_stage="mql", company_size=500)
    LeadFactory(lifecycle_stage="sql", company_size=10)
    client.force_login(rule_owner)
    response = post_check(
        client,
        {
            "all": [
                {"field": "lifecycle_stage", "op": "eq", "value": "mql"},
                {"field": "company_size", "op": "gte", "value": 100},
            ]
        },
    )
    body = response.json()
    assert response.status_code == 200
    assert body["valid"] is True and body["matches"] == 3 and body["of"] == 4
    assert "lifecycle_stage" in body["text"]
    example = body["examples"][0]
    assert example["fields"] == {"lifecycle_stage": "mql", "company_size": 500}
    assert example["link"] == reverse("console:lead", args=[example["id"]])


def test_check_reads_the_account_the_lead_was_matched_to(rule_owner):
    lead = LeadFactory()
    LeadFactory()
    AccountMatch.objects.create(
        lead=lead, method="domain", account_view={"territory": "EMEA"}, matched_at=timezone.now()
    )
    check = condition_check(condition={"field": "account.territory", "op": "eq", "value": "EMEA"})
    assert (check.matches, check.of) == (1, 2)


def test_check_locates_an_invalid_value(client, rule_owner):
    client.force_login(rule_owner)
    body = post_check(
        client,
        {"all": [{"field": "country", "op": "eq", "value": "GB"}, {"field": "country", "op": "in", "value": "GB"}]},
    ).json()
    assert body["valid"] is False
    (error,) = body["errors"]
    assert error["location"].startswith("when.all[1]")


def test_check_refuses_an_empty_condition_saying_what_to_add(client, rule_owner):
    client.force_login(rule_owner)
    body = post_check(client, None).json()
    assert body["valid"] is False
    assert body["errors"][0]["message"].startswith("Add at least one condition")


def test_check_costs_the_same_queries_for_few_or_many_leads(client, rule_owner, django_assert_num_queries):
    client.force_login(rule_owner)
    LeadFactory.create_batch(2)
    condition = {"field": "email", "op": "exists"}
    # session, user, console groups, rule_owners group (may_author_rules), the leads, their accounts
    with django_assert_num_queries(6) as few:
        post_check(client, condition)
    LeadFactory.create_batch(30)
    with django_assert_num_queries(len(few.captured_queries)):
        post_check(client, condition)


def test_check_is_refused_to_an_ops_person_without_rule_authoring(client, ops_person):
    client.force_login(ops_person)
    response = post_check(client, {"field": "email", "op": "exists"})
    assert response.status_code == 403
    assert "rule owners and admins" in response.json()["detail"]


def test_check_needs_the_csrf_token(rule_owner):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(rule_owner)
    assert post_check(strict, {"field": "email", "op": "exists"}).status_code == 403


def test_check_needs_a_login(client):
    response = post_check(client, {"field": "email", "op": "exists"})
    assert response.status_code == 302


def draft_form(rule_owner, queue, **overrides):
    return {
        "name": "Big accounts",
        "owner": rule_owner.pk,
        "priority": 5,
        "queue": queue.pk,
        "sla_minutes": 10,
        "condition": "",
        "test_cases": "",
        **overrides,
    }


def test_a_new_rule_starts_with_an_empty_condition(client, rule_owner):
    client.force_login(rule_owner)
    response = client.get(reverse("console:rule-new"))
    assert response.context["form"]["condition"].value() in (None, "")
    assert '"op": "exists"' not in response.content.decode()


def test_a_draft_without_a_condition_is_refused(client, rule_owner):
    queue = QueueFactory()
    client.force_login(rule_owner)
    response = client.post(reverse("console:rule-new"), draft_form(rule_owner, queue))
    assert response.status_code == 400
    assert "Add at least one condition" in response.content.decode()
    assert not Rule.objects.filter(name="Big accounts").exists()


def test_a_condition_matching_every_recent_lead_needs_confirmation(client, rule_owner):
    LeadFactory.create_batch(20)
    queue = QueueFactory()
    client.force_login(rule_owner)
    form = draft_form(rule_owner, queue, condition='{"field": "email", "op": "exists"}')
    response = client.post(reverse("console:rule-new"), form)
    assert response.status_code == 400
    assert "matches every one of the last 20 leads" in response.content.decode()
    response = client.post(reverse("console:rule-new"), {**form, "match_everything": "on"})
    assert response.status_code == 302
    assert Rule.objects.filter(name="Big accounts").exists()


def test_malformed_json_says_what_is_wrong_and_quotes_the_line(client, rule_owner):
    queue = QueueFactory()
    client.force_login(rule_owner)
    condition = '{\n  "field": "country",\n  "op": "eq"\n  "value": "GB"\n}'
    response = client.post(reverse("console:rule-new"), draft_form(rule_owner, queue, condition=condition))
    page = response.content.decode()
    assert response.status_code == 400
    assert "Not valid JSON at line 4, column 3: a comma is missing between two items" in page
    assert "The line reads: &quot;value&quot;: &quot;GB&quot;" in page


def test_the_editor_suggests_attribute_keys_and_queues(client, rule_owner):
    LeadFactory(attributes={"industry": "fintech"})
    QueueFactory(name="Enterprise")
    client.force_login(rule_owner)
    vocabulary = client.get(reverse("console:rule-new")).context["vocabulary"]
    assert "industry" in vocabulary["attribute_keys"]
    assert "Enterprise" in vocabulary["queues"]
    assert vocabulary["fields"]["company_size"] == "number"
