"""The dashboard's figures on the known day of tests/dashboard/conftest.py, through the rollups."""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from routing.dashboard.buckets import OPEN_BUCKET, bucket_bounds, bucket_of, percentile
from routing.dashboard.models import DailyLeadStat, DailyQueueStat, LatencyBucket, RollupDay
from routing.dashboard.rollups import dashboard_rollup_days, dashboard_rollup_recent
from routing.dashboard.selectors import Window, dashboard_figures
from tests.dashboard.conftest import NOON, D, assigned_lead


@pytest.fixture
def figures(known_day):
    dashboard_rollup_days(days=[D - dt.timedelta(days=1), D])
    return dashboard_figures(window=Window(D, D), now=NOON + dt.timedelta(hours=6))


# Buckets and percentiles (pure functions)


@pytest.mark.parametrize(
    ("seconds", "bucket", "bounds"),
    [
        (-5, 0, (0, 1)),
        (0, 0, (0, 1)),
        (0.4, 0, (0, 1)),
        (2.4, 2, (2, 3)),
        (9.99, 9, (9, 10)),
        (10, 10, (10, 20)),
        (59, 14, (50, 60)),
        (60, 15, (60, 120)),
        (899, 28, (840, 900)),
        (900, 29, (900, 960)),
        (3599, 73, (3540, 3600)),
        (3600, 74, (3600, 3900)),
        (14399, 109, (14100, 14400)),
        (14400, 110, (14400, 16200)),
        (86399, 149, (84600, 86400)),
        (86400, 150, (86400, 108000)),
        (604799, 173, (583200, 604800)),
        (604800, OPEN_BUCKET, (604800, None)),
    ],
)
def test_bucket_of_and_its_bounds(seconds, bucket, bounds):
    assert bucket_of(seconds) == bucket
    assert bucket_bounds(bucket) == bounds


def test_percentile_is_the_upper_bound_of_the_nearest_rank_bucket():
    latencies = [60 * m for m in (1, 2, 3, 4, 5, 6, 7, 8, 15, 30)]
    counts = {}
    for seconds in latencies:
        counts[bucket_of(seconds)] = counts.get(bucket_of(seconds), 0) + 1
    assert percentile(counts, 50) == 360  # rank 5 is 5 min, in [5 min, 6 min)
    assert percentile(counts, 95) == 1860  # rank 10 is 30 min, in [30 min, 31 min)
    assert percentile({}, 50) is None
    assert percentile({OPEN_BUCKET: 1}, 50) == float("inf")


def test_sql_buckets_match_python_buckets_at_every_tier_edge(db):
    from tests.factories import RuleFactory, SourceFactory

    origin, rule = SourceFactory(), RuleFactory()
    edges = [0, 0.5, 1, 9.5, 10, 59.999, 60, 61, 3599.5, 3600, 14400, 86399, 86400, 604799, 604800, 10**7]
    for seconds in edges:
        assigned_lead(origin=origin, rule=rule, seconds=seconds)
    dashboard_rollup_days(days=[D])
    expected = {}
    for seconds in edges:
        expected[bucket_of(seconds)] = expected.get(bucket_of(seconds), 0) + 1
    assert dict(LatencyBucket.objects.values_list("bucket", "leads")) == expected


# Latency


def test_median_and_p95_overall_per_origin_and_per_rule(figures):
    assert figures["leads"]["latency"] == {"median": 6.0, "p95": 125.0}  # 300 s -> 360 s; 7,200 s -> 7,500 s
    origins = {row["name"]: row for row in figures["origins"]}
    assert (origins["web-form"]["median"], origins["web-form"]["p95"]) == (6.0, 31.0)
    assert (origins["chat"]["median"], origins["chat"]["p95"]) == (0.5, 125.0)  # 25 s -> 30 s
    rules = {row["name"]: row for row in figures["rules"]}
    assert rules["Inbound"] | {"link": None, "over_sla_link": None} == {
        "name": "Inbound",
        "sla": 15,
        "received": 10,
        "assigned": 10,
        "median": 6.0,
        "p95": 31.0,
        "median_over": False,
        "p95_over": True,
        "sla_pct": 90.0,  # 15 minutes exactly is within; 30 is not
        "link": None,
        "over_sla_link": None,
    }
    assert (rules["Partners"]["median"], rules["Partners"]["p95"], rules["Partners"]["sla_pct"]) == (0.5, 125.0, 66.7)
    assert "(no rule)" not in rules  # the two exception leads: nothing assigned, no rule to compare with


def test_latency_per_day_leaves_days_without_assignments_empty(known_day):
    dashboard_rollup_days(days=[D - dt.timedelta(days=1), D, D + dt.timedelta(days=1)])
    series = dashboard_figures(window=Window(D - dt.timedelta(days=1), D + dt.timedelta(days=1)))["series"]
    assert series["days"] == ["2026-11-09", "2026-11-10", "2026-11-11"]
    assert series["median"] == [65.0, 6.0, None]  # the day before: one lead at 60 min, in [60, 65) min
    assert series["p95"] == [65.0, 125.0, None]
    assert series["sla_pct"] == [0.0, 84.6, None]  # 11 of 13 within their rule's SLA
    assert series["received"] == [1, 15, 0]


