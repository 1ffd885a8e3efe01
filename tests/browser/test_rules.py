"""The rule-governance screens in a real browser: promotion through the gates (blocked and granted, with a
replay on a real Celery worker as the evidence), rollback, the weekly sign-off, who may act, and the
routing preview. Each test drives the screens as a rule owner would and checks the database too."""

import datetime as dt
import json
import re

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.utils import timezone
from playwright.sync_api import Page, expect

from audit.models import AuditEvent, Override
from exceptions.triage import lead_assign_manually
from routing import engine
from routing.governance.models import PromotionKind, ReplayRun, ReplayStatus, RulePromotion, RuleSignOff
from routing.governance.replay import replay_execute, replay_request
from routing.governance.selectors import this_week
from routing.governance.services import rule_promote
from routing.models import Lead, Rule, RuleStage
from routing.services import lead_route
from tests.browser.helpers import log_in
from tests.factories import (
    AccountFactory,
    LeadFactory,
    MembershipFactory,
    QueueFactory,
    RuleFactory,
    UserFactory,
    case,
    promote_live,
)
from tests.governance.helpers import reviewed_sign_off

MQL = {"field": "lifecycle_stage", "op": "eq", "value": "mql"}
BIG_COMPANY = {"field": "company_size", "op": "gte", "value": 1000}


@pytest.fixture(autouse=True)
def fresh_rule_cache(monkeypatch):
    """The live server thread shares the engine's per-process rule cache with the test; start each test
    without one, as tests/governance does."""
    monkeypatch.setattr(engine, "_cached", None)


@pytest.fixture
def owner_page(page, rule_owner) -> Page:
    """A tab logged in as Rowan, a rule owner, on the queue overview (where logging in lands)."""
    log_in(page, rule_owner)
    expect(page).to_have_url(re.compile(r"/console/$"))
    expect(page.get_by_role("heading", name="Exception queues")).to_be_visible()
    return page


def rule_url(rule) -> str:
    return f"/console/rules/{rule.pk}/"


def stage_badge(page: Page):
    return page.locator("h1 .stage")


def summary(page: Page):
    """The line under a rule's name: owner, priority, queue, SLA, production and staging versions."""
    return page.locator("main > p").first


def success(page: Page):
    return page.locator(".messages li.success")


def error(page: Page):
    return page.locator(".messages li.error")


def rule_row(page: Page, rule):
    return page.locator(f'#rules tr[data-rule="{rule.pk}"]')


def other_rule_owner(username="ruth", first_name="Ruth", last_name="Other"):
    person = UserFactory(username=username, first_name=first_name, last_name=last_name)
    person.groups.add(Group.objects.get_or_create(name="rule_owners")[0])
    return person


def routed_lead(**fields) -> Lead:
    lead = LeadFactory(**fields)
    lead_route(lead_id=lead.pk)
    lead.refresh_from_db()
    return lead


# 1. Promotion blocked


def test_promoting_an_incomplete_draft_is_blocked_listing_each_missing_piece_and_it_stays_a_draft(
    owner_page, rule_owner
):
    rule = RuleFactory(name="Partner referrals", stage="draft", owner=rule_owner, rollback_plan="", test_cases=[])
    owner_page.goto(rule_url(rule))
    expect(stage_badge(owner_page)).to_have_text("Draft")

    owner_page.locator("#to-staging").get_by_role("button", name="Promote to staging").click()

    expect(error(owner_page)).to_have_text(
        "Promotion blocked: Write a rollback plan: what to do if the rule misroutes. "
        "Add at least one test case: a sample lead and the expected outcome (a queue, or no match)."
    )
    expect(success(owner_page)).to_have_count(0)
    expect(owner_page).to_have_url(re.compile(rf"{rule_url(rule)}$"))
    expect(stage_badge(owner_page)).to_have_text("Draft")
    expect(summary(owner_page)).to_contain_text("production none · staging none")
    failed = owner_page.locator("#to-staging .gates li.fail")
    expect(failed).to_have_text(
        [
            "✗ Write a rollback plan: what to do if the rule misroutes.",
            "✗ Add at least one test case: a sample lead and the expected outcome (a queue, or no match).",
        ]
    )
    expect(owner_page.locator("#versions")).to_have_text("No versions yet: promote the draft to staging to freeze v1.")
    expect(owner_page.locator("#promotions")).to_have_text("Never promoted.")
    rule.refresh_from_db()
    assert (rule.stage, rule.staging_version, rule.production_version) == (RuleStage.DRAFT, None, None)
    assert not rule.versions.exists()
    assert not RulePromotion.objects.filter(rule=rule).exists()


