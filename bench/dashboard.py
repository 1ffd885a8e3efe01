"""Dashboard at a year of data: 1,000,000 leads.

1. Seed a fresh database (handoff_bench_dashboard) with set-based SQL (INSERT … SELECT FROM generate_series):
   --leads leads received evenly over the 365 days before now from 5 origins; 90% decided by one of 50 rules
   (frozen version 1, SLA 5–60 minutes) and assigned with a skewed latency (most within minutes, a tail of
   hours); 10% matched no rule and opened an exception item in one of 6 queues (1% of those still open, the
   rest acknowledged and resolved, some late). One engine decision audit event per lead, and an
   acknowledge and a resolve audit event by a person per settled item, overrides, dead letters and replays.
2. Backfill the rollups for every day of the year (`dashboard_rollup_backfill`), then time one beat tick
   (`dashboard_rollup_recent`: today and yesterday).
3. Render /console/dashboard/ in-process with Django's test Client as an `ops` user, for each range (today,
   7 days, 30 days, and a custom 365 days): median and P95 over --requests requests after a warm-up, and the
   SQL queries per request. Goal: < 1 s.

Each figure is paired with a floor measured in the same run (bench/_baselines.py); ratio = real / floor:
- pages: a bare view registered only in this process, requested alternately with the page (floor, page,
  floor, page …) by the same Client as the same user through the same middleware and console access check,
  with one aggregate query over the daily lead rollup for the range (dashboard), or one query for the same 50
  leads, no count (lead lists), into a minimal template.
- rollup beat tick: a plain `SELECT day, count(*) … GROUP BY day` over today's and yesterday's leads, run
  before each tick; backfill: the same over the whole year, once before it.

    python bench/dashboard.py [--leads 1000000] [--requests 20] [--explain]
"""

import os

os.environ.setdefault("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/handoff_bench_dashboard")

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import time  # noqa: E402

from _baselines import FLOOR_PREFIX, cost_ratio, install_floor_views, paired_line, time_paired  # noqa: E402
from _setup import (  # noqa: E402
    BENCH_ENV,
    ROOT,
    machine,
    median,
    percentile,
    recreate_database,
    sized,
    use_plain_static_storage,
)

ORIGINS, RULES, QUEUES = 5, 50, 6
DAYS = 365
PAGE_GOAL_SECONDS = 1.0


def prepare_database() -> None:
    recreate_database()
    use_plain_static_storage()