def test_sla_is_the_deciding_rule_versions_not_the_current_draft(known_day):
    known_day["inbound"].sla_minutes = 1
    known_day["inbound"].save()  # a draft edit: version 1 (15 minutes) decided these leads
    dashboard_rollup_days(days=[D])
    assert DailyLeadStat.objects.get(day=D, rule=known_day["inbound"]).sla_met == 9


# Exceptions, queues, SLA adherence


def test_exception_rate_and_sla_adherence_by_queue(figures, known_day):
    leads = figures["leads"]
    assert leads["totals"]["received"] == 15
    assert leads["totals"]["exceptions"] == 2
    assert leads["exception_rate"] == 13.3
    queues = figures["queues"]
    (triage,) = queues["per_queue"]  # queues with no items on the window's leads are left out
    assert triage | {"link": None, "breached_link": None} == {
        "name": "Triage",
        "items": 2,
        "ack_done": 1,
        "ack_met": 1,
        "resolve_done": 1,
        "resolve_met": 1,
        "breached": 1,
        "ack_pct": 100.0,
        "resolve_pct": 100.0,
        "link": None,
        "breached_link": None,
    }
    assert {row["name"]: row["values"] for row in queues["backlog"]} == {"Partners": [0], "Sales": [0], "Triage": [1]}
    (oldest,) = queues["oldest"]
    assert (oldest["name"], oldest["open"], oldest["age_hours"]) == ("Triage", 1, 6.0)


def test_queue_backlog_counts_items_open_at_each_days_end(known_day):
    known_day["breached"].resolved_at = NOON + dt.timedelta(days=1, hours=1)
    known_day["breached"].status = "resolved"
    known_day["breached"].save()
    dashboard_rollup_days(days=[D, D + dt.timedelta(days=1)])
    assert list(
        DailyQueueStat.objects.filter(queue=known_day["triage"]).order_by("day").values_list("day", "backlog")
    ) == [
        (D, 1),
        (D + dt.timedelta(days=1), 0),
    ]


# Manual touches, overrides, delivery, enrichment


def test_manual_touches_count_human_actions_on_the_window_leads(figures):
    totals = figures["leads"]["totals"]
    assert (totals["touches"], totals["touched_leads"]) == (3, 2)  # the engine's decision and replays are not
    assert figures["leads"]["touches_per_lead"] == 0.2  # 3 actions / 15 leads


def test_overrides_per_rule_per_week(figures):
    overrides = figures["overrides"]
    assert overrides["weeks"] == ["2026-11-09"]  # Monday of D's week
    assert [(r["name"], r["counts"]) for r in overrides["rules"]] == [("Inbound", [1])]
    assert overrides["total"] == 1


def test_dead_letters_and_replay_success(figures):
    delivery = figures["delivery"]
    assert (delivery["dead_lettered"], delivery["replayed"], delivery["replay_delivered"]) == (2, 1, 1)
    assert delivery["replay_success_pct"] == 100.0
    assert delivery["dead_now"] == 1


def test_enrichment_success_rate(figures):
    assert (figures["leads"]["totals"]["enrich_tried"], figures["leads"]["enrich_pct"]) == (4, 75.0)


# The rollup itself


def test_rebuilding_a_day_twice_gives_the_same_rows(known_day):
    dashboard_rollup_days(days=[D])

    def rows():
        return sorted(DailyLeadStat.objects.values_list("origin", "rule", "received", "assigned", "touches"), key=str)

    first, buckets = rows(), LatencyBucket.objects.count()
    dashboard_rollup_days(days=[D])
    assert rows() == first
    assert LatencyBucket.objects.count() == buckets
    assert RollupDay.objects.filter(day=D).count() == 1


def test_recent_rollup_rebuilds_today_and_yesterday(known_day):
    assert dashboard_rollup_recent(now=NOON + dt.timedelta(days=1)) == 2
    assert set(RollupDay.objects.values_list("day", flat=True)) == {D, D + dt.timedelta(days=1)}


def test_rollup_queries_do_not_grow_with_the_leads_of_the_day(known_day):
    dashboard_rollup_days(days=[D])  # the first run also creates the day's RollupDay row
    with CaptureQueriesContext(connection) as before:
        dashboard_rollup_days(days=[D])
    for minutes in range(40):
        assigned_lead(origin=known_day["chat"], rule=known_day["inbound"], seconds=minutes * 97)
    with CaptureQueriesContext(connection) as after:
        dashboard_rollup_days(days=[D])
    assert len(after) == len(before) <= 25


def test_migration_0025_moves_stored_buckets_so_they_keep_their_upper_bounds(db):
    import importlib

    from django.apps import apps

    from tests.factories import RuleFactory, SourceFactory

    shift = importlib.import_module("routing.migrations.0025_latency_one_second_buckets").shift
    # The tiers before 0025: 10-second buckets under a minute, then as now.
    old_upper = {0: 10, 1: 20, 5: 60, 6: 120, 64: 3600, 65: 3900, 164: 604800}
    origin, rule = SourceFactory(), RuleFactory()
    for bucket in [*old_upper, 165]:
        LatencyBucket.objects.create(day=D, origin=origin, rule=rule, bucket=bucket, leads=1)

    shift(apps, None)

    moved = sorted(LatencyBucket.objects.values_list("bucket", flat=True))
    assert moved == sorted(b + 9 for b in [*old_upper, 165])
    for old, upper in old_upper.items():
        assert bucket_bounds(old + 9)[1] == upper  # a percentile read from it is what it was
    assert OPEN_BUCKET == 165 + 9
