"""Recompute the dashboard's daily rollups: set-based SQL per day, no lead rows loaded into Python.

`dashboard_rollup_days(days=...)` rebuilds whole days, each in its own transaction under its RollupDay row
lock, so a duplicate beat tick waits and then rebuilds the same rows (idempotent). The beat task rebuilds
today and yesterday every few minutes, and the last 35 days once a night: a cohort's figures move while its
leads are still being worked (a late manual assignment, an acknowledgement, a replay).

Works on PostgreSQL and SQLite (`make demo`): the only vendor-specific SQL is the seconds between two
timestamps and a floor (see `latency_sql`)."""

import datetime as dt

from django.db import connection, transaction
from django.db.models import Count, Q
from django.utils import timezone

from audit.models import AuditAction, AuditEvent
from exceptions.models import ExceptionItem
from routing.accounts.matching import MatchMethod
from routing.accounts.models import AccountMatch, LeadIdentity
from routing.dashboard.buckets import bucket_sql
from routing.dashboard.models import DailyDeliveryStat, DailyLeadStat, DailyQueueStat, LatencyBucket, RollupDay
from routing.days import day_bounds
from routing.integrations.models import OutboxEvent, OutboxStatus
from routing.models import Queue

# Human actions on a lead that count as a manual touch: an audit event with a person as actor and one of these.
MANUAL_TOUCHES = (
    AuditAction.EXCEPTION_ACKNOWLEDGED,
    AuditAction.EXCEPTION_ASSIGNED,
    AuditAction.EXCEPTION_RESOLVED,
    AuditAction.EXCEPTION_REOPENED,
    AuditAction.EXCEPTION_WAITING,
    AuditAction.EXCEPTION_RESUMED,
    AuditAction.LEAD_EDITED,
    AuditAction.LEAD_REROUTED,
    AuditAction.LEAD_OVERRIDE,
)
RECENT_DAYS = 2  # every few minutes: today and yesterday
NIGHTLY_DAYS = 35  # once a night: five weeks, for cohorts still being worked


def latency_sql(lead: str = "l") -> tuple[str, str]:
    """(seconds from occurred_at to assigned_at of the lead table aliased `lead`, floor format) for this database."""
    if connection.vendor == "postgresql":
        return f"EXTRACT(EPOCH FROM ({lead}.assigned_at - {lead}.occurred_at))", "FLOOR({})"
    # SQLite keeps datetimes as UTC text; julianday parses them, as a double precise to ~50 µs, so the
    # difference is rounded to the millisecond (300 s must not become 299.99999). CAST truncates: a floor
    # for the values >= 0 it is given.
    return f"ROUND((julianday({lead}.assigned_at) - julianday({lead}.occurred_at)) * 86400.0, 3)", "CAST({} AS INTEGER)"