def seed(leads: int) -> dict:
    from django.contrib.auth.models import Group, User
    from django.db import connection, transaction
    from django.utils import timezone

    from routing.governance.models import RuleVersion
    from routing.integrations.models import DeliveryTarget
    from routing.models import Queue, Rule, RuleStage, Source

    now = timezone.now().replace(microsecond=0)
    with transaction.atomic():
        ops = Group.objects.get(name="ops")
        people = [User.objects.create_user(f"ops-{i}", email=f"ops-{i}@example.com") for i in range(10)]
        for person in people:
            person.groups.add(ops)
        sources = []
        for n in range(ORIGINS):
            source = Source(name=f"origin-{n + 1}")
            source.set_new_token()
            source.save()
            sources.append(source.pk)
        queues = [Queue.objects.create(name=f"Queue {n + 1}").pk for n in range(QUEUES)]
        rules = []
        for n in range(RULES):
            rule = Rule.objects.create(
                name=f"Rule {n + 1:02d}",
                owner=people[n % len(people)],
                priority=n,
                condition={"field": "country", "op": "eq", "value": "GB"},
                queue_id=queues[n % QUEUES],
                sla_minutes=5 + (n % 12) * 5,
                stage=RuleStage.PRODUCTION,
            )
            version = RuleVersion.objects.create(
                rule=rule, number=1, created_at=now, **{f: getattr(rule, f) for f in Rule.CONTRACT_FIELDS}
            )
            Rule.objects.filter(pk=rule.pk).update(production_version=version)
            rules.append(rule.pk)
        target = DeliveryTarget.objects.create(name="CRM", url="http://127.0.0.1:9/", secret="s", events=[])
    params = {
        "n": leads,
        "t0": now - dt.timedelta(days=DAYS),
        "span": dt.timedelta(days=DAYS),
        "sources": sources,
        "queues": queues,
        "rules": rules,
        "people": [p.pk for p in people],
        "target": target.pk,
    }
    began = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        # Latency: (g·7919 mod 1000)² / 1000 s, so most within minutes; every 20th lead waits hours more.
        cursor.execute(
            """
            INSERT INTO routing_lead (origin_id, lead_id, email, country, lifecycle_stage, occurred_at, attributes,
                received_at, status, queue_id, rule_id, rule_version, routed_at, assigned_at, assignee_id,
                requeue_count, enrichment_status, enrichment_attempts)
            SELECT (%(sources)s::bigint[])[1 + g %% 5], 'bench-' || g, 'lead-' || g || '@example.com', 'GB', 'mql',
                r.at - (g %% 30) * interval '1 second', '{}'::jsonb, r.at,
                CASE WHEN g %% 10 = 0 THEN 'exception' ELSE 'assigned' END,
                CASE WHEN g %% 10 = 0 THEN NULL ELSE (%(queues)s::bigint[])[1 + (g %% 50) %% 6] END,
                CASE WHEN g %% 10 = 0 THEN NULL ELSE (%(rules)s::bigint[])[1 + g %% 50] END,
                CASE WHEN g %% 10 = 0 THEN NULL ELSE 1 END,
                r.at + interval '1 second',
                CASE WHEN g %% 10 = 0 THEN NULL ELSE r.at - (g %% 30) * interval '1 second'
                    + (((g::bigint * 7919) %% 1000) ^ 2 / 1000.0) * interval '1 second'
                    + CASE WHEN g %% 20 = 1 THEN (g %% 7200) * interval '1 second' ELSE interval '0' END END,
                CASE WHEN g %% 10 = 0 THEN NULL ELSE (%(people)s::int[])[1 + g %% 10] END,
                0, CASE WHEN g %% 31 = 0 THEN 'failed' WHEN g %% 3 = 0 THEN 'enriched' END, 1
            FROM generate_series(1, %(n)s) AS g
            CROSS JOIN LATERAL (SELECT %(t0)s::timestamptz + g * %(span)s / %(n)s AS at) AS r
            """,
            params,
        )
        # One item per no-match lead; 1% still open, the rest acknowledged after 0–44 min and resolved
        # 0–299 min later (breach stamps where the 30 / 240 minute clocks ran out).
        cursor.execute(
            """
            INSERT INTO exceptions_exceptionitem (lead_id, reason, detail, queue_id, status, opened_at, ack_due_at,
                resolve_due_at, due_at, acknowledged_at, acknowledged_by_id, resolved_at, resolved_by_id, resolution,
                resolution_note, ack_breached_at, resolve_breached_at, escalation_level, version)
            SELECT l.id, 'no_matching_rule', '', (%(queues)s::bigint[])[1 + s.g %% 6],
                CASE WHEN s.g %% 1000 = 0 THEN 'open' ELSE 'resolved' END,
                l.received_at, l.received_at + interval '30 minutes', l.received_at + interval '240 minutes',
                CASE WHEN s.g %% 1000 = 0 THEN l.received_at + interval '30 minutes' END,
                CASE WHEN s.g %% 1000 <> 0 THEN l.received_at + (s.g / 10 %% 45) * interval '1 minute' END,
                CASE WHEN s.g %% 1000 <> 0 THEN (%(people)s::int[])[1 + s.g %% 10] END,
                CASE WHEN s.g %% 1000 <> 0 THEN l.received_at + (s.g / 10 %% 300) * interval '1 minute' END,
                CASE WHEN s.g %% 1000 <> 0 THEN (%(people)s::int[])[1 + s.g %% 10] END,
                CASE WHEN s.g %% 1000 <> 0 THEN 'fixed_data' ELSE '' END, '',
                CASE WHEN s.g %% 1000 = 0 OR s.g / 10 %% 45 > 30 THEN l.received_at + interval '30 minutes' END,
                CASE WHEN s.g %% 1000 <> 0 AND s.g / 10 %% 300 > 240 THEN l.received_at + interval '240 minutes' END,
                0, 1
            FROM routing_lead AS l CROSS JOIN LATERAL (SELECT substr(l.lead_id, 7)::int AS g) AS s
            WHERE l.status = 'exception'
            """,
            params,
        )
        # The audit trail: the engine's decision on every lead; a person's acknowledge and resolve per item.
        cursor.execute(
            """
            INSERT INTO audit_auditevent (action, occurred_at, actor_label, lead_id, rule_id, rule_version, inputs,
                outcome, data)
            SELECT 'routing.decision', l.received_at + interval '1 second', 'engine', l.id, l.rule_id,
                l.rule_version, '{}'::jsonb, l.status, '{}'::jsonb
            FROM routing_lead AS l
            """
        )
        cursor.execute(
            """
            INSERT INTO audit_auditevent (action, occurred_at, actor_id, actor_label, lead_id, exception_id, inputs,
                outcome, data)
            SELECT a.action, a.at, i.acknowledged_by_id, 'ops', i.lead_id, i.id, '{}'::jsonb, '', '{}'::jsonb
            FROM exceptions_exceptionitem AS i
            CROSS JOIN LATERAL (VALUES ('exception.acknowledged', i.acknowledged_at),
                                       ('exception.resolved', i.resolved_at)) AS a(action, at)
            WHERE i.status = 'resolved'
            """
        )
        # Overrides (one in 500 assigned leads), dead letters (one in 300 leads) and replays of a third of
        # them, with the outbox rows the replays name (two thirds delivered, one third dead again).
        cursor.execute(
            """
            INSERT INTO audit_override (lead_id, rule_id, rule_version, from_queue_id, to_queue_id, by_id, at, reason)
            SELECT l.id, l.rule_id, 1, l.queue_id, (%(queues)s::bigint[])[1], (%(people)s::int[])[1],
                l.assigned_at + interval '20 minutes', 'bench'
            FROM routing_lead AS l WHERE l.status = 'assigned' AND l.id %% 500 = 7
            """,
            params,
        )
        cursor.execute(
            """
            INSERT INTO audit_auditevent (action, occurred_at, actor_label, lead_id, inputs, outcome, data)
            SELECT 'delivery.dead_lettered', l.assigned_at + interval '2 hours', 'engine', l.id, '{}'::jsonb, '',
                '{}'::jsonb
            FROM routing_lead AS l WHERE l.status = 'assigned' AND l.id % 300 = 1
            """
        )
        cursor.execute(
            """
            WITH events AS (
                INSERT INTO routing_outboxevent (target_id, event_type, lead_id, payload, idempotency_key, created_at,
                    status, attempts, next_attempt_at, delivered_at, dead_at, last_error, replays)
                SELECT %(target)s, 'lead.assigned', l.id, '{}'::jsonb, gen_random_uuid(), l.assigned_at,
                    CASE WHEN l.id %% 3 = 0 THEN 'dead' ELSE 'delivered' END, 1, l.assigned_at,
                    CASE WHEN l.id %% 3 <> 0 THEN l.assigned_at + interval '1 day' END,
                    CASE WHEN l.id %% 3 = 0 THEN l.assigned_at + interval '1 day' END, '', 1
                FROM routing_lead AS l WHERE l.status = 'assigned' AND l.id %% 900 = 1
                RETURNING id, lead_id, created_at
            )
            INSERT INTO audit_auditevent (action, occurred_at, actor_id, actor_label, lead_id, inputs, outcome, data)
            SELECT 'delivery.replayed', e.created_at + interval '3 hours', (%(people)s::int[])[1], 'ops', e.lead_id,
                '{}'::jsonb, 'replayed', jsonb_build_object('event_id', e.id)
            FROM events AS e
            """,
            params,
        )
    inserted = time.perf_counter() - began
    began = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE)")
    vacuumed = time.perf_counter() - began
    return {"now": now, "viewer": people[0], "inserted": inserted, "vacuumed": vacuumed}


