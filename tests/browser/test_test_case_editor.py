"""Rule test cases in a real browser: a case added through the forms (its lead's fields and the expected queue),
the JSON tab round-tripping both ways, a refused case marked on its own card, the stored results beside each
case; and a lead added as a test case from its page."""

import json
import re

import pytest
from playwright.sync_api import Page, expect

from routing import engine
from routing.governance.services import rule_draft_save
from routing.models import LeadStatus, Rule
from tests.browser.helpers import log_in
from tests.factories import LeadFactory, QueueFactory, RuleFactory, case

GERMANY = {"field": "country", "op": "eq", "value": "DE"}


@pytest.fixture(autouse=True)
def fresh_rule_cache(monkeypatch):
    monkeypatch.setattr(engine, "_cached", None)


@pytest.fixture
def owner_page(page, rule_owner) -> Page:
    log_in(page, rule_owner)
    expect(page).to_have_url(re.compile(r"/console/$"))
    return page


@pytest.fixture
def dach_rule(rule_owner) -> Rule:
    rule = RuleFactory(
        owner=rule_owner,
        name="DACH",
        queue=QueueFactory(name="Sales DACH"),
        condition=GERMANY,
        test_cases=[case("a German lead", "Sales DACH", country="DE")],
    )
    return rule_draft_save(rule=rule, by=rule_owner)  # the stored results the editor shows


def test_a_case_added_through_the_forms_round_trips_through_json_and_its_result_shows(owner_page, dach_rule):
    page = owner_page
    page.goto(f"/console/rules/{dach_rule.pk}/edit/")
    cases = page.locator("#test-cases")
    first = cases.locator('.case-card[data-case="0"]')
    expect(first.get_by_label("Case 1 name")).to_have_value("a German lead")
    expect(first.locator(".case-result")).to_have_text("✓ passed (Sales DACH)")

    cases.get_by_role("button", name="+ Add a test case").click()
    second = cases.locator('.case-card[data-case="1"]')
    second.get_by_label("Case 2 name").fill("a French lead")
    second.get_by_label("Case 2 email").fill("fr@example.com")
    second.get_by_label("Case 2: add a field").select_option("country")
    second.get_by_label("Case 2 country").fill("FR")
    second.get_by_label("Case 2: add a field").select_option("company_size")
    expect(second.get_by_label("Case 2 company_size")).to_have_attribute("type", "number")
    second.get_by_label("Case 2 company_size").fill("-5")  # intake refuses a negative size
    second.get_by_label("Case 2 expected outcome").select_option(label="no match")
    expect(first.locator(".case-result")).to_have_text("changed: runs again when you save")

    # The JSON tab holds exactly what the forms say; an edit there comes back into the forms.
    cases.get_by_role("tab", name="JSON").click()
    textarea = cases.get_by_label("Test cases (JSON)")
    posted = json.loads(textarea.input_value())
    assert posted[1] == {
        "name": "a French lead",
        "lead": {"email": "fr@example.com", "country": "FR", "company_size": -5},
        "expect": {"match": False},
    }
    posted[1]["name"] = "a lead from France"
    textarea.fill(json.dumps(posted, indent=2))
    cases.get_by_role("tab", name="Forms").click()
    expect(second.get_by_label("Case 2 name")).to_have_value("a lead from France")

    # The server refuses the size: the page says which case and field, and marks that card and input.
    page.get_by_role("button", name="Save draft").click()
    expect(page.locator("#case-problems")).to_contain_text("Case 2 “a lead from France”, lead.company_size:")
    second = page.locator('#test-cases .case-card[data-case="1"]')
    expect(second).to_have_class(re.compile(r"\bhas-error\b"))
    expect(second.get_by_label("Case 2 company_size")).to_have_attribute("aria-invalid", "true")
    second.get_by_label("Case 2 company_size").fill("50")
    page.get_by_role("button", name="Save draft").click()

    expect(page.locator(".messages li.success")).to_contain_text("Draft of 'DACH' saved.")
    expect(page.locator("#cases")).to_contain_text("a lead from France")
    expect(page.locator("#cases tr", has_text="a lead from France")).to_contain_text("✓ passed")
    dach_rule.refresh_from_db()
    assert dach_rule.test_cases[1]["lead"]["company_size"] == 50
    assert dach_rule.test_status == "passing"


def test_a_lead_added_as_a_test_case_from_its_page_shows_in_the_rules_cases(owner_page, dach_rule):
    page = owner_page
    lead = LeadFactory(
        lead_id="hs-4411", country="DE", queue=dach_rule.queue, rule=dach_rule, status=LeadStatus.ASSIGNED
    )
    page.goto(f"/console/leads/{lead.pk}/")
    form = page.locator("#add-case")
    expect(form.get_by_label("Rule")).to_have_value(str(dach_rule.pk))
    expect(form.get_by_label("Case name")).to_have_value("lead hs-4411")
    expect(form.get_by_label("Expect")).to_have_value("Sales DACH")
    form.get_by_role("button", name="Add as a test case").click()

    expect(page).to_have_url(re.compile(rf"/console/rules/{dach_rule.pk}/#cases$"))
    expect(page.locator(".messages li.success")).to_contain_text(
        "Test case 'lead hs-4411' from lead hs-4411 was added to the draft of 'DACH'; it passes now (Sales DACH)."
    )
    expect(page.locator("#cases tr", has_text="lead hs-4411")).to_contain_text("✓ passed")
    page.goto(f"/console/rules/{dach_rule.pk}/edit/")
    expect(page.locator('#test-cases .case-card[data-case="1"]').get_by_label("Case 2 country")).to_have_value("DE")
