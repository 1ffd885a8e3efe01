"""The routing preview's lead box opens empty, not with the word `null` (a newcomer's first look at the rule
screens): opened from the rules list, from a lead's page (its id filled in), and the new-rule editor's JSON boxes."""

import re

import pytest
from playwright.sync_api import expect

from tests.browser.helpers import log_in
from tests.factories import LeadFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_preview_lead_box_starts_empty(page, rule_owner):
    lead = LeadFactory()
    log_in(page, rule_owner)
    expect(page).to_have_url(re.compile(r"/console/$"))

    page.goto("/console/rules/")
    page.get_by_role("link", name="Routing preview").click()
    expect(page.locator("#id_lead")).to_have_value("")

    page.goto(f"/console/rules/preview/?lead={lead.pk}")
    expect(page.locator("#id_lead")).to_have_value("")
    expect(page.locator("#id_lead_id")).to_have_value(str(lead.pk))


def test_the_new_rule_editor_shows_no_null(page, rule_owner):
    log_in(page, rule_owner)
    page.goto("/console/rules/new/")

    for box in page.locator("textarea").all():
        assert "null" not in box.input_value()
