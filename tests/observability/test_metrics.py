"""/metrics: Prometheus text that parses, and figures that are right on a known sample."""

import datetime as dt

import pytest
import redis
import time_machine
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from exceptions.models import ExceptionReason, ExceptionStatus
from routing.integrations.models import DeliveryAttempt, EnrichmentOutcome, EnrichmentReceipt, OutboxStatus
from routing.models import LeadStatus, Source
from tests.factories import (
    DeliveryTargetFactory,
    EnrichmentProviderFactory,
    ExceptionItemFactory,
    LeadFactory,
    OutboxEventFactory,
    QueueFactory,
    SourceFactory,
)
from tests.observability.conftest import scrape, value

NOW = dt.datetime(2026, 3, 10, 12, 30, tzinfo=dt.UTC)  # settled boundary: 12:00 (the hour that ended 10 min ago)


def ago(**delta) -> dt.datetime:
    return NOW - dt.timedelta(**delta)


def lead(origin, *, received, status=LeadStatus.ASSIGNED, routing=None, latency=None):
    """A lead received at `received`, routed `routing` seconds later, assigned `latency` seconds after its
    conversion (assignment happens at routing)."""
    routed_at = received + dt.timedelta(seconds=routing) if routing is not None else None
    assigned_at = routed_at if latency is not None else None
    occurred_at = assigned_at - dt.timedelta(seconds=latency) if latency is not None else received
    return LeadFactory(
        origin=origin,
        received_at=received,
        occurred_at=occurred_at,
        status=status,
        routed_at=routed_at,
        assigned_at=assigned_at,
    )


def attempt(event, number, at, status_code):
    return DeliveryAttempt.objects.create(event=event, number=number, at=at, status_code=status_code, latency_ms=12)


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def sample(db, frozen):
    web, chat, _quiet = SourceFactory(name="web-form"), SourceFactory(name="chat"), SourceFactory(name="quiet")
    triage, sales = QueueFactory(name="Triage"), QueueFactory(name="Sales")
    lead(web, received=ago(minutes=5), routing=0.03, latency=3)
    lead(web, received=ago(minutes=4), routing=0.3, latency=90)
    stuck = lead(web, received=ago(hours=1, minutes=30), status=LeadStatus.EXCEPTION, routing=40)
    lead(chat, received=ago(minutes=2), status=LeadStatus.RECEIVED)
    lead(chat, received=ago(hours=3), routing=2, latency=7200)  # exactly on the 7200 s bucket's bound
    old = lead(web, received=ago(days=2), routing=0.01, latency=1)  # counted, but outside the 24 h window
    lead(chat, received=ago(minutes=1), status=LeadStatus.RECEIVED)

    opened = {"opened_at": ago(hours=1)}
    ExceptionItemFactory(lead=stuck, queue=triage, ack_breached_at=ago(minutes=30), **opened)
    ExceptionItemFactory(
        lead=stuck,
        queue=triage,
        reason=ExceptionReason.MISSING_CONTACT,
        status=ExceptionStatus.ACKNOWLEDGED,
        acknowledged_at=ago(minutes=50),
        resolve_breached_at=ago(minutes=1),
        **opened,
    )
    ExceptionItemFactory(
        lead=old,
        queue=triage,
        status=ExceptionStatus.RESOLVED,
        acknowledged_at=ago(minutes=40),
        resolved_at=ago(minutes=20),
        ack_breached_at=ago(minutes=45),
        **opened,
    )
    ExceptionItemFactory(
        lead=old,
        queue=sales,
        reason=ExceptionReason.NO_ELIGIBLE_ASSIGNEE,
        status=ExceptionStatus.WAITING,
        acknowledged_at=ago(minutes=10),
        **opened,
    )
    ExceptionItemFactory(lead=stuck, queue=triage, status=ExceptionStatus.RESOLVED, resolved_at=ago(minutes=5))

    crm, analytics, _idle = (DeliveryTargetFactory(name=name) for name in ("CRM", "Analytics", "Idle"))
    delivered = OutboxEventFactory(target=crm, status=OutboxStatus.DELIVERED, created_at=ago(minutes=3))
    attempt(delivered, 1, ago(minutes=3), 503)
    attempt(delivered, 2, ago(minutes=2), 200)
    dead = OutboxEventFactory(target=crm, status=OutboxStatus.DEAD, created_at=ago(hours=2))
    attempt(dead, 1, ago(hours=2), None)  # no answer: timeout or refused
    attempt(dead, 2, ago(hours=1, minutes=30), 404)
    retrying = OutboxEventFactory(target=analytics, created_at=ago(minutes=1))
    attempt(retrying, 1, ago(minutes=1), None)
    OutboxEventFactory(target=analytics, created_at=ago(seconds=10))  # not tried yet
    early = OutboxEventFactory(target=crm, status=OutboxStatus.DELIVERED, created_at=ago(hours=5))
    attempt(early, 1, ago(hours=5), 200)