# 2. Promote to staging, replay on the worker, promote to production
#
# The replay really runs as a Celery task: tests/conftest.py's module-scoped worker process shares the test
# database and broker, and like live_server it needs a transactional test, so the two combine. The worker
# stays up for the rest of this module (nothing else here publishes a task) and waits for the queue to
# drain before this test's tables are flushed.


@pytest.mark.celery_worker
def test_promoting_to_staging_replaying_on_the_worker_and_promoting_to_production(
    celery_worker, owner_page, rule_owner
):
    # Production today: every MQL goes to Sales. Three leads were routed by it, one from a big company.
    sales, enterprise = QueueFactory(name="Sales"), QueueFactory(name="Enterprise")
    MembershipFactory(queue=sales, user=UserFactory(username="sam"))
    MembershipFactory(queue=enterprise, user=UserFactory(username="erin"))
    mqls = RuleFactory(name="MQLs to sales", owner=other_rule_owner(), priority=20, queue=sales, condition=MQL)
    routed_lead(lead_id="wf-1", company_size=40)
    routed_lead(lead_id="wf-2", company_size=300)
    big = routed_lead(lead_id="hs-3", company_size=4200)
    assert set(Lead.objects.values_list("queue__name", flat=True)) == {"Sales"}
    # Rowan's new rule would take the big company first.
    rule = RuleFactory(
        name="Enterprise accounts",
        stage="draft",
        owner=rule_owner,
        priority=10,
        queue=enterprise,
        condition=BIG_COMPANY,
        inputs="company_size",
        test_cases=[case("a big company", "Enterprise", company_size=5000), case("a small one", company_size=40)],
    )
    owner_page.goto(rule_url(rule))
    expect(owner_page.locator("#to-staging .gates li.fail")).to_have_count(0)
    staging_form = owner_page.locator("#to-staging")

    staging_form.get_by_label("Comment").fill("Enterprise deals need the enterprise team.")
    staging_form.get_by_role("button", name="Promote to staging").click()

    expect(success(owner_page)).to_have_text("v1 is in staging: it now runs in shadow on every lead.")
    expect(stage_badge(owner_page)).to_have_text("Staging")
    expect(summary(owner_page)).to_contain_text("production none · staging v1")
    expect(owner_page.locator("#to-production .gates li.fail")).to_have_text(
        ["✗ Run a replay with staging v1: none has finished since the last rule change."]
    )
    rule.refresh_from_db()
    assert (rule.stage, rule.staging_version.number, rule.production_version) == (RuleStage.STAGING, 1, None)

    # The replay runs in a Celery task on the real worker; its page follows the progress by htmx polling.
    owner_page.locator("#to-production").get_by_role("link", name="Run a replay").click()
    expect(owner_page).to_have_url(re.compile(r"/console/rules/replay/$"))
    expect(owner_page.locator("#candidate li")).to_have_text(["Enterprise accounts v1 staging", "MQLs to sales v1"])
    owner_page.locator("#replay-form").get_by_role("button", name="Start replay").click()

    expect(owner_page).to_have_url(re.compile(r"/console/rules/replay/\d+/$"))
    run = ReplayRun.objects.get()
    expect(owner_page.get_by_role("heading", name=f"Replay #{run.pk}")).to_be_visible()
    expect(owner_page.locator(".replay-status")).to_have_text("Done", timeout=30_000)
    expect(owner_page.locator("#progress progress")).to_have_attribute("value", "100")
    expect(owner_page.locator("#progress")).to_contain_text("3 of 3 leads")
    expect(owner_page.locator("#moved-count")).to_have_text("1 of 3 leads would move.")
    expect(owner_page.locator("#counts tbody tr")).to_have_text(["Enterprise 0 1", "Sales 3 2"], use_inner_text=True)
    expect(owner_page.locator("#moved tbody tr")).to_have_text(
        ["hs-3 Sales decided by MQLs to sales v1 Enterprise decided by Enterprise accounts v1 Enterprise accounts v1"],
        use_inner_text=True,
    )
    run.refresh_from_db()
    assert (run.status, run.requested_by, run.total) == (ReplayStatus.DONE, rule_owner, 3)
    assert run.candidate == {str(rule.pk): 1, str(mqls.pk): 1}
    enterprise_v1 = {"id": rule.pk, "name": "Enterprise accounts", "version": 1}
    assert run.result["moved"] == [
        {
            "id": big.pk,
            "lead_id": "hs-3",
            "from": "Sales",
            "to": "Enterprise",
            "from_rule": {"id": mqls.pk, "name": "MQLs to sales", "version": 1},
            "to_rule": enterprise_v1,
            "cause": enterprise_v1,  # the staged rule that takes it
        }
    ]

    owner_page.goto(rule_url(rule))
    expect(owner_page.locator("#to-production .gates li.fail")).to_have_count(0)
    expect(owner_page.locator("#to-production .gates")).to_contain_text(f"Replay #{run.pk}: 3 leads, 1 would move.")
    owner_page.locator("#to-production").get_by_role("button", name="Promote to production").click()

    expect(success(owner_page)).to_have_text(f"v1 is in production (evidence: replay #{run.pk}).")
    expect(stage_badge(owner_page)).to_have_text("Production")
    expect(summary(owner_page)).to_contain_text("production v1 · staging none")
    expect(owner_page.locator("#promotions li").first).to_contain_text(
        f"Promoted to production v1 · rowan · evidence replay #{run.pk}"
    )
    owner_page.get_by_role("navigation").get_by_role("link", name="Rules", exact=True).click()
    row = rule_row(owner_page, rule)
    expect(row.locator(".stage")).to_have_text("Production")
    expect(row.locator("td").nth(3)).to_have_text("production v1")
    rule.refresh_from_db()
    assert (rule.stage, rule.production_version.number, rule.staging_version) == (RuleStage.PRODUCTION, 1, None)
    promotion = RulePromotion.objects.get(rule=rule, kind=PromotionKind.PRODUCTION)
    assert (promotion.by, promotion.replay_id, promotion.version.number) == (rule_owner, run.pk, 1)


