"""Intake over HTTP against baselines measured in the same run (issue 7).

gunicorn (sync workers) serves the product on a freshly migrated PostgreSQL database, with Redis as the
broker and no Celery worker (routing tasks are only published); wrk, a separate process on loopback, makes
the load with bench/wrk/leads.lua, every lead with a lead_id never used before. Baseline and product run
alternately with the same wrk settings; each figure is the median over the rounds, and the ratio is the
median of the per-round ratios (each pair ran back to back, so the noise of this shared machine cancels).

- Single lead: POST /api/v1/leads/ against a bare Django view that parses the JSON and INSERTs one row
  (bench/baseline/, same server, same settings and middleware). Goal: >= 50% of the baseline's requests/s.
- Batch: POST /api/v1/leads/batch/ with 500 leads a request against raw INSERTs of the same rows (every
  column of the lead table) into a copy of the lead table (same indexes), 500 rows per transaction, from as
  many client processes as wrk has connections: the physical limit. Goal: >= 5,000 leads/s.
- For both, the CPU time per lead of the serving processes (gunicorn workers, their PostgreSQL backends;
  for the raw baseline its client processes and their backends), read from /proc: far steadier than
  throughput on a shared machine, where another process's load moves requests/s but hardly the CPU a lead costs.

    python bench/http_intake.py [--seconds 6] [--rounds 3] [--workers 2]    # --seconds 2 --rounds 1: smoke run
"""

import argparse
import datetime as dt
import json
import multiprocessing as mp
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from _processes import Processes
from _setup import BENCH_ENV, machine, median, percentile, recreate_database, sized

HERE = Path(__file__).resolve().parent
LEADS_LUA = HERE / "wrk" / "leads.lua"
SERVER_SETTINGS = "bench.baseline.settings"
BATCH_SIZE = 500  # settings.HANDOFF["MAX_BATCH_ITEMS"], checked at start
DISTINCT_BODIES = 2000
COPY_TABLE = "bench_lead_copy"
SINGLE_GOAL_RATIO = 0.5
BATCH_GOAL_LEADS_PER_S = 5000


@dataclass
class Run:
    """One load run: wrk against an endpoint, or the raw INSERT clients."""

    requests: int
    seconds: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    sent_leads: int = 0
    accepted: int = 0
    duplicates: int = 0
    invalid: int = 0
    unexpected: int = 0
    socket_errors: int = 0
    stored: int = 0  # rows the run added to its table, counted once the server is idle again
    app_cpu_seconds: float = 0.0  # CPU time of the gunicorn workers (of the raw clients, for the raw baseline)
    db_cpu_seconds: float = 0.0  # ... and of their PostgreSQL backends

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds

    @property
    def leads_per_second(self) -> float:
        return self.accepted / self.seconds

    @property
    def cpu_us_per_lead(self) -> float:
        """Unlike throughput, hardly moved by whatever else the machine is running."""
        spent = self.app_cpu_seconds + self.db_cpu_seconds
        return spent / self.stored * 1e6 if self.stored else float("nan")

    @property
    def app_share(self) -> float:
        spent = self.app_cpu_seconds + self.db_cpu_seconds
        return self.app_cpu_seconds / spent if spent else float("nan")


# ---------------------------------------------------------------- set-up


def prepare_database(bodies: list[dict]) -> tuple[str, list[tuple], list[str]]:
    """A fresh, migrated bench database with one capture source, the baseline table and a copy of the lead
    table. Returns the source's token, and the lead rows (one tuple per body, columns as the lead table)
    and their column names for the raw INSERT baseline."""
    recreate_database()
    from django.conf import settings
    from django.db import connection

    from bench.baseline.views import TABLE_DDL
    from routing.sources import source_create

    if settings.HANDOFF["MAX_BATCH_ITEMS"] != BATCH_SIZE:
        sys.exit(f"The batch limit is now {settings.HANDOFF['MAX_BATCH_ITEMS']}; update BATCH_SIZE.")
    source, token = source_create(name="bench")
    with connection.cursor() as cursor:
        cursor.execute(TABLE_DDL)
        cursor.execute(f"CREATE TABLE {COPY_TABLE} (LIKE routing_lead INCLUDING ALL)")
    rows, columns = lead_rows(source, bodies)
    connection.close()  # the raw INSERT clients are forked from this process
    return token, rows, columns