def test_metrics_parse_with_the_prometheus_text_parser(client, sample):
    response = client.get("/metrics")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    families = {family.name: family.type for family in text_string_to_metric_families(response.content.decode())}
    assert families == {
        "handoff_leads_accepted": "counter",
        "handoff_intake_rejected": "counter",
        "handoff_leads_waiting_routing": "gauge",
        "handoff_routing_duration_seconds": "histogram",
        "handoff_conversion_to_assignment_seconds": "histogram",
        "handoff_exceptions_opened": "counter",
        "handoff_exceptions_acknowledged": "gauge",
        "handoff_exceptions_resolved": "gauge",
        "handoff_exceptions_unresolved": "gauge",
        "handoff_exceptions_breached": "gauge",
        "handoff_exceptions_breached_unresolved": "gauge",
        "handoff_delivery_attempts": "counter",
        "handoff_delivery_retries": "counter",
        "handoff_delivery_pending": "gauge",
        "handoff_dead_letters": "gauge",
        "handoff_enrichment_calls": "counter",
        "handoff_enrichment_latency_seconds": "histogram",
        "handoff_enrichment_success_ratio": "gauge",
        "handoff_enrichment_latency_p95_seconds": "gauge",
        "handoff_task_queue_readable": "gauge",
        "handoff_task_queue_depth": "gauge",
        "handoff_metrics_collect_seconds": "gauge",
    }


def test_leads_accepted_and_waiting_by_origin(client, sample):
    samples = scrape(client)

    assert samples["handoff_leads_accepted_total"] == {
        frozenset({("origin", "web-form")}): 4,
        frozenset({("origin", "chat")}): 3,
        frozenset({("origin", "quiet")}): 0,
    }
    assert value(samples, "handoff_leads_waiting_routing", origin="chat") == 2
    assert value(samples, "handoff_leads_waiting_routing", origin="web-form") == 0


def buckets(samples, name) -> dict[str, float]:
    return {dict(labels)["le"]: n for labels, n in samples[f"{name}_bucket"].items()}


def test_routing_duration_histogram_counts_the_last_24_hours(client, sample):
    samples = scrape(client)

    # Routed in the window: 0.03 s, 0.3 s, 2 s, 40 s (the lead of two days ago and the unrouted ones are out).
    assert buckets(samples, "handoff_routing_duration_seconds") == {
        "0.05": 1,
        "0.1": 1,
        "0.25": 1,
        "0.5": 2,
        "1.0": 2,
        "2.5": 3,
        "5.0": 3,
        "10.0": 3,
        "30.0": 3,
        "60.0": 4,
        "120.0": 4,
        "300.0": 4,
        "900.0": 4,
        "3600.0": 4,
        "+Inf": 4,
    }
    assert value(samples, "handoff_routing_duration_seconds_count") == 4
    assert value(samples, "handoff_routing_duration_seconds_sum") == pytest.approx(42.33)


def test_conversion_to_assignment_histogram_includes_the_bucket_bound(client, sample):
    samples = scrape(client)

    # Assigned in the window: 3 s, 90 s and exactly 7200 s after conversion.
    assert buckets(samples, "handoff_conversion_to_assignment_seconds") == {
        "1.0": 0,
        "5.0": 1,
        "10.0": 1,
        "30.0": 1,
        "60.0": 1,
        "120.0": 2,
        "300.0": 2,
        "600.0": 2,
        "1800.0": 2,
        "3600.0": 2,
        "7200.0": 3,
        "21600.0": 3,
        "86400.0": 3,
        "+Inf": 3,
    }
    assert value(samples, "handoff_conversion_to_assignment_seconds_count") == 3
    assert value(samples, "handoff_conversion_to_assignment_seconds_sum") == pytest.approx(7293)


