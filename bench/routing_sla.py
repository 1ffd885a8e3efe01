"""The live routing SLA sweep (exceptions.routing_sla) at 100,000 waiting leads.

Seeded with set-based SQL into a database of its own (handoff_bench_routing_sla): --history assigned leads
from earlier days, then --waiting leads still `received`, their receipts spread evenly over the
--spread-minutes before t0 (100: about 1,000 cross the 5-minute routing SLO each minute), intent 0..99 (~19%
above the high-intent threshold: escalated at once), and --held leads in `exception` status held behind the
same person's open item (one holding item per 10). Then the items earlier sweeps would have opened (every
lead past its SLO a minute before t0, written with the floor's bare statement). VACUUM ANALYZE, and a copy
of the database for the floor (handoff_bench_routing_sla_floor, CREATE DATABASE … TEMPLATE).

Then --rounds sweeps a minute apart (t0, t0 + 1 min, …), as beat runs them. Before each, --assigned of the
breached leads are assigned (the same leads in both databases), and its floor runs on the copy: one bare
UPDATE closing the same items and one bare INSERT … SELECT opening the same items (a constant detail, no
where-stuck, no escalation) with their SLA and audit events; the counts must equal the sweep's. The sweep
(`routing_sla_sweep`) closes the items of assigned leads, then opens one for each lead that crossed the SLO
in the last minute (detail text, where it is stuck, audit and SLA events, escalations and their grouped
notifications). Last, a duplicate tick at the last instant: nothing to do but find that out.
Goal: < 1 s for the sweep.

    .venv/bin/python bench/routing_sla.py [--waiting 100000] [--held 1000] [--history 200000]
                                          [--spread-minutes 100] [--assigned 200] [--rounds 3]
"""

import os

os.environ.setdefault("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/handoff_bench_routing_sla")
os.environ.setdefault("DJANGO_EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend")

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import time  # noqa: E402

from _baselines import clone_database, cost_ratio, database_url, drop_database, goal_note  # noqa: E402
from _setup import BENCH_ENV, ROOT, contention, machine, recreate_database, sized  # noqa: E402

GOAL_SECONDS = 1.0
SLO_MINUTES = 5


def seed(*, waiting: int, held: int, history: int, spread_minutes: float) -> dict:
    from django.contrib.auth.models import User
    from django.db import connection, transaction

    from routing.models import Queue, Source

    t0 = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    with transaction.atomic():
        owner = User.objects.create_user("triage-owner", email="owner@example.com")
        contact = User.objects.create_user("escalations", email="escalations@example.com")
        rep = User.objects.create_user("rep", email="rep@example.com")
        triage = Queue.objects.create(name="Triage", owner=owner, escalation_contact=contact)
        source = Source(name="bench")
        source.set_new_token()
        source.save()
    params = {
        "source": source.pk,
        "t0": t0,
        "waiting": waiting,
        "held": held,
        "history": history,
        "spread": dt.timedelta(minutes=spread_minutes),
        "rep": rep.pk,
        "triage": triage.pk,
    }
    began = time.perf_counter()
    columns = (
        "origin_id, lead_id, email, first_name, last_name, company, company_size, country, lifecycle_stage, "
        "engagement_score, intent_score, occurred_at, attributes, received_at, status, requeue_count, "
        "enrichment_attempts, assignee_id, assigned_at, queue_id, routed_at"
    )
    values = (
        "%(source)s, '{p}-' || g, 'lead-{p}-' || g || '@example.com', 'Ada', 'Byron', 'Company ' || (g %% 997), "
        "10 + g %% 5000, 'GB', 'mql', 50, (g * 37 %% 100)::float, {at}, '{{}}'::jsonb, {at}, '{status}', 0, 0"
    )
    with transaction.atomic(), connection.cursor() as cursor:
        # Earlier days' leads, assigned: what the waiting leads' index has to skip.
        cursor.execute(
            f"INSERT INTO routing_lead ({columns}) SELECT "
            + values.format(p="old", at="%(t0)s - interval '3 days' + g * interval '1 second'", status="assigned")
            + ", %(rep)s, %(t0)s - interval '3 days' + g * interval '1 second', %(triage)s, %(t0)s - interval '3 days'"
            " FROM generate_series(1, %(history)s) AS g",
            params,
        )
        at = "%(t0)s - %(spread)s + g * %(spread)s / %(waiting)s"
        cursor.execute(
            f"INSERT INTO routing_lead ({columns}) SELECT "
            + values.format(p="new", at=at, status="received")
            + ", NULL, NULL, NULL, NULL FROM generate_series(1, %(waiting)s) AS g",
            params,
        )
        # Held leads: the same person's earlier lead has an open no_matching_rule item; these wait on it.
        at = "%(t0)s - %(spread)s + g * %(spread)s / greatest(%(held)s, 1)"
        cursor.execute(
            f"INSERT INTO routing_lead ({columns}) SELECT "
            + values.format(p="held", at=at, status="exception")
            + ", NULL, NULL, NULL, "
            + at
            + " FROM generate_series(1, %(held)s) AS g",
            params,
        )
        cursor.execute(
            "INSERT INTO exceptions_exceptionitem (lead_id, reason, detail, queue_id, status, opened_at, ack_due_at, "
            "resolve_due_at, due_at, resolution, resolution_note, escalation_level, cause, escalation_problem, "
            "version) SELECT l.id, 'no_matching_rule', 'None of the rules matched.', %(triage)s, 'open', "
            "l.received_at, %(t0)s + interval '1 hour', %(t0)s + interval '4 hours', %(t0)s + interval '1 hour', "
            "'', '', 0, '', '', 1 FROM (SELECT id, received_at, substr(lead_id, 6)::int AS g FROM routing_lead "
            "WHERE lead_id LIKE 'held-%%' OFFSET 0) l WHERE l.g %% 10 = 0",
            params,
        )
        cursor.execute(
            "WITH h AS MATERIALIZED (SELECT id, substr(lead_id, 6)::int AS g FROM routing_lead "
            "WHERE lead_id LIKE 'held-%%') INSERT INTO exceptions_exceptionitem_held_leads (exceptionitem_id, lead_id) "
            "SELECT i.id, l.id FROM exceptions_exceptionitem i JOIN h holder ON holder.id = i.lead_id "
            "JOIN h l ON l.g %% 10 <> 0 AND l.g / 10 = holder.g / 10 - 1",
            params,
        )
        cursor.execute("SELECT count(*) FROM exceptions_exceptionitem_held_leads")
        params["held_links"] = cursor.fetchone()[0]
    params["inserted"] = time.perf_counter() - began
    return params


