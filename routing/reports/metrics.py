"""Prometheus metrics, computed at scrape time from the database (the source of truth).

Web and worker processes come and go and each would hold its own in-process counters, so nothing here is
counted in memory as work happens: each scrape asks PostgreSQL, with a fixed number of queries, each bounded
by an index whatever the history holds:

- counters of append-only facts (leads accepted, delivery attempts, enrichment calls): rows before a settled hour
  boundary are counted once per process and kept (`SettledCounts`); a scrape counts only the rows since, by index;
- histograms: leads received in the last 24 hours (index on received_at), enrichment calls in the last hour
  (index on provider and at); sliding windows, so read the buckets directly
  (`histogram_quantile(0.95, handoff_routing_duration_seconds_bucket)`), not with rate();
- current state (leads waiting for routing, unresolved exceptions, pending and dead-lettered deliveries):
  partial indexes on those statuses; exception totals by reason and queue: one grouped pass over the items;
- the task queue depth: the broker.
"""

import datetime as dt
import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable

from django.db.models import (
    Aggregate,
    Case,
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    FilteredRelation,
    FloatField,
    Q,
    Sum,
    Value,
    When,
)
from django.utils import timezone
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import CollectorRegistry

from exceptions.models import UNRESOLVED_STATUSES, ExceptionItem, ExceptionStatus, SlaClock
from routing.dispatch import queue_depths
from routing.integrations.models import (
    DeliveryAttempt,
    DeliveryTarget,
    EnrichmentOutcome,
    EnrichmentProvider,
    EnrichmentReceipt,
    OutboxEvent,
    OutboxStatus,
)
from routing.models import Lead, LeadStatus, RejectionDay, Source

WINDOW = dt.timedelta(hours=24)
# Received → routed (rule decision or exception): milliseconds normally, minutes when workers are behind.
ROUTING_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600)
# Conversion (the capture system's occurred_at) → assignment, through exception queues too: up to hours.
ASSIGNMENT_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)
# One call to an enrichment provider: tens of milliseconds normally, up to its timeout (3 s by default).
ENRICHMENT_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
ENRICHMENT_WINDOW = dt.timedelta(hours=1)

# A row stamped before the boundary must have committed before it is counted into the kept part: the boundary
# is the last full hour that ended at least this long ago (intake and delivery transactions take seconds).
SETTLE = dt.timedelta(minutes=10)
# The kept part is counted afresh this often, so a row inserted later with an old stamp is not missed forever.
RECOUNT_EVERY = dt.timedelta(hours=24)


class SettledCounts:
    """Counts by label of an append-only fact whose stamp and labels never change (leads by origin, delivery
    attempts by target and answer), as a counter that costs one indexed query per scrape.

    Rows stamped before the boundary are counted once (then once an hour for the new hour, and afresh daily)
    and kept in this process; each scrape adds the rows stamped since. The boundary is a wall-clock hour, so
    every process reports the same totals and a restart loses nothing."""

    def __init__(self, count: Callable[[dt.datetime | None, dt.datetime | None], Counter]):
        self._count = count  # count(since, before): rows with since <= stamp < before (None: open-ended)
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self._boundary: dt.datetime | None = None
        self._counted_in_full: dt.datetime | None = None
        self._settled: Counter = Counter()

    def totals(self, now: dt.datetime) -> Counter:
        boundary = (now - SETTLE).replace(minute=0, second=0, microsecond=0)
        with self._lock:
            if self._boundary is None or boundary < self._boundary or boundary - self._counted_in_full >= RECOUNT_EVERY:
                self._settled, self._counted_in_full = self._count(None, boundary), boundary
            elif boundary > self._boundary:
                self._settled = self._settled + self._count(self._boundary, boundary)
            self._boundary = boundary
            settled = self._settled
        return settled + self._count(boundary, None)


def _stamped(queryset, field: str, since, before):
    if since is not None:
        queryset = queryset.filter(**{f"{field}__gte": since})
    if before is not None:
        queryset = queryset.filter(**{f"{field}__lt": before})
    return queryset


def _leads_by_origin(since, before) -> Counter:
    """origin id -> leads (by id: a source renamed later keeps its count)."""
    rows = _stamped(Lead.objects.all(), "received_at", since, before).values_list("origin_id")
    return Counter({origin: n for origin, n in rows.annotate(n=Count("pk")).order_by()})


