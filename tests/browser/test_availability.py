"""An ops person sets their week and time off in a real browser, sees it on Who is in, and reads a queue's
distribution."""

import re

from playwright.sync_api import expect

from routing.services import lead_route
from tests.factories import LeadFactory, MembershipFactory, QueueFactory, RuleFactory


def test_an_ops_person_sets_a_split_week_sees_the_error_at_the_day_and_adds_time_off(ops_page, ops_person):
    page = ops_page
    MembershipFactory(queue=QueueFactory(name="Inbound"), user=ops_person)
    page.get_by_role("link", name="My hours").click()
    expect(page.get_by_role("heading", name="Time zone and weekly hours")).to_be_visible()

    page.get_by_label("Time zone").fill("Europe/Berlin")
    page.get_by_label("Monday").fill("09:00-25:00")
    page.get_by_role("button", name="Save hours").click()
    monday = page.locator('label[data-day="mon"]')
    expect(monday.locator(".error")).to_contain_text("25:00")
    expect(page.locator(".messages")).to_contain_text("not saved")

    page.get_by_label("Monday").fill("09:00-12:00, 13:00-17:00")
    page.get_by_role("button", name="Save hours").click()
    expect(page.locator(".messages")).to_contain_text("saved")
    expect(page.get_by_label("Monday")).to_have_value(re.compile(r"09:00-12:00, ?13:00-17:00"))

    page.get_by_label("From").fill("2030-12-24")
    page.get_by_label("To").fill("2030-12-26")
    page.get_by_label("Note").fill("<script>alert(1)</script> holidays")
    page.get_by_role("button", name="Add").click()
    expect(page.locator("#time-off")).to_contain_text("<script>alert(1)</script> holidays")  # shown as text

    page.get_by_role("link", name="People").click()
    row = page.locator(f'tr[data-person="{ops_person.get_username()}"]')
    expect(row).to_contain_text("Inbound")
    expect(row.locator("td").nth(3)).to_contain_text("Europe/Berlin")


def test_the_distribution_page_explains_each_members_share_and_offers_the_csv(ops_page):
    page = ops_page
    queue = QueueFactory(name="AEs")
    for _ in range(3):
        MembershipFactory(queue=queue)
    RuleFactory(queue=queue)
    for _ in range(6):
        lead_route(lead_id=LeadFactory().pk)

    page.goto(f"/console/queues/{queue.pk}/distribution/?period=day")
    expect(page.get_by_role("heading", name="Distribution in AEs")).to_be_visible()
    expect(page.locator("#distribution tbody tr")).to_have_count(3)
    expect(page.locator("#explanations li").first).to_contain_text("got 2, their fair share while in (2)")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    assert download.value.suggested_filename.startswith(f"distribution-{queue.pk}-")
