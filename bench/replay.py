"""Rule replay: the latest 10,000 routed leads against 100 production rules, ~10 of them with staging versions.

Times what a replay costs end to end: `replay_request` (records the candidate set) and `replay_execute` (what
the Celery task `replay_rules_task` runs), called in-process, with no worker or broker in the way. Then as
many instrumented runs, to split the time into steps that add up to the run: the request, reading the lead
ids, compiling the candidate set (with the queue and version look-ups), loading the lead rows in chunks,
evaluating (recorded and candidate decision per lead), and writing the result; and, over the same rows, the
engine's two parts apart (lead view, first match). Goal: < 10 s for 10,000 leads against 100 rules. Once
more, as a stretch figure, with 1,000 rules (one run).

Rules get conditions like bench/engine.py's (1-3 leaves: equality, ranges, sets, suffixes, nested
attributes, then a `country in [...]` leaf), each a frozen version 1 promoted to production, as
tests/factories.py's RuleFactory leaves it. Ten rules spread over the priorities get a staging version 2
that changes decisions: a different queue, a narrower condition, or a broader one. Leads are the demo's
synthetic leads (2% stripped of email and phone, 5% from a country no rule lists); each one's recorded
decision (rule, version 1, queue, status) is what the production set decides for it, and a replay before
any staging version exists must move none of them (checked). More routed leads older than the window and a
few still `received` leads sit in the table too, as they would.

Each end-to-end run is paired with a floor measured just before it (floor, replay, floor, replay …): the
same 10,000 lead rows (the replay's own query: same columns, order and LIMIT) read with one plain psycopg
cursor on a connection of its own, `fetchall()`, no evaluation and no writes: the IO floor. Ratio = replay
time / floor time.

Everything is seeded with bulk_create into a fresh database of its own (handoff_bench_replay), recreated
for each rule count, so this never touches the other benchmarks' databases.

    python bench/replay.py [--leads 10000] [--older 5000] [--received 200] [--rules 100] [--stretch-rules 1000]
                           [--runs 5] [--queues 20]
"""

import os

os.environ.setdefault("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/handoff_bench_replay")

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import random  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402

from _baselines import cost_ratio  # noqa: E402
from _setup import (  # noqa: E402
    BENCH_ENV,
    ROOT,
    contention,
    machine,
    median,
    recreate_database,
    sized,
    synthetic_condition,
)

# Where the staging versions go, as positions in priority order: most leads are decided by the first rules.
STAGED_AT = (0, 2, 5, 9, 14, 20, 30, 45, 65, 90)


def prepare_database() -> None:
    """A fresh, migrated bench database; Django's connections to the previous one closed first (dropdb)."""
    from django.apps import apps

    if apps.ready:
        from django.db import connections

        connections.close_all()
    recreate_database()


def seed_rules(*, count: int, queues: int, rng: random.Random) -> dict:
    """An owner, the queues, and `count` production rules, each with its frozen version 1 and promotion."""
    from django.contrib.auth.models import Group, User
    from django.db import transaction
    from django.utils import timezone

    from routing.governance.models import PromotionKind, RulePromotion, RuleVersion
    from routing.models import Queue, Rule, RuleStage, Source

    now = timezone.now()
    with transaction.atomic():
        owner = User.objects.create_user("rules-owner", email="rules-owner@example.com")
        owner.groups.add(Group.objects.get(name="rule_owners"))  # replay_request: rule owners and admins only
        people = [User.objects.create_user(f"rep-{i}", email=f"rep-{i}@example.com") for i in range(10)]
        source = Source(name="bench")
        source.set_new_token()
        source.save()
        queue_rows = Queue.objects.bulk_create(Queue(name=f"Queue {q + 1:02d}") for q in range(queues))
        rules = Rule.objects.bulk_create(
            [
                Rule(
                    name=f"rule {i}",
                    description="Routes bench leads.",
                    owner=owner,
                    priority=10 * (i + 1),
                    stage=RuleStage.PRODUCTION,
                    condition=synthetic_condition(i, rng),
                    queue=queue_rows[i % queues],
                    sla_minutes=15,
                    inputs="lifecycle_stage, engagement_score, attributes.utm.source, company_size, email, country",
                    outputs="Assignment to the rule's queue.",
                    rollback_plan="Roll back to the previous version.",
                )
                for i in range(count)
            ],
            batch_size=500,
        )
        versions = RuleVersion.objects.bulk_create(
            [
                RuleVersion(rule=rule, number=1, **{f: getattr(rule, f) for f in Rule.CONTRACT_FIELDS}, created_at=now)
                for rule in rules
            ],
            batch_size=500,
        )
        RulePromotion.objects.bulk_create(
            [RulePromotion(rule=v.rule, version=v, kind=PromotionKind.PRODUCTION, by=owner, at=now) for v in versions],
            batch_size=500,
        )
        for rule, version in zip(rules, versions, strict=True):
            rule.production_version = version
        Rule.objects.bulk_update(rules, ["production_version"], batch_size=500)
    return {"owner": owner, "people": people, "source": source, "queues": queue_rows, "rules": rules}