# 3. Rollback


def test_rolling_back_puts_the_previous_production_version_live_in_one_action(owner_page, rule_owner):
    emea = QueueFactory(name="Sales EMEA")
    MembershipFactory(queue=emea, user=UserFactory(username="sam"))
    rule = RuleFactory(name="EMEA MQLs", owner=rule_owner, queue=emea, sla_minutes=30)  # production v1
    promote_live(rule, sla_minutes=10)  # v2, through staging and a replay
    assert rule.production_version.number == 2
    owner_page.goto(rule_url(rule))
    expect(summary(owner_page)).to_contain_text("production v2")
    rollback = owner_page.locator("#rollback")

    rollback.get_by_label("Why").fill("The 10 minute SLA pages people at night.")
    rollback.get_by_role("button", name="Roll back to v1").click()

    expect(success(owner_page)).to_have_text("Rolled back: v1 is in production again (was v2).")
    expect(summary(owner_page)).to_contain_text("production v1 · staging none")
    expect(owner_page.locator("#promotions li").first).to_contain_text(
        "Rolled back v1 (replacing v2) · rowan · “The 10 minute SLA pages people at night.”"
    )
    v2, v1 = owner_page.locator("#versions > li").all()
    expect(v1.locator(":scope > strong")).to_have_text("v1")
    expect(v1.locator(":scope > .stage")).to_have_text("production")
    expect(v2.locator(":scope > .stage")).to_have_count(0)
    expect(owner_page.locator("#rollback")).to_have_count(0)  # nothing earlier than v1 to roll back to
    rule.refresh_from_db()
    assert rule.production_version.number == 1
    assert rule.stage == RuleStage.PRODUCTION
    latest = RulePromotion.objects.filter(rule=rule).latest("at", "id")
    assert (latest.kind, latest.version.number, latest.replaced.number, latest.by) == (
        PromotionKind.ROLLBACK,
        1,
        2,
        rule_owner,
    )


