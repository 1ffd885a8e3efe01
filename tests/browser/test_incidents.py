"""Incidents in Chromium: a CRM outage is one collapsible group above the item list; from it, the incident page
resolves every item with one code and note; the screens fit a phone and pass axe-core (WCAG 2.2 AA)."""

import re

import pytest
from playwright.sync_api import expect

from exceptions.incidents import Cause
from exceptions.models import ExceptionIncident, ExceptionReason
from exceptions.services import exception_open
from tests.browser.test_accessibility import violations
from tests.factories import LeadFactory, QueueFactory, open_exception

CRM_DOWN = Cause("delivery_failed:1:HTTP 5xx", "Deliveries to CRM fail: HTTP 5xx")


def crm_outage(count: int) -> ExceptionIncident:
    triage = QueueFactory(name="Triage")
    for n in range(count):
        lead = LeadFactory(email=f"buyer{n}@acme.example")
        exception_open(lead=lead, reason=ExceptionReason.DELIVERY_FAILED, queue=triage, cause=CRM_DOWN)
    return ExceptionIncident.objects.get()


def test_an_outage_is_one_group_in_the_list_and_one_resolve_settles_it(ops_page, tmp_path):
    incident = crm_outage(12)
    loose = open_exception(queue=QueueFactory(name="Triage"))
    ops_page.goto("/console/items/")

    expect(ops_page.locator("tr[data-item]")).to_have_count(1)  # the loose item; the outage is one group
    group = ops_page.locator(f"details[data-incident='{incident.pk}']")
    expect(group).to_contain_text("Deliveries to CRM fail: HTTP 5xx")
    expect(group).to_contain_text("12 items")
    expect(group.locator("li")).to_have_count(5)
    expect(group.locator("li").first).to_be_hidden()  # collapsed until asked
    group.locator("summary").click()
    expect(group.locator("li").first).to_be_visible()
    ops_page.screenshot(path=tmp_path / "incident-group.png", full_page=True)

    group.get_by_role("link", name="Open the incident").click()
    expect(ops_page).to_have_url(re.compile(rf"/console/incidents/{incident.pk}/$"))
    ops_page.screenshot(path=tmp_path / "incident.png", full_page=True)
    assert (tmp_path / "incident.png").stat().st_size > 10_000
    form = ops_page.locator("#incident-resolve")
    form.get_by_label("Resolution").select_option("fixed_upstream")
    form.get_by_label("Note (on every item)").fill("CRM token renewed; events replayed")
    form.get_by_role("button", name=re.compile("Resolve the incident")).click()

    expect(ops_page.locator(".messages")).to_contain_text("and 12 item(s) with it")
    expect(ops_page.locator("h1 .status")).to_have_text("Resolved")
    assert set(incident.items.values_list("resolution", flat=True)) == {"fixed_upstream"}
    ops_page.goto("/console/items/")
    expect(ops_page.locator("details[data-incident]")).to_have_count(0)
    expect(ops_page.locator(f"tr[data-item='{loose.pk}']")).to_be_visible()


def test_a_resolve_without_a_note_says_why_and_resolves_nothing(ops_page):
    incident = crm_outage(3)
    ops_page.goto(f"/console/incidents/{incident.pk}/")
    form = ops_page.locator("#incident-resolve")
    form.get_by_label("Resolution").select_option("fixed_upstream")
    form.get_by_label("Note (on every item)").evaluate("el => el.removeAttribute('required')")
    form.get_by_role("button", name=re.compile("Resolve the incident")).click()
    expect(ops_page.locator(".messages")).to_contain_text("recorded on every item")
    expect(ops_page.locator("h1 .status")).to_have_text("Open")


def test_the_incident_screens_fit_a_phone_with_the_resolve_button_in_reach(ops_page):
    incident = crm_outage(4)
    ops_page.set_viewport_size({"width": 390, "height": 844})
    for path in ("/console/items/", "/console/incidents/", f"/console/incidents/{incident.pk}/"):
        assert ops_page.goto(path).ok, path
        width = ops_page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        assert width[0] <= width[1], f"{path} is {width[0]} px wide on a 390 px screen"
    button = ops_page.locator("#incident-resolve").get_by_role("button")
    button.scroll_into_view_if_needed()
    box = button.bounding_box()
    assert box is not None and 0 <= box["x"] and box["x"] + box["width"] <= 390


@pytest.mark.parametrize("width", [1280, 390])
def test_the_incident_screens_have_no_accessibility_violations(ops_page, width):
    incident = crm_outage(4)
    ops_page.set_viewport_size({"width": width, "height": 900})
    found = {}
    for path in ("/console/items/", "/console/incidents/", f"/console/incidents/{incident.pk}/"):
        assert ops_page.goto(path).ok, path
        ops_page.wait_for_load_state("load")
        if path == "/console/items/":
            ops_page.locator("details[data-incident] summary").click()  # the open group too
        if problems := violations(ops_page):
            found[path] = problems
    assert not found, "\n".join(f"{path}: {p}" for path, problems in found.items() for p in problems)
