"""Exception console and SLA sweep at 100,000 unresolved exception items.

1. The console pages, rendered in-process through Django's test Client, logged in as an `ops` user:
   the queue overview (/console/) and the item list (/console/items/, 50 per page, default sort by due
   time), overall and for one queue, on page 1 and on a deep page. Median and P95 wall time over
   --requests requests after a warm-up, and the SQL queries per request. Goal: < 150 ms per page.
2. The SLA sweep over the 100,000 open items, whose acknowledge due times are spread over the
   --spread-minutes before t0 (default 8 hours): a steady sweep when one minute's worth of due times has
   passed (what the beat task meets every minute), then a burst sweep at t0 + 1 s when every remaining item
   breaches at once, then an idle sweep with nothing to do. Each as beat runs it: the sweep
   (`sla_sweep(record=False)`: breach, escalation and reminder stamps, in short transactions) and then its
   follow-up task's record step (`sweep_record()`: SLA events and grouped notifications), timed apart.
   Goal: < 3 s. Optionally (--send-batches) `notifications_send_due` batches.

Each figure is paired with a floor measured in the same run (bench/_baselines.py); ratio = real / floor:
- pages: a bare view registered only in this process, requested alternately with the page (floor, page,
  floor, page …) by the same Client as the same user through the same middleware and console access check,
  running one query for the same 50 rows (`ORDER BY due_at, id LIMIT 50 OFFSET …`, the page's ids first, then
  the lead and the queue joined) into a minimal template; for the overview, one per-queue aggregate.
- sweeps: one set-based UPDATE that stamps the same acknowledge and resolve breaches (and nothing else), run
  just before each sweep, at the same instant, on an identical copy of the database
  (handoff_bench_exceptions_floor, CREATE DATABASE … TEMPLATE after seeding, dropped at the end), so the
  real sweep meets exactly the state it would have met; the stamp counts must equal the sweep's.

Items are seeded with set-based SQL (INSERT … SELECT FROM generate_series) into a fresh database of its
own (handoff_bench_exceptions), so this never touches the other benchmarks' database. Two of the five
queues keep office hours (Berlin 9-17, New York 8-18), which changes how escalation level 2 is computed.

    python bench/exception_console.py [--items 100000] [--queues 5] [--business-hours-queues 2] [--spread-minutes 480]
                               [--requests 30] [--send-batches 3] [--explain] [--only pages|sweep]
"""

import os

os.environ.setdefault("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/handoff_bench_exceptions")
# notifications_send_due sends mail: keep it in memory (BENCH_ENV sets no mail server).
os.environ.setdefault("DJANGO_EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend")

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import functools  # noqa: E402
import time  # noqa: E402

from _baselines import (  # noqa: E402
    FLOOR_PREFIX,
    clone_database,
    cost_ratio,
    database_url,
    drop_database,
    install_floor_views,
    paired_line,
    time_paired,
)
from _setup import (
    BENCH_ENV,
    ROOT,
    contention,
    machine,
    median,
    percentile,
    recreate_database,
    sized,
    use_plain_static_storage,
)  # noqa: E402

ACK_MINUTES = 30
RESOLVE_MINUTES = 240
# Acknowledge due times are spread evenly over this window before t0 (set by --spread-minutes).
BURST_SECONDS = 8 * 3600
PAGE_GOAL_SECONDS = 0.150
SWEEP_GOAL_SECONDS = 3.0


def prepare_database() -> None:
    recreate_database()
    use_plain_static_storage()


