"""Readable rule diffs and replays in a real browser: a rule's versions diffed line by line, the page saying
what is live and how the draft differs, a rolled-back draft that is not promoted again by one click, and a
replay page whose tables stay whole and apart on a phone and on a laptop, each move put down to its rule."""

import re

import pytest
from playwright.sync_api import Page, expect

from routing import engine
from routing.governance.replay import replay_execute, replay_request
from routing.governance.services import rule_rollback
from routing.models import Lead
from routing.services import lead_route
from tests.browser.helpers import log_in
from tests.factories import LeadFactory, MembershipFactory, QueueFactory, RuleFactory, case, promote_live
from tests.governance.helpers import edit, stage

MQL = {"field": "lifecycle_stage", "op": "eq", "value": "mql"}
US = {"field": "country", "op": "eq", "value": "US"}
BIG = {"field": "company_size", "op": "gte", "value": 200}


@pytest.fixture(autouse=True)
def fresh_rule_cache(monkeypatch):
    """The live server thread shares the engine's per-process rule cache with the test: start without one."""
    monkeypatch.setattr(engine, "_cached", None)


@pytest.fixture
def owner_page(page, rule_owner) -> Page:
    log_in(page, rule_owner)
    expect(page).to_have_url(re.compile(r"/console/$"))
    return page


def rule_url(rule) -> str:
    return f"/console/rules/{rule.pk}/"


def test_a_rule_with_several_versions_shows_line_level_diffs_and_how_the_draft_differs(owner_page, rule_owner):
    big_us_mql = case("a big US MQL", "Sales", lifecycle_stage="mql", country="US", company_size=500)
    rule = RuleFactory(  # v1, live
        name="US MQLs",
        owner=rule_owner,
        queue=QueueFactory(name="Sales"),
        condition={"all": [MQL, US]},
        test_cases=[big_us_mql],
    )
    promote_live(rule, condition={"all": [MQL, BIG]})  # v2: big companies instead of US ones
    edit(rule, condition={"all": [MQL, BIG, US]}, sla_minutes=45)  # the draft: both, and a longer SLA

    owner_page.goto(rule_url(rule))

    expect(owner_page.locator("#live-version")).to_contain_text(re.compile(r"v2 is live in production since \d{4}-"))
    expect(owner_page.locator("#draft-differs > summary")).to_have_text(
        "The draft differs from production v2: 2 changes (When (condition), SLA)"
    )
    draft_diff = owner_page.locator("#draft-differs")
    expect(draft_diff.locator(".diff-line.added")).to_have_text(["+  country = 'US'", "+45 min"])
    expect(draft_diff.locator(".diff-line.removed")).to_have_text(["−15 min"])
    expect(owner_page.locator("#when-live")).to_have_text(
        "Live, production v2: lifecycle_stage = 'mql' and company_size ≥ 200"
    )
    expect(owner_page.locator("#when-draft")).to_have_text(
        "Draft (not live): lifecycle_stage = 'mql' and company_size ≥ 200 and country = 'US'"
    )

    v2 = owner_page.locator("#versions > li").first  # newest first, its diff against v1 open
    expect(v2.locator("details.changes > summary")).to_have_text("Changes from v1: 1 field (When (condition))")
    condition = v2.locator('.field-diff[data-field="condition"]')
    expect(condition.locator(".diff-line")).to_have_text(
        ["all of:", "  lifecycle_stage = 'mql'", "−  country = 'US'", "+  company_size ≥ 200"],
        use_inner_text=True,
    )
    expect(condition.locator(".diff-line.removed")).to_be_visible()
    removed, added = (
        condition.locator(f".diff-line.{kind}").evaluate("e => getComputedStyle(e).backgroundColor")
        for kind in ("removed", "added")
    )
    assert removed != added, "added and removed lines must look different"


def test_after_a_rollback_the_rolled_back_draft_needs_a_reason_to_be_promoted_again(owner_page, rule_owner):
    rule = RuleFactory(name="EMEA MQLs", owner=rule_owner, sla_minutes=30)  # production v1
    promote_live(rule, sla_minutes=10)  # v2
    rule_rollback(rule=rule, by=rule_owner, comment="Night pages.")

    owner_page.goto(rule_url(rule))

    expect(owner_page.locator("#live-version")).to_contain_text("v1 is live in production since")
    expect(owner_page.locator("#rolled-back-draft")).to_contain_text("The draft is v2, which was rolled back on")
    expect(owner_page.locator("#draft-differs > summary")).to_have_text(
        "The draft differs from production v1: 1 change (SLA)"
    )
    expect(owner_page.locator("#to-staging .gates li.fail")).to_contain_text("write in the comment why it is safe now")

    to_staging = owner_page.locator("#to-staging")
    to_staging.get_by_role("button", name="Promote to staging").click()
    expect(owner_page.locator(".messages li.error")).to_contain_text(
        "Promotion blocked: The draft is v2, which was rolled back out of production on"
    )
    rule.refresh_from_db()
    assert rule.staging_version is None

    to_staging.get_by_label("Comment").fill("Night pages go to the on-call rota now.")
    to_staging.get_by_role("button", name="Promote to staging").click()
    expect(owner_page.locator(".messages li.success")).to_have_text(re.compile(r"^v3 is in staging"))
    rule.refresh_from_db()
    assert (rule.staging_version.number, rule.staging_version.sla_minutes) == (3, 10)


