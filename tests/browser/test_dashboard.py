"""The dashboard in a real browser: Chart.js draws from the project's static files, the range selector
changes the days shown, and a tile or a bar opens the list it counts."""

import datetime as dt
import random
import re

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from audit.models import AuditEvent, Override
from exceptions.models import ExceptionItem, ExceptionStatus
from routing.dashboard.rollups import dashboard_rollup_days
from routing.integrations.models import DeliveryTarget, OutboxEvent, OutboxStatus
from routing.models import Lead, LeadStatus
from tests.dashboard.conftest import D, known_day  # noqa: F401  (the known day's data, as a fixture here)
from tests.factories import QueueFactory, RuleFactory, SourceFactory

CHARTS = 11
DAY = f"/console/dashboard/?range=custom&start={D}&end={D}"


def charts_drawn(page: Page) -> None:
    expect(page.locator("body")).to_have_attribute("data-charts-ready", str(CHARTS))
    expect(page.locator("canvas[data-ready=true]")).to_have_count(CHARTS)


def tile(page: Page, figure: str):
    return page.locator(f'a.tile[data-figure="{figure}"] .value')


@pytest.fixture
def rolled_up(known_day):  # noqa: F811
    today = timezone.now().date()
    dashboard_rollup_days(days=[today - dt.timedelta(days=n) for n in range((today - D).days + 2)])
    return known_day


def test_the_dashboard_draws_its_charts_from_the_days_rollups(ops_page, rolled_up):
    ops_page.goto(DAY)
    charts_drawn(ops_page)
    expect(tile(ops_page, "received")).to_have_text("15")
    expect(tile(ops_page, "median")).to_have_text("6 min")
    expect(tile(ops_page, "p95")).to_have_text("2.1 h")
    expect(tile(ops_page, "exceptions")).to_have_text("13.3%")
    labels = ops_page.evaluate("window.dashboardCharts['chart-latency-rule'].data.labels")
    assert labels == ["Inbound", "Partners"]
    sla = ops_page.evaluate("window.dashboardCharts['chart-latency-rule'].data.datasets[2].data")
    assert sla == [15, 60]


def test_the_range_selector_changes_the_days_shown(ops_page, rolled_up):
    ops_page.goto("/console/dashboard/")
    charts_drawn(ops_page)
    expect(ops_page.locator(".ranges a.current")).to_have_text("7 days")
    assert len(ops_page.evaluate("window.dashboardCharts['chart-latency-day'].data.labels")) == 7

    ops_page.locator(".ranges").get_by_role("link", name="30 days").click()
    expect(ops_page).to_have_url(re.compile(r"range=30d"))
    charts_drawn(ops_page)
    expect(ops_page.locator(".ranges a.current")).to_have_text("30 days")
    assert len(ops_page.evaluate("window.dashboardCharts['chart-latency-day'].data.labels")) == 30
    expect(tile(ops_page, "received")).to_have_text("16")  # D and the day before are both in the last 30 days

    ops_page.get_by_label("From", exact=True).fill(D.isoformat())
    ops_page.get_by_label("To", exact=True).fill(D.isoformat())
    ops_page.get_by_role("button", name="Show").click()
    charts_drawn(ops_page)
    expect(ops_page.locator("h1 .count")).to_contain_text("10 Nov 2026")
    expect(tile(ops_page, "received")).to_have_text("15")
    assert ops_page.evaluate("window.dashboardCharts['chart-latency-day'].data.labels") == [D.isoformat()]


def test_a_tile_opens_the_item_list_it_counts(ops_page, rolled_up):
    ops_page.goto(DAY)
    ops_page.locator('a.tile[data-figure="exceptions"]').click()
    expect(ops_page).to_have_url(re.compile(r"/console/items/\?"))
    expect(ops_page.locator("h1 .count")).to_have_text("2")
    expect(ops_page.locator("table.items tbody tr[data-item]")).to_have_count(2)


def test_a_bar_opens_the_leads_it_counts(ops_page, rolled_up):
    ops_page.goto(DAY)
    charts_drawn(ops_page)
    canvas = ops_page.locator("#chart-latency-rule")
    canvas.scroll_into_view_if_needed()
    # The middle of the Inbound P95 bar (the taller of the first pair), in canvas pixels.
    x, y = ops_page.evaluate(
        """() => { const bar = window.dashboardCharts['chart-latency-rule'].getDatasetMeta(1).data[0];
                   return [bar.x, (bar.y + bar.base) / 2]; }"""
    )
    box = canvas.bounding_box()
    ops_page.mouse.click(box["x"] + x, box["y"] + y)
    expect(ops_page).to_have_url(re.compile(r"/console/dashboard/leads/\?.*assigned=1"))
    expect(ops_page.locator("#lead-count")).to_have_text("10")
    expect(ops_page.locator("table.leads tbody tr[data-lead]")).to_have_count(10)