BREACHED = Q(ack_breached_at__isnull=False) | Q(resolve_breached_at__isnull=False)
CODE_CLASS = Case(
    When(status_code__isnull=True, then=Value("error")),
    When(status_code__gte=200, status_code__lt=300, then=Value("2xx")),
    When(status_code__gte=300, status_code__lt=400, then=Value("3xx")),
    When(status_code__gte=400, status_code__lt=500, then=Value("4xx")),
    When(status_code__gte=500, status_code__lt=600, then=Value("5xx")),
    default=Value("other"),
)


def _attempts_by_target(since, before) -> Counter:
    """(target id, code class, retry?) -> attempts. A retry is any attempt after an event's first."""
    rows = (
        _stamped(DeliveryAttempt.objects.all(), "at", since, before)
        .annotate(code_class=CODE_CLASS, retry=Case(When(number__gt=1, then=Value(True)), default=Value(False)))
        .values_list("event__target_id", "code_class", "retry")
        .annotate(n=Count("pk"))
        .order_by()
    )
    return Counter({(target, code_class, retry): n for target, code_class, retry, n in rows})


def _enrichment_calls(since, before) -> Counter:
    """(provider id, outcome) -> calls."""
    rows = _stamped(EnrichmentReceipt.objects.all(), "at", since, before).values_list("provider_id", "outcome")
    return Counter({(provider, outcome): n for provider, outcome, n in rows.annotate(n=Count("pk")).order_by()})


LEADS_ACCEPTED = SettledCounts(_leads_by_origin)
DELIVERY_ATTEMPTS = SettledCounts(_attempts_by_target)
ENRICHMENT_CALLS = SettledCounts(_enrichment_calls)


def reset() -> None:
    """Forget the kept counts (tests, whose transactions roll back underneath them)."""
    LEADS_ACCEPTED.reset()
    DELIVERY_ATTEMPTS.reset()
    ENRICHMENT_CALLS.reset()


def _enrichment_window(now: dt.datetime) -> list[tuple]:
    """Per provider, the calls of the last hour: (id, name, calls, answered, latency sum in ms, cumulative counts per
    ENRICHMENT_BUCKETS, P95 latency in ms or None), in one query (every provider, at zero without calls)."""
    recent = FilteredRelation("receipts", condition=Q(receipts__at__gt=now - ENRICHMENT_WINDOW, receipts__at__lte=now))
    buckets = {
        f"le_{i}": Count("recent__id", filter=Q(recent__latency_ms__lte=le * 1000))
        for i, le in enumerate(ENRICHMENT_BUCKETS)
    }
    rows = (
        EnrichmentProvider.objects.annotate(recent=recent)
        .annotate(
            calls=Count("recent__id"),
            ok=Count("recent__id", filter=Q(recent__outcome=EnrichmentOutcome.OK)),
            latency=Sum("recent__latency_ms"),
            p95=_P95("recent__latency_ms"),
            **buckets,
        )
        .order_by("name")
        .values_list("id", "name", "calls", "ok", "latency", "p95", *buckets)
    )
    return [
        (pk, name, calls, ok, latency or 0, list(counts), p95) for pk, name, calls, ok, latency, p95, *counts in rows
    ]


class _P95(Aggregate):
    function = "percentile_cont"
    template = "%(function)s(0.95) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()


def _duration(end: str, start: str):
    return ExpressionWrapper(F(end) - F(start), output_field=DurationField())


def _bucket_of(name: str, buckets: tuple[float, ...]):
    """The index of the first bucket that holds the duration (len(buckets): beyond the last); None: no duration."""
    return Case(
        When(**{f"{name}__isnull": True}, then=Value(None)),
        *(When(**{f"{name}__lte": dt.timedelta(seconds=le)}, then=Value(i)) for i, le in enumerate(buckets)),
        default=Value(len(buckets)),
    )