def seed(*, items: int, queues: int, business_hours_queues: int, people: int) -> dict:
    """People, one source, queues with owners, then `items` leads and one open exception item each."""
    from django.contrib.auth.models import Group, User
    from django.db import connection, transaction

    from routing.models import Queue, Source

    t0 = dt.datetime.now(dt.UTC).replace(microsecond=0)
    with transaction.atomic():
        ops = Group.objects.get(name="ops")
        staff = [User.objects.create_user(f"ops-{i}", email=f"ops-{i}@example.com") for i in range(people)]
        for user in staff:
            user.groups.add(ops)
        contact = User.objects.create_user("escalations", email="escalations@example.com")
        source = Source(name="bench")
        source.set_new_token()
        source.save()
        hours = [("Europe/Berlin", dt.time(9), dt.time(17)), ("America/New_York", dt.time(8), dt.time(18))]
        queue_ids = []
        for q in range(queues):
            zone, start, end = hours[q % 2] if q >= queues - business_hours_queues else ("UTC", None, None)
            queue = Queue.objects.create(
                name=f"Queue {q + 1}",
                ack_sla_minutes=ACK_MINUTES,
                resolve_sla_minutes=RESOLVE_MINUTES,
                owner=staff[q % people],
                escalation_contact=contact,
                business_timezone=zone,
                business_start=start,
                business_end=end,
            )
            queue_ids.append(queue.pk)
    params = {
        "n": items,
        "source": source.pk,
        "t0": t0,
        "queues": queue_ids,
        "people": [u.pk for u in staff],
        "burst": dt.timedelta(seconds=BURST_SECONDS),
        "ack": dt.timedelta(minutes=ACK_MINUTES),
        "resolve": dt.timedelta(minutes=RESOLVE_MINUTES),
    }
    began = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        # Leads that no rule matched; intent_score 0..99, so ~19% are high-intent (> 80: level 2 at once).
        cursor.execute(
            """
            INSERT INTO routing_lead (origin_id, lead_id, email, first_name, last_name, company, company_size,
                country, lifecycle_stage, engagement_score, intent_score, occurred_at, attributes, received_at,
                status, requeue_count, enrichment_attempts)
            SELECT %(source)s, 'bench-' || g, 'lead-' || g || '@example.com', 'Ada', 'Byron',
                'Company ' || (g %% 997), 10 + g %% 5000, (ARRAY['US','GB','DE','FR','IN'])[1 + g %% 5], 'lead',
                (g * 7919 %% 100)::float, (g * 37 %% 100)::float,
                %(t0)s - %(ack)s - %(burst)s + g * %(burst)s / %(n)s - interval '5 seconds', '{}'::jsonb,
                %(t0)s - %(ack)s - %(burst)s + g * %(burst)s / %(n)s, 'exception', 0, 0
            FROM generate_series(1, %(n)s) AS g
            """,
            params,
        )
        # One open item per lead, round-robin over the queues, a third of them assigned to someone.
        # Acknowledge due times are spread over the minute before t0; resolve due times are hours away.
        cursor.execute(
            """
            INSERT INTO exceptions_exceptionitem (lead_id, reason, detail, queue_id, status, assignee_id,
                opened_at, ack_due_at, resolve_due_at, due_at, resolution, resolution_note, escalation_level,
                version)
            SELECT l.id, 'no_matching_rule', '', (%(queues)s::bigint[])[1 + s.g %% cardinality(%(queues)s::bigint[])],
                'open',
                CASE WHEN s.g %% 3 = 0 THEN (%(people)s::int[])[1 + s.g %% cardinality(%(people)s::int[])] END,
                l.received_at, l.received_at + %(ack)s, l.received_at + %(resolve)s, l.received_at + %(ack)s,
                '', '', 0, 1
            FROM routing_lead AS l
            CROSS JOIN LATERAL (SELECT substr(l.lead_id, 7)::int AS g) AS s
            WHERE l.origin_id = %(source)s
            """,
            params,
        )
    inserted = time.perf_counter() - began
    began = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE)")  # as autovacuum would: statistics and the visibility map
    vacuumed = time.perf_counter() - began
    return {
        "t0": t0,
        "queues": queue_ids,
        "viewer": staff[0],
        "inserted": inserted,
        "vacuumed": vacuumed,
    }