def seed_leads(seeded: dict, *, window: int, older: int, received: int, rng: random.Random) -> dict:
    """Routed leads with the decision the production set makes for each, then a few unrouted ones; newest last."""
    from django.db import connection, transaction
    from django.utils import timezone

    from routing.demo.leads import synthetic_lead
    from routing.engine import RuleSet, production_versions
    from routing.intake import LeadIn
    from routing.models import Lead, LeadStatus

    production = RuleSet(production_versions())
    people, source = seeded["people"], seeded["source"]
    t0 = timezone.now().replace(microsecond=0)
    routed = older + window
    span = dt.timedelta(days=14)  # received_at spread over two weeks, oldest first
    leads, outcomes = [], Counter()
    for n in range(routed + received):
        payload = synthetic_lead(rng)
        roll = rng.random()
        if roll < 0.05:
            payload["country"] = "AU"  # no rule lists it: every rule is tried, then an exception
        elif roll < 0.07:  # synthetic leads always have an email or a phone: strip both from a few
            payload.pop("email", None)
            payload.pop("phone", None)
        values = LeadIn.model_validate(payload).model_dump(exclude={"occurred_at"})
        received_at = t0 - span + span * n / (routed + received)
        lead = Lead(origin=source, occurred_at=received_at - dt.timedelta(seconds=5), received_at=received_at, **values)
        if n >= routed:
            lead.status = LeadStatus.RECEIVED
            outcomes["received"] += 1
        elif not lead.email and not lead.phone:
            lead.status = LeadStatus.EXCEPTION  # missing contact: routing stops before any rule
            outcomes["missing contact"] += 1
        else:
            index = production.first_match_index(lead.routing_view())
            routed_at = received_at + dt.timedelta(milliseconds=200)
            if index < 0:
                lead.status, lead.routed_at = LeadStatus.EXCEPTION, routed_at
                outcomes["no match"] += 1
            else:
                rule = production.rules[index]
                lead.status, lead.routed_at = LeadStatus.ASSIGNED, routed_at
                lead.rule_id, lead.rule_version, lead.queue_id = rule.id, rule.version, rule.queue_id
                lead.assignee, lead.assigned_at = people[n % len(people)], routed_at
                outcomes["assigned"] += 1
        leads.append(lead)
    began = time.perf_counter()
    with transaction.atomic():
        Lead.objects.bulk_create(leads, batch_size=1000)
    inserted = time.perf_counter() - began
    began = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE)")  # as autovacuum would: statistics and the visibility map
    vacuumed = time.perf_counter() - began
    return {"outcomes": outcomes, "inserted": inserted, "vacuumed": vacuumed}


def stage_changes(seeded: dict) -> list[str]:
    """Staging version 2 for ten rules spread over the priorities: new queue, narrower or broader condition."""
    from django.db import transaction
    from django.utils import timezone

    from routing.governance.models import PromotionKind, RulePromotion, RuleVersion
    from routing.models import Rule

    rules, queue_rows, owner = seeded["rules"], seeded["queues"], seeded["owner"]
    now = timezone.now()
    staged, changes = [], []
    for k, position in enumerate(p for p in STAGED_AT if p < len(rules)):
        rule = rules[position]
        country = rule.condition["all"][-1]
        if k % 3 == 0:
            rule.queue = queue_rows[(position + 7) % len(queue_rows)]
            changes.append(f"#{position + 1} new queue")
        elif k % 3 == 1:
            rule.condition = {"all": [*rule.condition["all"], {"field": "intent_score", "op": "gte", "value": 50}]}
            changes.append(f"#{position + 1} narrower")
        else:
            rule.condition = {"all": [{"field": "lifecycle_stage", "op": "in", "value": ["mql", "sql"]}, country]}
            changes.append(f"#{position + 1} broader")
        staged.append(rule)
    with transaction.atomic():
        versions = RuleVersion.objects.bulk_create(
            RuleVersion(rule=rule, number=2, **{f: getattr(rule, f) for f in Rule.CONTRACT_FIELDS}, created_at=now)
            for rule in staged
        )
        RulePromotion.objects.bulk_create(
            RulePromotion(rule=v.rule, version=v, kind=PromotionKind.STAGING, by=owner, at=now) for v in versions
        )
        for rule, version in zip(staged, versions, strict=True):
            rule.staging_version = version
        Rule.objects.bulk_update(staged, ["condition", "queue", "staging_version"])
    return changes


