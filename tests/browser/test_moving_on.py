"""After an action that finishes the person's part on an item, in a real browser: marking waiting or assigning
to someone else opens the queue's next item (or the list, as chosen on the form and remembered), and Undo (z, or
the button) reverses it for 10 seconds: resume, give the item back, reopen."""

import re

from django.contrib.auth.models import Group
from playwright.sync_api import Page, expect

from exceptions.models import ExceptionItem, ExceptionStatus
from exceptions.services import exception_acknowledge, exception_assign
from tests.factories import QueueFactory, UserFactory, open_exception


def item_url(item) -> re.Pattern:
    return re.compile(rf"/console/items/{item.pk}/$")


def success(page: Page):
    return page.locator(".messages li.success")


def colleague(username: str):
    person = UserFactory(username=username)
    person.groups.add(Group.objects.get_or_create(name="ops")[0])
    return person


def test_marking_waiting_by_keyboard_opens_the_next_item_and_z_resumes_it(ops_page, ops_person):
    triage = QueueFactory(name="Triage")
    first, second = open_exception(queue=triage), open_exception(queue=triage)
    exception_acknowledge(item=first, by=ops_person)
    ops_page.goto(f"/console/items/{first.pk}/")
    ops_page.wait_for_load_state("load")

    ops_page.keyboard.press("w")
    ops_page.keyboard.type("the customer's reply")
    ops_page.keyboard.press("Enter")

    expect(ops_page).to_have_url(item_url(second))
    expect(success(ops_page)).to_contain_text(f"Item #{first.pk} is waiting")
    expect(ops_page.locator("#undo")).to_contain_text(f"Undo: resume item #{first.pk} (no longer waiting)")
    assert ExceptionItem.objects.get(pk=first.pk).status == ExceptionStatus.WAITING
    ops_page.wait_for_load_state("load")
    ops_page.keyboard.press("z")
    expect(ops_page).to_have_url(item_url(first))
    expect(success(ops_page)).to_contain_text(f"Item #{first.pk} resumed")
    assert ExceptionItem.objects.get(pk=first.pk).status == ExceptionStatus.ACKNOWLEDGED


def test_assigning_to_someone_else_opens_the_next_item_and_undo_gives_it_back(ops_page):
    triage = QueueFactory(name="Triage")
    rita, pat = colleague("rita"), colleague("pat")
    first, second = open_exception(queue=triage), open_exception(queue=triage)
    exception_assign(item=first, to=rita, by=rita)
    ops_page.goto(f"/console/items/{first.pk}/")

    form = ops_page.locator("form.inline-form", has=ops_page.get_by_role("button", name="Assign", exact=True))
    form.get_by_label("Assign to").select_option(label="pat (0 open)")
    form.get_by_role("button", name="Assign", exact=True).click()

    expect(ops_page).to_have_url(item_url(second))
    expect(success(ops_page)).to_contain_text(f"Item #{first.pk} assigned to pat")
    assert ExceptionItem.objects.get(pk=first.pk).assignee == pat
    ops_page.get_by_role("button", name=re.compile(rf"^Undo: give item #{first.pk} back to rita")).click()
    expect(ops_page).to_have_url(item_url(first))
    expect(success(ops_page)).to_contain_text(f"Undone: item #{first.pk} is back with rita")
    assert ExceptionItem.objects.get(pk=first.pk).assignee == rita


def test_back_to_the_list_chosen_on_one_form_is_remembered_for_the_next_item_and_undo_works_from_the_list(ops_page):
    triage = QueueFactory(name="Triage")
    first, second, third = (open_exception(queue=triage) for _ in range(3))
    ops_page.goto(f"/console/items/{first.pk}/")

    waiting = ops_page.locator("#waiting")
    waiting.get_by_label("Waiting for").fill("the customer's reply")
    waiting.get_by_label("Then").select_option(label="go back to the list")
    waiting.get_by_role("button", name=re.compile(r"^Mark waiting")).click()
    expect(ops_page).to_have_url(re.compile(r"/console/items/$"))

    ops_page.goto(f"/console/items/{second.pk}/")
    for form in ("#resolve", "#waiting", "#reroute", "#manual-assign"):
        expect(ops_page.locator(form).get_by_label(re.compile(r"^Then"))).to_have_value("list")
    ops_page.wait_for_load_state("load")
    for key in ("r", "f", "Enter"):  # resolve by keyboard: the list opens, as remembered
        ops_page.keyboard.press(key)
    expect(ops_page).to_have_url(re.compile(r"/console/items/$"))
    expect(ops_page.locator(f'tr[data-item="{third.pk}"]')).to_be_visible()
    ops_page.get_by_role("button", name=re.compile(rf"^Undo: reopen item #{second.pk}")).click()
    expect(ops_page).to_have_url(item_url(second))
    assert ExceptionItem.objects.get(pk=second.pk).status == ExceptionStatus.OPEN