# 4. Weekly sign-off


def test_signing_off_from_my_rules_marks_the_rule_signed_and_takes_it_off_the_unsigned_list(owner_page, rule_owner):
    rule = RuleFactory(name="EMEA MQLs", owner=rule_owner)
    someone_elses = RuleFactory(name="Partner referrals", owner=other_rule_owner(username="pat"))
    owner_page.goto("/console/rules/")
    unsigned = owner_page.locator("#unsigned")
    expect(unsigned).to_contain_text("EMEA MQLs (rowan)")
    expect(unsigned).to_contain_text("Partner referrals (pat)")

    owner_page.get_by_role("navigation").get_by_role("link", name="My rules").click()
    expect(owner_page.locator("section.signoff")).to_have_count(1)  # only Rowan's own rules
    section = owner_page.locator(f"#rule-{rule.pk}")
    expect(section.locator("h2 .breached")).to_have_text("not signed this week")
    for change in section.locator("details.change").all():  # a sign-off needs each change's diff opened
        change.locator("summary").click()
        expect(change.locator("summary .viewed")).to_contain_text("✓ viewed")
    section.get_by_label("Comment").fill("Reviewed: no overrides, tests pass.")
    section.get_by_role("button", name="Sign off for this week").click()

    sign_off = RuleSignOff.objects.get(rule=rule)
    expect(success(owner_page)).to_have_text(f"Signed off 'EMEA MQLs' for {sign_off.iso_week_label}.")
    expect(owner_page).to_have_url(re.compile(rf"/console/rules/mine/#rule-{rule.pk}$"))
    expect(section.locator("h2 .signed")).to_contain_text("✓ signed")
    expect(section.locator("h2 .breached")).to_have_count(0)
    expect(section).to_contain_text(
        f"Last sign-off: {sign_off.iso_week_label} by rowan — “Reviewed: no overrides, tests pass.”"
    )
    expect(section.locator(".sign-off-form")).to_have_count(0)
    expect(owner_page.get_by_role("button", name="Sign off for this week")).to_have_count(0)

    owner_page.get_by_role("navigation").get_by_role("link", name="Rules", exact=True).click()
    expect(unsigned).to_contain_text("1 production rule without a sign-off")
    expect(unsigned).to_contain_text("Partner referrals (pat)")
    expect(unsigned).not_to_contain_text("EMEA MQLs")
    expect(rule_row(owner_page, rule)).to_contain_text(f"{sign_off.iso_week_label} by rowan")
    expect(rule_row(owner_page, rule)).not_to_contain_text("not signed this week")
    expect(rule_row(owner_page, someone_elses)).to_contain_text("never not signed this week")
    assert (sign_off.by, sign_off.week, sign_off.production_version) == (rule_owner, this_week(), 1)
    assert sign_off.comment == "Reviewed: no overrides, tests pass."
    assert not RuleSignOff.objects.filter(rule=someone_elses).exists()


# 5. Only the owner governs