def expected_moves(limit: int) -> int:
    """Independently of replay.py: the window's leads whose queue differs between production and candidate."""
    from routing.engine import RuleSet, candidate_versions, production_versions
    from routing.models import Lead, LeadStatus, Queue

    production, candidate = RuleSet(production_versions()), RuleSet(candidate_versions())
    names = dict(Queue.objects.values_list("id", "name"))
    moved = 0
    leads = Lead.objects.exclude(status=LeadStatus.RECEIVED).order_by("-received_at", "-id")[:limit]
    for lead in leads:
        if not lead.email and not lead.phone:
            continue
        view = lead.routing_view()
        was, now = production.first_match_index(view), candidate.first_match_index(view)
        was = names[production.rules[was].queue_id] if was >= 0 else None
        now = names[candidate.rules[now].queue_id] if now >= 0 else None
        moved += was != now
    return moved


def replay_once(owner, limit: int):
    from routing.governance.replay import replay_execute, replay_request

    began = time.perf_counter()
    run = replay_execute(run_id=replay_request(by=owner, limit=limit).pk)
    return time.perf_counter() - began, run


class PhaseTimer:
    """Times replay_execute's steps inside a real run, through replay.py's own module-level helpers (looked up
    at call time): `_candidate` is called first thing after the window is counted and the run marked running;
    the `Counter()` call comes right after the rule set is compiled and the queue and version look-ups are
    read, just before the chunk loop; the decision helpers are timed per lead; `on_progress` is called after
    each chunk, the last time just before the result and the audit event are written. The timing adds a few
    milliseconds per 10,000 leads: end-to-end figures come from runs without it."""

    def __init__(self):
        from routing.governance import replay

        self.module = replay
        self.names = ("_candidate", "Counter", "_recorded_decision", "_candidate_decision")
        self.originals = {name: getattr(replay, name) for name in self.names}
        self.marks: dict[str, float] = {}
        self.evaluating = 0.0

    def __enter__(self):
        m, originals, clock = self.marks, self.originals, time.perf_counter

        def candidate(run):
            m.setdefault("compile", clock())
            return originals["_candidate"](run)

        def counter(*args, **kwargs):
            m.setdefault("loop", clock())
            return originals["Counter"](*args, **kwargs)

        def timed(original):
            def wrapper(*args):
                began = clock()
                try:
                    return original(*args)
                finally:
                    self.evaluating += clock() - began

            return wrapper

        patches = {
            "_candidate": candidate,
            "Counter": counter,
            "_recorded_decision": timed(originals["_recorded_decision"]),
            "_candidate_decision": timed(originals["_candidate_decision"]),
        }
        for name, patch in patches.items():
            setattr(self.module, name, patch)
        return self

    def __exit__(self, *exc):
        for name, original in self.originals.items():
            setattr(self.module, name, original)

    def on_progress(self, done: int, total: int) -> None:
        self.marks["finish"] = time.perf_counter()


def split_once(owner, limit: int) -> dict:
    """One instrumented replay: its wall time cut into steps that add up to it, in seconds."""
    from routing.governance.replay import replay_execute, replay_request

    with PhaseTimer() as phases:
        began = time.perf_counter()
        run = replay_request(by=owner, limit=limit)
        requested = time.perf_counter()
        replay_execute(run_id=run.pk, on_progress=phases.on_progress)
        ended = time.perf_counter()
    m = phases.marks
    if set(m) != {"compile", "loop", "finish"}:
        raise RuntimeError(f"replay_execute no longer calls what PhaseTimer hooks (marks: {sorted(m)})")
    return {
        "total": ended - began,
        "request": requested - began,
        "ids": m["compile"] - requested,
        "compile": m["loop"] - m["compile"],
        "load": m["finish"] - m["loop"] - phases.evaluating,
        "evaluate": phases.evaluating,
        "finish": ended - m["finish"],
    }


