"""Review that means something, in a real browser: "My rules" lists the rules with changes awaiting review
first, a sign-off before each change's diff was opened is refused naming those not viewed, opening each
change shows its diff and marks it viewed, and then the rule signs off. And, with production approval on,
a promotion waits for a second person: the owner cannot approve their own way into production; an admin
approves on the rule's page and the owner promotes."""

import re

import pytest
from django.contrib.auth.models import Group
from playwright.sync_api import Page, expect

from routing import engine
from routing.governance.models import RuleApproval, RuleChangeView, RuleSignOff
from routing.governance.services import rule_promote
from routing.models import RuleStage
from tests.browser.helpers import log_in
from tests.factories import QueueFactory, RuleFactory, UserFactory, case
from tests.governance.helpers import edit, replay, reviewed_sign_off, stage


@pytest.fixture(autouse=True)
def fresh_rule_cache(monkeypatch):
    """The live server thread shares the engine's per-process rule cache with the test: start without one."""
    monkeypatch.setattr(engine, "_cached", None)


def logged_in(page: Page, user) -> Page:
    log_in(page, user)
    expect(page).to_have_url(re.compile(r"/console/$"))
    return page


def success(page: Page):
    return page.locator(".messages li.success")


def error(page: Page):
    return page.locator(".messages li.error")


def test_an_owner_reviews_each_change_before_signing_off(page, rule_owner):
    quiet = RuleFactory(name="Quiet rule", owner=rule_owner, priority=1)
    reviewed_sign_off(rule=quiet, by=rule_owner, comment="Nothing new")  # signed: nothing awaits review
    changed = RuleFactory(name="EMEA MQLs", owner=rule_owner, priority=2)
    reviewed_sign_off(rule=changed, by=rule_owner)
    edit(changed, description="EMEA MQLs, now with the DACH countries.")
    edit(changed, rollback_plan="Roll back to v1: DACH leads go to Sales again.")
    logged_in(page, rule_owner)

    page.get_by_role("navigation").get_by_role("link", name="My rules").click()

    sections = page.locator("section.signoff")
    expect(sections).to_have_count(2)
    expect(sections.first.locator("h2 a")).to_have_text("EMEA MQLs")  # changes awaiting review come first
    section = page.locator(f"#rule-{changed.pk}")
    expect(section.locator(".awaiting")).to_have_text("2 changes awaiting review")
    expect(section.locator("details.change summary .unviewed")).to_have_count(2)

    # Signing off before opening the diffs is refused, naming the changes not viewed.
    section.get_by_label("Comment").fill("Looks right")
    section.get_by_role("button", name="Sign off again").click()
    expect(error(page)).to_contain_text("Open the diff of every change before signing 'EMEA MQLs' off")
    expect(error(page)).to_contain_text("Draft edited (description)")
    expect(error(page)).to_contain_text("Draft edited (rollback_plan)")
    assert RuleSignOff.objects.get(rule=changed).comment == ""  # the earlier sign-off stands

    # Opening a change loads its diff and marks it viewed.
    section = page.locator(f"#rule-{changed.pk}")
    first, second = section.locator("details.change").all()
    first.locator("summary").click()
    expect(first.locator('.field-diff[data-field="description"]')).to_contain_text("now with the DACH countries")
    expect(first.locator("summary .viewed")).to_contain_text("✓ viewed")
    # Only one of two viewed: still refused, naming the other.
    section.get_by_role("button", name="Sign off again").click()
    expect(error(page)).to_contain_text("not viewed by you yet: Draft edited (rollback_plan)")
    expect(error(page)).not_to_contain_text("Draft edited (description)")

    section = page.locator(f"#rule-{changed.pk}")
    expect(section.locator("details.change summary .viewed")).to_have_count(1)  # remembered across loads
    second = section.locator("details.change").nth(1)
    second.locator("summary").click()
    expect(second.locator('.field-diff[data-field="rollback_plan"]')).to_contain_text("DACH leads go to Sales")
    expect(second.locator("summary .viewed")).to_contain_text("✓ viewed")
    section.get_by_label("Comment").fill("Read both diffs")
    section.get_by_role("button", name="Sign off again").click()

    expect(success(page)).to_contain_text("Signed off 'EMEA MQLs'")
    section = page.locator(f"#rule-{changed.pk}")
    expect(section.locator("h2 .signed")).to_contain_text("✓ signed")
    expect(section.locator(".awaiting")).to_have_count(0)
    sign_off = RuleSignOff.objects.get(rule=changed)
    assert sign_off.comment == "Read both diffs"
    assert [v["label"] for v in sign_off.covers["viewed"]] == [
        "Draft edited (description)",
        "Draft edited (rollback_plan)",
    ]
    assert RuleChangeView.objects.filter(rule=changed, viewer=rule_owner).count() == 4  # 2 earlier, 2 now