def _lead_rows(start, end) -> dict[tuple, dict]:
    seconds, floor = latency_sql()
    params = [connection.ops.adapt_datetimefield_value(start), connection.ops.adapt_datetimefield_value(end)]
    rows: dict[tuple, dict] = {}
    with connection.cursor() as cursor:
        # Latency is judged against the SLA of the rule version that decided the lead.
        cursor.execute(
            f"""
            SELECT l.origin_id, l.rule_id, COUNT(*), COUNT(l.assigned_at),
                SUM(CASE WHEN l.assigned_at IS NOT NULL AND v.sla_minutes IS NOT NULL THEN 1 ELSE 0 END),
                SUM(CASE WHEN l.assigned_at IS NOT NULL AND v.sla_minutes IS NOT NULL
                         AND {seconds} <= v.sla_minutes * 60 THEN 1 ELSE 0 END),
                SUM(CASE WHEN l.enrichment_status IS NOT NULL THEN 1 ELSE 0 END),
                SUM(CASE WHEN l.enrichment_status = 'enriched' THEN 1 ELSE 0 END)
            FROM routing_lead l
            LEFT JOIN routing_ruleversion v ON v.rule_id = l.rule_id AND v.number = l.rule_version
            WHERE l.received_at >= %s AND l.received_at < %s
            GROUP BY l.origin_id, l.rule_id
            """,
            params,
        )
        for origin, rule, received, assigned, sla_leads, sla_met, tried, ok in cursor.fetchall():
            rows[(origin, rule)] = {
                "received": received,
                "assigned": assigned,
                "sla_leads": sla_leads or 0,
                "sla_met": sla_met or 0,
                "enrich_tried": tried or 0,
                "enrich_ok": ok or 0,
            }
    cohort = {"lead__received_at__gte": start, "lead__received_at__lt": end}
    for row in ExceptionItem.objects.filter(**cohort).values("lead__origin", "lead__rule").annotate(n=Count("id")):
        rows.setdefault((row["lead__origin"], row["lead__rule"]), {})["exceptions"] = row["n"]
    touches = (
        AuditEvent.objects.filter(actor__isnull=False, action__in=MANUAL_TOUCHES, **cohort)
        .values("lead__origin", "lead__rule")
        .annotate(n=Count("id"), leads=Count("lead", distinct=True))
    )
    for row in touches:
        entry = rows.setdefault((row["lead__origin"], row["lead__rule"]), {})
        entry["touches"], entry["touched_leads"] = row["n"], row["leads"]
    no_account = [MatchMethod.NONE, MatchMethod.AMBIGUOUS]
    matches = (
        AccountMatch.objects.filter(**cohort)
        .values("lead__origin", "lead__rule")
        .annotate(
            checked=Count("pk"),
            matched=Count("pk", filter=~Q(method__in=no_account)),
            ambiguous=Count("pk", filter=Q(method=MatchMethod.AMBIGUOUS)),
        )
    )
    for row in matches:
        entry = rows.setdefault((row["lead__origin"], row["lead__rule"]), {})
        entry["account_checked"], entry["account_matched"] = row["checked"], row["matched"]
        entry["account_ambiguous"] = row["ambiguous"]
    known = LeadIdentity.objects.filter(known_person=True, **cohort).values("lead__origin", "lead__rule")
    for row in known.annotate(n=Count("pk")):
        rows.setdefault((row["lead__origin"], row["lead__rule"]), {})["known_person"] = row["n"]
    return rows