def _window_histograms(since: dt.datetime) -> dict[str, tuple[list[tuple[str, int]], float]]:
    """Routing duration and conversion→assignment latency of the leads received since `since`: cumulative
    bucket counts and sum (seconds), in one pass over the window grouped by the pair of buckets."""
    series = {"routing": ROUTING_BUCKETS, "assignment": ASSIGNMENT_BUCKETS}
    rows = (
        Lead.objects.filter(received_at__gte=since)
        .annotate(routing=_duration("routed_at", "received_at"), assignment=_duration("assigned_at", "occurred_at"))
        .annotate(routing_bucket=_bucket_of("routing", ROUTING_BUCKETS))
        .annotate(assignment_bucket=_bucket_of("assignment", ASSIGNMENT_BUCKETS))
        .values_list("routing_bucket", "assignment_bucket")
        .annotate(n=Count("pk"), routing_sum=Sum("routing"), assignment_sum=Sum("assignment"))
        .order_by()
    )
    per_bucket = {name: [0] * (len(buckets) + 1) for name, buckets in series.items()}
    sums = dict.fromkeys(series, 0.0)
    for routing_bucket, assignment_bucket, n, routing_sum, assignment_sum in rows:
        for name, bucket, total in (
            ("routing", routing_bucket, routing_sum),
            ("assignment", assignment_bucket, assignment_sum),
        ):
            if bucket is not None:
                per_bucket[name][bucket] += n
                sums[name] += total.total_seconds()
    result = {}
    for name, buckets in series.items():
        cumulative = list(itertools.accumulate(per_bucket[name]))
        points = [(_le(le), cumulative[i]) for i, le in enumerate(buckets)] + [("+Inf", cumulative[-1])]
        result[name] = (points, sums[name])
    return result


def _le(value: float) -> str:
    return str(float(value))