def engine_apart(limit: int) -> dict:
    """Of the evaluation: the engine's view of each loaded row, and the compiled first match alone, in seconds."""
    from routing.engine import RuleSet, candidate_versions
    from routing.governance import replay
    from routing.models import Lead

    ruleset = RuleSet(candidate_versions())
    fields = ("id", "lead_id", "rule_id", "rule_version", "queue_id", *Lead.ROUTABLE_FIELDS)
    ids = list(replay._leads(replay.ReplayRun(limit=limit)).values_list("id", flat=True))
    rows = list(Lead.objects.filter(pk__in=ids).values(*fields))
    began = time.perf_counter()
    views = [Lead.view_from(row) for row in rows]
    viewed = time.perf_counter()
    for view in views:
        ruleset.first_match_index(view)
    return {"views": viewed - began, "match": time.perf_counter() - viewed}


def window_sql(limit: int) -> tuple[str, tuple]:
    """The replay's own read of the window, as SQL: same columns, order and LIMIT."""
    from routing.governance import replay
    from routing.models import Lead

    fields = ("id", "lead_id", "rule_id", "rule_version", "queue_id", *Lead.ROUTABLE_FIELDS)
    return replay._leads(replay.ReplayRun(limit=limit)).values(*fields).query.sql_with_params()


def io_floor(cursor, sql: str, params: tuple, limit: int) -> float:
    """Seconds to read the window's rows with one plain psycopg query (psycopg's own C loaders)."""
    began = time.perf_counter()
    cursor.execute(sql, params)
    rows = cursor.fetchall()
    elapsed = time.perf_counter() - began
    if len(rows) != limit:
        raise AssertionError(f"the floor read {len(rows)} rows, not {limit}")
    return elapsed


def count_queries(owner, limit: int) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from routing.governance.replay import replay_execute, replay_request

    with CaptureQueriesContext(connection) as captured:
        replay_execute(run_id=replay_request(by=owner, limit=limit).pk)
    return len(captured.captured_queries)


