"""Same-run baselines for the benchmarks: the floor of each job, measured interleaved with the real thing.

The machine is shared and noisy, so each figure is paired with a baseline measured in the same run,
alternating (baseline, real, baseline, real …) so that noise hits both, and reported as a ratio too:
real time / baseline time, which for throughputs is baseline rate / real rate. Either way the ratio is how
many times the floor's cost the real job costs (1.0 would be the floor itself).

The console floors are bare Django views registered only in the benchmark process (`install_floor_views`,
never in the product's URLconf): same test Client, same logged-in user, same middleware and the same
console access check, then one SQL query and a minimal template.
"""

import subprocess
import time

from _setup import median, percentile

FLOOR_PREFIX = "bench-floor/"


def cost_ratio(real: float, floor: float) -> float:
    """Real cost over the floor's cost, from two times (or two rates, swapped by the caller)."""
    return real / floor if floor else float("nan")


def goal_note(met: bool | None, goal: str) -> str:
    if met is None:
        return "no goal"
    return f"goal {goal}: {'met' if met else 'NOT met'}"


# --- console floor views --------------------------------------------------------------------------------

_TEMPLATE = None


def _render(request, rows):
    """A minimal template: one table row per result row, auto-escaped like any Django template."""
    global _TEMPLATE
    from django.http import HttpResponse
    from django.template import Context, Template

    if _TEMPLATE is None:
        _TEMPLATE = Template(
            "<!doctype html><title>floor</title><table>{% for row in rows %}<tr>"
            "{% for cell in row %}<td>{{ cell }}</td>{% endfor %}</tr>{% endfor %}</table>"
        )
    return HttpResponse(_TEMPLATE.render(Context({"rows": rows})))


def _allowed(request):
    """The console's own login and access check (session, user and group queries), nothing more."""
    from django.core.exceptions import PermissionDenied

    from exceptions.permissions import has_console_access

    if not has_console_access(request.user):
        raise PermissionDenied("floor view: console users only")


def _fetch(sql: str, params) -> list[tuple]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def floor_items(request):
    """The item list's 50 rows of a page (default statuses, by due time), ids paged in the index as the list
    does, then joined to the lead and the queue for what a row shows: one query, no count, no form."""
    _allowed(request)
    queue = request.GET.get("queue")
    offset = (int(request.GET.get("page", 1)) - 1) * 50
    rows = _fetch(
        f"""
        WITH page AS (
            SELECT id, due_at FROM exceptions_exceptionitem
            WHERE status IN ('open', 'acknowledged', 'waiting') {"AND queue_id = %(queue)s" if queue else ""}
            ORDER BY due_at, id LIMIT 50 OFFSET %(offset)s
        )
        SELECT i.id, i.status, i.reason, i.due_at, l.email, l.company, q.name
        FROM page JOIN exceptions_exceptionitem AS i ON i.id = page.id
        JOIN routing_lead AS l ON l.id = i.lead_id JOIN routing_queue AS q ON q.id = i.queue_id
        ORDER BY page.due_at, page.id
        """,
        {"queue": queue, "offset": offset},
    )
    return _render(request, rows)


def floor_queues(request):
    """The queue overview's figures: one aggregate over the unresolved items, per queue."""
    _allowed(request)
    rows = _fetch(
        """
        SELECT q.name, s.unresolved, s.open, s.breached, s.oldest
        FROM routing_queue AS q LEFT JOIN (
            SELECT queue_id, count(*) AS unresolved, count(*) FILTER (WHERE status = 'open') AS open,
                count(*) FILTER (WHERE ack_breached_at IS NOT NULL OR resolve_breached_at IS NOT NULL) AS breached,
                min(opened_at) AS oldest
            FROM exceptions_exceptionitem WHERE status IN ('open', 'acknowledged', 'waiting') GROUP BY queue_id
        ) AS s ON s.queue_id = q.id
        ORDER BY q.name
        """,
        {},
    )
    return _render(request, rows)


def floor_dashboard(request):
    """The dashboard's headline figures for a range: one aggregate over the daily lead rollup."""
    from routing.dashboard.models import DailyLeadStat

    _allowed(request)
    rows = _fetch(
        f"""
        SELECT sum(received), sum(assigned), sum(sla_leads), sum(sla_met), sum(exceptions), sum(touches),
            sum(enrich_tried), sum(enrich_ok)
        FROM {DailyLeadStat._meta.db_table} WHERE day >= %(start)s AND day <= %(end)s
        """,
        {"start": request.GET["start"], "end": request.GET["end"]},
    )
    return _render(request, rows)


