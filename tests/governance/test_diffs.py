"""Readable contract diffs (routing/governance/diffs.py): the condition line by line, test cases one per line,
texts by their lines, single values as the old line removed and the new one added."""

from decimal import Decimal
from html.parser import HTMLParser

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from routing.governance.diffs import DiffLine, contract_diff, draft_status, line_diff, rolled_back_twin
from routing.governance.explain import condition_lines
from routing.governance.gates import failures
from routing.governance.services import PromotionBlocked, rule_promote, rule_rollback, staging_gates
from routing.models import Rule, RuleStage
from tests.factories import QueueFactory, RuleFactory, UserFactory, case, promote_live
from tests.governance.helpers import edit, replay, stage

pytestmark = pytest.mark.django_db

BIG = {"field": "company_size", "op": "gte", "value": 200}
US = {"field": "country", "op": "eq", "value": "US"}
MQL = {"field": "lifecycle_stage", "op": "eq", "value": "mql"}


def kinds(diff) -> list[tuple[str, str]]:
    return [(line.kind, line.text) for line in diff.lines]


def by_field(changes) -> dict:
    return {change.field: change for change in changes}


def test_a_condition_reads_one_line_per_leaf_indented_by_group():
    condition = {"all": [BIG, {"any": [US, {"not": MQL}]}, {"not": {"all": [US, MQL]}}]}

    assert condition_lines(condition) == [
        "all of:",
        "  company_size ≥ 200",
        "  any of:",
        "    country = 'US'",
        "    not: lifecycle_stage = 'mql'",
        "  not:",
        "    all of:",
        "      country = 'US'",
        "      lifecycle_stage = 'mql'",
    ]


def test_a_condition_change_marks_only_the_leaves_that_changed():
    rule = RuleFactory(condition={"all": [BIG, US]})  # production v1
    edit(rule, condition={"all": [{**BIG, "value": 500}, US, MQL]})

    (change,) = contract_diff(rule.production_version, rule)

    assert (change.field, change.label) == ("condition", "When (condition)")
    assert kinds(change) == [
        ("same", "all of:"),
        ("removed", "  company_size ≥ 200"),
        ("added", "  company_size ≥ 500"),
        ("same", "  country = 'US'"),
        ("added", "  lifecycle_stage = 'mql'"),
    ]
    assert (change.added, change.removed) == (2, 1)


def test_test_cases_are_one_readable_line_each():
    queue = QueueFactory(name="Enterprise")
    rule = RuleFactory(queue=queue, test_cases=[case("big US", "Enterprise", company_size=500, country="US")])
    edit(
        rule,
        test_cases=[
            case("big US", "Enterprise", company_size=500, country="US"),
            case("small", None, company_size=5),
        ],
    )

    change = by_field(contract_diff(rule.production_version, rule))["test_cases"]

    assert kinds(change) == [
        ("same", "big US: company_size=500, country='US', email='case@example.com' → queue Enterprise"),
        ("added", "small: company_size=5, email='case@example.com' → no match"),
    ]


def test_texts_diff_by_line_and_single_values_read_before_then_after():
    rule = RuleFactory(rollback_plan="Roll back to v1.\nTell sales.", sla_minutes=15)
    rule.rollback_plan = "Roll back to v1.\nTell sales ops."
    rule.sla_minutes = 30
    rule.owner = UserFactory(username="olga")  # a draft in memory: contract_diff reads, never saves
    rule.queue = QueueFactory(name="Support")
    rule.target_sla_adherence = Decimal("97.50")

    changes = by_field(contract_diff(rule.production_version, rule))

    assert kinds(changes["rollback_plan"]) == [
        ("same", "Roll back to v1."),
        ("removed", "Tell sales."),
        ("added", "Tell sales ops."),
    ]
    assert kinds(changes["sla_minutes"]) == [("removed", "15 min"), ("added", "30 min")]
    assert kinds(changes["owner"])[1] == ("added", "olga")
    assert kinds(changes["queue"])[1] == ("added", "Support")
    assert kinds(changes["target_sla_adherence"]) == [("added", "≥ 97.5%")]
    assert list(changes) == ["owner", "queue", "sla_minutes", "rollback_plan", "target_sla_adherence"]  # contract order


