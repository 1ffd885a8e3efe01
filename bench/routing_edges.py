"""Live routing beside the edges (issue 15, finding 5): does a delivery target that never answers, or a replay
of a million leads, move live routing latency? Each case on a fresh copy of the demo database, through real
Celery workers on Redis and gunicorn, with the demo's worker layout: one process on the live lane, one on
the bulk lane and housekeeping, two on the edges (enrichment, deliveries), one on replays.

Live leads are posted one by one over HTTP at --live-rate for --live-seconds; latency is conversion
(`occurred_at`, each post's due time) → routing decision, as in bench/routing_lanes.py.

- quiet: nothing else runs.
- dead target: a delivery target subscribed to every assignment accepts connections and never answers; each
  delivery waits out its 10 s timeout, so the edges worker's two processes are always busy and deliveries
  back up behind them.
- history only: --replay-leads routed leads are seeded beside the demo's (SQL, then VACUUM ANALYZE), copies
  of 200 routed leads, so the live leads' people have thousands of earlier leads; nothing else runs.
- replay: the same history, and a replay of all of it started as the live leads begin; its run time is
  printed (the figure means something only if it outlasts the live window).

    .venv/bin/python bench/routing_edges.py [--live-rate 5] [--live-seconds 30] [--replay-leads 1000000]
"""

import argparse
import multiprocessing
import random
import socket
import threading
import time

from _load import post_leads
from _processes import Processes, free_port
from _setup import BENCH_ENV, contention, database_from_template, demo_template, machine, percentile, sized

QUEUE = "handoff-bench-edges"
LANES = {lane: f"{QUEUE}-{lane}" for lane in ("live", "bulk", "enrichment", "deliveries", "replays")}
BENCH_ENV["CELERY_TASK_DEFAULT_QUEUE"] = QUEUE
DATABASE = BENCH_ENV["DATABASE_URL"].rsplit("/", 1)[1]
TEMPLATE = f"{DATABASE}_edges_template"
ROUTED_SEEDS = 200  # leads routed in-process, then copied to make the replay's history


