"""What the dashboard shows: read from the daily rollups (a fixed number of aggregate queries, whatever the
range), plus three live figures read through indexes (oldest open item per queue, overrides, dead letters).

Every figure carries the URL of the list it counts: the item list (`console:items`, filtered by the
received-between range of the cohort), the dead letters, or the dashboard's lead list
(`console:dashboard-leads`)."""

import datetime as dt
import math
from collections import defaultdict
from dataclasses import dataclass
from urllib.parse import urlencode

from django.db.models import Count, Max, Min, Q, Sum
from django.db.models.functions import TruncWeek
from django.urls import reverse
from django.utils import timezone

from audit.models import Override
from exceptions.models import UNRESOLVED, ExceptionItem, ExceptionStatus
from routing.dashboard.buckets import percentile
from routing.dashboard.models import DailyDeliveryStat, DailyLeadStat, DailyQueueStat, LatencyBucket, RollupDay
from routing.days import day_bounds
from routing.dispatch import Lane, queue_depths
from routing.integrations.models import OutboxEvent, OutboxStatus
from routing.models import Lead, LeadStatus

LEAD_SUMS = (
    "received",
    "assigned",
    "sla_leads",
    "sla_met",
    "exceptions",
    "touches",
    "touched_leads",
    "enrich_tried",
    "enrich_ok",
    "account_checked",
    "account_matched",
    "account_ambiguous",
    "known_person",
)
QUEUE_SUMS = ("items", "ack_done", "ack_met", "resolve_done", "resolve_met", "breached")
ALL_STATUSES = [s.value for s in ExceptionStatus]


@dataclass(frozen=True)
class Window:
    start: dt.date  # first day, inclusive
    end: dt.date  # last day, inclusive

    @property
    def days(self) -> list[dt.date]:
        return [self.start + dt.timedelta(days=n) for n in range((self.end - self.start).days + 1)]

    @property
    def since(self) -> dt.datetime:
        return day_bounds(self.start)[0]

    @property
    def until(self) -> dt.datetime:  # exclusive
        return day_bounds(self.end)[1]


def window_for(range_name: str, *, today: dt.date, start=None, end=None) -> Window:
    if range_name == "custom" and start and end:
        return Window(min(start, end), max(start, end))
    span = {"today": 1, "7d": 7, "30d": 30}.get(range_name, 7)
    return Window(today - dt.timedelta(days=span - 1), today)


def ratio(part, whole) -> float | None:
    return round(100 * part / whole, 1) if whole else None


def minutes(seconds: float | None):
    """Seconds to minutes for charts and tiles; None (nothing counted) stays None, the open bucket is 'inf'."""
    if seconds is None:
        return None
    return "inf" if math.isinf(seconds) else round(seconds / 60, 2)


def _url(name: str, **query) -> str:
    pairs = [(key, v) for key, value in query.items() if value is not None for v in _listed(value)]
    return reverse(name) + ("?" + urlencode(pairs) if pairs else "")


def _listed(value):
    return value if isinstance(value, list | tuple) else [value]


def items_url(window: Window, **filters) -> str:
    """The console item list of the exception items on leads received in the window (any status)."""
    return _url(
        "console:items",
        status=filters.pop("status", ALL_STATUSES),
        received_after=window.start.isoformat(),
        received_before=window.end.isoformat(),  # a date: that whole day included (routing.days)
        **filters,
    )


def leads_url(window: Window, **filters) -> str:
    return _url("console:dashboard-leads", start=window.start.isoformat(), end=window.end.isoformat(), **filters)


def _latency(counts: dict, sla_minutes: int | None = None) -> dict:
    median, p95 = percentile(counts, 50), percentile(counts, 95)
    over = {}
    if sla_minutes:
        over = {
            "median_over": median is not None and median > sla_minutes * 60,
            "p95_over": p95 is not None and p95 > sla_minutes * 60,
        }
    return {"median": minutes(median), "p95": minutes(p95), **over}


