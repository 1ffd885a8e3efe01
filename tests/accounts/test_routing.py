"""Routing with accounts: `account.*` conditions, `then.assignee: account_owner` and its fallbacks, the match in
the decision's inputs, and the rules file, test cases, preview, replay and shadow reading the account."""

import json

import pytest
from rest_framework.test import APIClient

from audit.models import AuditAction, AuditEvent
from routing.accounts.models import AccountMatch
from routing.accounts.services import account_upsert
from routing.governance.gates import cases_run
from routing.governance.models import ShadowDecision
from routing.governance.preview import lead_explanation, routing_preview
from routing.governance.replay import replay_execute, replay_request
from routing.models import AssignTo, LeadStatus, QueueMembership, Rule
from routing.rules import rules_export, rules_import
from routing.services import lead_route
from tests.factories import (
    AccountFactory,
    LeadFactory,
    MembershipFactory,
    QueueFactory,
    RuleFactory,
    UserFactory,
    case,
)

pytestmark = pytest.mark.django_db

KNOWN = {"field": "account.id", "op": "exists"}


@pytest.fixture
def key_accounts():
    queue = QueueFactory(name="Key accounts", ack_sla_minutes=15)
    MembershipFactory(queue=queue, user__username="rota")
    return queue


@pytest.fixture
def inbound():
    queue = QueueFactory(name="Inbound")
    MembershipFactory(queue=queue, user__username="ivy")
    return queue


@pytest.fixture
def acme(sam):
    return AccountFactory(
        account_id="A-1",
        name="Acme Corporation",
        domains=["acme.com"],
        owner=sam,
        territory="West",
        attributes={"tier": "gold"},
        country="US",
    )


@pytest.fixture
def rules(key_accounts, inbound, rule_owner):
    owner_rule = RuleFactory(
        name="Known accounts to their owner",
        owner=rule_owner,
        priority=10,
        condition=KNOWN,
        queue=key_accounts,
        assign_to=AssignTo.ACCOUNT_OWNER,
        test_cases=[case("an Acme lead", "Key accounts", email="jo@acme.com"), case("a stranger", email="x@y.com")],
    )
    rest = RuleFactory(
        name="Everyone else", owner=rule_owner, priority=20, condition={"field": "email", "op": "exists"}, queue=inbound
    )
    return owner_rule, rest


def routed(**fields):
    lead = LeadFactory(**fields)
    lead_route(lead_id=lead.id)
    lead.refresh_from_db()
    return lead


def decision(lead):
    return AuditEvent.objects.get(lead=lead, action=AuditAction.ROUTING_DECISION)


def test_the_account_owner_gets_the_lead_in_the_rule_queue_without_being_a_member(rules, acme, sam, key_accounts):
    lead = routed(email="jo@eu.acme.com", company="Acme")
    assert (lead.status, lead.queue, lead.assignee) == (LeadStatus.ASSIGNED, key_accounts, sam)
    assert not QueueMembership.objects.filter(user=sam).exists()
    event = decision(lead)
    assert event.data["assigned_by"] == "account_owner" and "sam owns Acme Corporation" in event.data["assignee_note"]
    assert event.inputs["account.id"] == "A-1"
    assert event.inputs["account_match"]["account_id"] == "A-1"
    assert event.inputs["account_match"]["method"] == "domain"
    assert "acme.com" in event.inputs["account_match"]["why"]
    match = AccountMatch.objects.get(lead=lead)
    assert match.account == acme and match.account_view["owner"] == "sam"


def test_unmatched_leads_miss_account_conditions(rules, acme, inbound):
    lead = routed(email="jo@gmail.com", company="Someone Else")
    assert lead.queue == inbound and lead.assignee.username == "ivy"
    assert decision(lead).inputs["account.id"] is None
    assert decision(lead).inputs["account_match"]["method"] == "none"


def test_an_inactive_owner_falls_back_to_the_queue_strategy_and_says_why(rules, acme, sam, key_accounts):
    sam.is_active = False
    sam.save()
    lead = routed(email="jo@acme.com")
    assert lead.queue == key_accounts and lead.assignee.username == "rota"
    event = decision(lead)
    assert event.data["assigned_by"] == "queue" and "sam is inactive" in event.data["assignee_note"]


def test_an_owner_unavailable_in_the_queue_falls_back(rules, acme, sam, key_accounts):
    MembershipFactory(queue=key_accounts, user=sam, is_available=False)
    lead = routed(email="jo@acme.com")
    assert lead.assignee.username == "rota"
    assert "unavailable" in decision(lead).data["assignee_note"]


def test_no_account_with_an_owner_rule_uses_the_queue(key_accounts, rule_owner):
    RuleFactory(
        owner=rule_owner,
        condition={"field": "email", "op": "exists"},
        queue=key_accounts,
        assign_to=AssignTo.ACCOUNT_OWNER,
    )
    lead = routed(email="jo@nowhere.io")
    assert lead.assignee.username == "rota"
    assert "no account matched" in decision(lead).data["assignee_note"]


def test_an_ambiguous_match_routes_without_an_account_and_names_the_candidates(rules, inbound):
    AccountFactory(account_id="US", name="Delta Freight Inc.", domains=["deltafreight.com"], country="US")
    AccountFactory(account_id="DE", name="Delta Freight GmbH", domains=["deltafreight.de"], country="DE")
    lead = routed(email="d@gmail.com", company="Delta Freight", country=None)
    assert lead.queue == inbound
    match = decision(lead).inputs["account_match"]
    assert match["method"] == "ambiguous" and match["why"].startswith("ambiguous account")
    assert sorted(match["candidates"]) == ["DE", "US"]


