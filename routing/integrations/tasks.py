"""Celery tasks for the edges, enrichment and delivery: thin wrappers; every step is idempotent (claims are
conditional UPDATEs). They run on queues of their own, never on a routing lane (settings.HANDOFF_QUEUES)."""

import logging

from celery import shared_task
from django.db import InterfaceError, OperationalError

from routing.dispatch import Lane, TaskName, deliveries_enqueue, routing_enqueue
from routing.integrations.delivery import event_deliver, events_due
from routing.integrations.enrichment import active_provider, leads_enrich
from routing.integrations.enrichment_health import enrichment_health_check
from routing.integrations.handoff import handoffs_unconfirmed_sweep

logger = logging.getLogger(__name__)
CHUNK = 50


@shared_task(
    name=TaskName.ENRICH_LEADS,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=2,
    retry_backoff_max=120,
    max_retries=6,
)
def enrich_leads(lead_ids: list[int], lane: str = Lane.BULK) -> int:
    """One attempt at each lead's enrichment that is due, then routing on `lane` for those settled (a lead
    that waits for a later attempt is published again for then). A retried task asks nothing twice: a lead
    already answered is ready, one under another attempt's lease is skipped."""
    ready = leads_enrich(lead_ids=lead_ids, provider=active_provider(), lane=Lane(lane))
    if ready:
        routing_enqueue(ready, lane=Lane(lane))
    return len(ready)


@shared_task(name=TaskName.DELIVER_EVENTS, acks_late=True, reject_on_worker_lost=True)
def deliver_events(event_ids: list[int]) -> int:
    """One attempt at each due event; an event not due yet or claimed elsewhere is skipped."""
    done = 0
    for event_id in event_ids:
        try:
            done += event_deliver(event_id=event_id) is not None
        except Exception:
            # The event stays pending under its lease; the beat sweep tries it again when the lease ends.
            logger.exception("Delivering event %s failed unexpectedly.", event_id)
    return done


@shared_task(name=TaskName.DELIVERIES_DUE, acks_late=True)
def deliveries_due() -> int:
    """Beat: publish pending events whose next attempt has come (lost publishes, lost retries)."""
    ids = events_due()
    for start in range(0, len(ids), CHUNK):
        deliveries_enqueue(ids[start : start + CHUNK])
    return len(ids)


@shared_task(name=TaskName.HANDOFFS_UNCONFIRMED, acks_late=True)
def handoffs_unconfirmed() -> int:
    """Beat: handoffs unconfirmed past their target's grace open handoff_unconfirmed (each event once)."""
    return handoffs_unconfirmed_sweep()


@shared_task(name=TaskName.ENRICHMENT_HEALTH, acks_late=True)
def enrichment_health() -> int:
    """Beat, each minute: the active provider's last hour against its target (an incident opens or resolves);
    while an enrichment incident is open, leads waiting too long for it are routed, to a person."""
    check = enrichment_health_check(provider=active_provider())
    if check.sent_to_review:
        routing_enqueue(list(check.sent_to_review), lane=Lane.BULK)
    return len(check.sent_to_review)