def analyze() -> float:
    from django.db import connection

    began = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    return time.perf_counter() - began


ASSIGN = """
UPDATE routing_lead SET status = 'assigned', assignee_id = %(rep)s, queue_id = %(triage)s, assigned_at = %(at)s,
    routed_at = %(at)s
WHERE id IN (SELECT lead_id FROM exceptions_exceptionitem WHERE reason = 'routing_sla_breached' AND status = 'open'
    ORDER BY lead_id LIMIT %(count)s)
"""


def assign(cursor, seeded: dict, count: int, at: dt.datetime) -> int:
    """`count` of the leads with an open routing_sla_breached item (the lowest ids: the same leads in both
    databases) are assigned at `at`."""
    cursor.execute(ASSIGN, {**seeded, "count": count, "at": at})
    return cursor.rowcount


# The floor: the same rows written with the least work, one transaction.
FLOOR_CLOSE = """
UPDATE exceptions_exceptionitem i SET status = 'resolved', resolved_at = l.assigned_at, resolution = 'rerouted',
    due_at = NULL, version = i.version + 1
FROM routing_lead l
WHERE l.id = i.lead_id AND i.reason = 'routing_sla_breached' AND i.status IN ('open', 'acknowledged', 'waiting')
    AND l.status = 'assigned'
"""
FLOOR_OPEN = """
WITH ins AS (
    INSERT INTO exceptions_exceptionitem (lead_id, reason, detail, queue_id, status, opened_at, ack_due_at,
        resolve_due_at, due_at, resolution, resolution_note, escalation_level, cause, escalation_problem, version)
    SELECT l.id, 'routing_sla_breached', 'Not assigned within the SLO.', %(triage)s, 'open', %(now)s,
        %(now)s + interval '30 minutes', %(now)s + interval '4 hours', %(now)s + interval '30 minutes', '', '', 0,
        '', '', 1
    FROM routing_lead l
    WHERE l.received_at <= %(now)s - interval '5 minutes'
        AND (l.status = 'received' OR (l.status = 'exception' AND EXISTS (
            SELECT 1 FROM exceptions_exceptionitem_held_leads h
            JOIN exceptions_exceptionitem hi ON hi.id = h.exceptionitem_id
            WHERE h.lead_id = l.id AND hi.status IN ('open', 'acknowledged', 'waiting'))))
        AND NOT EXISTS (SELECT 1 FROM exceptions_exceptionitem o WHERE o.lead_id = l.id
            AND o.status IN ('open', 'acknowledged', 'waiting'))
    RETURNING id, lead_id
), sla AS (
    INSERT INTO exceptions_slaevent (item_id, clock, kind, at, data)
    SELECT ins.id, c.clock, 'started', %(now)s, '{}'::jsonb FROM ins, (VALUES ('ack'), ('resolve')) AS c(clock)
)
INSERT INTO audit_auditevent (action, occurred_at, actor_label, lead_id, exception_id, inputs, outcome, data)
SELECT 'exception.opened', %(now)s, 'engine', ins.lead_id, ins.id, '{}'::jsonb, 'routing_sla_breached', '{}'::jsonb
FROM ins
"""


def catch_up(seeded: dict, now: dt.datetime) -> int:
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(FLOOR_OPEN, {"now": now, "triage": seeded["triage"]})
        return cursor.rowcount