@pytest.fixture
def replayed(rule_owner):
    """Two rules in staging: Enterprise v2 takes big companies from Sales and Support; Sales v2 takes SQLs no
    rule matched. Replayed over leads production routed."""
    sales, support, enterprise = (QueueFactory(name=name) for name in ("Sales", "Support", "Enterprise"))
    for queue in (sales, support, enterprise):
        MembershipFactory(queue=queue)
    enterprise_rule = RuleFactory(
        name="Enterprise accounts",
        owner=rule_owner,
        queue=enterprise,
        priority=5,
        condition={"field": "company_size", "op": "gte", "value": 5000},
        test_cases=[case("huge", "Enterprise", company_size=9000)],
    )
    sales_rule = RuleFactory(name="MQLs to sales", owner=rule_owner, queue=sales, priority=10)
    RuleFactory(
        name="Support requests",
        owner=rule_owner,
        queue=support,
        priority=20,
        condition={"field": "lifecycle_stage", "op": "eq", "value": "customer"},
        test_cases=[case("a customer", "Support", lifecycle_stage="customer")],
    )
    leads = [
        *(LeadFactory(lifecycle_stage="mql", company_size=800, lead_id=f"big-mql-{n}") for n in range(3)),
        LeadFactory(lifecycle_stage="customer", company_size=900, lead_id="big-customer"),
        LeadFactory(lifecycle_stage="sql", company_size=10, lead_id="small-sql"),
        LeadFactory(lifecycle_stage="mql", company_size=10, lead_id="small-mql"),
    ]
    for lead in leads:
        lead_route(lead_id=lead.pk)
    stage(
        enterprise_rule,
        condition={"field": "company_size", "op": "gte", "value": 500},
        test_cases=[case("big", "Enterprise", company_size=600)],
    )
    stage(
        sales_rule,
        condition={"field": "lifecycle_stage", "op": "in", "value": ["mql", "sql"]},
        test_cases=[case("an SQL", sales.name, lifecycle_stage="sql")],
    )
    run = replay_execute(run_id=replay_request(by=rule_owner).pk)
    return {"run": run, "enterprise": enterprise_rule, "sales": sales_rule}


def boxes_apart(a: dict, b: dict) -> bool:
    return (
        a["x"] + a["width"] <= b["x"]
        or b["x"] + b["width"] <= a["x"]
        or a["y"] + a["height"] <= b["y"]
        or b["y"] + b["height"] <= a["y"]
    )


def on_screen_horizontally(page: Page, locator) -> bool:
    box, width = locator.bounding_box(), page.viewport_size["width"]
    return box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width


@pytest.mark.parametrize("width", [375, 1280])
def test_a_replay_page_keeps_both_tables_whole_and_apart_and_says_which_rule_moved_each_lead(
    owner_page, replayed, width
):
    owner_page.set_viewport_size({"width": width, "height": 900})
    run, enterprise, sales = replayed["run"], replayed["enterprise"], replayed["sales"]

    owner_page.goto(f"/console/rules/replay/{run.pk}/")

    expect(owner_page.locator("#moved-count")).to_have_text("5 of 6 leads would move.")
    counts, moved = owner_page.locator("#counts"), owner_page.locator("#moved")
    expect(counts).to_be_visible()
    expect(moved).to_be_visible()
    assert boxes_apart(counts.bounding_box(), moved.bounding_box()), "the two tables overlap"
    after = counts.locator("thead th").nth(2)
    expect(after).to_contain_text("After")
    assert on_screen_horizontally(owner_page, after), f"the After column is off screen at {width}px"
    for cell in counts.locator("tbody td").all():
        assert on_screen_horizontally(owner_page, cell), f"a queue count is off screen at {width}px"
    for cell in moved.locator("tbody td").all():  # each column of each moved lead, as a table or as a card
        assert on_screen_horizontally(owner_page, cell), f"a moved lead's column is off screen at {width}px"
    assert owner_page.evaluate("document.documentElement.scrollWidth") <= width

    expect(owner_page.locator("#moves-by-rule li")).to_have_text(
        [
            "Enterprise accounts v2 moves 4 leads to Enterprise: 3 from Sales, 1 from Support",
            "MQLs to sales v2 moves 1 lead to Sales: 1 from (no match)",
        ]
    )
    expect(owner_page.locator("#moves-by-rule a").first).to_have_attribute("href", f"/console/rules/{enterprise.pk}/")
    big_customer = Lead.objects.get(lead_id="big-customer")
    row = moved.locator("tbody tr", has=owner_page.locator(f'a[href="/console/leads/{big_customer.pk}/"]'))
    expect(row.locator('td[data-label="From"]')).to_contain_text("Support")
    expect(row.locator('td[data-label="From"]')).to_contain_text("decided by Support requests v1")
    expect(row.locator('td[data-label="To"]')).to_contain_text("decided by Enterprise accounts v2")
    expect(row.locator('td[data-label="Moved by"] a')).to_have_attribute("href", f"/console/rules/{enterprise.pk}/")
    small_sql = Lead.objects.get(lead_id="small-sql")
    sql_row = moved.locator("tbody tr", has=owner_page.locator(f'a[href="/console/leads/{small_sql.pk}/"]'))
    expect(sql_row.locator('td[data-label="Moved by"]')).to_have_text("MQLs to sales v2")
    expect(sql_row.locator('td[data-label="Moved by"] a')).to_have_attribute("href", f"/console/rules/{sales.pk}/")
