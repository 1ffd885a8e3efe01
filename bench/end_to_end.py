"""End to end with real Celery workers and Redis, and scale-out from 1 to 2 worker processes.

For each worker count N (1, then 2; each on a fresh copy of a database seeded with the demo's owners,
queues, members and production rules), with gunicorn (2 sync workers) serving the intake and N Celery worker
nodes of one pool process each:

1. Baseline, 50/s: a bench task that writes one row, published at the same open-loop rate: the floor
   Celery + Redis + one commit impose (publish → task start).
2. End to end, 50/s: single leads POSTed over HTTP at a fixed open-loop arrival rate; conversion →
   assignment latency as /metrics defines it (`assigned_at - occurred_at`, the lead's `occurred_at` being
   its scheduled send time), split into intake (`received_at - occurred_at`) and the rest
   (`assigned_at - received_at`: commit, publish, queue, routing). Goals: median < 150 ms, P95 < 500 ms.
3. Ceiling: no-op tasks queued up front, then drained: tasks/s.
4. Saturated routing: a backlog of leads accepted through the batch API while the workers consume nothing,
   then drained: leads/s. 1 → 2 workers gives the scaling ratio.

Each step also records the CPU time gunicorn and the workers spent per lead (or task), and the PostgreSQL
sessions opened per lead: figures that hold up better than latencies on a shared, noisy machine.

Every run checks that each accepted lead left `received` and has exactly one routing decision in the audit
trail (no lead routed twice). Beat is not run: no lead is re-queued behind the benchmark's back.

    python bench/end_to_end.py [--seconds 60] [--rate 50] [--backlog 3000] [--workers 1 2] [--json FILE]
"""

import argparse
import base64
import json
import multiprocessing as mp
import os
import subprocess
import time
from collections import Counter

from _setup import BENCH_ENV, PG, database_from_template, demo_template, machine, median, percentile, sized

QUEUE = f"{BENCH_ENV['CELERY_TASK_DEFAULT_QUEUE']}-e2e"
NOOP_QUEUE = f"{QUEUE}-noop"
LIVE, BULK = f"{QUEUE}-live", f"{QUEUE}-bulk"  # the routing lanes (settings.HANDOFF_QUEUES)
BENCH_ENV["CELERY_TASK_DEFAULT_QUEUE"] = QUEUE  # this benchmark's own queue, in every process it starts
DATABASE = BENCH_ENV["DATABASE_URL"].rsplit("/", 1)[1]
TEMPLATE = f"{DATABASE}_template"
TASKS_MODULE = "bench._e2e_tasks"

from _e2e_tasks import CREATE_STAMP_TABLE, NOOP_TASK, STAMP_TABLE, STAMP_TASK  # noqa: E402
from _load import post_batches, post_leads, publish_stamps, synthetic_leads  # noqa: E402
from _processes import CpuMeter, Processes, free_port  # noqa: E402


def prepare_template() -> str:
    """The demo's routing set-up and the stamp table, kept as a template database; returns the source's token."""
    return demo_template(TEMPLATE, CREATE_STAMP_TABLE)


def fresh_database() -> None:
    database_from_template(TEMPLATE)


