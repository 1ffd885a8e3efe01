"""The README's screenshots, taken from the demo's own data: what `make demo` shows a newcomer, seeded by
`seed_demo` (its rules, queues, people, two weeks of routed leads and the exception desk), not by the test
factories. The one step a rule owner would take in the demo's first minutes (replaying the staging rule) is
taken through the service the console calls. `make screenshots` (HANDOFF_UPDATE_SCREENSHOTS=1) writes them to
docs/screenshots; otherwise they go to a scratch folder and the assertions still run."""

import datetime as dt
import io
import random
import re

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone
from playwright.sync_api import Page, expect

from exceptions.models import ExceptionIncident, ExceptionItem, ExceptionReason, ExceptionStatus
from routing import engine
from routing.demo.history import HISTORY_PREFIX
from routing.demo.leads import synthetic_lead
from routing.experiments.services import experiment_start
from routing.governance.replay import replay_execute, replay_request
from routing.intake import leads_intake
from routing.management.commands.seed_demo import DEMO_LOGIN, DEMO_OWNER, DEMO_SOURCE
from routing.models import Lead, Queue, Rule, RuleStage, Source
from routing.services import leads_route
from tests.browser.helpers import log_in
from tests.browser.test_dashboard import charts_drawn, tile

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = DEMO_LOGIN[1]


@pytest.fixture
def demo(monkeypatch):
    """The demo as `make demo` seeds it."""
    monkeypatch.setattr(engine, "_cached", None)  # the demo's rules, compiled afresh
    call_command("seed_demo", stdout=io.StringIO())
    return get_user_model().objects.get(username=DEMO_LOGIN[0])


def logged_in(page: Page, username: str) -> Page:
    log_in(page, get_user_model().objects.get(username=username), password=PASSWORD)
    expect(page).to_have_url(re.compile(r"/console/$"))
    return page


def shoot(page: Page, folder, name: str, *, smallest: int = 10_000) -> None:
    page.screenshot(path=folder / name, full_page=True)
    assert (folder / name).stat().st_size > smallest, f"{name} looks empty"


def test_screenshots_of_the_demo_queues_items_and_incident(page, demo, screenshots_dir):
    unresolved = ExceptionItem.objects.exclude(status=ExceptionStatus.RESOLVED)
    # The desk: every reason, across the demo's queues, some breached; its history opened none of them.
    assert set(unresolved.values_list("reason", flat=True)) == set(ExceptionReason.values) - {"routing_failed"}
    assert not unresolved.filter(lead__lead_id__startswith=HISTORY_PREFIX).exists()
    breached = unresolved.exclude(ack_breached_at=None, resolve_breached_at=None)
    assert {"Triage", "SDR", "Account Executives"} <= set(breached.values_list("queue__name", flat=True))
    incident = ExceptionIncident.objects.get()  # the enrichment vendor's outage
    featured = unresolved.get(lead__lead_id="desk-wf-20377")  # no rule matched a customer: the ack SLA is gone
    logged_in(page, demo.username)

    page.goto("/console/")
    for queue in Queue.objects.all():
        expect(page.locator(f'tr[data-queue="{queue.name}"] td[data-count=open]')).to_have_text(
            str(unresolved.filter(queue=queue).count())
        )
    shoot(page, screenshots_dir, "overview.png")

    page.goto("/console/items/")
    shown = unresolved.filter(incident=None).count()  # an incident's items are one group above the rows
    expect(page.locator("table.items tbody tr[data-item]")).to_have_count(shown)
    expect(page.locator(f"details[data-incident='{incident.pk}']")).to_be_visible()
    shoot(page, screenshots_dir, "item-list.png")

    page.goto(f"/console/items/{featured.pk}/")
    expect(page.locator("#history li")).not_to_have_count(0)
    expect(page.locator("body")).to_contain_text(featured.lead.lead_id)
    shoot(page, screenshots_dir, "item-detail.png")

    page.goto("/console/items/")
    group = page.locator(f"details[data-incident='{incident.pk}']")
    group.locator("summary").click()
    expect(group.locator("li")).to_have_count(incident.items.count())
    shoot(page, screenshots_dir, "incident-group.png")

    page.goto(f"/console/incidents/{incident.pk}/")
    expect(page.locator("h1")).to_contain_text(f"#{incident.pk}")
    shoot(page, screenshots_dir, "incident.png")


