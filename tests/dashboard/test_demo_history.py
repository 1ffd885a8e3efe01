"""The demo's dashboard has figures as soon as the demo opens (issue: it showed zeros for five minutes, until
beat's first rollup, and then one thin day): seed_demo routes two weeks of leads through the demo's own rules
and rolls them up."""

import datetime as dt
import io

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.core.management import call_command

from exceptions.models import ExceptionItem
from routing import engine
from routing.dashboard.models import DailyLeadStat
from routing.demo.desk import DESK, DESK_PREFIX
from routing.demo.history import HISTORY_DAYS, HISTORY_PREFIX
from routing.models import Lead, LeadStatus

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 11, 18, 9, 30, tzinfo=dt.UTC)  # a Wednesday


@pytest.fixture(autouse=True)
def fresh_rule_cache(monkeypatch):
    """The demo's rules are compiled afresh: the engine's per-process cache may hold another test's."""
    monkeypatch.setattr(engine, "_cached", None)


def seed():
    call_command("seed_demo", stdout=io.StringIO())


@time_machine.travel(NOW, tick=False)
def test_seeding_the_demo_gives_the_dashboard_figures_at_once(client):
    seed()
    client.force_login(get_user_model().objects.get(username="admin"))

    page = client.get("/console/dashboard/")  # the default range: the last 7 days

    assert page.status_code == 200
    totals = page.context["leads"]["totals"]
    assert totals["received"] > 100
    assert 0 < totals["assigned"] <= totals["received"]
    days = DailyLeadStat.objects.values_list("day", flat=True).distinct()
    past = {(NOW - dt.timedelta(days=n)).date() for n in range(1, HISTORY_DAYS + 1)}
    assert set(days) == past | {NOW.date()}  # today: the desk's leads (routing/demo/desk.py)


@time_machine.travel(NOW, tick=False)
def test_the_history_is_routed_by_the_demo_rules_and_lies_in_the_past_days():
    seed()

    history = Lead.objects.filter(lead_id__startswith=HISTORY_PREFIX)
    assert not history.filter(status=LeadStatus.RECEIVED).exists()  # every one routed
    # Each decided by a demo rule and assigned: none opened an exception now, two weeks after it arrived.
    assert history.count() == history.filter(rule__isnull=False, status=LeadStatus.ASSIGNED).count() > 100
    assert not ExceptionItem.objects.filter(lead__in=history).exists()
    today = dt.datetime.combine(NOW.date(), dt.time.min, tzinfo=dt.UTC)
    assert not history.filter(received_at__gte=today).exists()
    assert not history.filter(received_at__lt=today - dt.timedelta(days=HISTORY_DAYS)).exists()
    assert all(lead.assigned_at >= lead.occurred_at for lead in history.filter(assigned_at__isnull=False))


@time_machine.travel(NOW, tick=False)
def test_seeding_again_adds_no_history():
    seed()
    count = Lead.objects.count()

    seed()

    assert Lead.objects.count() == count


@time_machine.travel(NOW, tick=False)
def test_the_desks_leads_arrived_just_before_their_items_opened():
    seed()

    items = ExceptionItem.objects.filter(lead__lead_id__startswith=DESK_PREFIX).select_related("lead")
    assert items.count() == len(DESK)
    for item in items:
        assert item.opened_at - dt.timedelta(minutes=1) < item.lead.received_at < item.opened_at, item.lead.lead_id
