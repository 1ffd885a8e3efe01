"""Celery tasks: thin wrappers that fetch by id and call the routing services."""

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import InterfaceError, OperationalError

from config.logs import log_context
from routing.dispatch import TaskName, routing_backlog, routing_enqueue
from routing.engine import routing_rulesets
from routing.integrations.enrichment import WAIT, active_provider, lead_enrich
from routing.services import lead_fail_routing, lead_route, leads_claim_stuck

logger = logging.getLogger(__name__)

TRANSIENT = (OperationalError, InterfaceError)


@shared_task(
    name=TaskName.ROUTE_LEADS,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=TRANSIENT,
    retry_backoff=2,
    retry_backoff_max=120,
    retry_jitter=True,
    max_retries=6,
)
def route_leads(self, lead_ids: list[int]) -> None:
    """Route each lead; idempotent, so a redelivered or retried task routes nothing twice."""
    try:
        rulesets = routing_rulesets()  # once per task, not once per lead
    except TRANSIENT:
        raise
    except Exception:
        rulesets = None  # rules that do not compile: each lead meets the error below and goes to a person
    provider = active_provider()
    for lead_id in lead_ids:
        with log_context(lead_id=lead_id):  # every line logged while routing it names the lead
            try:
                if lead_enrich(lead_id=lead_id, provider=provider) == WAIT:
                    logger.info("Lead %s waits for enrichment; it routes after the next attempt.", lead_id)
                    continue  # an attempt is scheduled for later, with this lead's routing
                lead = lead_route(lead_id=lead_id, rulesets=rulesets)
                if lead is not None:
                    logger.info("Lead %s routed: %s, queue %s.", lead_id, lead.status, lead.queue_id)
            except SoftTimeLimitExceeded:
                raise  # slow is not broken: the lead stays `received` and is re-queued, not sent to a person
            except TRANSIENT:
                if self.request.retries >= self.max_retries:
                    # Leave the lead `received`: requeue_stuck_leads publishes it again later.
                    logger.error(
                        "Routing lead %s failed after %d retries; left for the sweeper.", lead_id, self.request.retries
                    )
                    continue
                raise
            except Exception as exc:
                logger.exception("Routing lead %s failed; opening a routing_failed exception.", lead_id)
                lead_fail_routing(lead_id=lead_id, error=f"{type(exc).__name__}: {exc}")


@shared_task(name=TaskName.REQUEUE_STUCK_LEADS, acks_late=True, reject_on_worker_lost=True)
def requeue_stuck_leads() -> int:
    """Beat: publish again leads still `received` past the grace period (lost publish, broker outage).
    Skipped while the routing queue is long: then the leads are waiting their turn, not lost."""
    backlog = routing_backlog()
    if backlog is not None and backlog > settings.HANDOFF["REQUEUE_MAX_BACKLOG"]:
        logger.info("Routing backlog is %d tasks; not re-queueing this time.", backlog)
        return 0
    lead_ids = leads_claim_stuck()
    if lead_ids:
        logger.warning("Re-queueing %d leads still waiting for routing.", len(lead_ids))
        routing_enqueue(lead_ids)
    return len(lead_ids)