def test_nothing_before_makes_every_field_with_a_value_new():
    rule = RuleFactory(condition=BIG, source_of_truth="", test_cases=[])
    version = rule.production_version

    changes = by_field(contract_diff(None, version))

    assert "source_of_truth" not in changes  # blank then, blank now
    assert kinds(changes["condition"]) == [("added", "company_size ≥ 200")]
    assert all(line.kind == "added" for change in changes.values() for line in change.lines)


def test_two_equal_sides_have_no_diff():
    rule = RuleFactory()

    assert contract_diff(rule.production_version, rule) == []


def test_a_malformed_condition_still_shows_what_it_holds():
    rule = RuleFactory(condition=BIG)
    rule.condition = {"field": "company_size"}  # no op: written outside the editor

    change = by_field(contract_diff(rule.production_version, rule))["condition"]

    assert ("removed", "company_size ≥ 200") in kinds(change)
    assert ("added", '  "field": "company_size"') in kinds(change)


def test_line_diff_puts_removed_before_added_where_lines_were_replaced():
    assert line_diff(["a", "b", "c"], ["a", "x", "c"]) == [
        DiffLine("same", "a"),
        DiffLine("removed", "b"),
        DiffLine("added", "x"),
        DiffLine("same", "c"),
    ]


def test_as_json_is_what_the_api_sends():
    rule = RuleFactory(sla_minutes=15)
    edit(rule, sla_minutes=45)

    (change,) = contract_diff(rule.production_version, rule)

    assert change.as_json() == {
        "field": "sla_minutes",
        "label": "SLA",
        "lines": [{"kind": "removed", "text": "15 min"}, {"kind": "added", "text": "45 min"}],
    }


# The rule's page: what is live, and the draft against it.


class _Text(HTMLParser):
    """The text inside the element with a given id (nested tags included), whitespace collapsed."""

    def __init__(self, element_id: str):
        super().__init__()
        self.element_id, self.depth, self.parts = element_id, 0, []

    def handle_starttag(self, tag, attrs):
        if self.depth:
            self.depth += tag not in VOID
        elif dict(attrs).get("id") == self.element_id:
            self.depth = 1

    def handle_endtag(self, tag):
        if self.depth:
            self.depth -= 1

    def handle_data(self, data):
        if self.depth:
            self.parts.append(data)


VOID = {"br", "input", "img", "hr", "meta", "link"}


def text_of(response, element_id: str) -> str | None:
    """None when the page has no element with that id."""
    parser = _Text(element_id)
    parser.feed(response.content.decode())
    return " ".join("".join(parser.parts).split()) if parser.parts else None


def rule_page(client, rule):
    response = client.get(reverse("console:rule", args=[rule.pk]))
    assert response.status_code == 200
    return response


def rolled_back_rule(owner) -> Rule:
    """Production v1 (SLA 30), v2 (SLA 10) promoted over it, then rolled back: the draft still holds v2."""
    rule = RuleFactory(name="EMEA MQLs", owner=owner, sla_minutes=30)
    promote_live(rule, sla_minutes=10)
    rule_rollback(rule=rule, by=owner, comment="The 10 minute SLA pages people at night.")
    rule.refresh_from_db()
    return rule


def test_the_page_says_which_version_is_live_and_that_the_draft_is_the_same(client, rule_owner):
    rule = RuleFactory(owner=rule_owner)
    client.force_login(rule_owner)

    page = rule_page(client, rule)

    assert text_of(page, "live-version").startswith("v1 is live in production since ")
    assert text_of(page, "draft-same") == "The draft is the same as production v1."
    assert text_of(page, "draft-differs") is None
    assert text_of(page, "when-live") == "lifecycle_stage = 'mql'"
    assert text_of(page, "when-draft") is None  # one condition: live and draft are the same