def explain(client, url: str) -> None:
    """EXPLAIN ANALYZE of the slowest query behind one request."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        client.get(url)
    queries = [q for q in captured.captured_queries if not q["sql"].startswith("DECLARE")]  # named cursors
    sql = max(queries, key=lambda q: float(q["time"]))["sql"]
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    print(f"    slowest query: {sql[:300]}{'…' if len(sql) > 300 else ''}\n" + indent(plan, "      "))


def indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line for line in text.splitlines())


def bench_pages(seeded: dict, items: int, queues: int, requests: int, show_plans: bool) -> None:
    from django.test import Client

    client = Client(HTTP_HOST="localhost")
    client.force_login(seeded["viewer"])
    queue = seeded["queues"][0]
    per_queue = -(-items // queues)
    deep_all = min(1000, max(1, items // 50))
    deep_queue = min(300, max(1, per_queue // 50))
    unresolved = "status=open&status=acknowledged&status=waiting"
    floor = f"/{FLOOR_PREFIX}items/"
    pages = [
        ("queue overview", "/console/", f"/{FLOOR_PREFIX}queues/"),
        ("items, page 1", "/console/items/", floor),
        (
            f"items, page {deep_all} (offset {(deep_all - 1) * 50:,})",
            f"/console/items/?page={deep_all}",
            f"{floor}?page={deep_all}",
        ),
        ("one queue, page 1", f"/console/items/?queue={queue}", f"{floor}?queue={queue}"),
        (
            f"one queue, page {deep_queue} (offset {(deep_queue - 1) * 50:,})",
            f"/console/items/?queue={queue}&page={deep_queue}",
            f"{floor}?queue={queue}&page={deep_queue}",
        ),
        # The unresolved statuses are the list's default: the same rows, so the same floor.
        (
            "one queue + unresolved statuses, page 1",
            f"/console/items/?queue={queue}&{unresolved}",
            f"{floor}?queue={queue}",
        ),
        (
            f"one queue + unresolved statuses, page {deep_queue}",
            f"/console/items/?queue={queue}&{unresolved}&page={deep_queue}",
            f"{floor}?queue={queue}&page={deep_queue}",
        ),
        # Search (trigram index, routing migration 0023); the floor is the unfiltered first page.
        ("search: one lead's address (q=lead-4242@)", "/console/items/?q=lead-4242%40", floor),
        ("search: 8 companies, ~800 items match (q=company 99)", "/console/items/?q=company+99", floor),
    ]
    print(
        f"console pages, {requests} requests each after 3 warm-ups (test Client, in-process), each alternating "
        "with its floor (a bare view: same user and middleware, one query for the same 50 rows, minimal "
        "template); ratio = page median / floor median:"
    )
    for label, url, floor_url in pages:
        result = time_paired(client, url, floor_url, requests, warmup=3)
        times, slowest = result["times"], result["slowest"]
        print(
            f"  {label:<44} median {median(times) * 1000:6.1f} ms, P95 {percentile(times, 95) * 1000:6.1f} ms; "
            f"{result['queries']} queries (slowest {float(slowest['time']) * 1000:.1f} ms); "
            f"{result['size'] / 1024:.0f} KiB  [{url}]"
        )
        print(f"  {'':<44} {paired_line(result, PAGE_GOAL_SECONDS)}")
        if show_plans:
            explain(client, url)


class PhaseTimer:
    """Wraps the sweep's steps (module functions, looked up at call time) to time each one."""

    NAMES = ("_stamp_queue", "_reassign_unacknowledged", "sweep_record", "_record_events", "_record_notifications")
    TOP_LEVEL = ("_stamp_queue", "_reassign_unacknowledged", "sweep_record")  # what sla_sweep calls

    def __init__(self):
        from exceptions import sweep

        self.module = sweep
        self.originals = {name: getattr(sweep, name) for name in self.NAMES}
        self.totals: dict[str, float] = {}

    def __enter__(self):
        for name, original in self.originals.items():
            setattr(self.module, name, self._timed(name, original))
        return self

    def __exit__(self, *exc):
        for name, original in self.originals.items():
            setattr(self.module, name, original)

    def _timed(self, name, original):
        @functools.wraps(original)
        def wrapper(*args, **kwargs):
            began = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.totals[name] = self.totals.get(name, 0.0) + time.perf_counter() - began

        return wrapper

    def summary(self) -> str:
        t = {name.lstrip("_"): self.totals.get(name, 0.0) for name in self.NAMES}
        return (
            f"stamp (all queues: breaches, escalations, reminders, batches) {t['stamp_queue']:.2f} s, "
            f"reassign_unacknowledged {t['reassign_unacknowledged']:.2f} s, "
            f"record step inside the sweep (queues that reassign) {t['sweep_record']:.2f} s; "
            f"SLA events {t['record_events']:.2f} s, "
            f"grouped notifications {t['record_notifications']:.2f} s"
        )


