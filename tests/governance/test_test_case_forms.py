"""Rule test cases edited as forms: the editor's refusals located per case and field (with the stored results
beside each case when the draft is unchanged), and "add as a test case" from a lead's page."""

import json

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from audit.models import AuditAction, AuditEvent
from exceptions.models import ExceptionReason
from routing.governance.services import rule_draft_save
from routing.governance.test_cases import CaseProblem, case_problems
from routing.models import LeadStatus, Rule
from tests.factories import ExceptionItemFactory, LeadFactory, QueueFactory, RuleFactory, UserFactory, case

pytestmark = pytest.mark.django_db


def draft_post(rule: Rule, **overrides) -> dict:
    return {
        "name": rule.name,
        "owner": rule.owner_id,
        "priority": rule.priority,
        "queue": rule.queue_id,
        "sla_minutes": rule.sla_minutes,
        "condition": json.dumps(rule.condition),
        "test_cases": json.dumps(rule.test_cases),
        "match_everything": "on",  # the builder's catch-all check is not what these tests are about
        **overrides,
    }


def test_problems_name_the_case_and_the_field():
    QueueFactory(name="EMEA")
    cases = [
        case("fine", "EMEA", lifecycle_stage="mql"),
        case("unknown queue", "Narnia"),
        case("bad size", "EMEA", company_size="big"),
        {"name": "no expectation", "lead": {}},
        case("fine", "EMEA"),
    ]
    problems = case_problems(cases)
    assert CaseProblem(1, "expect", "there is no queue 'Narnia'; pick a queue or no match") in problems
    assert [(p.case, p.field) for p in problems] == [
        (1, "expect"),
        (2, "lead.company_size"),
        (3, "expect"),
        (4, "name"),
    ]
    assert "give each its own" in problems[-1].message
    assert str(problems[1]).startswith("test_cases[2].lead.company_size: ")


def test_the_editor_refuses_cases_and_marks_which_case_and_field(client, rule_owner):
    rule = RuleFactory(owner=rule_owner)
    client.force_login(rule_owner)
    cases = [case("good", rule.queue.name, lifecycle_stage="mql"), case("typo", "Nowhere", company_size=-5)]
    response = client.post(reverse("console:rule-edit", args=[rule.pk]), draft_post(rule, test_cases=json.dumps(cases)))
    assert response.status_code == 400
    located = [(p["case"], p["field"], p["name"]) for p in response.context["case_problems"]]
    assert located == [(1, "expect", "typo"), (1, "lead.company_size", "typo")]
    page = response.content.decode()
    assert 'data-case="1" data-field="lead.company_size"' in page
    assert "Case 2 “typo”, expect: there is no queue &#x27;Nowhere&#x27;" in page
    rule.refresh_from_db()
    assert [c["name"] for c in rule.test_cases] == ["an MQL"]  # nothing saved


def test_the_editor_shows_stored_results_only_for_the_unchanged_draft(client, rule_owner):
    rule = RuleFactory(owner=rule_owner)
    rule_draft_save(rule=rule, by=rule_owner)
    client.force_login(rule_owner)
    response = client.get(reverse("console:rule-edit", args=[rule.pk]))
    assert [(r.name, r.passed) for r in response.context["case_results"]] == [("an MQL", True)]
    assert 'data-case="0" data-passed="true"' in response.content.decode()
    Rule.objects.filter(pk=rule.pk).update(condition={"field": "country", "op": "eq", "value": "FR"})
    response = client.get(reverse("console:rule-edit", args=[rule.pk]))
    assert response.context["case_results"] is None  # stale: the condition changed since they ran


def add_case(client, lead, rule, **data):
    return client.post(reverse("console:lead-test-case", args=[lead.pk]), {"rule": rule.pk, **data})