def test_another_rule_owner_sees_no_promotion_buttons_and_posting_the_form_anyway_gets_403(page, rule_owner):
    ruth = other_rule_owner()
    rule = RuleFactory(name="EMEA MQLs", stage="draft", owner=rule_owner)  # complete: the gates would pass
    log_in(page, ruth)
    page.goto(rule_url(rule))
    expect(page.get_by_role("heading", name="EMEA MQLs")).to_be_visible()
    expect(page.locator("#to-staging .gates li.fail")).to_have_count(0)

    expect(page.get_by_role("button", name="Promote to staging")).to_have_count(0)
    expect(page.get_by_role("button", name="Promote to production")).to_have_count(0)
    expect(page.get_by_role("link", name="Edit draft")).to_have_count(0)
    expect(page.locator("#rollback")).to_have_count(0)

    # The form is not on Ruth's page, so post what it would have: the session's own CSRF token, from a form
    # that is there (Run test cases). A CSRF failure would be a 403 too, so the body must give the reason.
    token = page.locator("input[name=csrfmiddlewaretoken]").first.input_value()
    refused = page.request.post(
        f"/console/rules/{rule.pk}/promote_staging/", form={"csrfmiddlewaretoken": token, "comment": "Mine now."}
    )
    assert refused.status == 403
    assert "Only the rule&#x27;s owner (rowan) or an admin can promote &#x27;EMEA MQLs&#x27;." in refused.text()
    response = page.goto(f"/console/rules/{rule.pk}/edit/")
    assert response.status == 403
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    expect(page.locator("body")).to_contain_text("Only the rule's owner (rowan) or an admin edits 'EMEA MQLs'.")
    rule.refresh_from_db()
    assert (rule.stage, rule.staging_version) == (RuleStage.DRAFT, None)
    assert not RulePromotion.objects.filter(rule=rule).exists()


# 6. Routing preview


def test_the_preview_of_a_pasted_lead_names_the_deciding_rule_and_why_an_earlier_one_did_not_match(owner_page):
    enterprise, sales = QueueFactory(name="Enterprise"), QueueFactory(name="Sales")
    MembershipFactory(queue=enterprise, user=UserFactory(username="erin"))
    MembershipFactory(queue=sales, user=UserFactory(username="sam"))
    RuleFactory(name="Enterprise accounts", priority=10, queue=enterprise, condition=BIG_COMPANY)
    RuleFactory(name="MQLs to sales", priority=20, queue=sales, condition=MQL)
    events = AuditEvent.objects.count()
    owner_page.goto("/console/rules/preview/")
    form = owner_page.locator("#preview-form")
    sample = {
        "email": "maren.okafor@lindqvist.example",
        "company": "Lindqvist Freight",
        "company_size": 240,
        "country": "SE",
        "lifecycle_stage": "mql",
    }

    form.get_by_role("textbox", name="Lead", exact=False).first.fill(json.dumps(sample, indent=2))
    form.get_by_role("button", name="Preview").click()

    result = owner_page.locator("#preview-result")
    expect(result.get_by_role("heading", level=2)).to_have_text("MQLs to sales v1 would decide → Sales, assignee sam")
    verdicts = result.locator("ol.verdicts li")
    expect(verdicts).to_have_text(
        [
            "Enterprise accounts v1 (priority 10): no match at when: company_size ≥ 1000 — company_size was 240",
            "MQLs to sales v1 (priority 20): matched → Sales",
        ]
    )
    expect(verdicts.nth(0)).to_have_class("fail")
    expect(verdicts.nth(1)).to_have_class("ok")
    assert not Lead.objects.exists()  # nothing is written
    assert AuditEvent.objects.count() == events


def test_a_lead_tied_between_accounts_with_long_names_lists_them_without_widening_the_page(owner_page):
    sales = QueueFactory(name="Sales")
    MembershipFactory(queue=sales, user=UserFactory(username="sam"))
    RuleFactory(name="MQLs to sales", priority=20, queue=sales, condition=MQL)
    for n in (1, 2):
        AccountFactory(
            account_id=f"EMEA/DACH/{'0015g00000AbCdEfGhIj' * 3}-{n}",
            name=f"Vereinigte{'Industrieanlagenbaugesellschaft' * 3} {n}",
            domains=["holding-shared.example"],
        )
    lead = routed_lead(email="jo@holding-shared.example", company="", lifecycle_stage="mql")

    owner_page.goto(f"/console/leads/{lead.pk}/")
    expect(owner_page.locator("#account-match")).to_contain_text("Ambiguous account")
    expect(owner_page.locator("#account-match table.candidates tbody tr")).to_have_count(2)
    width = owner_page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert width[0] <= width[1], f"the page scrolls sideways: {width}"