def in_child(target, *args, timeout: float):
    """Run `target(*args, out)` in a fresh process and return what it put on `out`."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    child = ctx.Process(target=target, args=(*args, out))
    child.start()
    try:
        return out.get(timeout=timeout)
    finally:
        child.join(timeout=10)
        if child.is_alive():
            child.kill()


def wait_for(condition, timeout: float, every: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(every)
    return True


def stats_ms(values: list[float]) -> dict:
    ms = [v * 1000 for v in values]
    return {
        "n": len(ms),
        "median": median(ms),
        "p95": percentile(ms, 95),
        "p99": percentile(ms, 99),
        "max": max(ms, default=float("nan")),
    }


def baseline_at_rate(rate: float, seconds: float) -> dict:
    """Stamp tasks published at `rate`: publish (due time) → task start, from the rows they wrote."""
    from django.db import connection

    sent = in_child(publish_stamps, rate, seconds, STAMP_TASK, QUEUE, timeout=seconds + 60)

    def stamped() -> int:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {STAMP_TABLE}")
            return cursor.fetchone()[0]

    wait_for(lambda: stamped() >= sent["total"], timeout=60)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT started_at - published_at, pid FROM {STAMP_TABLE}")
        rows = cursor.fetchall()
    return {
        "published": sent["total"],
        "ran": len(rows),
        "pids": len({pid for _, pid in rows}),
        "latency": stats_ms([lat for lat, _ in rows]),
        "max_send_lag_ms": max(sent["lags"], default=0) * 1000,
    }


def leads_at_rate(port: int, token: str, rate: float, seconds: float, drain_timeout: float) -> dict:
    """Single leads POSTed at `rate`; once every accepted lead is routed (or `drain_timeout` passes), their
    latencies from the database and the double-routing check."""
    from routing.models import Lead, LeadStatus

    sent = in_child(post_leads, port, token, rate, seconds, 16, 7, timeout=seconds + 120)
    records = sent["records"]
    ids = [pk for *_, status, pk in records if status == 202]
    wait_for(lambda: not Lead.objects.filter(id__in=ids, status=LeadStatus.RECEIVED).exists(), drain_timeout, 0.2)
    fields = ("status", "occurred_at", "received_at", "assigned_at", "routed_at")
    rows = Lead.objects.filter(id__in=ids).values_list(*fields)
    assigned = [(o, r, a) for s, o, r, a, _ in rows if s == LeadStatus.ASSIGNED]
    last_routed = max((routed for *_, routed in rows if routed), default=None)
    # Below the arrival rate: the workers fell behind and latency grows through the run.
    routed_rate = len(ids) / (last_routed.timestamp() - sent["start"]) if last_routed else 0.0
    return {
        "sent": sent["total"],
        "statuses": dict(Counter(status for *_, status, _ in records)),
        "http": stats_ms([rec[2] for rec in records]),
        "max_send_lag_ms": max((rec[1] for rec in records), default=0) * 1000,
        "latency": stats_ms([(a - o).total_seconds() for o, _, a in assigned]),
        "intake": stats_ms([(r - o).total_seconds() for o, r, _ in assigned]),
        "after_intake": stats_ms([(a - r).total_seconds() for _, r, a in assigned]),
        "routed_per_second": routed_rate,
        "by_second": by_second([(o.timestamp() - sent["start"], (a - o).total_seconds()) for o, _, a in assigned]),
        **routing_outcome(ids),
    }


def warm_up(port: int, token: str) -> None:
    """A few leads routed before the measured run, so gunicorn's and the worker's first-request costs (rule
    compilation, connections) are not counted."""
    from routing.models import Lead, LeadStatus

    ids = post_batches(port, token, synthetic_leads(3, 20), batch_size=1)
    if not wait_for(lambda: not Lead.objects.filter(id__in=ids, status=LeadStatus.RECEIVED).exists(), 60):
        raise RuntimeError("warm-up leads were not routed within 60 s")


def by_second(points: list[tuple[float, float]]) -> list[tuple[int, float, float]]:
    """(second of the run, median ms, max ms) of the latencies of the leads due in that second: shows whether
    latency is flat (a fixed cost) or grows through the run (the workers fall behind)."""
    seconds: dict[int, list[float]] = {}
    for at, latency in points:
        seconds.setdefault(int(at), []).append(latency * 1000)
    return [(second, median(values), max(values)) for second, values in sorted(seconds.items())]


def routing_outcome(ids: list[int]) -> dict:
    """How the leads ended (assigned, exception by reason, still received) and the no-double-routing check:
    exactly one routing decision in the audit trail per routed lead, none for a lead still waiting, and at
    most one exception item per lead."""
    from django.db.models import Count

    from audit.models import AuditAction, AuditEvent
    from exceptions.models import ExceptionItem
    from routing.models import Lead

    statuses = Counter(Lead.objects.filter(id__in=ids).values_list("status", flat=True))
    decisions = Counter(
        n
        for _, n in AuditEvent.objects.filter(action=AuditAction.ROUTING_DECISION, lead_id__in=ids)
        .values_list("lead_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    items = ExceptionItem.objects.filter(lead_id__in=ids)
    items_per_lead = Counter(n for _, n in items.values_list("lead_id").annotate(n=Count("id")).order_by())
    reasons = Counter(items.values_list("reason", flat=True))
    routed = statuses["assigned"] + statuses["exception"]
    once = decisions.get(1, 0) == routed and sum(decisions.values()) == routed and set(items_per_lead) <= {1}
    return {
        "accepted": len(ids),
        "assigned": statuses["assigned"],
        "exception": statuses["exception"],
        "exception_reasons": dict(reasons),
        "still_received": statuses["received"],
        "leads_decided_twice_or_more": sum(count for n, count in decisions.items() if n > 1),
        "routed_exactly_once": once,
    }


def consume(app, names: list[str], queue: str, on: bool) -> None:
    """Make the worker nodes start or stop consuming `queue`; returns once each has confirmed."""
    control = app.control.add_consumer if on else app.control.cancel_consumer
    replies = control(queue, destination=names, reply=True, timeout=5)
    if len(replies) != len(names):
        raise RuntimeError(f"{len(replies)} of {len(names)} workers confirmed consuming={on} {queue}: {replies}")


def queued_lead_ids(redis, queue: str) -> int:
    """Lead ids inside the route_leads messages waiting in `queue` (kombu's Redis list, base64 JSON bodies)."""
    total = 0
    for raw in redis.lrange(queue, 0, -1):
        args = json.loads(base64.b64decode(json.loads(raw)["body"]))[0]
        total += len(args[0])
    return total


def drain_noops(app, redis, names: list[str], count: int, cpu_meter) -> dict:
    """`count` no-op tasks queued while no worker consumes them, then drained: tasks/s."""
    with app.producer_or_acquire() as producer:
        for _ in range(count):
            app.send_task(NOOP_TASK, queue=NOOP_QUEUE, producer=producer)
    with cpu_meter() as cpu:
        began = time.time()
        consume(app, names, NOOP_QUEUE, on=True)
        # acks_late: a message leaves "unacked" only once its task has finished.
        done = wait_for(lambda: redis.llen(NOOP_QUEUE) == 0 and redis.hlen("unacked") == 0, timeout=120, every=0.01)
        elapsed = time.time() - began
    consume(app, names, NOOP_QUEUE, on=False)
    return {
        "tasks": count,
        "seconds": elapsed,
        "per_second": count / elapsed,
        "finished": done,
        "cpu_ms_each": per_item(cpu, count),
    }


def drain_leads(app, redis, names, port: int, token: str, backlog: int, drain_timeout: float, cpu_meter) -> dict:
    """A backlog accepted through the batch API while the workers consume nothing, then drained: leads/s,
    from the moment the workers are told to consume to the last routing decision."""
    from django.db.models import Max

    from routing.models import Lead, LeadStatus

    # A fetch already in flight when a worker stops consuming may still take one message; kombu puts it back
    # ("Requeuing undeliverable message … No consumers" in the log): nothing is lost.
    consume(app, names, BULK, on=False)  # batches are routed on the bulk lane
    ids = post_batches(port, token, synthetic_leads(11, backlog))
    # The intake publishes from a background thread after commit: wait until every lead is in the queue.
    queued = wait_for(lambda: queued_lead_ids(redis, BULK) >= len(ids), timeout=30)
    with cpu_meter() as cpu:
        began = time.time()
        consume(app, names, BULK, on=True)
        wait_for(lambda: not Lead.objects.filter(id__in=ids, status=LeadStatus.RECEIVED).exists(), drain_timeout, 0.05)
    last = Lead.objects.filter(id__in=ids).aggregate(last=Max("routed_at"))["last"]
    elapsed = last.timestamp() - began if last else float("nan")
    return {
        "backlog": len(ids),
        "queued_before_start": queued,
        "seconds": elapsed,
        "per_second": len(ids) / elapsed,
        "cpu_ms_each": per_item(cpu, len(ids)),
        **routing_outcome(ids),
    }


def run_with_workers(count: int, token: str, args) -> dict:
    import redis as redis_client

    from config.celery import app

    fresh_database()
    redis = redis_client.Redis.from_url(BENCH_ENV["CELERY_BROKER_URL"])
    redis.flushdb()
    result = {"workers": count, "loadavg_before": os.getloadavg()}
    with Processes(BENCH_ENV) as processes:
        port = free_port()
        processes.gunicorn(port)
        worker_env = {"DJANGO_SETTINGS_MODULE": args.worker_settings} if args.worker_settings else None
        names = processes.celery_workers(
            app, count, f"{QUEUE},{LIVE},{BULK}", TASKS_MODULE, tag=f"e2e{count}-", env=worker_env
        )

        def cpu_meter():
            return CpuMeter(processes, pg_sessions)

        step = f"[{count} worker{'s' if count > 1 else ''}]"
        print(f"{step} baseline: stamp tasks at {args.rate:g}/s for {args.baseline_seconds:g} s", flush=True)
        with cpu_meter() as cpu:
            result["baseline"] = baseline_at_rate(args.rate, args.baseline_seconds)
        result["baseline"]["cpu_ms_each"] = per_item(cpu, result["baseline"]["ran"])
        print(f"{step} end to end: leads at {args.rate:g}/s for {args.seconds:g} s", flush=True)
        warm_up(port, token)
        with cpu_meter() as cpu:
            result["e2e"] = leads_at_rate(port, token, args.rate, args.seconds, args.drain_timeout)
        result["e2e"]["cpu_ms_each"] = per_item(cpu, result["e2e"]["accepted"])
        print(f"{step} drain: {args.noops} no-op tasks, then a backlog of {args.backlog} leads", flush=True)
        result["noop_drain"] = drain_noops(app, redis, names, args.noops, cpu_meter)
        result["lead_drain"] = drain_leads(app, redis, names, port, token, args.backlog, args.drain_timeout, cpu_meter)
        result["loadavg_after"] = os.getloadavg()
    redis.flushdb()
    return result


def per_item(meter: CpuMeter, count: int) -> dict[str, float]:
    """CPU ms of each server role, and PostgreSQL sessions opened, per item."""
    if not count:
        return {}
    cpu_ms = {role: seconds * 1000 / count for role, seconds in meter.used.items()}
    return {**cpu_ms, "pg_sessions": meter.sessions_opened / count}


def pg_sessions() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        return cursor.fetchone()[0]


def report(results: list[dict]) -> None:
    def row(label, s):
        return f"{label:<34} {s['median']:8.1f} {s['p95']:8.1f} {s['p99']:8.1f} {s['max']:8.1f}   n={s['n']}"

    def cpu(label, used):
        parts = ", ".join(f"{role} {ms:.2f}" for role, ms in used.items() if role != "pg_sessions")
        return f"per {label}: CPU ms {parts}; PostgreSQL sessions opened {used.get('pg_sessions', 0):.2f}"

    print(f"\nEnd-to-end benchmark on {machine()}; {time.strftime('%Y-%m-%d %H:%M %Z')}")
    print(
        f"gunicorn 2 sync workers; Celery nodes of --concurrency=1 on queues {QUEUE}, {LIVE}, {BULK}; "
        "PostgreSQL + Redis on loopback"
    )
    for r in results:
        n, b, e = r["workers"], r["baseline"], r["e2e"]
        load = f"{r['loadavg_before'][0]:.2f} before, {r['loadavg_after'][0]:.2f} after"
        print(f"\n== {n} worker process{'es' if n > 1 else ''} (1-minute load average {load})")
        print(f"{'latency, ms':<34} {'median':>8} {'P95':>8} {'P99':>8} {'max':>8}")
        print(row("conversion → assignment (e2e)", e["latency"]))
        print(row("  of which intake (→ received)", e["intake"]))
        print(row("  of which received → assigned", e["after_intake"]))
        print(row("HTTP POST response", e["http"]))
        print(row("baseline: publish → stamp task", b["latency"]))
        ratio_med = e["latency"]["median"] / b["latency"]["median"]
        ratio_p95 = e["latency"]["p95"] / b["latency"]["p95"]
        goals = (
            f"goals median < 150 ms: {'met' if e['latency']['median'] < 150 else 'MISSED'}, "
            f"P95 < 500 ms: {'met' if e['latency']['p95'] < 500 else 'MISSED'}"
        )
        print(f"e2e / baseline: median ×{ratio_med:.1f}, P95 ×{ratio_p95:.1f}; {goals}")
        print(
            f"routed {e['routed_per_second']:.1f} leads/s from the first send to the last decision; median ms by "
            "second of the run: " + " ".join(f"{med:.0f}" for _, med, _ in e["by_second"])
        )
        print(
            f"leads: {e['sent']} sent, HTTP {e['statuses']}, {e['accepted']} accepted → {e['assigned']} assigned, "
            f"{e['exception']} exceptions {e['exception_reasons']}, {e['still_received']} still received; "
            f"routed exactly once: {e['routed_exactly_once']}; max send lag {e['max_send_lag_ms']:.1f} ms"
        )
        print(cpu("lead at 50/s (intake + routing)", e["cpu_ms_each"]))
        print(
            f"baseline: {b['published']} published, {b['ran']} ran on {b['pids']} pool process(es); "
            f"max send lag {b['max_send_lag_ms']:.1f} ms"
        )
        print(cpu("stamp task", b["cpu_ms_each"]))
        noop, drain = r["noop_drain"], r["lead_drain"]
        print(
            f"drain: {drain['backlog']} leads in {drain['seconds']:.2f} s = {drain['per_second']:,.0f} leads/s "
            f"(routed exactly once: {drain['routed_exactly_once']}, still received {drain['still_received']}); "
            f"no-op ceiling {noop['tasks']} tasks in {noop['seconds']:.2f} s = {noop['per_second']:,.0f} tasks/s"
        )
        print(cpu("lead drained", drain["cpu_ms_each"]))
        print(cpu("no-op task", noop["cpu_ms_each"]))
    if len(results) == 2:
        one, two = (r["lead_drain"]["per_second"] for r in results)
        noop_one, noop_two = (r["noop_drain"]["per_second"] for r in results)
        print(
            f"\nscale-out {results[0]['workers']} → {results[1]['workers']} workers: routing ×{two / one:.2f} "
            f"({one:,.0f} → {two:,.0f} leads/s); no-op ceiling ×{noop_two / noop_one:.2f} "
            f"({noop_one:,.0f} → {noop_two:,.0f} tasks/s)"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=sized(60, 3), help="length of each 50/s end-to-end run")
    parser.add_argument(
        "--rate", type=float, default=sized(50, 20), help="arrival rate, leads (and baseline tasks) per second"
    )
    parser.add_argument("--baseline-seconds", type=float, help="length of each baseline run (default: --seconds)")
    parser.add_argument("--backlog", type=int, default=sized(3000, 100), help="leads queued up front for the drain")
    parser.add_argument("--noops", type=int, default=sized(3000, 100), help="no-op tasks queued up front")
    parser.add_argument(
        "--workers", type=int, nargs="+", default=sized([1, 2], [1]), help="worker process counts to run"
    )
    parser.add_argument("--drain-timeout", type=float, default=120, help="longest wait for leads to be routed")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument(
        "--worker-settings",
        help="Django settings module for the workers only, to try a settings change (import config.settings, "
        "override; put its directory on PYTHONPATH)",
    )
    args = parser.parse_args()
    args.baseline_seconds = args.baseline_seconds or args.seconds

    try:
        token = prepare_template()
        results = [run_with_workers(count, token, args) for count in args.workers]
    finally:
        from django.db import connections

        connections.close_all()
        subprocess.run(["dropdb", *PG, "--if-exists", TEMPLATE], check=True)
    report(results)
    if args.json:
        with open(args.json, "w") as f:
            figures = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M %Z"), "results": results}
            json.dump(figures, f, indent=1)


if __name__ == "__main__":
    main()