def test_a_changed_draft_shows_its_diff_against_production_and_both_conditions(client, rule_owner):
    rule = RuleFactory(owner=rule_owner, condition={"all": [MQL, US]}, test_cases=[])
    edit(rule, condition={"all": [MQL, BIG]}, sla_minutes=45)
    client.force_login(rule_owner)

    page = rule_page(client, rule)

    assert text_of(page, "draft-differs").startswith(
        "The draft differs from production v1: 2 changes (When (condition), SLA)"
    )
    body = page.content.decode()
    assert '<del class="diff-line removed"><span class="diff-marker">−</span>  country = &#x27;US&#x27;</del>' in body
    assert '<ins class="diff-line added"><span class="diff-marker">+</span>  company_size ≥ 200</ins>' in body
    assert text_of(page, "when-live") == "Live, production v1: lifecycle_stage = 'mql' and country = 'US'"
    assert text_of(page, "when-draft") == "Draft (not live): lifecycle_stage = 'mql' and company_size ≥ 200"


def test_a_rule_never_in_production_says_so(client, rule_owner):
    rule = RuleFactory(owner=rule_owner, stage="draft")
    client.force_login(rule_owner)

    page = rule_page(client, rule)

    assert text_of(page, "live-version") == "Nothing in production yet."
    assert text_of(page, "draft-differs") == "The draft is not in production: nothing is."


def test_staging_is_named_with_the_draft_against_it(client, rule_owner):
    rule = RuleFactory(owner=rule_owner)
    stage(rule, sla_minutes=20)
    client.force_login(rule_owner)

    page = rule_page(client, rule)

    assert "v2 in staging since" in text_of(page, "staged-version")
    assert text_of(page, "draft-vs-staging") == "The draft is the same as staging v2."
    assert text_of(page, "draft-differs").startswith("The draft differs from production v1: 1 change (SLA)")


def test_after_a_rollback_the_page_names_the_rolled_back_draft_and_the_live_version(client, rule_owner):
    rule = rolled_back_rule(rule_owner)
    client.force_login(rule_owner)

    page = rule_page(client, rule)

    assert text_of(page, "live-version").startswith("v1 is live in production since ")
    assert text_of(page, "draft-differs").startswith("The draft differs from production v1: 1 change (SLA)")
    assert text_of(page, "rolled-back-draft").startswith("The draft is v2, which was rolled back on ")
    assert "by rowan (“The 10 minute SLA pages people at night.”)" in text_of(page, "rolled-back-draft")
    gates = text_of(page, "to-staging")
    assert "✗ The draft is v2, which was rolled back out of production on " in gates


# The gate: a draft identical to a version rolled back out of production is promoted again only with a reason.


def test_promoting_a_rolled_back_draft_without_a_reason_is_blocked(rule_owner):
    rule = rolled_back_rule(rule_owner)

    with pytest.raises(PromotionBlocked) as blocked:
        rule_promote(rule=rule, to=RuleStage.STAGING, by=rule_owner)

    (failure,) = failures(blocked.value.gates)
    assert failure.gate == "rolled_back"
    assert failure.message.endswith("To promote it again, write in the comment why it is safe now.")
    rule.refresh_from_db()
    assert rule.staging_version is None


def test_a_reason_in_the_comment_lets_the_rolled_back_draft_through_and_records_it(rule_owner):
    rule = rolled_back_rule(rule_owner)

    promotion = rule_promote(
        rule=rule, to=RuleStage.STAGING, by=rule_owner, comment="Night pages now go to the on-call rota."
    )

    assert promotion.version.number == 3
    (gate,) = [g for g in promotion.gate_results if g["gate"] == "rolled_back"]
    assert gate["passed"] is True
    assert gate["message"].endswith("promoted again: Night pages now go to the on-call rota.")


def test_a_console_promotion_of_a_rolled_back_draft_says_why_it_was_refused(client, rule_owner):
    rule = rolled_back_rule(rule_owner)
    client.force_login(rule_owner)

    response = client.post(reverse("console:rule-action", args=[rule.pk, "promote_staging"]), follow=True)

    (message,) = [str(m) for m in response.context["messages"]]
    assert message.startswith("Promotion blocked: The draft is v2, which was rolled back out of production on ")