def test_the_rules_list_puts_rules_awaiting_review_first(page, rule_owner):
    signed = RuleFactory(name="Signed rule", owner=rule_owner, priority=1)
    reviewed_sign_off(rule=signed, by=rule_owner)
    pending = RuleFactory(name="Pending rule", owner=rule_owner, priority=2)
    logged_in(page, rule_owner)

    page.goto("/console/rules/")

    rows = page.locator("#rules tbody tr[data-rule]")
    expect(rows.first).to_have_attribute("data-rule", str(pending.pk))
    expect(rows.first.locator(".awaiting")).to_have_text("2 changes awaiting review")
    expect(page.locator(f'#rules tr[data-rule="{signed.pk}"] .awaiting')).to_have_count(0)


def test_nothing_to_promote_shows_neutral_not_as_a_failure(page, rule_owner):
    rule = RuleFactory(name="Unchanged rule", owner=rule_owner)
    logged_in(page, rule_owner)

    page.goto(f"/console/rules/{rule.pk}/")

    expect(page.locator("#to-staging .gates li.not-applicable")).to_have_text(
        "– Nothing to promote: the draft is the same as production v1."
    )
    expect(page.locator("#to-staging .gates li.fail")).to_have_count(0)
    expect(page.locator("#to-production .gates li.not-applicable")).to_contain_text("– Promote to staging first")


@pytest.fixture
def approval_on(settings):
    settings.HANDOFF = {**settings.HANDOFF, "PRODUCTION_APPROVAL": True}


def test_production_waits_for_a_second_persons_approval(approval_on, browser, live_server, page, rule_owner):
    partners = QueueFactory(name="Partners")
    rule = RuleFactory(name="MQL to partners", owner=rule_owner)
    stage(rule, queue=partners, test_cases=[case("an MQL", "Partners", lifecycle_stage="mql")])
    replay(by=rule_owner)
    ada = UserFactory(username="ada", first_name="Ada", last_name="Admin", is_staff=True, is_superuser=True)
    ada.groups.add(Group.objects.get_or_create(name="rule_owners")[0])
    url = f"/console/rules/{rule.pk}/"

    # The owner may approve, but their own approval does not let them promote.
    logged_in(page, rule_owner)
    page.goto(url)
    production = page.locator("#to-production")
    expect(production.locator(".gates li.fail")).to_contain_text("Get a second person's approval")
    production.get_by_role("button", name="Approve staging v2 for production").click()
    expect(success(page)).to_contain_text("You approved staging v2 of 'MQL to partners' for production")
    production = page.locator("#to-production")
    expect(production.locator(".gates li.fail")).to_contain_text("You approved staging v2 yourself")
    production.get_by_role("button", name="Promote to production").click()
    expect(error(page)).to_contain_text("Promotion blocked: You approved staging v2 yourself")
    rule.refresh_from_db()
    assert rule.production_version.number == 1

    # Ada, an admin, approves in her own browser.
    admin_context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 800})
    admin_page = logged_in(admin_context.new_page(), ada)
    admin_page.goto(url)
    admin_page.locator("#approval").get_by_label("Approval note").fill("Replay moves only partner MQLs")
    admin_page.get_by_role("button", name="Approve staging v2 for production").click()
    expect(success(admin_page)).to_contain_text("someone other than you promotes it")
    expect(admin_page.locator("#approval")).to_contain_text("Approved by rowan")
    expect(admin_page.locator("#approval")).to_contain_text("ada")
    admin_context.close()

    # Now the owner's promotion goes through: Ada's approval is someone else's.
    page.goto(url)
    production = page.locator("#to-production")
    expect(production.locator(".gates li.ok")).to_contain_text(["approved for production by ada"])
    expect(production.locator(".gates li.fail")).to_have_count(0)
    production.get_by_role("button", name="Promote to production").click()
    expect(success(page)).to_contain_text("v2 is in production")
    rule.refresh_from_db()
    assert rule.production_version.number == 2
    assert sorted(RuleApproval.objects.values_list("by__username", flat=True)) == ["ada", "rowan"]


def test_without_the_setting_production_needs_no_approval(page, rule_owner):
    partners = QueueFactory(name="Partners")
    rule = RuleFactory(name="MQL to partners", owner=rule_owner)
    stage(rule, queue=partners, test_cases=[case("an MQL", "Partners", lifecycle_stage="mql")])
    replay(by=rule_owner)
    logged_in(page, rule_owner)

    page.goto(f"/console/rules/{rule.pk}/")

    expect(page.locator("#approval")).to_have_count(0)
    expect(page.get_by_role("button", name=re.compile("Approve staging"))).to_have_count(0)
    assert rule_promote(rule=rule, to=RuleStage.PRODUCTION, by=rule_owner).version.number == 2