def realistic_month(ops_person):
    """A month of leads from three origins under four rules; exception items, some late, some still open;
    people acknowledging, resolving and overriding; a few dead letters, most replayed successfully."""
    rng = random.Random(6)
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    origins = [SourceFactory(name=name) for name in ("web-form", "chat-widget", "partner-portal")]
    rules = [
        RuleFactory(name=name, sla_minutes=sla, queue=QueueFactory(name=queue))
        for name, sla, queue in (
            ("Enterprise EMEA", 15, "Sales EMEA"),
            ("Inbound North America", 30, "Sales North America"),
            ("Partner referrals", 60, "Partner referrals"),
            ("SMB self-serve", 120, "SMB"),
        )
    ]
    queues = [QueueFactory(name="Triage"), QueueFactory(name="Enrichment review")]
    leads, items = [], []
    for day in range(30):
        for n in range(rng.randint(25, 45)):
            at = today - dt.timedelta(days=day) + dt.timedelta(minutes=rng.randint(0, 1439))
            if at > timezone.now():
                continue
            rule = rng.choice(rules)
            exception = rng.random() < 0.08
            latency = dt.timedelta(seconds=rng.lognormvariate(5.5, 1.0) * rule.sla_minutes / 20)
            leads.append(
                Lead(
                    origin=rng.choice(origins),
                    lead_id=f"fortnight-{day}-{n}",
                    email=f"lead{day}-{n}@example.com",
                    occurred_at=at,
                    received_at=at + dt.timedelta(seconds=2),
                    status=LeadStatus.EXCEPTION if exception else LeadStatus.ASSIGNED,
                    rule=None if exception else rule,
                    rule_version=None if exception else 1,
                    queue=None if exception else rule.queue,
                    assigned_at=None if exception else at + latency,
                    enrichment_status=rng.choice(["enriched", "enriched", "enriched", "failed", None]),
                )
            )
    Lead.objects.bulk_create(leads)
    for lead in Lead.objects.filter(status=LeadStatus.EXCEPTION):
        late = rng.random() < 0.25
        done = lead.received_at < timezone.now() - dt.timedelta(hours=3) and rng.random() < 0.95
        items.append(
            ExceptionItem(
                lead=lead,
                reason="no_matching_rule",
                queue=rng.choice(queues),
                status=ExceptionStatus.RESOLVED if done else ExceptionStatus.OPEN,
                opened_at=lead.received_at,
                ack_due_at=lead.received_at + dt.timedelta(minutes=30),
                resolve_due_at=lead.received_at + dt.timedelta(minutes=240),
                acknowledged_at=lead.received_at + dt.timedelta(minutes=45 if late else 12) if done else None,
                resolved_at=lead.received_at + dt.timedelta(minutes=120) if done else None,
                ack_breached_at=lead.received_at + dt.timedelta(minutes=30) if late else None,
            )
        )
    ExceptionItem.objects.bulk_create(items)
    events, overrides = [], []
    for item in ExceptionItem.objects.filter(status=ExceptionStatus.RESOLVED).select_related("lead"):
        for action, at in (("exception.acknowledged", item.acknowledged_at), ("exception.resolved", item.resolved_at)):
            events.append(human(action, at, ops_person, item.lead))
    for lead in rng.sample(list(Lead.objects.filter(status=LeadStatus.ASSIGNED)), 40):
        at = lead.assigned_at + dt.timedelta(minutes=20)
        events.append(human("lead.override", at, ops_person, lead))
        overrides.append(
            Override(lead=lead, rule=lead.rule, rule_version=1, to_queue=queues[0], by=ops_person, at=at, reason="x")
        )
    target = DeliveryTarget.objects.create(name="CRM", url="http://127.0.0.1:9/", secret="s", events=[])
    for lead in rng.sample(list(Lead.objects.filter(status=LeadStatus.ASSIGNED)), 25):
        at = lead.assigned_at + dt.timedelta(hours=1)
        event = OutboxEvent.objects.create(
            target=target,
            lead=lead,
            event_type="lead.assigned",
            payload={},
            created_at=at,
            next_attempt_at=at,
            status=rng.choice([OutboxStatus.DELIVERED] * 4 + [OutboxStatus.DEAD]),
            replays=1,
        )
        events.append(AuditEvent(action="delivery.dead_lettered", occurred_at=at, actor_label="engine", lead=lead))
        replay = human("delivery.replayed", at + dt.timedelta(hours=2), ops_person, lead)
        replay.data = {"event_id": event.pk}
        events.append(replay)
    AuditEvent.objects.bulk_create(events)
    Override.objects.bulk_create(overrides)
    today_date = today.date()
    dashboard_rollup_days(days=[today_date - dt.timedelta(days=n) for n in range(30)])


def human(action, at, person, lead) -> AuditEvent:
    return AuditEvent(action=action, occurred_at=at, actor=person, actor_label=person.get_username(), lead=lead)


def test_the_dashboard_draws_a_realistic_month(ops_page, ops_person, tmp_path):
    realistic_month(ops_person)
    ops_page.set_viewport_size({"width": 1400, "height": 900})
    ops_page.goto("/console/dashboard/?range=30d")
    charts_drawn(ops_page)
    expect(tile(ops_page, "received")).not_to_have_text("0")
    ops_page.screenshot(path=tmp_path / "dashboard.png", full_page=True)
    assert (tmp_path / "dashboard.png").stat().st_size > 50_000, "dashboard.png looks empty"