# Screenshots for the docs

EMEA = ["GB", "DE", "FR", "NL"]


def rule_contracts(rule_owner, pat, queues) -> dict:
    """The rules a small sales team runs: what each is for, who answers for it, and its test cases."""
    return {
        "enterprise": RuleFactory(
            name="Enterprise accounts",
            stage="draft",
            owner=pat,
            priority=10,
            queue=queues["Enterprise"],
            condition=BIG_COMPANY,
            description="Companies of 1,000 people or more go to the enterprise team, whatever their stage.",
            inputs="company_size",
            outputs="Assignment in Enterprise; the AE calls within the hour.",
            rollback_plan="Roll back to the previous version; enterprise leads fall through to the regional rules.",
            sla_minutes=60,
            test_cases=[case("4,200 people", "Enterprise", company_size=4200), case("40 people", company_size=40)],
        ),
        "emea": RuleFactory(
            name="EMEA MQLs",
            stage="draft",
            owner=rule_owner,
            priority=20,
            queue=queues["Sales EMEA"],
            condition={"all": [MQL, {"field": "country", "op": "in", "value": EMEA}]},
            description="Marketing-qualified leads from our EMEA markets go to EMEA sales.",
            inputs="lifecycle_stage, country",
            outputs="Assignment in Sales EMEA, round robin.",
            rollback_plan="Roll back to the previous version; unmatched EMEA leads land in Triage.",
            sla_minutes=15,
            test_cases=[
                case("an MQL from Germany", "Sales EMEA", lifecycle_stage="mql", country="DE"),
                case("an MQL from the US", lifecycle_stage="mql", country="US"),
            ],
        ),
        "na": RuleFactory(
            name="North America MQLs",
            stage="draft",
            owner=rule_owner,
            priority=30,
            queue=queues["Sales North America"],
            condition={"all": [MQL, {"field": "country", "op": "in", "value": ["US", "CA"]}]},
            description="Marketing-qualified leads from the US and Canada.",
            inputs="lifecycle_stage, country",
            outputs="Assignment in Sales North America, round robin.",
            rollback_plan="Roll back to the previous version.",
            sla_minutes=15,
            test_cases=[case("an MQL from Canada", "Sales North America", lifecycle_stage="mql", country="CA")],
        ),
    }