class HandoffCollector:
    """Everything on /metrics. `collect` runs at each scrape."""

    def collect(self) -> Iterable:
        started = time.monotonic()
        now = timezone.now()
        families = [
            *self._leads(now),
            *self._exceptions(),
            *self._deliveries(now),
            *self._enrichment(now),
            *self._task_queue(),
        ]
        yield from families
        took = GaugeMetricFamily(
            "handoff_metrics_collect_seconds", "Time this scrape spent computing the figures (database and broker)."
        )
        took.add_metric([], time.monotonic() - started)
        yield took

    def _leads(self, now):
        origins = dict(Source.objects.values_list("id", "name"))  # every source, at zero before its first lead
        accepted = CounterMetricFamily(
            "handoff_leads_accepted",
            "Leads accepted at intake (duplicates excluded), by capture source.",
            labels=["origin"],
        )
        totals = LEADS_ACCEPTED.totals(now)
        for origin_id, name in sorted(origins.items(), key=lambda item: item[1]):
            accepted.add_metric([name], totals.get(origin_id, 0))
        yield accepted

        rejected = CounterMetricFamily(
            "handoff_intake_rejected",
            "Posts (or batch items) intake refused, by capture source and reason (README: Rejected posts).",
            labels=["origin", "reason"],
        )
        counts = RejectionDay.objects.values_list("source_id", "reason").annotate(n=Sum("count")).order_by()
        for origin_id, reason, n in sorted(counts, key=lambda row: (origins.get(row[0], ""), row[1])):
            rejected.add_metric([origins.get(origin_id, str(origin_id)), reason], n)
        yield rejected

        waiting = GaugeMetricFamily(
            "handoff_leads_waiting_routing",
            "Leads received and not routed yet (routing queued, enriching, or stuck until the sweeper re-queues).",
            labels=["origin"],
        )
        rows = dict(
            Lead.objects.filter(status=LeadStatus.RECEIVED).values_list("origin_id").annotate(n=Count("pk")).order_by()
        )
        for origin_id, name in sorted(origins.items(), key=lambda item: item[1]):
            waiting.add_metric([name], rows.get(origin_id, 0))
        yield waiting

        histograms = _window_histograms(now - WINDOW)
        for name, metric, help_text in (
            (
                "routing",
                "handoff_routing_duration_seconds",
                "Intake to routing decision (assigned or sent to an exception queue), of the leads received in "
                "the last 24 h that are routed. A sliding window: read the buckets directly, not with rate().",
            ),
            (
                "assignment",
                "handoff_conversion_to_assignment_seconds",
                "Conversion (the lead's occurred_at) to assignment, of the leads received in the last 24 h that "
                "are assigned (by a rule or a person). A sliding window: read the buckets directly, not with rate().",
            ),
        ):
            points, total = histograms[name]
            family = HistogramMetricFamily(metric, help_text)
            family.add_metric([], points, total)
            yield family

    def _exceptions(self):
        rows = (
            ExceptionItem.objects.values_list("reason", "queue__name", "status")
            .annotate(
                n=Count("pk"),
                acknowledged=Count("acknowledged_at"),
                ack_breached=Count("ack_breached_at"),
                resolve_breached=Count("resolve_breached_at"),
                any_breached=Count("pk", filter=BREACHED),
            )
            .order_by()
        )
        opened = CounterMetricFamily(
            "handoff_exceptions_opened",
            "Exception items opened, by reason and queue (items are never deleted; a reopen is not a new item).",
            labels=["reason", "queue"],
        )
        acknowledged = GaugeMetricFamily(
            "handoff_exceptions_acknowledged",
            "Exception items acknowledged (by a person, or on resolve or waiting), by reason and queue. From the "
            "items' state: a reopen takes an item out again.",
            labels=["reason", "queue"],
        )
        resolved = GaugeMetricFamily(
            "handoff_exceptions_resolved",
            "Exception items resolved, by reason and queue. From the items' state: a reopen takes an item out again.",
            labels=["reason", "queue"],
        )
        unresolved = GaugeMetricFamily(
            "handoff_exceptions_unresolved",
            "Exception items waiting for a person now, by reason, queue and status.",
            labels=["reason", "queue", "status"],
        )
        breached = GaugeMetricFamily(
            "handoff_exceptions_breached",
            "Exception items whose acknowledge or resolve time ran out, by reason, queue and clock (resolved items "
            "included; a reopen, resume or SLA reassignment clears the mark as the clock starts again).",
            labels=["reason", "queue", "clock"],
        )
        breached_unresolved = GaugeMetricFamily(
            "handoff_exceptions_breached_unresolved",
            "Unresolved exception items with a breached acknowledge or resolve time: the ones to chase.",
            labels=["reason", "queue"],
        )
        by_item: dict[tuple[str, str], Counter] = {}
        for reason, queue, status, n, acked, ack_breached, resolve_breached, any_breached in rows:
            figures = by_item.setdefault((reason, queue), Counter())
            figures["opened"] += n
            figures["acknowledged"] += acked
            figures["breached", SlaClock.ACKNOWLEDGE] += ack_breached
            figures["breached", SlaClock.RESOLVE] += resolve_breached
            if status == ExceptionStatus.RESOLVED:
                figures["resolved"] += n
            else:
                figures["status", status] += n
                figures["breached_unresolved"] += any_breached
        for labels, figures in sorted(by_item.items()):
            opened.add_metric(list(labels), figures["opened"])
            acknowledged.add_metric(list(labels), figures["acknowledged"])
            resolved.add_metric(list(labels), figures["resolved"])
            for status in UNRESOLVED_STATUSES:
                unresolved.add_metric([*labels, status], figures["status", status])
            for clock in (SlaClock.ACKNOWLEDGE, SlaClock.RESOLVE):
                breached.add_metric([*labels, clock], figures["breached", clock])
            breached_unresolved.add_metric(list(labels), figures["breached_unresolved"])
        yield from (opened, acknowledged, resolved, unresolved, breached, breached_unresolved)

    def _deliveries(self, now):
        targets = dict(DeliveryTarget.objects.values_list("id", "name"))  # every target, at zero before its first event
        attempts = CounterMetricFamily(
            "handoff_delivery_attempts",
            "Delivery attempts to execution targets, by target and answer: 2xx (delivered), 3xx, 4xx, 5xx, or "
            "error (timeout, connection refused: no answer).",
            labels=["target", "code_class"],
        )
        retries = CounterMetricFamily(
            "handoff_delivery_retries",
            "Delivery attempts after an event's first, by target and answer.",
            labels=["target", "code_class"],
        )
        totals: Counter = Counter()
        retried: Counter = Counter()
        for (target_id, code_class, retry), n in DELIVERY_ATTEMPTS.totals(now).items():
            key = (targets.get(target_id, str(target_id)), code_class)
            totals[key] += n
            if retry:
                retried[key] += n
        for name in targets.values():
            totals.setdefault((name, "2xx"), 0)
        for key in sorted(totals):
            attempts.add_metric(list(key), totals[key])
            retries.add_metric(list(key), retried.get(key, 0))
        yield from (attempts, retries)

        by_status = {}
        for status in (OutboxStatus.PENDING, OutboxStatus.DEAD):  # one query each: each has its partial index
            rows = OutboxEvent.objects.filter(status=status).values_list("target_id").annotate(n=Count("pk"))
            by_status.update({(target_id, status): n for target_id, n in rows.order_by()})
        pending = GaugeMetricFamily(
            "handoff_delivery_pending",
            "Outbox events waiting for delivery (first attempt or a retry), by target.",
            labels=["target"],
        )
        dead = GaugeMetricFamily(
            "handoff_dead_letters",
            "Dead-lettered outbox events (attempts used up, or an answer retrying cannot fix), by target; "
            "a replay from the console takes one out.",
            labels=["target"],
        )
        for target_id, name in sorted(targets.items(), key=lambda item: item[1]):
            pending.add_metric([name], by_status.get((target_id, OutboxStatus.PENDING), 0))
            dead.add_metric([name], by_status.get((target_id, OutboxStatus.DEAD), 0))
        yield from (pending, dead)

    def _enrichment(self, now):
        window = _enrichment_window(now)  # every provider, with its last hour
        names = {row[0]: row[1] for row in window}
        calls = CounterMetricFamily(
            "handoff_enrichment_calls",
            "Calls to enrichment providers, by provider and outcome: ok (answered valid values), invalid "
            "(answered values intake refuses: the lead goes to review), failed (error, timeout or refused).",
            labels=["provider", "outcome"],
        )
        totals: Counter = Counter(
            {(name, outcome): 0 for name in names.values() for outcome in EnrichmentOutcome.values}
        )
        for (provider_id, outcome), n in ENRICHMENT_CALLS.totals(now).items():
            totals[(names.get(provider_id, str(provider_id)), outcome)] += n
        for (name, outcome), n in sorted(totals.items()):
            calls.add_metric([name, outcome], n)
        yield calls

        latency = HistogramMetricFamily(
            "handoff_enrichment_latency_seconds",
            "Latency of the calls to each enrichment provider in the last hour. A sliding window: read the "
            "buckets directly, not with rate().",
            labels=["provider"],
        )
        success = GaugeMetricFamily(
            "handoff_enrichment_success_ratio",
            "Share of the last hour's calls to each enrichment provider that answered valid values (the target is "
            "HANDOFF_ENRICHMENT_SUCCESS_TARGET); absent without calls.",
            labels=["provider"],
        )
        p95 = GaugeMetricFamily(
            "handoff_enrichment_latency_p95_seconds",
            "P95 latency of the last hour's calls to each enrichment provider; absent without calls.",
            labels=["provider"],
        )
        for _, name, n, ok, total_ms, cumulative, p95_ms in window:
            points = [(_le(le), cumulative[i]) for i, le in enumerate(ENRICHMENT_BUCKETS)] + [("+Inf", n)]
            latency.add_metric([name], points, total_ms / 1000)
            if n:
                success.add_metric([name], ok / n)
                p95.add_metric([name], p95_ms / 1000)
        yield from (latency, success, p95)

    def _task_queue(self):
        depths = queue_depths()
        readable = GaugeMetricFamily(
            "handoff_task_queue_readable", "1 when the broker answered the queue-depth question, 0 when it did not."
        )
        readable.add_metric([], 0 if depths is None else 1)
        yield readable
        family = GaugeMetricFamily(
            "handoff_task_queue_depth",
            "Celery tasks waiting in each broker queue: the live and bulk routing lanes (<queue>-live, "
            "<queue>-bulk), deliveries, replays, and the default queue of beat's housekeeping; absent when the "
            "broker does not answer.",
            labels=["queue"],
        )
        for name, depth in (depths or {}).items():
            family.add_metric([name], depth)
        yield family


REGISTRY = CollectorRegistry(auto_describe=False)
REGISTRY.register(HandoffCollector())
