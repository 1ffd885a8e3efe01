"""axe-core (tests/browser/vendor/axe.min.js, MPL-2.0, Deque's accessibility engine) on every console screen,
desktop and phone width, with the WCAG 2.x A/AA rules up to 2.2: zero violations.

axe is evaluated through the DevTools protocol (page.evaluate), which the Content-Security-Policy does not
govern, so the pages are tested with the same policy they ship with."""

import io
from pathlib import Path

import pytest
from playwright.sync_api import Page

from routing.reports.attribution import attribution_reconcile
from tests.browser.helpers import log_in
from tests.factories import AccountFactory, LeadFactory, QueueFactory, RuleFactory, SavedViewFactory, open_exception

AXE = (Path(__file__).parent / "vendor" / "axe.min.js").read_text()
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
WIDTHS = {"desktop": 1280, "phone": 390}


def screens(world) -> list[str]:
    return [
        "/console/",
        "/console/items/",
        f"/console/items/{world['item'].pk}/",
        f"/console/leads/{world['item'].lead_id}/",
        "/console/notifications/",
        "/console/dashboard/",
        "/console/rules/",
        f"/console/rules/{world['rule'].pk}/",
        "/console/rules/mine/",
        "/console/rules/preview/",
        "/console/rules/replay/",
        "/console/accounts/",
        f"/console/accounts/{world['account'].pk}/",
        "/console/checklist/",
        "/console/anomalies/",
        "/console/reconciliation/",
        "/console/reconciliation/attribution/",
        "/console/dead-letters/",
        "/console/api-tokens/",
    ]


def violations(page: Page) -> list[str]:
    page.evaluate(AXE)
    return page.evaluate(
        "async (tags) => (await axe.run(document, {runOnly: {type: 'tag', values: tags}})).violations"
        ".map(v => `${v.id}: ${v.help} (${v.nodes.length}×: `"
        " + `${v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', ')})`)",
        TAGS,
    )


@pytest.fixture
def world(rule_owner, ops_person):
    triage = QueueFactory(name="Triage")
    item = open_exception(queue=triage, lead=LeadFactory(email="jo@acme.example", company="Acme"))
    rule = RuleFactory(owner=rule_owner, queue=QueueFactory(name="Sales"))
    account = AccountFactory(name="Acme Corporation", domains=["acme.example"], attributes={"tier": "gold"})
    # The navigation's saved views (one the current page on the item list), and attribution's Run now.
    SavedViewFactory(user=ops_person, name="Triage breached", query=f"queue={triage.pk}&breached=true")
    SavedViewFactory(user=ops_person, name="Everything unresolved", query="")
    attribution_reconcile(file=io.BytesIO(b"lead_id,origin,owner\nW-1,web,ada\n"), name="crm.csv", by=ops_person)
    return {"item": item, "rule": rule, "account": account}


@pytest.mark.parametrize("width", WIDTHS)
def test_every_screen_has_no_accessibility_violations(page, ops_person, rule_owner, world, width):
    ops_person.groups.add(*rule_owner.groups.all())  # sees every screen's controls, the rule owner's too
    page.set_viewport_size({"width": WIDTHS[width], "height": 900})
    log_in(page, ops_person)
    found = {}
    for path in screens(world):
        assert page.goto(path).ok, path
        page.wait_for_load_state("load")
        if problems := violations(page):
            found[path] = problems
    assert not found, "\n".join(f"{path}: {p}" for path, problems in found.items() for p in problems)