def realistic_rules_data(page: Page, rule_owner, ops_person) -> dict:
    """Five rules of two owners in every stage, leads routed by the engine (this week's shadowed by the
    staging versions), overrides by ops, sign-offs last week and this, and a finished replay.

    Built the way production builds it: last week (time travelled) the three live rules went draft → staging
    → replay → production through the services and were signed off; this week Rowan edits one in the
    draft editor and promotes it to staging in the browser (so its history names him), leads are routed by
    the engine, ops assign three by hand, and Rowan replays the candidate set."""
    pat = other_rule_owner(username="pat", first_name="Pat", last_name="Lindgren")
    queues = {
        name: QueueFactory(name=name)
        for name in ("Enterprise", "Sales EMEA", "Sales North America", "SDR team", "Partner desk")
    }
    for queue, people in (
        ("Enterprise", ("erin", "elif")),
        ("Sales EMEA", ("sam", "sofia")),
        ("Sales North America", ("nate",)),
        ("SDR team", ("dana",)),
    ):
        for username in people:
            MembershipFactory(queue=queues[queue], user=UserFactory(username=username))

    def lead(lead_id, first, last, company, size, country, stage="mql"):
        return routed_lead(
            lead_id=lead_id,
            email=f"{first}.{last.replace(' ', '')}@{company.split()[0]}.example".lower(),
            first_name=first,
            last_name=last,
            company=company,
            company_size=size,
            country=country,
            lifecycle_stage=stage,
        )

    with time_machine.travel(timezone.now() - dt.timedelta(days=7), tick=True):
        rules = rule_contracts(rule_owner, pat, queues)
        for rule in rules.values():
            rule_promote(rule=rule, to=RuleStage.STAGING, by=rule.owner)
        replay_execute(run_id=replay_request(by=rule_owner).pk)
        for rule in rules.values():
            rule_promote(rule=rule, to=RuleStage.PRODUCTION, by=rule.owner, comment="First version.")
        # Austrian and Swiss MQLs find no rule yet.
        for row in (
            ("wf-20377", "Tomás", "Ferreira", "Porto Analytics", 60, "PT"),
            ("wf-20381", "Lena", "Vogel", "Vogel Söhne", 35, "AT"),
            ("wf-20388", "Jonas", "Brandt", "Keller Maschinenbau", 4200, "DE"),
            ("wf-20391", "Chloé", "Marchand", "Atelier Lumen", 80, "FR"),
            ("wf-20395", "Luca", "Meier", "Alpenblick Reisen", 120, "CH"),
            ("hs-88117", "Daan", "de Vries", "Noordzee Energie", 900, "NL"),
        ):
            lead(*row)
        na_leads = [
            lead("wf-20399", "Ethan", "Clarke", "Maple Robotics", 150, "CA"),
            lead("wf-20402", "Maya", "Johnson", "Riverbend Clinics", 300, "US"),
            lead("wf-20405", "Omar", "Haddad", "Desert Solar", 950, "US"),
            lead("wf-20410", "Grace", "Kim", "Harbor Logistics", 700, "US"),
        ]
        for rule in rules.values():
            reviewed_sign_off(rule=rule, by=rule.owner, comment="Reviewed; no changes.")

    # This week. Pat starts two new rules: one is in staging, the other still a draft without a plan.
    high_intent = RuleFactory(
        name="High intent to SDRs",
        stage="draft",
        owner=pat,
        priority=50,
        queue=queues["SDR team"],
        condition={"field": "intent_score", "op": "gte", "value": 80},
        description="Anyone with an intent score of 80 or more gets a same-day call from an SDR.",
        inputs="intent_score",
        outputs="Assignment in SDR team.",
        rollback_plan="Roll back; nothing else depends on it.",
        sla_minutes=30,
        test_cases=[case("intent 92", "SDR team", intent_score=92), case("intent 35", intent_score=35)],
    )
    rule_promote(rule=high_intent, to=RuleStage.STAGING, by=pat)
    RuleFactory(
        name="Partner referrals",
        stage="draft",
        owner=pat,
        priority=40,
        queue=queues["Partner desk"],
        condition={"field": "attributes.partner_id", "op": "exists"},
        description="Leads a partner referred go to the partner desk.",
        inputs="attributes.partner_id",
        outputs="Assignment in Partner desk.",
        rollback_plan="",
        sla_minutes=None,
        test_cases=[],
    )
    reviewed_sign_off(rule=rules["enterprise"], by=pat, comment="Checked the two overrides; both were partners.")

    # Rowan widens EMEA to Austria and Switzerland in the draft editor, and promotes it to staging.
    emea = rules["emea"]
    page.goto(f"/console/rules/{emea.pk}/edit/")
    draft = page.locator("#draft")
    draft.locator("#condition-editor").get_by_role("button", name="JSON").click()  # the condition opens in the builder
    draft.locator("#id_condition").fill(
        json.dumps({"all": [MQL, {"field": "country", "op": "in", "value": [*EMEA, "AT", "CH"]}]}, indent=2)
    )
    austria = case("an MQL from Austria", "Sales EMEA", lifecycle_stage="mql", country="AT")
    draft.locator("#test-cases").get_by_role("tab", name="JSON").click()  # the cases open as forms
    draft.get_by_label("Test cases (JSON)").fill(json.dumps([*emea.test_cases, austria], indent=2))
    draft.get_by_role("button", name="Save draft").click()
    expect(success(page)).to_have_text("Draft of 'EMEA MQLs' saved. Production is unchanged until you promote it.")
    page.locator("#to-staging").get_by_label("Comment").fill("Austria and Switzerland go to EMEA sales too.")
    page.locator("#to-staging").get_by_role("button", name="Promote to staging").click()
    expect(success(page)).to_have_text("v2 is in staging: it now runs in shadow on every lead.")

    for row in (
        ("wf-20412", "Anna", "Huber", "Huber Bau", 45, "AT"),
        ("wf-20415", "Noah", "Keller", "Zürich Analytics", 220, "CH"),
        ("wf-20418", "Maren", "Okafor", "Lindqvist Freight", 240, "GB"),
        ("hs-88120", "Akira", "Tanaka", "Hoshino Logistics", 12000, "DE"),
    ):
        lead(*row)
    # Ops reassigned three North American leads by hand this week: the rule is flagged.
    reasons = (
        "Existing customer of the enterprise team.",
        "Signed an enterprise pilot last month.",
        "Parent company is an enterprise account.",
    )
    for routed, reason in zip(na_leads[1:], reasons, strict=True):
        lead_assign_manually(lead=routed, queue=queues["Enterprise"], assignee=None, reason=reason, by=ops_person)
    run = replay_execute(run_id=replay_request(by=rule_owner, limit=1000).pk)
    emea.refresh_from_db()
    return {"emea": emea, "na": rules["na"], "run": run}