def test_add_a_lead_as_a_test_case_saves_the_draft_audited_and_says_it_passes(client, rule_owner):
    rule = RuleFactory(owner=rule_owner, condition={"field": "company_size", "op": "gte", "value": 100}, test_cases=[])
    lead = LeadFactory(queue=rule.queue, rule=rule, status=LeadStatus.ASSIGNED, attributes={"industry": "fintech"})
    client.force_login(rule_owner)
    response = add_case(client, lead, rule, name=f"lead {lead.lead_id}", expect=rule.queue.name)
    assert response.status_code == 302
    assert response["Location"] == reverse("console:rule", args=[rule.pk]) + "#cases"
    rule.refresh_from_db()
    added = rule.test_cases[-1]
    assert added["name"] == f"lead {lead.lead_id}" and added["expect"] == {"queue": rule.queue.name}
    assert added["lead"]["company_size"] == 120 and added["lead"]["attributes"] == {"industry": "fintech"}
    # The person's name and phone stay out; the email keeps its domain (the condition reads neither).
    assert "first_name" not in added["lead"] and added["lead"]["email"] == f"lead-{lead.pk}@example.com"
    assert rule.test_results[-1]["passed"] is True and rule.test_status == "passing"
    event = AuditEvent.objects.get(action=AuditAction.RULE_SAVED, rule=rule)
    assert event.actor == rule_owner and event.data["changed"] == ["test_cases"]
    shown = [str(m) for m in response.wsgi_request._messages]
    assert any("was added to the draft" in m and "it passes now" in m for m in shown)


def test_the_lead_page_defaults_an_exception_lead_to_no_match(client, rule_owner):
    rule = RuleFactory(owner=rule_owner)
    RuleFactory(name="Someone else's")
    lead = LeadFactory(status=LeadStatus.EXCEPTION, queue=None)
    ExceptionItemFactory(lead=lead, reason=ExceptionReason.NO_MATCHING_RULE)
    client.force_login(rule_owner)
    response = client.get(reverse("console:lead", args=[lead.pk]))
    form = response.context["case_form"]
    assert form.initial["expect"] == "no match" and form.initial["name"] == f"lead {lead.lead_id}"
    assert [r.pk for r in response.context["case_rules"]] == [rule.pk]
    response = add_case(client, lead, rule, name="fell through", expect="no match")
    rule.refresh_from_db()
    assert rule.test_cases[-1]["expect"] == {"match": False}
    assert rule.test_results[-1] == {
        "name": "fell through",
        "passed": False,  # the lead is an MQL: the rule matches it now
        "expected": "no match",
        "got": rule.queue.name,
        "why": "",
    }
    assert any("it fails now" in str(m) for m in response.wsgi_request._messages)


def test_adding_to_someone_elses_rule_is_forbidden(client, rule_owner):
    other = UserFactory(username="petra")
    rule = RuleFactory(owner=other)
    lead = LeadFactory()
    client.force_login(rule_owner)
    response = add_case(client, lead, rule, name="mine now", expect="no match")
    assert response.status_code == 403
    rule.refresh_from_db()
    assert [c["name"] for c in rule.test_cases] == ["an MQL"]
    assert not AuditEvent.objects.filter(action=AuditAction.RULE_SAVED, rule=rule).exists()


def test_a_duplicate_case_name_or_a_deleted_rule_is_refused_with_the_reason(client, rule_owner):
    rule = RuleFactory(owner=rule_owner)
    lead = LeadFactory()
    client.force_login(rule_owner)
    response = add_case(client, lead, rule, name="an MQL", expect="no match")
    assert response.status_code == 302 and response["Location"].startswith(reverse("console:lead", args=[lead.pk]))
    assert any("already has a test case named 'an MQL'" in str(m) for m in response.wsgi_request._messages)
    gone_pk = rule.pk + 1000  # deleted meanwhile (or never there)
    response = add_case(client, lead, Rule(pk=gone_pk), name="late", expect="no match")
    assert any(f"rule #{gone_pk} no longer exists" in str(m) for m in response.wsgi_request._messages)
    rule.refresh_from_db()
    assert len(rule.test_cases) == 1


def test_people_who_govern_no_rule_see_no_form(client, ops_person):
    RuleFactory()
    lead = LeadFactory()
    client.force_login(ops_person)
    response = client.get(reverse("console:lead", args=[lead.pk]))
    assert response.context["case_form"] is None
    assert 'id="add-case"' not in response.content.decode()


def test_an_admin_may_add_to_any_rule(client, admin):
    owner = UserFactory()
    owner.groups.add(Group.objects.get_or_create(name="rule_owners")[0])
    rule = RuleFactory(owner=owner)
    lead = LeadFactory(first_name="Zed")
    client.force_login(admin)
    add_case(client, lead, rule, name="from the admin", expect=rule.queue.name)
    rule.refresh_from_db()
    assert rule.test_cases[-1]["name"] == "from the admin"
    assert AuditEvent.objects.get(action=AuditAction.RULE_SAVED, rule=rule).actor == admin