def counts() -> dict:
    from exceptions.models import ExceptionItem, Notification, SlaEvent

    return {
        "breached": ExceptionItem.objects.filter(ack_breached_at__isnull=False).count(),
        "sla events": SlaEvent.objects.count(),
        "notifications": Notification.objects.count(),
    }


FLOOR_STAMP_SQL = """
    WITH stamped AS (
        UPDATE exceptions_exceptionitem SET
            ack_breached_at = CASE WHEN status = 'open' AND ack_due_at <= %(now)s AND ack_breached_at IS NULL
                THEN %(now)s ELSE ack_breached_at END,
            resolve_breached_at = CASE WHEN status IN ('open', 'acknowledged') AND resolve_due_at <= %(now)s
                AND resolve_breached_at IS NULL THEN %(now)s ELSE resolve_breached_at END
        WHERE (status = 'open' AND ack_due_at <= %(now)s AND ack_breached_at IS NULL)
            OR (status IN ('open', 'acknowledged') AND resolve_due_at <= %(now)s AND resolve_breached_at IS NULL)
        RETURNING ack_breached_at = %(now)s AS ack, resolve_breached_at = %(now)s AS resolve
    )
    SELECT count(*) FILTER (WHERE ack), count(*) FILTER (WHERE resolve) FROM stamped
"""


def floor_stamp(cursor, now: dt.datetime) -> tuple[float, int, int]:
    """The breach sweep's floor: one UPDATE (autocommit, so its commit is timed too) that stamps the breaches
    due at `now` and nothing else: (seconds, acknowledge stamps, resolve stamps)."""
    began = time.perf_counter()
    cursor.execute(FLOOR_STAMP_SQL, {"now": now})
    ack, resolve = cursor.fetchone()
    return time.perf_counter() - began, ack, resolve


def sweeps_with_floor(floor_cursor, seeded: dict, now: dt.datetime, steady: dt.datetime) -> None:
    """Each sweep as beat runs it: `sla_sweep(record=False)` (the stamps: what an operator's acknowledge can
    meet), then the follow-up task's `sweep_record()` (SLA events and grouped notifications), timed apart."""
    from exceptions.sweep import sla_sweep, sweep_record

    floor_cursor.execute("SELECT count(*), max(ack_due_at) FROM exceptions_exceptionitem")  # read it in, as pages did
    for label, at in (
        ("steady sweep (one minute's worth of due times has passed)", steady),
        ("burst sweep (t0 + 1 s: every remaining item breaches at once)", now),
        ("idle sweep straight after (nothing to do)", now + dt.timedelta(seconds=1)),
    ):
        floor, floor_ack, floor_resolve = floor_stamp(floor_cursor, at)
        with PhaseTimer() as phases:
            began = time.perf_counter()
            report = sla_sweep(now=at, record=False)
            elapsed = time.perf_counter() - began
            began = time.perf_counter()
            batches = sweep_record()
            recorded = time.perf_counter() - began
        print(
            f"  {label}: sweep {elapsed:.2f} s + record {recorded:.2f} s = {elapsed + recorded:.2f} s; "
            f"ack breached {report.ack_breached:,}, resolve breached {report.resolve_breached:,}, "
            f"escalated {report.escalated}, reminded {report.reminded:,}, reassigned {report.reassigned:,}; "
            f"{report.statements} stamp statements, {batches} batches recorded"
        )
        print(f"    steps: {phases.summary()}")
        same = (floor_ack, floor_resolve) == (report.ack_breached, report.resolve_breached)
        print(
            f"    floor: {floor:.3f} s stamping ack {floor_ack:,}, resolve {floor_resolve:,} "
            f"({'the same breaches' if same else 'NOT the same breaches as the sweep'}); "
            f"ratio sweep/floor {cost_ratio(elapsed, floor):.1f}x, (sweep + record)/floor "
            f"{cost_ratio(elapsed + recorded, floor):.1f}x; goal < {SWEEP_GOAL_SECONDS:.0f} s: sweep "
            f"{'met' if elapsed < SWEEP_GOAL_SECONDS else 'NOT met'}, with record "
            f"{'met' if elapsed + recorded < SWEEP_GOAL_SECONDS else 'NOT met'}"
        )
        if not same:
            raise AssertionError("the floor stamped other breaches than the sweep: it is not the same job")
        print("    after it: " + ", ".join(f"{k} {v:,}" for k, v in counts().items()))