def _latency_rows(start, end) -> list[tuple]:
    seconds, floor = latency_sql()
    clamped = f"(CASE WHEN {seconds} < 0 THEN 0 ELSE {seconds} END)"
    params = [connection.ops.adapt_datetimefield_value(start), connection.ops.adapt_datetimefield_value(end)]
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT l.origin_id, l.rule_id, {bucket_sql(clamped, floor)} AS bucket, COUNT(*)
            FROM routing_lead l
            WHERE l.received_at >= %s AND l.received_at < %s AND l.assigned_at IS NOT NULL
            GROUP BY l.origin_id, l.rule_id, bucket
            """,
            params,
        )
        return cursor.fetchall()


def _queue_rows(start, end) -> dict[int, dict]:
    breached = Q(ack_breached_at__isnull=False) | Q(resolve_breached_at__isnull=False)
    cohort = (
        ExceptionItem.objects.filter(lead__received_at__gte=start, lead__received_at__lt=end)
        .values("queue")
        .annotate(
            items=Count("id"),
            ack_done=Count("id", filter=Q(acknowledged_at__isnull=False)),
            ack_met=Count("id", filter=Q(acknowledged_at__isnull=False, ack_breached_at__isnull=True)),
            resolve_done=Count("id", filter=Q(resolved_at__isnull=False)),
            resolve_met=Count("id", filter=Q(resolved_at__isnull=False, resolve_breached_at__isnull=True)),
            breached=Count("id", filter=breached),
        )
    )
    # A row for every queue, so a queue whose backlog went to zero plots 0, not a gap.
    rows: dict[int, dict] = {queue: {} for queue in Queue.objects.values_list("id", flat=True)}
    rows.update({row.pop("queue"): row for row in cohort})
    # The backlog at the day's end: opened by then and not resolved by then (today: unresolved now, so far).
    backlog = (
        ExceptionItem.objects.filter(opened_at__lt=end)
        .filter(Q(resolved_at__isnull=True) | Q(resolved_at__gte=end))
        .values("queue")
        .annotate(n=Count("id"))
    )
    for row in backlog:
        rows.setdefault(row["queue"], {})["backlog"] = row["n"]
    return rows


def _delivery_row(start, end) -> dict:
    today = AuditEvent.objects.filter(occurred_at__gte=start, occurred_at__lt=end)
    dead = today.filter(action=AuditAction.DELIVERY_DEAD_LETTERED).count()
    # Replays are few (a person sends them back): their event ids, then what became of those events.
    replayed = [
        data.get("event_id")
        for data in today.filter(action=AuditAction.DELIVERY_REPLAYED).values_list("data", flat=True)
    ]
    outcome = OutboxEvent.objects.filter(pk__in=[i for i in replayed if i is not None]).aggregate(
        delivered=Count("id", filter=Q(status=OutboxStatus.DELIVERED)),
        dead=Count("id", filter=Q(status=OutboxStatus.DEAD)),
    )
    return {
        "dead_lettered": dead,
        "replayed": len(replayed),
        "replay_delivered": outcome["delivered"],
        "replay_dead": outcome["dead"],
    }


def dashboard_rollup_day(*, day: dt.date, now: dt.datetime | None = None) -> None:
    """Rebuild every rollup row of one day, under the day's lock; safe to run twice or concurrently."""
    now = now or timezone.now()
    start, end = day_bounds(day)
    with transaction.atomic():
        RollupDay.objects.get_or_create(day=day, defaults={"computed_at": now})
        RollupDay.objects.select_for_update().filter(day=day).update(computed_at=now)
        leads = _lead_rows(start, end)
        latency = _latency_rows(start, end)
        queues = _queue_rows(start, end)
        delivery = _delivery_row(start, end)
        for model in (DailyLeadStat, LatencyBucket, DailyQueueStat, DailyDeliveryStat):
            model.objects.filter(day=day).delete()
        DailyLeadStat.objects.bulk_create(
            DailyLeadStat(day=day, origin_id=origin, rule_id=rule, **values) for (origin, rule), values in leads.items()
        )
        LatencyBucket.objects.bulk_create(
            LatencyBucket(day=day, origin_id=origin, rule_id=rule, bucket=int(bucket), leads=n)
            for origin, rule, bucket, n in latency
        )
        DailyQueueStat.objects.bulk_create(
            DailyQueueStat(day=day, queue_id=queue, **values) for queue, values in queues.items()
        )
        DailyDeliveryStat.objects.create(day=day, **delivery)


def dashboard_rollup_days(*, days: list[dt.date], now: dt.datetime | None = None) -> int:
    for day in days:
        dashboard_rollup_day(day=day, now=now)
    return len(days)


def dashboard_rollup_recent(*, days_back: int = RECENT_DAYS, now: dt.datetime | None = None) -> int:
    """Rebuild the last `days_back` days up to today (UTC)."""
    now = now or timezone.now()
    today = now.astimezone(dt.UTC).date()
    return dashboard_rollup_days(days=[today - dt.timedelta(days=n) for n in range(days_back)], now=now)


def dashboard_rollup_backfill(*, start: dt.date, end: dt.date, now: dt.datetime | None = None) -> int:
    """Rebuild every day from start to end inclusive (first deployment, or after a data repair)."""
    days = [start + dt.timedelta(days=n) for n in range((end - start).days + 1)]
    return dashboard_rollup_days(days=days, now=now)