def test_conditions_read_account_attributes_territory_and_owner(inbound, key_accounts, rule_owner, acme):
    RuleFactory(
        owner=rule_owner,
        priority=5,
        queue=key_accounts,
        condition={
            "all": [
                {"field": "account.tier", "op": "eq", "value": "gold"},
                {"field": "account.territory", "op": "eq", "value": "West"},
                {"field": "account.owner", "op": "eq", "value": "sam"},
            ]
        },
    )
    assert routed(email="jo@acme.com").queue == key_accounts


def test_test_cases_and_preview_match_against_the_accounts_as_they_stand(rules, acme, sam):
    owner_rule, _ = rules
    results = cases_run(condition=owner_rule.condition, queue_name="Key accounts", test_cases=owner_rule.test_cases)
    assert [r.passed for r in results] == [True, True]
    preview = routing_preview(sample={"email": "jo@acme.com"})
    assert (preview.queue, preview.assignee, preview.assigned_by) == ("Key accounts", "sam", "account_owner")
    assert preview.account.account.account_id == "A-1"
    account_upsert(account_id="A-1", data={"name": "Acme Corporation", "domains": ["acme.org"]})
    assert routing_preview(sample={"email": "jo@acme.com"}).queue == "Inbound"


def test_preview_api_and_lead_api_show_the_account(rules, acme, ops_person):
    client = APIClient()
    client.force_authenticate(ops_person)
    body = client.post("/api/v1/rules/preview/", {"lead": {"email": "jo@acme.com"}}, format="json").json()
    assert body["assignee"] == "sam" and body["assigned_by"] == "account_owner"
    assert body["account"]["account"]["account_id"] == "A-1" and body["account"]["method"] == "domain"
    lead = routed(email="jo@acme.com")
    detail = client.get(f"/api/v1/leads/{lead.pk}/").json()
    assert detail["account"]["account_id"] == "A-1" and detail["account"]["owner"] == "sam"
    assert detail["account"]["method"] == "domain" and "acme.com" in detail["account"]["why"]


def test_the_lead_page_and_its_explanation_read_the_account_routing_saw(rules, acme, client, ops_person):
    lead = routed(email="jo@acme.com")
    account_upsert(account_id="A-1", data={"name": "Acme Corporation", "domains": ["acme.org"]})
    why = lead_explanation(lead)
    assert why.decided.version.name == "Known accounts to their owner"
    client.force_login(ops_person)
    page = client.get(f"/console/leads/{lead.pk}/").content.decode()
    assert "Acme Corporation" in page and "account-match" in page


def test_replay_uses_the_account_each_lead_was_routed_with(rules, acme):
    lead = routed(email="jo@acme.com")
    run = replay_execute(run_id=replay_request(by=None).pk)
    assert run.result["moved_count"] == 0
    assert run.result["after"] == {"Key accounts": 1}
    assert lead.queue.name == "Key accounts"


def test_shadow_evaluates_the_candidate_with_the_account(rules, acme, rule_owner, inbound, key_accounts):
    from routing.governance.services import rule_promote

    _, rest = rules
    rest.priority = 1
    rest.condition = {"field": "account.id", "op": "missing"}
    rest.save()
    rule_promote(rule=rest, to="staging", by=rule_owner)
    lead = routed(email="jo@acme.com")
    shadow = ShadowDecision.objects.get(lead=lead)
    assert shadow.candidate_queue == key_accounts and not shadow.differs


def test_rules_file_round_trip_keeps_the_assignee(rules, rule_owner):
    document = rules_export()
    exported = {r["name"]: r for r in document["rules"]}
    assert exported["Known accounts to their owner"]["then"] == {"queue": "Key accounts", "assignee": "account_owner"}
    assert exported["Everyone else"]["then"] == {"queue": "Inbound"}
    Rule.objects.filter(name="Known accounts to their owner").update(assign_to="")
    rules_import(document=json.loads(json.dumps(document)))
    assert Rule.objects.get(name="Known accounts to their owner").assign_to == AssignTo.ACCOUNT_OWNER
    document["rules"][0]["then"]["assignee"] = "somebody"
    with pytest.raises(ValueError, match="then.assignee"):
        rules_import(document=document)


def test_a_version_freezes_the_assignee(rules, rule_owner):
    owner_rule, _ = rules
    assert owner_rule.production_version.assign_to == AssignTo.ACCOUNT_OWNER


def test_unknown_account_field_names_are_refused():
    from routing.conditions import ConditionError, validate_condition

    validate_condition({"field": "account.industry", "op": "eq", "value": "x"})
    with pytest.raises(ConditionError, match="account.<id"):
        validate_condition({"field": "accounts.id", "op": "exists"})
    UserFactory()


def test_the_rules_api_names_the_assignee(rules, ops_person):
    client = APIClient()
    client.force_authenticate(ops_person)
    rows = {row["name"]: row for row in client.get("/api/v1/rules/").json()}
    assert rows["Known accounts to their owner"]["assignee"] == "account_owner"
    assert rows["Everyone else"]["assignee"] == ""