def test_the_rule_screens_show_a_realistic_rule_set(owner_page, rule_owner, ops_person, tmp_path):
    data = realistic_rules_data(owner_page, rule_owner, ops_person)
    emea, na, run = data["emea"], data["na"], data["run"]
    assert Rule.objects.count() == 5
    assert Override.objects.filter(rule=na).count() == 3
    assert run.status == ReplayStatus.DONE and run.result["moved_count"] == 4  # AT and CH MQLs: no match → EMEA

    owner_page.goto("/console/rules/")
    expect(owner_page.locator("h1 .count")).to_have_text("5")
    expect(owner_page.locator("#rules tbody tr[data-rule]")).to_have_count(5)
    expect(owner_page.locator("#unsigned")).to_contain_text("2 production rules without a sign-off")
    expect(rule_row(owner_page, na).locator("td.breached")).to_have_text("3 ⚑")
    expect(rule_row(owner_page, emea).locator("td").nth(3)).to_have_text("production v1 · staging v2")
    owner_page.screenshot(path=tmp_path / "rules-list.png", full_page=True)

    owner_page.goto(rule_url(emea))
    expect(stage_badge(owner_page)).to_have_text("Production")  # the furthest stage reached
    expect(summary(owner_page)).to_contain_text("production v1 · staging v2")
    expect(owner_page.locator("#cases tbody tr.ok")).to_have_count(3)
    expect(owner_page.locator("#to-production .gates li.fail")).to_have_count(0)
    expect(owner_page.locator("#shadow")).to_contain_text("would have decided 3 leads")
    expect(owner_page.locator("#versions > li")).to_have_count(2)
    owner_page.screenshot(path=tmp_path / "rule-detail.png", full_page=True)

    owner_page.goto("/console/rules/mine/")
    expect(owner_page.locator("section.signoff")).to_have_count(2)
    expect(owner_page.locator(".sign-off-form")).to_have_count(2)
    expect(owner_page.locator(f"#rule-{emea.pk} .changes")).to_contain_text("New version v2")
    expect(owner_page.locator(f"#rule-{na.pk}")).to_contain_text("3 ⚑ flagged")
    owner_page.screenshot(path=tmp_path / "my-rules.png", full_page=True)

    owner_page.goto(f"/console/rules/replay/{run.pk}/")
    expect(owner_page.locator(".replay-status")).to_have_text("Done")
    expect(owner_page.locator("#moved tbody tr")).to_have_count(4)
    owner_page.screenshot(path=tmp_path / "replay.png", full_page=True)

    for name in ("rules-list.png", "rule-detail.png", "my-rules.png", "replay.png"):
        assert (tmp_path / name).stat().st_size > 10_000, f"{name} looks empty"