def test_a_draft_changed_after_the_rollback_meets_no_such_gate(rule_owner):
    rule = rolled_back_rule(rule_owner)
    edit(rule, sla_minutes=20)  # neither v1 nor the rolled-back v2

    assert rolled_back_twin(rule) is None
    assert "rolled_back" not in [g.gate for g in staging_gates(rule)]


def test_a_version_back_in_production_is_no_longer_rolled_back(rule_owner):
    rule = rolled_back_rule(rule_owner)
    rule_promote(rule=rule, to=RuleStage.STAGING, by=rule_owner, comment="Fixed the paging.")
    replay()
    rule_promote(rule=rule, to=RuleStage.PRODUCTION, by=rule_owner)
    rule.refresh_from_db()
    edit(rule, sla_minutes=20)
    edit(rule, sla_minutes=10)  # back to what v3 (and the rolled-back v2) hold: v3 is live

    assert rolled_back_twin(rule) is None
    assert draft_status(rule).live.number == 3


# The rules API: what is live, whether the draft differs, and the readable diff.


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_the_api_says_the_live_version_and_that_the_draft_is_the_same(rule_owner):
    rule = RuleFactory(owner=rule_owner)

    body = client_for(rule_owner).get(f"/api/v1/rules/{rule.pk}/").json()

    assert (body["live_version"], body["draft_differs"], body["diff"]) == (1, False, [])


def test_the_api_diff_is_the_draft_against_production_line_by_line(rule_owner):
    rule = rolled_back_rule(rule_owner)  # production v1 (SLA 30); the draft holds the rolled-back SLA 10

    body = client_for(rule_owner).get(f"/api/v1/rules/{rule.pk}/").json()

    assert (body["live_version"], body["draft_differs"]) == (1, True)
    assert body["diff"] == [
        {
            "field": "sla_minutes",
            "label": "SLA",
            "lines": [{"kind": "removed", "text": "30 min"}, {"kind": "added", "text": "10 min"}],
        }
    ]


def test_the_api_draft_of_a_rule_never_in_production_differs_with_every_field_new(rule_owner):
    rule = RuleFactory(owner=rule_owner, stage="draft", condition={"all": [MQL, BIG]})

    body = client_for(rule_owner).get(f"/api/v1/rules/{rule.pk}/").json()

    assert (body["live_version"], body["draft_differs"]) == (None, True)
    condition = next(change for change in body["diff"] if change["field"] == "condition")
    assert condition["lines"] == [
        {"kind": "added", "text": "all of:"},
        {"kind": "added", "text": "  lifecycle_stage = 'mql'"},
        {"kind": "added", "text": "  company_size ≥ 200"},
    ]


def test_the_schema_documents_the_live_version_and_the_diff(rule_owner):
    schema = client_for(rule_owner).get("/api/schema/", HTTP_ACCEPT="application/json").json()

    detail = schema["components"]["schemas"]["RuleDetail"]["properties"]
    assert detail["live_version"]["type"] == ["integer", "null"]
    assert detail["draft_differs"]["type"] == "boolean"
    assert detail["diff"]["items"]["$ref"] == "#/components/schemas/FieldDiff"
    line = schema["components"]["schemas"]["DiffLine"]["properties"]
    assert line["kind"]["allOf"] == [{"$ref": "#/components/schemas/DiffLineKindEnum"}]
    assert schema["components"]["schemas"]["DiffLineKindEnum"]["enum"] == ["same", "added", "removed"]


def test_a_version_page_diffs_it_against_the_version_before_and_against_production(client, rule_owner):
    rule = rolled_back_rule(rule_owner)  # v1 live again; v2 (SLA 10) rolled back
    client.force_login(rule_owner)

    page = client.get(reverse("console:rule-version", args=[rule.pk, 2]))

    assert text_of(page, "version-changes").startswith("Changes from v1: 1 field SLA +1 −1")
    assert text_of(page, "version-vs-live").startswith("Against production v1 (live): 1 field differs")
    first = client.get(reverse("console:rule-version", args=[rule.pk, 1]))
    assert text_of(first, "version-changes").startswith("First version")
    assert text_of(first, "version-vs-live") is None  # it is the live one