class BlackHole:
    """A TCP server on loopback that accepts every connection and never answers (a hung CRM)."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0), backlog=512)
        self.port = self.server.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            self.held.append(connection)

    def close(self) -> None:
        self.server.close()
        for connection in self.held:
            connection.close()


def add_dead_target(port: int) -> None:
    from routing.integrations.models import DeliveryTarget

    DeliveryTarget.objects.create(
        name="Dead CRM",
        url=f"http://127.0.0.1:{port}/hooks",
        secret="bench-secret",
        events=["lead.assigned", "lead.reassigned"],
        timeout_seconds=10,
        max_attempts=8,
    )


def seed_routed_history(count: int) -> None:
    """`count` routed leads for the replay: ROUTED_SEEDS synthetic leads routed in-process by the production
    rules, then copied (SQL) with new lead ids and earlier received times until there are `count`."""
    from django.db import connection

    from routing.demo.leads import synthetic_lead
    from routing.intake import leads_intake
    from routing.models import Source
    from routing.services import leads_route

    source = Source.objects.order_by("id").first()
    rng = random.Random(5)
    _, created = leads_intake(source=source, payloads=[synthetic_lead(rng) for _ in range(ROUTED_SEEDS)])
    leads_route(lead_ids=created)
    copies = max(0, count // ROUTED_SEEDS - 1)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'routing_lead' AND column_name <> 'id'"
        )
        columns = [name for (name,) in cursor.fetchall()]
        chosen = {"lead_id": "t.lead_id || '-h' || g", "received_at": "t.received_at - make_interval(mins => g)"}
        select = ", ".join(chosen.get(name, f"t.{name}") for name in columns)
        cursor.execute(
            f"INSERT INTO routing_lead ({', '.join(columns)}) SELECT {select} "
            "FROM routing_lead t CROSS JOIN generate_series(1, %s) g WHERE t.id = ANY(%s)",
            [copies, created],
        )
        # Now, not during the live window: autovacuum would otherwise take up the million new rows then.
        cursor.execute("VACUUM (ANALYZE) routing_lead")


def start_replay(leads: int) -> int:
    from routing.dispatch import replay_enqueue
    from routing.governance.replay import replay_request

    run = replay_request(by=None, limit=leads)
    replay_enqueue(run.pk)
    return run.pk


def live_latency(case: str, token: str, rate: float, seconds: float, replay_leads: int, nice: int) -> dict:
    import redis as redis_client

    from config.celery import app
    from routing.governance.models import ReplayRun, ReplayStatus
    from routing.models import Lead, LeadStatus

    database_from_template(TEMPLATE)
    redis_client.Redis.from_url(BENCH_ENV["CELERY_BROKER_URL"]).flushdb()
    result: dict = {"case": case if not nice else f"{case}, edges at nice {nice}"}
    hole = BlackHole() if case == "dead target" else None
    if hole:
        add_dead_target(hole.port)
    if case in ("replay", "history only"):
        began = time.monotonic()
        seed_routed_history(replay_leads)
        result["seeded_seconds"] = time.monotonic() - began
    with Processes(BENCH_ENV) as processes:
        port = free_port()
        processes.gunicorn(port)
        processes.celery_workers(app, 1, LANES["live"], "routing.tasks", tag=f"{case[:4]}-live-")
        processes.celery_workers(app, 1, f"{QUEUE},{LANES['bulk']}", "routing.tasks", tag=f"{case[:4]}-bulk-")
        edges = f"{LANES['enrichment']},{LANES['deliveries']}"
        processes.celery_workers(app, 2, edges, "routing.integrations.tasks", tag=f"{case[:4]}-edges-", nice=nice)
        processes.celery_workers(
            app, 1, LANES["replays"], "routing.governance.tasks", tag=f"{case[:4]}-replays-", nice=nice
        )
        out = multiprocessing.Queue()
        live = multiprocessing.Process(target=post_leads, args=(port, token, rate, seconds, 2, 7, out))
        run_id = start_replay(replay_leads) if case == "replay" else None
        live.start()
        sent = out.get(timeout=seconds + 120)
        live.join()
        posted = [lead_pk for *_, status, lead_pk in sent["records"] if status == 202]
        deadline = time.monotonic() + 60
        while Lead.objects.filter(id__in=posted, status=LeadStatus.RECEIVED).exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        rows = Lead.objects.filter(id__in=posted).exclude(routed_at=None).values_list("occurred_at", "routed_at")
        latencies = [(routed - occurred).total_seconds() for occurred, routed in rows]
        result.update(
            posted=len(sent["records"]),
            routed=len(latencies),
            p50_ms=percentile(latencies, 50) * 1000,
            p95_ms=percentile(latencies, 95) * 1000,
            p99_ms=percentile(latencies, 99) * 1000,
            max_ms=max(latencies, default=float("nan")) * 1000,
            window_end=sent["start"] + seconds,
        )
        if hole:
            from routing.integrations.models import OutboxEvent

            result["hung_calls"] = len(hole.held)
            result["deliveries_pending"] = OutboxEvent.objects.exclude(status="delivered").count()
            hole.close()
        if run_id:
            deadline = time.monotonic() + 1800
            while ReplayRun.objects.get(pk=run_id).status not in (ReplayStatus.DONE, ReplayStatus.FAILED):
                if time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            run = ReplayRun.objects.get(pk=run_id)
            result["replay"] = {
                "status": run.status,
                "leads": run.total,
                "seconds": (run.finished_at - run.started_at).total_seconds() if run.finished_at else float("nan"),
                "outlasted_window": bool(run.finished_at and run.finished_at.timestamp() > result["window_end"]),
            }
    result["load"] = contention()
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--live-rate", type=float, default=5.0, help="live leads per second")
    parser.add_argument("--live-seconds", type=float, default=sized(30, 2), help="how long live leads are posted")
    parser.add_argument("--replay-leads", type=int, default=sized(1_000_000, 2_000), help="leads the replay reads")
    parser.add_argument(
        "--cases",
        default="quiet,dead target,history only,replay",
        help="comma-separated; @N: the edges worker at nice N",
    )
    args = parser.parse_args()

    token = demo_template(TEMPLATE)
    results = []
    for case in args.cases.split(","):
        name, _, nice = case.partition("@")
        results.append(live_latency(name, token, args.live_rate, args.live_seconds, args.replay_leads, int(nice or 0)))
    print(f"# Live routing beside dead edges ({machine()})")
    print(
        f"1 worker process on the live lane, 1 on bulk + housekeeping, 2 on enrichment/deliveries, 1 on replays; "
        f"gunicorn 2 sync workers; {args.live_rate:g} live leads/s for {args.live_seconds:g} s"
    )
    for r in results:
        line = (
            f"{r['case']}: {r['routed']} of {r['posted']} routed; conversion → routed P50 {r['p50_ms']:.0f} ms, "
            f"P95 {r['p95_ms']:.0f} ms, P99 {r['p99_ms']:.0f} ms, max {r['max_ms']:.0f} ms; {r['load']}"
        )
        if "hung_calls" in r:
            line += f"; {r['hung_calls']} delivery calls hung, {r['deliveries_pending']} events undelivered"
        if "replay" in r:
            replay = r["replay"]
            line += (
                f"; replay of {replay['leads']:,} leads {replay['status']} in {replay['seconds']:.1f} s "
                f"({'outlasted' if replay['outlasted_window'] else 'ended inside'} the live window; "
                f"seeding took {r['seeded_seconds']:.0f} s)"
            )
        print(line)


if __name__ == "__main__":
    main()