def floor_leads(request):
    """The dashboard's lead list: the same 50 leads (received in the range, assigned, optionally over the
    deciding version's SLA, newest first) in one query, no count."""
    from routing.dashboard.rollups import latency_sql

    _allowed(request)
    over_sla = ""
    if request.GET.get("over_sla"):
        seconds, _ = latency_sql("l")
        over_sla = f"""AND EXISTS (SELECT 1 FROM routing_ruleversion AS v WHERE v.rule_id = l.rule_id
            AND v.number = l.rule_version AND v.sla_minutes IS NOT NULL AND {seconds} > v.sla_minutes * 60)"""
    rows = _fetch(
        f"""
        SELECT l.id, l.lead_id, l.email, l.received_at, l.assigned_at, l.status
        FROM routing_lead AS l
        WHERE l.received_at >= %(start)s::date AND l.received_at < %(end)s::date + 1
            AND l.assigned_at IS NOT NULL {over_sla}
        ORDER BY l.received_at DESC, l.id DESC LIMIT 50
        """,
        {"start": request.GET["start"], "end": request.GET["end"]},
    )
    return _render(request, rows)


def install_floor_views() -> None:
    """Append the floor views to the URLconf of this process only (the product's urls.py is untouched)."""
    from django.conf import settings
    from django.urls import clear_url_caches, path
    from django.utils.module_loading import import_module

    urlconf = import_module(settings.ROOT_URLCONF)
    urlconf.urlpatterns += [
        path(f"{FLOOR_PREFIX}items/", floor_items),
        path(f"{FLOOR_PREFIX}queues/", floor_queues),
        path(f"{FLOOR_PREFIX}dashboard/", floor_dashboard),
        path(f"{FLOOR_PREFIX}leads/", floor_leads),
    ]
    clear_url_caches()


def time_paired(client, url: str, floor_url: str, requests: int, warmup: int = 2) -> dict:
    """`requests` GETs of the page and of its floor, alternating floor, page, floor, page …, after warm-ups;
    then each once more under query capture. Times in seconds."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(warmup):
        for target in (floor_url, url):
            response = client.get(target)
            if response.status_code != 200:
                raise RuntimeError(f"GET {target}: {response.status_code}")
    times, floor_times = [], []
    for _ in range(requests):
        for target, into in ((floor_url, floor_times), (url, times)):
            began = time.perf_counter()
            client.get(target)
            into.append(time.perf_counter() - began)
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    with CaptureQueriesContext(connection) as floor_captured:
        client.get(floor_url)
    slowest = max(captured.captured_queries, key=lambda q: float(q["time"]), default={"sql": "", "time": "0"})
    return {
        "times": times,
        "floor_times": floor_times,
        "queries": len(captured.captured_queries),
        "floor_queries": len(floor_captured.captured_queries),
        "slowest": slowest,
        "size": len(response.content),
        "ratio": cost_ratio(median(times), median(floor_times)),
    }


def paired_line(result: dict, goal_seconds: float | None) -> str:
    """The floor's median, the ratio of medians and the goal, for the end of a page's line."""
    real = median(result["times"])
    met = None if goal_seconds is None else real < goal_seconds
    goal = f"< {goal_seconds * 1000:.0f} ms" if goal_seconds is not None else ""
    return (
        f"floor median {median(result['floor_times']) * 1000:5.1f} ms (P95 "
        f"{percentile(result['floor_times'], 95) * 1000:.1f} ms, {result['floor_queries']} queries); "
        f"ratio {result['ratio']:.1f}x; {goal_note(met, goal)}"
    )


# --- databases -------------------------------------------------------------------------------------------


def clone_database(source: str, copy: str) -> None:
    """`copy` as a file-level copy of `source` (CREATE DATABASE … TEMPLATE); Django's connections closed first,
    since PostgreSQL copies only a database nobody is connected to."""
    from django.db import connections

    connections.close_all()
    drop_database(copy)
    subprocess.run(
        ["createdb", "-h", "127.0.0.1", "-U", "postgres", "-T", source, copy],
        check=True,
    )


def drop_database(name: str) -> None:
    subprocess.run(["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", name], check=True)


def database_url(name: str) -> str:
    from _setup import BENCH_ENV

    return BENCH_ENV["DATABASE_URL"].rsplit("/", 1)[0] + "/" + name