def lead_rows(source, bodies: list[dict]) -> tuple[list[tuple], list[str]]:
    """The rows intake would write for these bodies: validated by the intake model, every column of the
    lead table (model defaults where intake sets nothing)."""
    from django.utils import timezone
    from psycopg.types.json import Jsonb

    from routing.intake import LeadIn
    from routing.models import Lead, LeadStatus

    fields = [f for f in Lead._meta.concrete_fields if not f.primary_key]
    now = timezone.now()
    rows = []
    for body in bodies:
        values = LeadIn.model_validate({"lead_id": "x", **body}).model_dump()
        values.update(origin_id=source.pk, received_at=now, status=LeadStatus.RECEIVED)
        values["occurred_at"] = values["occurred_at"] or now
        row = []
        for f in fields:
            value = values.get(f.attname, f.get_default())
            row.append(Jsonb(value) if f.get_internal_type() == "JSONField" else value)
        rows.append(tuple(row))
    return rows, [f.column for f in fields]


def synthetic_bodies(n: int) -> list[dict]:
    """n realistic leads (the demo's generator), without lead_id: the load scripts give each a fresh one."""
    from routing.demo.leads import synthetic_lead

    rng = random.Random(7)
    bodies = []
    for _ in range(n):
        lead = synthetic_lead(rng)
        del lead["lead_id"]
        bodies.append(lead)
    return bodies


def write_bodies_file(bodies: list[dict], directory: str) -> str:
    """One lead per line as leads.lua wants it: the JSON object without its opening brace."""
    path = Path(directory) / "leads.txt"
    path.write_text("".join(json.dumps(body, ensure_ascii=False)[1:] + "\n" for body in bodies), encoding="utf-8")
    return str(path)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(processes: Processes, port: int, workers: int) -> subprocess.Popen:
    """gunicorn serving the product and the baseline view (bench.baseline); `processes` stops it (and its
    workers, in the same process group) however the benchmark ends."""
    return processes.gunicorn(port, workers, app="bench.baseline.wsgi", env={"DJANGO_SETTINGS_MODULE": SERVER_SETTINGS})


# ---------------------------------------------------------------- CPU accounting

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int | str) -> list[str] | None:
    try:  # the command name in parentheses may hold spaces: split after it
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (0 once it is gone)."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS if fields else 0.0


def child_pids(parent: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat_fields(entry.name)) and int(fields[1]) == parent:
            children.append(int(entry.name))
    return children


class ServerMeter:
    """What serving a run cost: CPU time of the gunicorn workers and of the bench database's PostgreSQL
    backends (wrk, Redis and everything else on the machine left out), and the rows it stored."""

    def __init__(self, server_pid: int):
        self.server_pid = server_pid

    def snapshot(self, table: str) -> tuple[dict[str, dict[int, float]], int]:
        """({"app": {pid: CPU seconds}, "db": {…}}, rows in table)."""
        import psycopg

        with psycopg.connect(BENCH_ENV["DATABASE_URL"], autocommit=True) as conn:
            backends = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"  # not autovacuum, not this one
            ).fetchall()
            rows = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        processes = {"app": child_pids(self.server_pid), "db": [pid for (pid,) in backends]}
        return {kind: {pid: cpu_seconds(pid) for pid in pids} for kind, pids in processes.items()}, rows

    def settled(self, table: str) -> tuple[dict[str, dict[int, float]], int]:
        """A snapshot once the requests still in flight when wrk stopped have been stored."""
        cpu, rows = self.snapshot(table)
        for _ in range(50):  # at most 10 s
            time.sleep(0.2)
            previous = rows
            cpu, rows = self.snapshot(table)
            if rows == previous:
                break
        return cpu, rows


# ---------------------------------------------------------------- load