def dashboard_figures(*, window: Window, now: dt.datetime | None = None) -> dict:
    now = now or timezone.now()
    span = {"day__gte": window.start, "day__lte": window.end}
    days = window.days
    as_of = RollupDay.objects.filter(**span).aggregate(oldest=Min("computed_at"), latest=Max("computed_at"))

    # Leads: per day, per origin, per rule (and the totals from the days).
    sums = {name: Sum(name) for name in LEAD_SUMS}
    by_day = {row["day"]: row for row in DailyLeadStat.objects.filter(**span).values("day").annotate(**sums)}
    by_origin = list(
        DailyLeadStat.objects.filter(**span).values("origin", "origin__name").annotate(**sums).order_by("origin__name")
    )
    by_rule = list(
        DailyLeadStat.objects.filter(**span)
        .values("rule", "rule__name", "rule__production_version__sla_minutes")
        .annotate(**sums)
        .order_by("rule__name")
    )
    latency_day, latency_origin, latency_rule = defaultdict(dict), defaultdict(dict), defaultdict(dict)
    total_buckets: dict[int, int] = defaultdict(int)
    for row in LatencyBucket.objects.filter(**span).values("day", "bucket").annotate(n=Sum("leads")):
        latency_day[row["day"]][row["bucket"]] = row["n"]
        total_buckets[row["bucket"]] += row["n"]
    for row in LatencyBucket.objects.filter(**span).values("origin", "bucket").annotate(n=Sum("leads")):
        latency_origin[row["origin"]][row["bucket"]] = row["n"]
    for row in LatencyBucket.objects.filter(**span).values("rule", "bucket").annotate(n=Sum("leads")):
        latency_rule[row["rule"]][row["bucket"]] = row["n"]

    totals = {name: sum(row[name] or 0 for row in by_day.values()) for name in LEAD_SUMS}
    zero = dict.fromkeys(LEAD_SUMS, 0)
    day_rows = [by_day.get(day, zero) for day in days]
    leads = {
        "totals": totals,
        "latency": _latency(total_buckets),
        "sla_pct": ratio(totals["sla_met"], totals["sla_leads"]),
        "exception_rate": ratio(totals["exceptions"], totals["received"]),
        "touches_per_lead": round(totals["touches"] / totals["received"], 3) if totals["received"] else None,
        "touched_pct": ratio(totals["touched_leads"], totals["received"]),
        "enrich_pct": ratio(totals["enrich_ok"], totals["enrich_tried"]),
        "links": {
            "received": leads_url(window),
            "assigned": leads_url(window, assigned=1),
            "over_sla": leads_url(window, over_sla=1),
            "exceptions": items_url(window),
            "touched": leads_url(window, touched=1),
            "enrichment": leads_url(window, enrichment="tried"),
            "enrich_failed": leads_url(window, enrichment="failed"),
        },
    }
    series = {
        "days": [day.isoformat() for day in days],
        "day_links": [leads_url(Window(day, day), assigned=1) for day in days],
        "day_item_links": [items_url(Window(day, day)) for day in days],
        "day_touch_links": [leads_url(Window(day, day), touched=1) for day in days],
        "day_enrich_links": [leads_url(Window(day, day), enrichment="tried") for day in days],
        "received": [row["received"] or 0 for row in day_rows],
        "exceptions": [row["exceptions"] or 0 for row in day_rows],
        "exception_rate": [ratio(row["exceptions"] or 0, row["received"] or 0) for row in day_rows],
        "median": [_latency(latency_day.get(day, {}))["median"] for day in days],
        "p95": [_latency(latency_day.get(day, {}))["p95"] for day in days],
        "sla_pct": [ratio(row["sla_met"] or 0, row["sla_leads"] or 0) for row in day_rows],
        "touches_per_lead": [
            round((row["touches"] or 0) / row["received"], 3) if row["received"] else None for row in day_rows
        ],
        "enrich_pct": [ratio(row["enrich_ok"] or 0, row["enrich_tried"] or 0) for row in day_rows],
    }
    origins = [
        {
            "name": row["origin__name"],
            "received": row["received"],
            "assigned": row["assigned"],
            **_latency(latency_origin.get(row["origin"], {})),
            "sla_pct": ratio(row["sla_met"], row["sla_leads"]),
            "link": leads_url(window, origin=row["origin"], assigned=1),
        }
        for row in by_origin
    ]
    rules = [
        {
            "name": row["rule__name"] or "(no rule)",
            "sla": row["rule__production_version__sla_minutes"],
            "received": row["received"],
            "assigned": row["assigned"],
            **_latency(latency_rule.get(row["rule"], {}), row["rule__production_version__sla_minutes"]),
            "sla_pct": ratio(row["sla_met"], row["sla_leads"]),
            "link": leads_url(window, rule=row["rule"] or "none", assigned=1),
            "over_sla_link": leads_url(window, rule=row["rule"] or "none", over_sla=1),
        }
        for row in by_rule
        if row["assigned"] or row["rule"]
    ]
    return {
        "window": window,
        "as_of": as_of,
        "leads": leads,
        "accounts": _accounts(window, by_origin, totals),
        "series": series,
        "origins": origins,
        "rules": rules,
        "queues": _queues(window, span, days, now),
        "overrides": _overrides(window),
        "delivery": _delivery(window, span, days),
    }


def _accounts(window: Window, by_origin: list[dict], totals: dict) -> dict:
    """Accounts and identity per origin (routing/accounts): leads matched before routing, the share matched
    to an account, ambiguous matches, and leads of a person seen before; each count links to its leads."""

    def figures(row: dict, **origin) -> dict:
        checked, matched = row["account_checked"] or 0, row["account_matched"] or 0
        return {
            "checked": checked,
            "matched": matched,
            "match_rate": ratio(matched, checked),
            "ambiguous": row["account_ambiguous"] or 0,
            "known_person": row["known_person"] or 0,
            "links": {
                figure: leads_url(window, **origin, **{key: value})
                for figure, key, value in (
                    ("checked", "account", "checked"),
                    ("matched", "account", "matched"),
                    ("ambiguous", "account", "ambiguous"),
                    ("known_person", "known_person", 1),
                )
            },
        }

    origins = [
        {"origin": row["origin__name"], **figures(row, origin=row["origin"])}
        for row in by_origin
        if row["account_checked"]
    ]
    return {"origins": origins, "totals": figures(totals)}