def counts() -> str:
    from audit.models import AuditEvent, Override
    from exceptions.models import ExceptionItem
    from routing.models import Lead

    return (
        f"{Lead.objects.count():,} leads, {ExceptionItem.objects.count():,} exception items, "
        f"{AuditEvent.objects.count():,} audit events, {Override.objects.count():,} overrides"
    )


def count_by_day(start: dt.date, end: dt.date) -> tuple[float, int]:
    """The rollups' floor: leads received from `start` to `end` (UTC days, inclusive) counted per day in one
    plain GROUP BY. (seconds, days counted)"""
    from django.db import connection

    since = dt.datetime.combine(start, dt.time(), dt.UTC)
    until = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), dt.UTC)
    began = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (received_at AT TIME ZONE 'UTC')::date AS day, count(*) FROM routing_lead "
            "WHERE received_at >= %s AND received_at < %s GROUP BY 1",
            [since, until],
        )
        days = len(cursor.fetchall())
    return time.perf_counter() - began, days


def rollups(now: dt.datetime) -> None:
    from routing.dashboard.models import DailyLeadStat, DailyQueueStat, LatencyBucket
    from routing.dashboard.rollups import dashboard_rollup_backfill, dashboard_rollup_recent

    today = now.date()
    floor, floor_days = count_by_day(today - dt.timedelta(days=DAYS), today)
    began = time.perf_counter()
    days = dashboard_rollup_backfill(start=today - dt.timedelta(days=DAYS), end=today)
    backfill = time.perf_counter() - began
    print(
        f"rollup backfill: {days} days in {backfill:.1f} s ({backfill / days * 1000:.0f} ms a day); "
        f"{DailyLeadStat.objects.count():,} lead rows, {LatencyBucket.objects.count():,} latency bucket rows, "
        f"{DailyQueueStat.objects.count():,} queue rows"
    )
    print(
        f"  floor, run just before: leads per day over the same {days} days in one GROUP BY: {floor:.2f} s "
        f"({floor_days} days with leads); ratio {cost_ratio(backfill, floor):.0f}x; no goal"
    )
    ticks, floors = [], []
    for _ in range(5):
        # The tick rebuilds today and yesterday (UTC) as of the time it runs.
        utc_today = dt.datetime.now(dt.UTC).date()
        floors.append(count_by_day(utc_today - dt.timedelta(days=1), utc_today)[0])
        began = time.perf_counter()
        dashboard_rollup_recent()
        ticks.append(time.perf_counter() - began)
    print(f"beat tick (today and yesterday), 5 runs: median {median(ticks):.2f} s, slowest {max(ticks):.2f} s")
    ratio = cost_ratio(median(ticks), median(floors))
    print(
        f"  floor, alternating with the ticks: today's and yesterday's leads per day in one GROUP BY: median "
        f"{median(floors) * 1000:.1f} ms, slowest {max(floors) * 1000:.1f} ms; ratio {ratio:.0f}x; "
        "no goal (runs every 5 minutes)"
    )


