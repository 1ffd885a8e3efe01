"""An experiment end to end in a real browser: a rule owner starts one from the rule's page, real leads are
routed through both arms, the page's figures update while it runs, the owner stops it and promotes the
candidate, and the audit trail holds the decision with the figures."""

import re

import pytest
from playwright.sync_api import Page, expect

from audit.models import AuditAction, AuditEvent
from routing import engine
from routing.experiments.models import Arm, Experiment, ExperimentLead, ExperimentStatus
from routing.services import leads_route
from tests.browser.helpers import log_in
from tests.factories import LeadFactory, MembershipFactory, QueueFactory, RuleFactory, case
from tests.governance.helpers import replay, stage


@pytest.fixture(autouse=True)
def fresh_rule_cache(monkeypatch):
    monkeypatch.setattr(engine, "_cached", None)


@pytest.fixture
def mql_rule(rule_owner):
    """Production v1 sends MQLs to Sales; staging v2 sends them to UK."""
    sales, uk = QueueFactory(name="Sales"), QueueFactory(name="UK")
    MembershipFactory(queue=sales, user__username="alan")
    MembershipFactory(queue=uk, user__username="carl")
    rule = RuleFactory(name="MQLs", owner=rule_owner, queue=sales, priority=10)
    return stage(rule, queue=uk, test_cases=[case("an MQL", "UK", lifecycle_stage="mql")])


def test_an_owner_runs_an_experiment_and_promotes_the_candidate(page: Page, rule_owner, mql_rule):
    log_in(page, rule_owner)
    page.goto(f"/console/rules/{mql_rule.pk}/")
    page.get_by_text("Run staging v2 against production on real leads").click()
    form = page.locator("#experiment-start")
    form.get_by_label("Candidate's share (%)").fill("50")
    form.get_by_label("Max leads").fill("100")
    form.get_by_label("Route latency change (%)").fill("-50")
    form.get_by_label("Manual touches change (%)").fill("-70")
    form.get_by_role("button", name="Start the experiment").click()

    experiment = Experiment.objects.get()
    expect(page).to_have_url(re.compile(rf"/console/experiments/{experiment.pk}/$"))
    expect(page.locator("#experiment-status")).to_have_text("Running")
    expect(page.locator("#enrolled")).to_have_text("0")

    # Leads arrive while the page is open: it shows them without a reload.
    leads = LeadFactory.create_batch(24, lifecycle_stage="mql")
    leads_route(lead_ids=[lead.pk for lead in leads])
    arms = dict(ExperimentLead.objects.values_list("lead_id", "arm"))
    candidates = sum(arm == Arm.CANDIDATE for arm in arms.values())
    assert len(arms) == 24 and 0 < candidates < 24
    expect(page.locator("#enrolled")).to_have_text("24", timeout=15_000)
    expect(page.locator("#arm-production td").first).to_have_text(str(24 - candidates))
    expect(page.locator("#arm-candidate td").first).to_have_text(str(candidates))
    expect(page.locator("#criterion-route_latency .verdict")).to_have_text("too early to tell")

    page.get_by_role("button", name="Stop the experiment").click()
    expect(page.get_by_text("stopped: decide whether to promote the candidate")).to_be_visible()
    expect(page.locator("#experiment-status")).to_have_text("Ended, awaiting a decision")

    replay()  # the production gate's evidence for staging v2
    page.locator("#decide").get_by_label("Note").fill("Faster to the right team")
    page.get_by_role("button", name="Promote the candidate").click()
    expect(page.locator("#decided")).to_contain_text("Candidate promoted by rowan")

    mql_rule.refresh_from_db()
    assert (mql_rule.production_version.number, mql_rule.staging_version) == (2, None)
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.PROMOTED
    decision = AuditEvent.objects.get(action=AuditAction.EXPERIMENT_DECIDED)
    assert (decision.actor, decision.data["decision"], decision.data["note"]) == (
        rule_owner,
        "promote",
        "Faster to the right team",
    )
    figures = {arm["name"]: arm["leads"] for arm in decision.data["figures"]["arms"]}
    assert figures == {"production": 24 - candidates, "candidate": candidates}