def test_screenshot_of_the_demo_dashboard(page, demo, screenshots_dir):
    yesterday = timezone.now().date() - dt.timedelta(days=1)
    first = Lead.objects.order_by("received_at").first().received_at.date()
    logged_in(page, demo.username)
    page.set_viewport_size({"width": 1400, "height": 900})

    page.goto(f"/console/dashboard/?range=custom&start={first}&end={yesterday}")
    charts_drawn(page)
    expect(tile(page, "received")).to_have_text(re.compile(r"^[1-9][\d,]*$"))
    shoot(page, screenshots_dir, "dashboard.png", smallest=50_000)

    page.get_by_role("link", name="Checklist").click()
    expect(page.locator("#checklist > li")).to_have_count(7)  # last week: the demo's history covers it
    shoot(page, screenshots_dir, "checklist.png")


def test_screenshots_of_the_demo_rules(page, demo, screenshots_dir):
    owner = get_user_model().objects.get(username=DEMO_OWNER)
    staged = Rule.objects.filter(stage=RuleStage.STAGING).first()
    assert staged is not None  # the demo's trial rule, waiting in staging
    run = replay_execute(run_id=replay_request(by=owner, limit=1000).pk)
    logged_in(page, DEMO_OWNER)

    page.goto("/console/rules/")
    expect(page.locator("h1 .count")).to_have_text(str(Rule.objects.count()))
    shoot(page, screenshots_dir, "rules-list.png")

    page.goto(f"/console/rules/{staged.pk}/")
    expect(page.locator("h1")).to_contain_text(staged.name)
    shoot(page, screenshots_dir, "rule-detail.png")

    page.goto("/console/rules/mine/")
    expect(page.locator("section.signoff").first).to_be_visible()
    shoot(page, screenshots_dir, "my-rules.png")

    page.goto(f"/console/rules/replay/{run.pk}/")
    expect(page.locator(".replay-status")).to_have_text("Done")
    shoot(page, screenshots_dir, "replay.png")


def test_screenshots_of_the_condition_builder_and_an_experiment(page, demo, screenshots_dir):
    """The demo's trial rule in the builder, then run as an experiment on a day's worth of demo leads, as its
    owner would start it from the rule page."""
    owner = get_user_model().objects.get(username=DEMO_OWNER)
    trial = Rule.objects.get(stage=RuleStage.STAGING)
    logged_in(page, DEMO_OWNER)

    page.goto(f"/console/rules/{trial.pk}/edit/")
    expect(page.locator("#condition-builder")).to_be_visible()
    expect(page.locator("#condition-check")).to_contain_text("of your last")  # the live check has answered
    shoot(page, screenshots_dir, "condition-builder.png")

    experiment = experiment_start(
        rule=trial, by=owner, percent=50, max_leads=2000, criteria={"route_latency": -50, "manual_touches": -70}
    )
    rng = random.Random(11)
    _, created = leads_intake(
        source=Source.objects.get(name=DEMO_SOURCE), payloads=[synthetic_lead(rng) for _ in range(600)]
    )
    leads_route(lead_ids=created)
    experiment.refresh_from_db()
    assert experiment.enrolled > 0
    assert {"production", "candidate"} == set(experiment.leads.values_list("arm", flat=True).distinct())

    page.goto(f"/console/experiments/{experiment.pk}/")
    expect(page.locator("h1")).to_contain_text(trial.name)
    shoot(page, screenshots_dir, "experiment.png")
