"""The two routing lanes under a bulk backlog, through real Celery workers on Redis.

1. Drain rate: a backlog of leads accepted by the intake service and published on the bulk lane while no
   worker consumes, then drained by 1 worker process, and (a fresh database) by 2; leads/s from the moment
   the workers are told to consume to the last routing decision.
2. Live lane during the drain (2 processes, the bigger backlog): leads posted one by one over HTTP (gunicorn)
   at a steady rate while the backlog drains; conversion (occurred_at, the due time of each post) → assignment.

Workers as the README lays them out: one process for the live lane, and 1 or 2 processes for the bulk lane
(and the default queue). The drain rate counts the bulk processes.

    .venv/bin/python bench/routing_lanes.py [--backlog 100000] [--backlog-one 20000] [--live-rate 5]
"""

import argparse
import multiprocessing
import os
import random
import time

from _load import post_leads
from _processes import Processes, free_port
from _setup import BENCH_ENV, contention, database_from_template, demo_template, machine, percentile, sized

QUEUE = "handoff-bench-lanes"
LIVE, BULK = f"{QUEUE}-live", f"{QUEUE}-bulk"
BENCH_ENV["CELERY_TASK_DEFAULT_QUEUE"] = QUEUE
DATABASE = BENCH_ENV["DATABASE_URL"].rsplit("/", 1)[1]
TEMPLATE = f"{DATABASE}_lanes_template"


def prepare_template() -> str:
    return demo_template(TEMPLATE)


def fresh_database() -> None:
    database_from_template(TEMPLATE)


def backlog_of(count: int) -> list[int]:
    """`count` leads through the intake service, published on the bulk lane (nobody consumes it yet)."""
    from django.conf import settings

    from routing.demo.leads import synthetic_lead
    from routing.dispatch import Lane, routing_enqueue
    from routing.intake import leads_intake
    from routing.models import Source

    if os.environ.get("BENCH_ROUTE_CHUNK"):  # leads per bulk routing task (default: HANDOFF_ROUTE_CHUNK_SIZE)
        settings.HANDOFF["ROUTE_CHUNK_SIZE"] = int(os.environ["BENCH_ROUTE_CHUNK"])
    source = Source.objects.order_by("id").first()
    rng = random.Random(11)
    ids: list[int] = []
    for start in range(0, count, 500):
        _, created = leads_intake(source=source, payloads=[synthetic_lead(rng) for _ in range(min(500, count - start))])
        routing_enqueue(created, lane=Lane.BULK)
        ids += created
    return ids


def consume(app, names: list[str], queue: str, on: bool) -> None:
    control = app.control.add_consumer if on else app.control.cancel_consumer
    replies = control(queue, destination=names, reply=True, timeout=5)
    if len(replies) != len(names):
        raise RuntimeError(f"{len(replies)} of {len(names)} workers confirmed consuming={on} {queue}")


def wait_for(condition, timeout: float, every: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return False


def drain(workers: int, backlog: int, token: str, live_rate: float, live_seconds: float = 0) -> dict:
    import redis as redis_client
    from django.db.models import Max

    from config.celery import app
    from routing.models import Lead, LeadStatus

    fresh_database()
    redis_client.Redis.from_url(BENCH_ENV["CELERY_BROKER_URL"]).flushdb()
    result: dict = {"workers": workers, "backlog": backlog}
    with Processes(BENCH_ENV) as processes:
        port = free_port()
        processes.gunicorn(port)
        # The README's layout: a process of its own for the live lane, `workers` processes for the bulk lane.
        processes.celery_workers(app, 1, LIVE, "routing.tasks", tag=f"live{workers}-")
        names = processes.celery_workers(app, workers, f"{QUEUE},{BULK}", "routing.tasks", tag=f"bulk{workers}-")
        consume(app, names, BULK, on=False)
        ids = backlog_of(backlog)
        live = None
        if live_rate:
            out = multiprocessing.Queue()
            seconds = live_seconds
            live = multiprocessing.Process(target=post_leads, args=(port, token, live_rate, seconds, 2, 5, out))
        began = time.time()
        consume(app, names, BULK, on=True)
        if live:
            live.start()
        drained = wait_for(lambda: not Lead.objects.filter(id__in=ids, status=LeadStatus.RECEIVED).exists(), 900)
        last = Lead.objects.filter(id__in=ids).aggregate(last=Max("routed_at"))["last"]
        result["seconds"] = (last.timestamp() - began) if (drained and last) else float("nan")
        result["per_second"] = backlog / result["seconds"]
        if live:
            sent = out.get(timeout=seconds + 120)
            live.join()
            posted = [lead_pk for *_, status, lead_pk in sent["records"] if status == 202]
            wait_for(lambda: not Lead.objects.filter(id__in=posted, status=LeadStatus.RECEIVED).exists(), 60)
            rows = Lead.objects.filter(id__in=posted).exclude(routed_at=None)
            rows = rows.values_list("occurred_at", "received_at", "routed_at")
            latencies = [(routed - occurred).total_seconds() for occurred, _, routed in rows]
            intake = [(received - occurred).total_seconds() for occurred, received, _ in rows]
            routing = [(routed - received).total_seconds() for _, received, routed in rows]
            during = sum(1 for lead_pk in posted if lead_pk is not None)
            result["live"] = {
                "posted": len(sent["records"]),
                "accepted": during,
                "routed": len(latencies),
                "p50_ms": percentile(latencies, 50) * 1000,
                "p95_ms": percentile(latencies, 95) * 1000,
                "p99_ms": percentile(latencies, 99) * 1000,
                "max_ms": max(latencies, default=float("nan")) * 1000,
                "intake_p95_ms": percentile(intake, 95) * 1000,  # due time → stored (send lag, the request)
                "routing_p95_ms": percentile(routing, 95) * 1000,  # stored → routed (publish, lane, worker)
            }
    result["load"] = contention()
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backlog", type=int, default=sized(100_000, 300), help="drained by 2 bulk processes")
    parser.add_argument("--backlog-one", type=int, default=sized(20_000, 200), help="drained by 1 bulk process")
    parser.add_argument("--live-rate", type=float, default=5.0, help="live leads per second during the 2-process drain")
    parser.add_argument("--live-seconds", type=float, default=sized(60, 2), help="how long live leads are posted")
    args = parser.parse_args()

    token = prepare_template()
    one = drain(1, args.backlog_one, token, live_rate=0)
    two = drain(2, args.backlog, token, live_rate=args.live_rate, live_seconds=args.live_seconds)
    print(f"# Routing lanes ({machine()})")
    print(f"one worker process on {LIVE}; 1 or 2 on {QUEUE},{BULK}; gunicorn 2 sync workers")
    for r in (one, two):
        print(
            f"{r['workers']} bulk worker process(es): {r['backlog']:,} leads drained in {r['seconds']:.1f} s = "
            f"{r['per_second']:,.0f} leads/s ({r['per_second'] / r['workers']:,.0f} per process); {r['load']}"
        )
    print(f"scale-out 1 → 2 processes: ×{two['per_second'] / one['per_second']:.2f}")
    if "live" in two:
        live = two["live"]
        print(
            f"live lane during the 2-process drain: {live['routed']} of {live['posted']} posted leads routed; "
            f"conversion → routed P50 {live['p50_ms']:.0f} ms, P95 {live['p95_ms']:.0f} ms, "
            f"P99 {live['p99_ms']:.0f} ms, max {live['max_ms']:.0f} ms; of which intake P95 "
            f"{live['intake_p95_ms']:.0f} ms, received → routed P95 {live['routing_p95_ms']:.0f} ms"
        )


if __name__ == "__main__":
    main()