def bench(args, rules: int, runs: int, rng: random.Random) -> dict:
    prepare_database()
    began = time.perf_counter()
    seeded = seed_rules(count=rules, queues=args.queues, rng=rng)
    leads = seed_leads(seeded, window=args.leads, older=args.older, received=args.received, rng=rng)
    seeding = time.perf_counter() - began
    outcomes = ", ".join(f"{k} {v:,}" for k, v in sorted(leads["outcomes"].items()))
    print(
        f"{rules:,} rules: seeded in {seeding:.1f} s (leads bulk_create {leads['inserted']:.1f} s, "
        f"VACUUM ANALYZE {leads['vacuumed']:.1f} s); leads: {outcomes}"
    )
    owner = seeded["owner"]
    _, check = replay_once(owner, args.leads)
    if check.result["moved_count"] != 0 or check.total != args.leads:
        raise AssertionError(f"before any staging version: {check.total} leads, {check.result['moved_count']} moved")
    changes = stage_changes(seeded)
    expected = expected_moves(args.leads)
    print(
        f"  check: a replay with no staging version moved 0 of {check.total:,} leads; staged: {', '.join(changes)}; "
        f"{expected:,} leads should move"
    )
    import psycopg

    sql, params = window_sql(args.leads)
    elapsed, floors, moved = [], [], set()
    with psycopg.connect(BENCH_ENV["DATABASE_URL"], autocommit=True) as floor_connection:
        floor_cursor = floor_connection.cursor()
        io_floor(floor_cursor, sql, params, args.leads)  # warm-up, as the first replay above was
        for _ in range(runs):
            floors.append(io_floor(floor_cursor, sql, params, args.leads))
            seconds, run = replay_once(owner, args.leads)
            elapsed.append(seconds)
            moved.add(run.result["moved_count"])
            if run.total != args.leads:
                raise AssertionError(f"replayed {run.total} leads, not {args.leads}")
    if moved != {expected}:
        raise AssertionError(f"replay moved {moved}, expected {expected}")
    splits = [{**split_once(owner, args.leads), **engine_apart(args.leads)} for _ in range(runs)]
    split = {key: median([s[key] for s in splits]) for key in splits[0]}
    return {
        "rules": rules,
        "runs": elapsed,
        "floors": floors,
        "moved": expected,
        "split": split,
        "queries": count_queries(owner, args.leads),
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--leads", type=int, default=sized(10_000, 200), help="leads replayed (the replay's limit)")
    parser.add_argument("--older", type=int, default=sized(5_000, 100), help="routed leads older than the window")
    parser.add_argument("--received", type=int, default=sized(200, 20), help="leads not routed yet (never replayed)")
    parser.add_argument("--rules", type=int, default=sized(100, 10))
    parser.add_argument(
        "--stretch-rules", type=int, default=sized(1000, 0), help="timed once more with this many; 0 skips"
    )
    parser.add_argument("--runs", type=int, default=sized(5, 1))
    parser.add_argument("--queues", type=int, default=sized(20, 3))
    args = parser.parse_args()

    os.chdir(ROOT)  # the product's directory, as its servers and workers run
    db = BENCH_ENV["DATABASE_URL"].rsplit("/", 1)[1]
    print(f"Replay benchmark on {machine()}; PostgreSQL on loopback, database {db}")
    print(
        "replay_request + replay_execute called in-process: replay_execute is what the Celery task "
        "replay_rules_task runs; no worker or broker is involved"
    )
    print(f"before: {contention()}")
    rng = random.Random(11)
    results = [bench(args, args.rules, args.runs, rng)]
    if args.stretch_rules:
        results.append(bench(args, args.stretch_rules, 1, rng))
    print(f"after: {contention()}")

    print(f"\nend to end, {args.leads:,} leads (the replay's limit) of {args.leads + args.older + args.received:,}:")
    header = f"{'rules':>6} {'runs':>5} {'median s':>9} {'max s':>7} {'leads/s':>9} {'moved':>6} {'queries':>8}"
    print(f"{header}  each run, s")
    for r in results:
        runs = r["runs"]
        print(
            f"{r['rules']:>6,} {len(runs):>5} {median(runs):>9.2f} {max(runs):>7.2f} "
            f"{args.leads / median(runs):>9,.0f} {r['moved']:>6,} {r['queries']:>8}  "
            + " ".join(f"{s:.2f}" for s in runs)
        )
    print("\nagainst the IO floor (the window's rows read with one plain psycopg query, interleaved with each run):")
    print(f"{'rules':>6} {'replay median s':>16} {'floor median s':>15} {'ratio':>6}  {'goal':<10}  each pair, s")
    for r in results:
        runs, floors = r["runs"], r["floors"]
        print(
            f"{r['rules']:>6,} {median(runs):>16.3f} {median(floors):>15.3f} "
            f"{cost_ratio(median(runs), median(floors)):>5.1f}x  "
            f"{'< 10 s: ' + ('met' if median(runs) < 10 else 'NOT met'):<10}  "
            + " ".join(f"{f:.3f}/{s:.2f}" for f, s in zip(floors, runs, strict=True))
        )
    print("  ratio = replay median / floor median; each pair: floor / replay, in the order run")
    print("\nsplit: instrumented runs (as many as above), median per step, ms; the steps add up to each run")
    print(
        f"{'rules':>6} {'total':>6} {'request':>8} {'count':>9} {'compile':>8} {'load rows':>10} "
        f"{'evaluate':>9} {'finish':>7} {'| views':>8} {'match':>6}"
    )
    for r in results:
        s = {key: value * 1000 for key, value in r["split"].items()}
        print(
            f"{r['rules']:>6,} {s['total']:>6.0f} {s['request']:>8.0f} {s['ids']:>9.0f} {s['compile']:>8.0f} "
            f"{s['load']:>10.0f} {s['evaluate']:>9.0f} {s['finish']:>7.0f} {s['views']:>8.0f} {s['match']:>6.0f}"
        )
    print(
        "  request: replay_request (candidate read, run created); count: the run, the window counted, marked "
        "running; compile: candidate versions, RuleSet, queue names, every version's queue; load rows: one "
        "ordered .values() read streamed in chunks of 2,000, a progress update after each; "
        "evaluate: recorded + candidate decision per lead; "
        "finish: result, audit event, commit. views (Lead.view_from) and match (first_match_index): the "
        "evaluation's two engine parts, timed apart over the same rows"
    )


if __name__ == "__main__":
    main()
