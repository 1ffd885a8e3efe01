"""The rule editor's condition builder in a real browser: a condition using every operator (with a nested group
and a not), the live match count, the JSON tab round trip, saving and errors beside their row."""

import json
import re

import pytest
from playwright.sync_api import Page, expect

from routing import engine
from routing.models import Rule
from tests.browser.helpers import log_in
from tests.factories import LeadFactory, QueueFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fresh_rule_cache(monkeypatch):
    monkeypatch.setattr(engine, "_cached", None)


@pytest.fixture
def owner_page(page, rule_owner) -> Page:
    log_in(page, rule_owner)
    expect(page).to_have_url(re.compile(r"/console/$"))
    return page


def row(page: Page, location: str):
    return page.locator(f'.cond-row[data-location="{location}"]')


def add_button(page: Page, group: str, which: str):
    return page.locator(f'.cond-group[data-location="{group}"] > .group-add > .{which}')


def leaf(page: Page, location: str, field: str, op: str, value=None, chips=()):
    row(page, location).locator(".field").fill(field)
    row(page, location).locator(".field").press("Tab")
    row(page, location).locator(".op").select_option(op)
    if value is not None:
        row(page, location).locator(".value").fill(str(value))
    for chip in chips:
        row(page, location).locator(".chip-input").fill(chip)
        row(page, location).locator(".chip-input").press("Enter")


def condition_json(page: Page):
    return json.loads(page.locator("#id_condition").input_value())


def tab(page: Page, editor: str, which: str):
    page.locator(f"#{editor} .builder-tabs button[data-tab={which}]").click()


EVERY_OPERATOR = {
    "all": [
        {"field": "lifecycle_stage", "op": "eq", "value": "mql"},
        {"field": "country", "op": "ne", "value": "US"},
        {"field": "company_size", "op": "gt", "value": 10},
        {"field": "company_size", "op": "gte", "value": 11},
        {"field": "engagement_score", "op": "lt", "value": 1000},
        {"field": "intent_score", "op": "lte", "value": 1000},
        {"field": "country", "op": "in", "value": ["GB", "DE"]},
        {"field": "lifecycle_stage", "op": "not_in", "value": ["customer"]},
        {"field": "email", "op": "contains", "value": "@"},
        {"field": "email", "op": "startswith", "value": "lead"},
        {"field": "email", "op": "endswith", "value": ".com"},
        {"field": "company", "op": "matches", "value": "^Ac"},
        {"any": [{"field": "attributes.industry", "op": "exists"}, {"field": "phone", "op": "missing"}]},
        {"not": {"field": "lifecycle_stage", "op": "eq", "value": "sql"}},
    ]
}


def test_build_a_condition_with_every_operator_round_trip_and_save(owner_page: Page):
    page = owner_page
    queue = QueueFactory(name="Enterprise")
    LeadFactory.create_batch(2, attributes={"industry": "fintech"})
    LeadFactory(country="US")
    page.goto("/console/rules/new/")
    expect(page.locator("#condition-builder")).to_be_visible()
    expect(page.locator("#condition-builder")).to_contain_text("No conditions yet")
    expect(page.locator("#id_condition")).to_be_hidden()

    simple = EVERY_OPERATOR["all"][:12]
    for index, spec in enumerate(simple):
        add_button(page, "when", "add-condition").click()
        value = spec["value"]
        if isinstance(value, list):
            leaf(page, f"when.all[{index}]", spec["field"], spec["op"], chips=value)
        else:
            leaf(page, f"when.all[{index}]", spec["field"], spec["op"], value)
    add_button(page, "when", "add-group").click()
    leaf(page, "when.all[12].any[0]", "attributes.industry", "exists")
    expect(row(page, "when.all[12].any[0]").locator(".value")).to_have_count(0)  # exists takes no value
    add_button(page, "when.all[12]", "add-condition").click()
    leaf(page, "when.all[12].any[1]", "phone", "missing")
    add_button(page, "when", "add-not").click()
    leaf(page, "when.all[13].not", "lifecycle_stage", "eq", "sql")

    expect(page.locator("#condition-check .match-count")).to_have_text(
        re.compile(r"This would match 2 of your last 3 leads")
    )
    expect(page.locator("#condition-check .match-examples li")).to_have_count(2)
    assert condition_json(page) == EVERY_OPERATOR  # numbers sent as numbers, lists as lists

    tab(page, "condition-editor", "json")
    expect(page.locator("#id_condition")).to_be_visible()
    edited = json.loads(page.locator("#id_condition").input_value())
    edited["all"][0]["value"] = "sql"  # a power user's edit in the JSON tab
    page.locator("#id_condition").fill(json.dumps(edited))
    tab(page, "condition-editor", "builder")
    expect(row(page, "when.all[0]").locator(".value")).to_have_value("sql")
    expect(page.locator("#condition-check .match-count")).to_have_text(re.compile(r"match 0 of your last 3"))
    row(page, "when.all[0]").locator(".value").fill("mql")
    assert condition_json(page) == EVERY_OPERATOR

    page.locator("#id_name").fill("Every operator")
    page.locator("#id_queue").select_option(str(queue.pk))
    page.locator("#id_priority").fill("5")
    page.locator("#id_sla_minutes").fill("10")
    page.locator("#save-draft").click()
    expect(page.locator("#when")).to_contain_text("lifecycle_stage")
    rule = Rule.objects.get(name="Every operator")
    assert rule.condition == EVERY_OPERATOR


def test_an_invalid_value_is_shown_beside_its_row_live_and_on_save(owner_page: Page):
    page = owner_page
    queue = QueueFactory()
    page.goto("/console/rules/new/")
    add_button(page, "when", "add-condition").click()
    leaf(page, "when.all[0]", "company", "matches", "(?<=x)y")
    expect(row(page, "when.all[0]").locator(".row-error")).to_contain_text("regular expression")
    page.locator("#id_name").fill("Bad pattern")
    page.locator("#id_queue").select_option(str(queue.pk))
    page.locator("#id_priority").fill("5")
    page.locator("#id_sla_minutes").fill("10")
    page.locator("#save-draft").click()
    expect(page.locator(".messages")).to_contain_text("The draft was not saved")
    expect(row(page, "when.all[0]")).to_have_class(re.compile("has-error"))
    expect(row(page, "when.all[0]").locator(".row-error")).to_contain_text("regular expression")
    assert not Rule.objects.filter(name="Bad pattern").exists()


def test_saving_without_a_condition_is_refused(owner_page: Page):
    page = owner_page
    queue = QueueFactory()
    page.goto("/console/rules/new/")
    page.locator("#id_name").fill("Nothing yet")
    page.locator("#id_queue").select_option(str(queue.pk))
    page.locator("#id_priority").fill("5")
    page.locator("#id_sla_minutes").fill("10")
    page.locator("#save-draft").click()
    expect(page.locator("#condition-editor")).to_contain_text("Add at least one condition")
    assert not Rule.objects.filter(name="Nothing yet").exists()