def bench_pages(seeded: dict, requests: int, show_plans: bool) -> None:
    from django.db import connection
    from django.test import Client

    client = Client(HTTP_HOST="localhost")
    client.force_login(seeded["viewer"])
    today = seeded["now"].date()
    year = f"range=custom&start={today - dt.timedelta(days=DAYS - 1)}&end={today}"

    def floor(start: dt.date, view: str = "dashboard", **extra) -> str:
        query = "&".join(f"{key}={value}" for key, value in {"start": start, "end": today, **extra}.items())
        return f"/{FLOOR_PREFIX}{view}/?{query}"

    month = today - dt.timedelta(days=29)
    pages = [
        ("today", "/console/dashboard/?range=today", floor(today)),
        ("7 days", "/console/dashboard/?range=7d", floor(today - dt.timedelta(days=6))),
        ("30 days", "/console/dashboard/?range=30d", floor(month)),
        ("custom: 365 days", f"/console/dashboard/?{year}", floor(today - dt.timedelta(days=DAYS - 1))),
        (
            "lead list: 30 days, assigned",
            f"/console/dashboard/leads/?start={month}&end={today}&assigned=1",
            floor(month, "leads"),
        ),
        (
            "lead list: 30 days, over SLA",
            f"/console/dashboard/leads/?start={month}&end={today}&over_sla=1",
            floor(month, "leads", over_sla=1),
        ),
    ]
    print(
        f"pages, {requests} requests each after 2 warm-ups (test Client, in-process), each alternating with its "
        "floor (a bare view: same user and middleware, one query, minimal template); ratio = page median / "
        "floor median:"
    )
    for label, url, floor_url in pages:
        result = time_paired(client, url, floor_url, requests)
        times, slowest = result["times"], result["slowest"]
        print(
            f"  {label:<30} median {median(times) * 1000:6.1f} ms, P95 {percentile(times, 95) * 1000:6.1f} ms; "
            f"{result['queries']} queries (slowest {float(slowest['time']) * 1000:.1f} ms); "
            f"{result['size'] / 1024:.0f} KiB"
        )
        print(f"  {'':<30} {paired_line(result, PAGE_GOAL_SECONDS)}")
        if show_plans:
            with connection.cursor() as cursor:
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + slowest["sql"])
                print("\n".join("      " + row[0] for row in cursor.fetchall()))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--leads", type=int, default=sized(1_000_000, 2_000))
    parser.add_argument("--requests", type=int, default=sized(20, 2))
    parser.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE each page's slowest query")
    args = parser.parse_args()
    os.chdir(ROOT)  # the product's directory, as its servers and workers run
    prepare_database()
    db = BENCH_ENV["DATABASE_URL"].rsplit("/", 1)[1]
    print(f"Dashboard benchmark on {machine()}; PostgreSQL on loopback, database {db}")
    seeded = seed(args.leads)
    print(f"seeded in {seeded['inserted']:.1f} s (+ VACUUM ANALYZE {seeded['vacuumed']:.1f} s): {counts()}")
    rollups(seeded["now"])
    install_floor_views()
    bench_pages(seeded, args.requests, args.explain)


if __name__ == "__main__":
    main()