def floor(cursor, seeded: dict, now: dt.datetime) -> tuple[float, int, int]:
    params = {"now": now, "triage": seeded["triage"]}
    began = time.perf_counter()
    cursor.execute(FLOOR_CLOSE, params)
    closed = cursor.rowcount
    cursor.execute(FLOOR_OPEN, params)
    opened = cursor.rowcount
    cursor.connection.commit()
    return time.perf_counter() - began, opened, closed


def timed_sweep(now: dt.datetime):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from exceptions.routing_sla import routing_sla_sweep

    with CaptureQueriesContext(connection) as captured:
        began = time.perf_counter()
        report = routing_sla_sweep(now=now)
        elapsed = time.perf_counter() - began
    return elapsed, report, len(captured.captured_queries)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--waiting", type=int, default=sized(100_000, 2_000), help="leads still received")
    parser.add_argument("--held", type=int, default=sized(1_000, 40), help="leads held behind an open item")
    parser.add_argument("--history", type=int, default=sized(200_000, 2_000), help="earlier, assigned leads")
    parser.add_argument("--spread-minutes", type=float, default=100, help="window of the waiting leads' receipts")
    parser.add_argument("--assigned", type=int, default=sized(200, 20), help="breached leads assigned each minute")
    parser.add_argument("--rounds", type=int, default=sized(3, 2), help="sweeps a minute apart, each with its floor")
    args = parser.parse_args()

    os.chdir(ROOT)
    recreate_database()
    db = BENCH_ENV["DATABASE_URL"].rsplit("/", 1)[1]
    print(f"Routing SLA benchmark on {machine()}; PostgreSQL on loopback, database {db}")
    print(f"before: {contention()}")
    seeded = seed(waiting=args.waiting, held=args.held, history=args.history, spread_minutes=args.spread_minutes)
    print(
        f"seeded {args.history:,} assigned leads, {args.waiting:,} received over the {args.spread_minutes:g} minutes "
        f"before t0 and {args.held:,} held ({seeded['held_links']:,} links) in {seeded['inserted']:.1f} s "
        f"(+ VACUUM ANALYZE {analyze():.1f} s)"
    )
    t0 = seeded["t0"]
    from routing.dispatch import routing_backlog

    print(f"broker backlog read by the sweep: {routing_backlog()} routing task(s)")
    began = time.perf_counter()
    earlier = catch_up(seeded, t0 - dt.timedelta(minutes=1))
    print(
        f"the items earlier sweeps opened (every lead past the SLO a minute before t0), written by the floor's "
        f"statement: {earlier:,} in {time.perf_counter() - began:.1f} s"
    )
    print(f"VACUUM ANALYZE {analyze():.1f} s")
    import psycopg
    from django.db import connection

    floor_db = f"{db}_floor"
    clone_database(db, floor_db)
    try:
        with psycopg.connect(database_url(floor_db)) as floor_connection:
            floor_cursor = floor_connection.cursor()
            for minute in range(args.rounds):
                now = t0 + dt.timedelta(minutes=minute)
                # Between two sweeps: some of the breached leads are assigned (in both databases alike).
                with connection.cursor() as cursor:
                    assigned = assign(cursor, seeded, args.assigned, now - dt.timedelta(seconds=30))
                assign(floor_cursor, seeded, args.assigned, now - dt.timedelta(seconds=30))
                floor_connection.commit()
                floor_seconds, floor_opened, floor_closed = floor(floor_cursor, seeded, now)
                elapsed, report, queries = timed_sweep(now)
                if (report.opened, report.closed) != (floor_opened, floor_closed):
                    raise AssertionError(
                        f"the floor wrote other rows (opened {floor_opened}, closed {floor_closed}) than the sweep "
                        f"(opened {report.opened}, closed {report.closed}): it is not the same job"
                    )
                print(
                    f"sweep at t0 + {minute} min ({assigned:,} leads assigned since the last): closed "
                    f"{report.closed:,}, opened {report.opened:,} ({report.escalated:,} escalated at once) over "
                    f"{args.waiting + args.held:,} waiting leads; {queries} queries, {elapsed * 1000:.0f} ms; floor "
                    f"(bare UPDATE + INSERT … SELECT, same rows) {floor_seconds * 1000:.0f} ms; ratio "
                    f"{cost_ratio(elapsed, floor_seconds):.1f}x; {goal_note(elapsed < GOAL_SECONDS, '< 1 s')}"
                )
    finally:
        drop_database(floor_db)
    elapsed, report, queries = timed_sweep(now)
    print(
        f"duplicate tick at t0 + {args.rounds - 1} min: opened {report.opened}, closed {report.closed}; "
        f"{queries} queries, {elapsed * 1000:.0f} ms; {goal_note(elapsed < GOAL_SECONDS, '< 1 s')}"
    )
    print(f"after: {contention()}")


if __name__ == "__main__":
    main()
