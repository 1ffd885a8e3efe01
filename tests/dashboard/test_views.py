"""The dashboard page and its lead list: access, the range selector, links that count what the figure says,
and a query count that does not grow with the range or the data."""

import datetime as dt
import json

import pytest
import time_machine

from routing.dashboard.rollups import dashboard_rollup_days
from tests.dashboard.conftest import NOON, D, assigned_lead
from tests.factories import QueueFactory, RuleFactory, SourceFactory

DAY = f"/console/dashboard/?range=custom&start={D}&end={D}"


@pytest.fixture
def rolled_up(known_day):
    dashboard_rollup_days(days=[D - dt.timedelta(days=n) for n in range(30)])
    return known_day


def charts(response) -> dict:
    html = response.content.decode()
    start = html.index('<script id="dashboard-data" type="application/json">') + 52
    return json.loads(html[start : html.index("</script>", start)])


def test_people_outside_the_console_groups_are_refused(client, outsider):
    client.force_login(outsider)
    assert client.get("/console/dashboard/").status_code == 403


def test_anonymous_visitors_are_sent_to_log_in(client):
    response = client.get("/console/dashboard/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_the_page_shows_the_days_figures_and_chart_data(client, ops_person, rolled_up):
    client.force_login(ops_person)
    response = client.get(DAY)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-figure="median"' in html and "6 min" in html and "2.1 h" in html  # P95: 125 min
    assert "13.3%" in html  # exception rate
    data = charts(response)
    assert data["latencyRule"]["labels"] == ["Inbound", "Partners"]
    assert data["latencyRule"]["sla"] == [15, 60]
    assert data["latencyRule"]["p95"] == [31.0, 125.0]
    assert data["latencyDay"]["median"] == [6.0]
    assert "vendor/chart.umd.min.js" in html  # served from the project's static files


@time_machine.travel(NOON + dt.timedelta(hours=6), tick=False)
@pytest.mark.parametrize(("chosen", "days"), [("today", 1), ("7d", 7), ("30d", 30)])
def test_range_presets_cover_that_many_days_up_to_today(client, ops_person, rolled_up, chosen, days):
    client.force_login(ops_person)
    data = charts(client.get(f"/console/dashboard/?range={chosen}"))
    assert len(data["latencyDay"]["labels"]) == days
    assert data["latencyDay"]["labels"][-1] == D.isoformat()


def test_a_bad_custom_range_says_so_and_shows_the_last_seven_days(client, ops_person, rolled_up):
    client.force_login(ops_person)
    response = client.get("/console/dashboard/?range=custom&start=2026-11-10")
    assert "A custom range needs a start and an end date." in response.content.decode()
    assert len(charts(response)["latencyDay"]["labels"]) == 7


def test_the_query_count_does_not_grow_with_the_range_or_the_data(
    client, ops_person, rolled_up, django_assert_num_queries
):
    client.force_login(ops_person)
    client.get(DAY)  # warm the session and content types
    # 15 for the figures, the leads waiting (lanes), saved views (nav), queues without owner (staff banner),
    # 4 for the rules against their targets, 1 for the enrichment providers' last hour and day
    with django_assert_num_queries(23) as one_day:
        client.get(DAY)
    for n in range(20):
        assigned_lead(
            origin=rolled_up["web"], rule=rolled_up["partners"], seconds=n * 300, at=NOON - dt.timedelta(days=n)
        )
    dashboard_rollup_days(days=[D - dt.timedelta(days=n) for n in range(30)])
    month = f"/console/dashboard/?range=custom&start={D - dt.timedelta(days=29)}&end={D}"
    with django_assert_num_queries(len(one_day)):
        client.get(month)


def lead_count(client, url) -> int:
    response = client.get(url)
    assert response.status_code == 200, url
    return response.context["page"].paginator.count


def test_every_figure_links_to_a_list_of_what_it_counts(client, ops_person, rolled_up):
    client.force_login(ops_person)
    context = client.get(DAY).context
    leads, queues = context["leads"], context["queues"]
    assert lead_count(client, leads["links"]["received"]) == leads["totals"]["received"] == 15
    assert lead_count(client, leads["links"]["assigned"]) == leads["totals"]["assigned"] == 13
    over = leads["totals"]["sla_leads"] - leads["totals"]["sla_met"]
    assert lead_count(client, leads["links"]["over_sla"]) == over == 2
    assert lead_count(client, leads["links"]["touched"]) == leads["totals"]["touched_leads"] == 2
    assert lead_count(client, leads["links"]["enrichment"]) == leads["totals"]["enrich_tried"] == 4
    assert lead_count(client, leads["links"]["exceptions"]) == leads["totals"]["exceptions"] == 2  # the item list
    assert lead_count(client, queues["breached_link"]) == queues["totals"]["breached"] == 1
    assert lead_count(client, context["overrides"]["link"]) == context["overrides"]["total"] == 1
    for rule in context["rules"]:
        assert lead_count(client, rule["link"]) == rule["assigned"]
    for origin in context["origins"]:
        assert lead_count(client, origin["link"]) == origin["assigned"]


def test_sub_second_routing_reads_under_one_second_not_the_bucket_floor(client, ops_person):
    rule = RuleFactory(name="Fast", sla_minutes=5, queue=QueueFactory(name="Sales"))
    for _ in range(3):
        assigned_lead(origin=SourceFactory(), rule=rule, seconds=0.4)  # assigned 0.4 s after it occurred
    dashboard_rollup_days(days=[D])
    client.force_login(ops_person)
    html = client.get(DAY).content.decode()
    assert "&lt; 1 s" in html and "0.02 min" not in html and "&lt; 10 s" not in html
