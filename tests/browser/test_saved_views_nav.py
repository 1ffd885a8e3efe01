"""The person's saved views in the console's navigation, in a real browser: each opens the item list with its
filters and shows its count; at phone width they wrap inside the screen."""

import re

from playwright.sync_api import expect

from tests.factories import QueueFactory, SavedViewFactory, open_exception


def test_a_saved_view_in_the_navigation_opens_the_list_with_its_filters(ops_page, ops_person):
    triage, sales = QueueFactory(name="Triage"), QueueFactory(name="Sales")
    outage = [open_exception(queue=triage, reason="delivery_failed") for _ in range(2)]
    other = open_exception(queue=sales)
    SavedViewFactory(user=ops_person, name="CRM outage", query=f"queue={triage.pk}&reason=delivery_failed")
    SavedViewFactory(user=ops_person, name="Sales", query=f"queue={sales.pk}")

    ops_page.reload()
    views = ops_page.get_by_role("navigation", name="Saved views")
    expect(views.get_by_role("link")).to_have_text(["CRM outage 2", "Sales 1"])
    views.get_by_role("link", name="CRM outage").click()

    expect(ops_page).to_have_url(re.compile(rf"/console/items/\?queue={triage.pk}&reason=delivery_failed$"))
    expect(ops_page.locator("tr[data-item]")).to_have_count(2)
    for item in outage:
        expect(ops_page.locator(f'tr[data-item="{item.pk}"]')).to_be_visible()
    expect(ops_page.locator(f'tr[data-item="{other.pk}"]')).to_have_count(0)
    current = ops_page.get_by_role("navigation", name="Saved views").get_by_role("link", name="CRM outage")
    expect(current).to_have_attribute("aria-current", "page")


def test_ten_saved_views_with_long_names_fit_a_phone(ops_page, ops_person):
    queue = QueueFactory(name="Triage")
    open_exception(queue=queue)
    for n in range(10):
        name = f"{n} Vereinigte-Industrieanlagenbau-Nordrhein-Westfalen-Kundenservice"[:60]
        SavedViewFactory(user=ops_person, name=name, query=f"queue={queue.pk}&due_within={n}")
    ops_page.set_viewport_size({"width": 390, "height": 844})

    for path in ("/console/", "/console/items/", "/console/notifications/"):
        assert ops_page.goto(path).ok, path
        width = ops_page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        assert width[0] <= width[1], f"{path} is {width[0]} px wide on a 390 px screen"
        links = ops_page.get_by_role("navigation", name="Saved views").get_by_role("link")
        expect(links).to_have_count(10)
        for index in range(10):
            box = links.nth(index).bounding_box()
            assert box is not None and 0 <= box["x"] and box["x"] + box["width"] <= 390, (path, index, box)