def _queues(window: Window, span: dict, days: list, now: dt.datetime) -> dict:
    rows = list(
        DailyQueueStat.objects.filter(**span)
        .values("day", "queue", "queue__name", "backlog", *QUEUE_SUMS)
        .order_by("queue__name", "day")
    )
    names, backlog, totals = {}, defaultdict(dict), defaultdict(lambda: dict.fromkeys(QUEUE_SUMS, 0))
    for row in rows:
        names[row["queue"]] = row["queue__name"]
        backlog[row["queue"]][row["day"]] = row["backlog"]
        for name in QUEUE_SUMS:
            totals[row["queue"]][name] += row[name]
    # Live: the oldest unresolved item per queue (unresolved items only, through the partial index).
    oldest = list(
        ExceptionItem.objects.filter(UNRESOLVED)
        .values("queue", "queue__name")
        .annotate(oldest=Min("opened_at"), open=Count("id"))
        .order_by("queue__name")
    )
    per_queue = [
        {
            "name": names[queue],
            **values,
            "ack_pct": ratio(values["ack_met"], values["ack_done"]),
            "resolve_pct": ratio(values["resolve_met"], values["resolve_done"]),
            "link": items_url(window, queue=queue),
            "breached_link": items_url(window, queue=queue, breached="true"),
        }
        for queue, values in sorted(totals.items(), key=lambda kv: names[kv[0]])
        if values["items"]
    ]
    all_sums = {name: sum(q[name] for q in per_queue) for name in QUEUE_SUMS}
    return {
        "per_queue": per_queue,
        "totals": all_sums,
        "ack_pct": ratio(all_sums["ack_met"], all_sums["ack_done"]),
        "resolve_pct": ratio(all_sums["resolve_met"], all_sums["resolve_done"]),
        "breached_link": items_url(window, breached="true"),
        "backlog": [
            {
                "name": names[queue],
                "values": [by_day.get(day) for day in days],
                "link": _url("console:items", queue=queue),
            }
            for queue, by_day in sorted(backlog.items(), key=lambda kv: names[kv[0]])
        ],
        "oldest": [
            {
                "name": row["queue__name"],
                "open": row["open"],
                "oldest": row["oldest"],
                "age_hours": round((now - row["oldest"]).total_seconds() / 3600, 2),
                "link": _url("console:items", queue=row["queue"], sort="age"),
            }
            for row in oldest
        ],
    }


def _overrides(window: Window) -> dict:
    rows = list(
        Override.objects.filter(at__gte=window.since, at__lt=window.until)
        .annotate(week=TruncWeek("at"))
        .values("week", "rule", "rule__name")
        .annotate(n=Count("id"))
        .order_by("week", "rule__name")
    )
    weeks = sorted({row["week"].date() if isinstance(row["week"], dt.datetime) else row["week"] for row in rows})
    per_rule: dict = {}
    for row in rows:
        week = row["week"].date() if isinstance(row["week"], dt.datetime) else row["week"]
        entry = per_rule.setdefault(
            row["rule"],
            {
                "name": row["rule__name"] or "(no rule)",
                "counts": dict.fromkeys(weeks, 0),
                "link": leads_url(window, overridden=1, rule=row["rule"] or "none"),
            },
        )
        entry["counts"][week] = row["n"]
    return {
        "weeks": [week.isoformat() for week in weeks],
        "rules": [{**rule, "counts": [rule["counts"][w] for w in weeks]} for rule in per_rule.values()],
        "total": sum(row["n"] for row in rows),
        "link": leads_url(window, overridden=1),
    }


def _delivery(window: Window, span: dict, days: list) -> dict:
    by_day = {row.day: row for row in DailyDeliveryStat.objects.filter(**span)}
    fields = ("dead_lettered", "replayed", "replay_delivered", "replay_dead")
    totals = {name: sum(getattr(row, name) for row in by_day.values()) for name in fields}
    settled = totals["replay_delivered"] + totals["replay_dead"]
    return {
        **totals,
        "replay_success_pct": ratio(totals["replay_delivered"], settled),
        "dead_now": OutboxEvent.objects.filter(status=OutboxStatus.DEAD).count(),
        "link": reverse("console:dead-letters"),
        "series": {name: [getattr(by_day.get(day), name, 0) for day in days] for name in fields},
    }


def routing_lanes() -> dict:
    """Now, not rolled up: routing tasks waiting in each lane (None when the broker does not answer) and the
    leads waiting to be routed (what /batch/'s back-pressure compares with its limit), of which `held` wait for
    working hours (everyone in their queue away), counted together on lead_pending_idx."""
    depths = queue_depths() or {}
    received = Lead.objects.filter(status=LeadStatus.RECEIVED).aggregate(
        waiting=Count("id"), held=Count("id", filter=Q(waiting_until__isnull=False))
    )
    return {"live": depths.get(Lane.LIVE.queue), "bulk": depths.get(Lane.BULK.queue), **received}