class Wrk:
    """wrk with fixed threads and connections; every run gets its own tag, so lead_ids never repeat."""

    def __init__(self, base_url: str, bodies_file: str, token: str, threads: int, meter: ServerMeter):
        self.base_url, self.bodies_file, self.token, self.threads = base_url, bodies_file, token, threads
        self.meter = meter
        self.runs = 0

    def run(self, path: str, table: str, per_request: int, connections: int, seconds: int, token: str = "") -> Run:
        """One wrk run against path, which stores into table; token "-" sends no Authorization header."""
        self.runs += 1
        cpu_before, rows_before = self.meter.snapshot(table)
        tag = f"r{os.getpid()}x{self.runs}"
        command = [
            "wrk",
            f"-t{min(self.threads, connections)}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "30s",
            "-s",
            str(LEADS_LUA),
            self.base_url + path,
            "--",
            self.bodies_file,
            str(per_request),
            token or self.token,
            tag,
        ]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        cpu_after, rows_after = self.meter.settled(table)
        line = next((line for line in output.splitlines() if line.startswith("BENCH-RESULT ")), None)
        if line is None:
            raise RuntimeError(f"wrk printed no result:\n{output}")
        values = {key: int(value) for key, value in (pair.split("=") for pair in line.split()[1:])}
        return Run(
            requests=values["requests"],
            seconds=values["duration_us"] / 1e6,
            p50_ms=values["p50_us"] / 1000,
            p95_ms=values["p95_us"] / 1000,
            p99_ms=values["p99_us"] / 1000,
            sent_leads=values["sent_leads"],
            accepted=values["accepted"],
            duplicates=values["duplicates"],
            invalid=values["invalid"],
            unexpected=values["unexpected"],  # every status but the expected ones, so every non-2xx too
            socket_errors=sum(values[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts")),
            stored=rows_after - rows_before,
            app_cpu_seconds=spent_since(cpu_before["app"], cpu_after["app"]),
            db_cpu_seconds=spent_since(cpu_before["db"], cpu_after["db"]),
        )


def spent_since(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(spent - before.get(pid, 0.0) for pid, spent in after.items())


def raw_insert_client(dsn, sql, rows, lead_id_at, client_no, tag, seconds, barrier, out):
    """One raw client on its own connection: 500 rows per transaction (as one batch request), inserted with
    executemany, which psycopg 3 pipelines (one round trip), until the time is up. Its CPU time counts its
    own (building the rows, as a server would) and its PostgreSQL backend's."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn, conn.cursor() as cursor:
        counter, latencies = 0, []
        backend = conn.info.backend_pid
        barrier.wait()
        app_before, db_before = time.process_time(), cpu_seconds(backend)
        started = time.time()
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            batch = []
            for _ in range(BATCH_SIZE):
                counter += 1
                row = list(rows[(client_no * 7919 + counter) % len(rows)])
                row[lead_id_at] = f"{tag}-{client_no}-{counter}"
                batch.append(row)
            began = time.perf_counter()
            with conn.transaction():
                cursor.executemany(sql, batch)
            latencies.append(time.perf_counter() - began)
        cpu = (time.process_time() - app_before, cpu_seconds(backend) - db_before)
        out.put((counter, latencies, started, time.time(), cpu))


def raw_inserts(rows: list[tuple], columns: list[str], clients: int, seconds: int, tag: str) -> Run:
    # executemany, not one multi-row VALUES statement: psycopg spends ~90 ms converting a statement with
    # 13,500 placeholders in Python, which would make the "limit" slower than the product.
    sql = f"INSERT INTO {COPY_TABLE} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"
    context = mp.get_context("fork")
    out, barrier = context.Queue(), context.Barrier(clients)
    args = (BENCH_ENV["DATABASE_URL"], sql, rows, columns.index("lead_id"))
    procs = [
        context.Process(target=raw_insert_client, args=(*args, c, tag, seconds, barrier, out)) for c in range(clients)
    ]
    for proc in procs:
        proc.start()
    results = [out.get() for _ in procs]
    for proc in procs:
        proc.join()
    counts, latency_lists, starts, ends, cpu = zip(*results, strict=True)
    latencies = [latency for latency_list in latency_lists for latency in latency_list]
    inserted = sum(counts)
    return Run(
        requests=len(latencies),
        seconds=max(ends) - min(starts),
        p50_ms=median(latencies) * 1000,
        p95_ms=percentile(latencies, 95) * 1000,
        p99_ms=percentile(latencies, 99) * 1000,
        sent_leads=inserted,
        accepted=inserted,
        stored=inserted,
        app_cpu_seconds=sum(app for app, _ in cpu),
        db_cpu_seconds=sum(db for _, db in cpu),
    )


# ---------------------------------------------------------------- checks and report


def check_runs(label: str, runs: list[Run], problems: list[str]) -> None:
    """Every response a success and every lead a new row. A run stores every lead it had accepted, plus
    those of requests still in flight when wrk stopped (stored, never answered), at most all it sent."""
    for field in ("duplicates", "invalid", "unexpected", "socket_errors"):
        if total := sum(getattr(run, field) for run in runs):
            problems.append(f"{label}: {total} {field.replace('_', ' ')}")
    for run in runs:
        if not run.accepted <= run.stored <= run.sent_leads:
            problems.append(
                f"{label}: a run stored {run.stored} rows; expected between {run.accepted} accepted and "
                f"{run.sent_leads} sent"
            )
    accepted, stored, sent = (sum(getattr(r, f) for r in runs) for f in ("accepted", "stored", "sent_leads"))
    print(f"  check {label}: {accepted:,} accepted, {stored:,} stored, {sent:,} sent", flush=True)


def per_round_ratio(pairs: list[tuple[Run, Run]], measure) -> float:
    """The median over rounds of product / baseline, each pair measured back to back."""
    return median([measure(product) / measure(baseline) for baseline, product in pairs])


def middle(runs: list[Run], measure) -> float:
    return statistics.median(measure(run) for run in runs)


def latencies(runs: list[Run], *names: str) -> str:
    return " / ".join(f"{middle(runs, lambda run, name=name: getattr(run, name)):.1f}" for name in names)


def print_round(label: str, baseline_name: str, baseline: Run, product: Run, measure, unit: str) -> None:
    print(
        f"  {label}: {baseline_name} {measure(baseline):,.0f} {unit}, {baseline.cpu_us_per_lead:,.0f} µs CPU a lead; "
        f"intake {measure(product):,.0f} {unit}, {product.cpu_us_per_lead:,.0f} µs CPU a lead "
        f"({measure(product) / measure(baseline):.0%})",
        flush=True,
    )


def cpu(runs: list[Run]) -> str:
    """CPU per lead, and the application's share of it."""
    per_lead, app_share = middle(runs, lambda run: run.cpu_us_per_lead), middle(runs, lambda run: run.app_share)
    return f"{per_lead:,.0f} ({app_share:.0%} app)"


def report(args, wrk_version: str, single: list[tuple[Run, Run]], batch: list[tuple[Run, Run]]) -> None:
    """The block docs/benchmarks.md takes: when, where, how, and a Markdown table of the figures."""
    bare, intake = [b for b, _ in single], [p for _, p in single]
    raw, batches = [b for b, _ in batch], [p for _, p in batch]
    rps, base_rps = middle(intake, lambda r: r.per_second), middle(bare, lambda r: r.per_second)
    lps, raw_rps = middle(batches, lambda r: r.leads_per_second), middle(raw, lambda r: r.leads_per_second)
    single_ratio = per_round_ratio(single, lambda r: r.per_second)
    batch_ratio = per_round_ratio(batch, lambda r: r.leads_per_second)
    single_met = "met" if single_ratio >= SINGLE_GOAL_RATIO else "**not met**"
    batch_met = "met" if lps >= BATCH_GOAL_LEADS_PER_S else "**not met**"
    lines = [
        "",
        f"== Intake over HTTP, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        f"machine: {machine()}",
        "command: python bench/http_intake.py" + "".join(f" {a}" for a in sys.argv[1:]),
        f"server:  gunicorn, {args.workers} sync workers, bench.baseline.settings (the product's settings, DEBUG off),"
        " PostgreSQL and Redis on loopback, no Celery worker",
        f"load:    {wrk_version}, {args.threads} threads; {args.rounds} alternating rounds of {args.seconds} s a side;"
        " medians of rounds, ratio = median of per-round ratios",
        "",
        "| figure | Handoff | baseline | ratio | goal |",
        "|---|---:|---:|---:|---|",
        f"| single lead, requests/s ({args.connections} connections) | {rps:,.0f} | {base_rps:,.0f} "
        f"(bare Django view, one INSERT) | {single_ratio:.0%} | >= {SINGLE_GOAL_RATIO:.0%} of baseline: {single_met} |",
        f"| single lead, P50 / P95 / P99 ms | {latencies(intake, 'p50_ms', 'p95_ms', 'p99_ms')} "
        f"| {latencies(bare, 'p50_ms', 'p95_ms', 'p99_ms')} | | |",
        f"| batch of {BATCH_SIZE}, leads/s ({args.batch_connections} connections) | {lps:,.0f} | {raw_rps:,.0f} "
        f"(raw INSERTs, {BATCH_SIZE} rows a transaction) | {batch_ratio:.0%} "
        f"| >= {BATCH_GOAL_LEADS_PER_S:,} leads/s: {batch_met} |",
        f"| batch, P50 / P95 ms per request (baseline: per transaction) | {latencies(batches, 'p50_ms', 'p95_ms')} "
        f"| {latencies(raw, 'p50_ms', 'p95_ms')} | | |",
        f"| single lead, CPU µs per lead (app + PostgreSQL backend) | {cpu(intake)} | {cpu(bare)} "
        f"| {per_round_ratio(single, lambda r: r.cpu_us_per_lead):.1f}× | |",
        f"| batch, CPU µs per lead (app + PostgreSQL backend) | {cpu(batches)} | {cpu(raw)} "
        f"| {per_round_ratio(batch, lambda r: r.cpu_us_per_lead):.1f}× | |",
    ]
    print("\n".join(lines), flush=True)


# ---------------------------------------------------------------- main


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=sized(6, 1), help="length of each measured run (default 6)")
    parser.add_argument("--rounds", type=int, default=sized(3, 1), help="baseline/product pairs per figure (default 3)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers (default 2)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--connections", type=int, help="wrk connections, single lead (default 2 per worker)")
    parser.add_argument("--batch-connections", type=int, help="wrk connections and raw clients, batch (same)")
    args = parser.parse_args()
    # Two connections per sync worker: one being served, one waiting in the accept queue, so no worker idles
    # between requests and latency is not inflated by a long queue.
    args.connections = args.connections or 2 * args.workers
    args.batch_connections = args.batch_connections or 2 * args.workers
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk (make bench installs it).")
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split(" [")[0].strip()

    import redis

    broker = redis.Redis.from_url(BENCH_ENV["CELERY_BROKER_URL"])
    broker.flushdb()
    bodies = synthetic_bodies(DISTINCT_BODIES)
    token, rows, columns = prepare_database(bodies)
    from bench.baseline.views import TABLE as baseline_table  # once Django is set up

    port = free_port()
    try:
        with Processes(BENCH_ENV) as processes, tempfile.TemporaryDirectory() as directory:
            server = start_server(processes, port, args.workers)
            bodies_file = write_bodies_file(bodies, directory)
            wrk = Wrk(f"http://127.0.0.1:{port}", bodies_file, token, args.threads, ServerMeter(server.pid))

            def baseline_run(seconds):
                return wrk.run("/bench/baseline/insert/", baseline_table, 1, args.connections, seconds, token="-")

            def single_run(seconds):
                return wrk.run("/api/v1/leads/", "routing_lead", 1, args.connections, seconds)

            def batch_run(seconds):
                return wrk.run("/api/v1/leads/batch/", "routing_lead", BATCH_SIZE, args.batch_connections, seconds)

            warm = 1 if args.seconds < 5 else 2
            print(f"warming up ({warm} s per endpoint)", flush=True)
            warm_base, warm_single, warm_batch = [baseline_run(warm)], [single_run(warm)], [batch_run(warm)]

            single, batch = [], []
            for round_no in range(1, args.rounds + 1):
                base, intake = baseline_run(args.seconds), single_run(args.seconds)
                single.append((base, intake))
                print_round(f"round {round_no} single", "baseline", base, intake, lambda r: r.per_second, "req/s")
            for round_no in range(1, args.rounds + 1):
                raw = raw_inserts(rows, columns, args.batch_connections, args.seconds, f"raw{round_no}")
                intake = batch_run(args.seconds)
                batch.append((raw, intake))
                print_round(f"round {round_no} batch", "raw", raw, intake, lambda r: r.leads_per_second, "leads/s")
    finally:
        broker.flushdb()  # the routing tasks nobody consumed

    problems: list[str] = []
    check_runs("baseline", warm_base + [b for b, _ in single], problems)
    check_runs("intake", warm_single + warm_batch + [p for _, p in single] + [p for _, p in batch], problems)
    report(args, wrk_version, single, batch)
    if problems:
        sys.exit("\nThe figures are not valid:\n  " + "\n  ".join(problems))


if __name__ == "__main__":
    main()