def test_exceptions_by_reason_and_queue(client, sample):
    samples = scrape(client)
    nmr = {"reason": "no_matching_rule", "queue": "Triage"}
    missing = {"reason": "missing_contact", "queue": "Triage"}
    nobody = {"reason": "no_eligible_assignee", "queue": "Sales"}

    assert value(samples, "handoff_exceptions_opened_total", **nmr) == 3
    assert value(samples, "handoff_exceptions_opened_total", **missing) == 1
    assert value(samples, "handoff_exceptions_opened_total", **nobody) == 1
    assert value(samples, "handoff_exceptions_acknowledged", **nmr) == 1
    assert value(samples, "handoff_exceptions_acknowledged", **missing) == 1
    assert value(samples, "handoff_exceptions_acknowledged", **nobody) == 1
    assert value(samples, "handoff_exceptions_resolved", **nmr) == 2
    assert value(samples, "handoff_exceptions_resolved", **missing) == 0
    assert value(samples, "handoff_exceptions_unresolved", **nmr, status="open") == 1
    assert value(samples, "handoff_exceptions_unresolved", **nmr, status="acknowledged") == 0
    assert value(samples, "handoff_exceptions_unresolved", **missing, status="acknowledged") == 1
    assert value(samples, "handoff_exceptions_unresolved", **nobody, status="waiting") == 1
    assert value(samples, "handoff_exceptions_breached", **nmr, clock="ack") == 2  # one of them resolved since
    assert value(samples, "handoff_exceptions_breached", **nmr, clock="resolve") == 0
    assert value(samples, "handoff_exceptions_breached", **missing, clock="resolve") == 1
    assert value(samples, "handoff_exceptions_breached_unresolved", **nmr) == 1
    assert value(samples, "handoff_exceptions_breached_unresolved", **missing) == 1
    assert value(samples, "handoff_exceptions_breached_unresolved", **nobody) == 0


def test_deliveries_retries_and_dead_letters_by_target(client, sample):
    samples = scrape(client)

    assert samples["handoff_delivery_attempts_total"] == {
        frozenset({("target", "CRM"), ("code_class", "2xx")}): 2,
        frozenset({("target", "CRM"), ("code_class", "4xx")}): 1,
        frozenset({("target", "CRM"), ("code_class", "5xx")}): 1,
        frozenset({("target", "CRM"), ("code_class", "error")}): 1,
        frozenset({("target", "Analytics"), ("code_class", "error")}): 1,
        frozenset({("target", "Analytics"), ("code_class", "2xx")}): 0,
        frozenset({("target", "Idle"), ("code_class", "2xx")}): 0,
    }
    assert value(samples, "handoff_delivery_retries_total", target="CRM", code_class="2xx") == 1
    assert value(samples, "handoff_delivery_retries_total", target="CRM", code_class="4xx") == 1
    assert value(samples, "handoff_delivery_retries_total", target="CRM", code_class="5xx") == 0
    assert value(samples, "handoff_delivery_retries_total", target="Analytics", code_class="error") == 0
    assert value(samples, "handoff_delivery_pending", target="Analytics") == 2
    assert value(samples, "handoff_delivery_pending", target="CRM") == 0
    assert samples["handoff_dead_letters"] == {
        frozenset({("target", "CRM")}): 1,
        frozenset({("target", "Analytics")}): 0,
        frozenset({("target", "Idle")}): 0,
    }


def without_timing(samples: dict) -> dict:
    return {name: values for name, values in samples.items() if name != "handoff_metrics_collect_seconds"}


def test_counters_stay_exact_as_the_settled_hour_moves(client, sample, frozen):
    first = scrape(client)  # counts the rows before 12:00 once and keeps them, then only the rows since
    assert without_timing(scrape(client)) == without_timing(first)

    chat = Source.objects.get(name="chat")
    frozen.shift(dt.timedelta(hours=2))  # boundary 14:00: the two hours between are added, not recounted
    lead(chat, received=timezone.now(), routing=1)
    later = scrape(client)

    assert value(later, "handoff_leads_accepted_total", origin="chat") == 4
    assert value(later, "handoff_leads_accepted_total", origin="web-form") == 4
    assert value(later, "handoff_delivery_attempts_total", target="CRM", code_class="2xx") == 2
    assert value(later, "handoff_routing_duration_seconds_count") == 5  # the 24 h window still holds them all