def bench_sweep(seeded: dict, send_batches: int, floor_db: str) -> None:
    import psycopg
    from django.core import mail

    from exceptions.notifications import notifications_send_due

    now = seeded["t0"] + dt.timedelta(seconds=1)
    steady = seeded["t0"] - dt.timedelta(seconds=BURST_SECONDS - 60)
    print(
        f"SLA sweep; acknowledge due times spread over the {BURST_SECONDS / 60:.0f} minutes before t0 "
        f"({seeded['t0']:%a %H:%M}); before each sweep, its floor (one UPDATE stamping the same breaches) on an "
        f"identical copy, {floor_db}; ratio = sweep / floor:"
    )
    with psycopg.connect(database_url(floor_db), autocommit=True) as floor_connection:
        sweeps_with_floor(floor_connection.cursor(), seeded, now, steady)
    for batch in range(send_batches):
        mail.outbox = []
        began = time.perf_counter()
        sent = notifications_send_due(now=now)
        elapsed = time.perf_counter() - began
        print(
            f"  notifications_send_due batch {batch + 1}: {sent:,} notifications in {len(mail.outbox)} emails, "
            f"{elapsed * 1000:.0f} ms (no floor)"
        )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=sized(100_000, 500))
    parser.add_argument("--queues", type=int, default=5)
    parser.add_argument("--business-hours-queues", type=int, default=2, help="queues with Mon-Fri office hours")
    parser.add_argument("--people", type=int, default=20, help="ops users (queue owners, assignees)")
    parser.add_argument("--requests", type=int, default=sized(30, 2))
    parser.add_argument("--send-batches", type=int, default=sized(3, 1), help="notifications_send_due calls; 0 skips")
    parser.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE each page's slowest query")
    parser.add_argument("--only", choices=["pages", "sweep"], help="run one half (the seed is the same)")
    parser.add_argument("--spread-minutes", type=float, default=480, help="window of acknowledge due times")
    args = parser.parse_args()
    global BURST_SECONDS
    BURST_SECONDS = int(args.spread_minutes * 60)

    os.chdir(ROOT)  # the product's directory, as its servers and workers run
    prepare_database()
    db = BENCH_ENV["DATABASE_URL"].rsplit("/", 1)[1]
    print(f"Exceptions benchmark on {machine()}; PostgreSQL on loopback, database {db}")
    print(f"before: {contention()}")
    seeded = seed(
        items=args.items,
        queues=args.queues,
        business_hours_queues=args.business_hours_queues,
        people=args.people,
    )
    print(
        f"seeded {args.items:,} leads and open items over {args.queues} queues "
        f"({args.business_hours_queues} with business hours) in {seeded['inserted']:.1f} s "
        f"(+ VACUUM ANALYZE {seeded['vacuumed']:.1f} s)"
    )
    floor_db = f"{db}_floor"
    if args.only != "pages":
        began = time.perf_counter()
        clone_database(db, floor_db)  # the sweep floor's copy, in the state the sweeps start from
        print(f"copied to {floor_db} for the sweep floor in {time.perf_counter() - began:.1f} s")
    if args.only != "sweep":
        install_floor_views()
        bench_pages(seeded, args.items, args.queues, args.requests, args.explain)
        print(f"between: {contention()}")
    if args.only != "pages":
        try:
            bench_sweep(seeded, args.send_batches, floor_db)
        finally:
            drop_database(floor_db)
    print(f"after: {contention()}")


if __name__ == "__main__":
    main()