def test_a_row_stamped_in_the_settled_past_is_counted_at_the_daily_recount(client, sample, frozen):
    scrape(client)
    chat = Source.objects.get(name="chat")
    lead(chat, received=ago(hours=6))  # e.g. a backfill with old stamps: the kept part does not know it yet
    assert value(scrape(client), "handoff_leads_accepted_total", origin="chat") == 3

    frozen.shift(dt.timedelta(hours=24))

    assert value(scrape(client), "handoff_leads_accepted_total", origin="chat") == 4


def test_task_queue_depth_comes_from_the_broker(client, db, settings):
    settings.CELERY_TASK_DEFAULT_QUEUE = "handoff-obs-depth-test"
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    broker.delete(settings.CELERY_TASK_DEFAULT_QUEUE)
    broker.rpush(settings.CELERY_TASK_DEFAULT_QUEUE, "a", "b", "c")
    try:
        samples = scrape(client)
    finally:
        broker.delete(settings.CELERY_TASK_DEFAULT_QUEUE)

    assert value(samples, "handoff_task_queue_readable") == 1
    assert value(samples, "handoff_task_queue_depth", queue="handoff-obs-depth-test") == 3


def test_each_routing_lane_shows_its_own_depth(client, db, settings):
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    live, bulk = settings.HANDOFF_QUEUES["live"], settings.HANDOFF_QUEUES["bulk"]
    broker.delete(live, bulk)
    broker.rpush(live, "a")
    broker.rpush(bulk, "a", "b", "c", "d")
    try:
        samples = scrape(client)
    finally:
        broker.delete(live, bulk)

    assert value(samples, "handoff_task_queue_depth", queue=live) == 1
    assert value(samples, "handoff_task_queue_depth", queue=bulk) == 4


def test_an_unreadable_broker_leaves_the_depth_out_and_says_so(client, db, monkeypatch):
    monkeypatch.setattr("routing.reports.metrics.queue_depths", lambda: None)

    samples = scrape(client)

    assert value(samples, "handoff_task_queue_readable") == 0
    assert "handoff_task_queue_depth" not in samples


def test_a_scrape_runs_a_fixed_number_of_queries_whatever_the_data(client, sample, django_assert_num_queries):
    scrape(client)  # the first scrape of a process also counts the settled history: three more queries
    # 9, 2 for enrichment (the providers with their last hour, the calls since the settled hour) and 1 for the
    # rejected posts' daily counts
    with django_assert_num_queries(12):
        scrape(client)

    more_sources = [SourceFactory() for _ in range(5)]
    more_targets = [DeliveryTargetFactory() for _ in range(3)]
    providers = [EnrichmentProviderFactory() for _ in range(2)]
    queue = QueueFactory(name="Overflow")
    for n in range(40):
        origin = more_sources[n % 5]
        received = ago(seconds=n)  # stamped as they arrive, as intake and delivery stamp them
        item_lead = lead(origin, received=received, status=LeadStatus.EXCEPTION, routing=n / 10)
        ExceptionItemFactory(lead=item_lead, queue=queue, reason=ExceptionReason.ROUTING_FAILED)
        event = OutboxEventFactory(target=more_targets[n % 3], created_at=received)
        attempt(event, 1, received, 500 + n % 2)
        attempt(event, 2, received, 200)
        outcome = EnrichmentOutcome.FAILED if n % 4 == 0 else EnrichmentOutcome.OK
        EnrichmentReceipt.objects.create(
            provider=providers[n % 2], lead=item_lead, at=received, attempt=1, outcome=outcome, latency_ms=10 * n
        )
    with django_assert_num_queries(12):
        samples = scrape(client)
    assert sum(samples["handoff_leads_accepted_total"].values()) == 47
    assert sum(samples["handoff_enrichment_calls_total"].values()) == 40
