"""Celery tasks: thin wrappers that fetch by id and call the routing services."""

import logging
from contextlib import contextmanager

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import InterfaceError, OperationalError

from config.logs import log_context
from routing.assignment import open_lead_counts_fold
from routing.dispatch import Lane, TaskName, enrichment_enqueue, routing_backlog, routing_enqueue
from routing.engine import routing_rulesets
from routing.erasure import retention_apply
from routing.integrations.enrichment import (
    active_provider,
    leads_awaiting_enrichment,
    leads_skip_enrichment,
    provider_down,
)
from routing.services import lead_fail_routing, leads_claim_stuck, leads_route

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
def route_leads(self, lead_ids: list[int], lane: str = Lane.BULK) -> None:
    """Route the leads together (routing.services.leads_route). A batch that fails for any other reason than a
    transient database error is routed again lead by lead, so one bad lead cannot hold the others back: it
    alone goes to a person (routing_failed). Idempotent: a redelivered or retried task routes nothing twice.

    With an enrichment provider, leads the provider has not answered for go to the enrichment lane, which
    publishes their routing on this task's `lane` once settled: no call out of the product runs here."""
    try:
        rulesets = routing_rulesets()  # once per task, not once per lead
    except TRANSIENT:
        raise
    except Exception:
        rulesets = None  # rules that do not compile: each lead meets the error alone and goes to a person
    ready = list(lead_ids)
    provider = active_provider()
    if provider is not None and provider_down(provider):
        leads_skip_enrichment(lead_ids, provider)  # no hop through the enrichment lane while it is down
    elif provider is not None:
        waiting = set(leads_awaiting_enrichment(lead_ids))
        if waiting:
            enrichment_enqueue(sorted(waiting), lane=Lane(lane))
            ready = [lead_id for lead_id in lead_ids if lead_id not in waiting]
    if not ready:
        return
    try:
        routed = leads_route(lead_ids=ready, rulesets=rulesets)
    except SoftTimeLimitExceeded:
        raise  # slow is not broken: the leads stay `received` and are re-queued, not sent to a person
    except TRANSIENT:
        if self.request.retries < self.max_retries:
            raise
        logger.error("Routing %d leads failed after %d retries; left for the sweeper.", len(ready), self.max_retries)
        return
    except Exception:
        logger.exception("Routing %d leads together failed; routing each alone.", len(ready))
        routed = []
    # Each lead the batch did not take is routed alone: after a failed batch, or a lead another transaction
    # held (the batch skips locked rows; alone, it waits for the lock, then finds it routed or routes it).
    taken = {lead.pk for lead in routed}
    for lead_id in ready:
        if lead_id not in taken:
            with _one_lead(self, lead_id):
                routed += leads_route(lead_ids=[lead_id], rulesets=rulesets, skip_locked=False)
    for lead in routed:
        with log_context(lead_pk=lead.pk, lead_id=lead.lead_id):  # the routing line of each lead names it
            logger.info("Lead %s routed: %s, queue %s.", lead.pk, lead.status, lead.queue_id)


@contextmanager
def _one_lead(task, lead_id: int):
    """One lead's step: lines logged name the lead; a transient error retries the task (after the last retry
    the lead is left `received` for the sweeper); anything else sends the lead to a person."""
    with log_context(lead_pk=lead_id):
        try:
            yield
        except SoftTimeLimitExceeded:
            raise
        except TRANSIENT:
            if task.request.retries < task.max_retries:
                raise
            logger.error("Routing lead %s failed after %d retries; left for the sweeper.", lead_id, task.max_retries)
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


@shared_task(name=TaskName.FOLD_OPEN_LEAD_COUNTS, acks_late=True, reject_on_worker_lost=True)
def fold_open_lead_counts() -> int:
    """Beat: fold the open-lead changes the database recorded into one row per person, so reading a
    person's load stays a few rows."""
    return open_lead_counts_fold()


@shared_task(
    name=TaskName.APPLY_RETENTION,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=TRANSIENT,
    retry_backoff=60,
    retry_jitter=True,
    max_retries=3,
)
def apply_retention() -> dict:
    """Beat, nightly: old leads erased and old payloads emptied (routing.erasure.retention_apply). Each batch
    commits on its own, so a retry starts where the last one stopped."""
    result = retention_apply()
    if result.leads_erased or any(result.rows.values()):
        logger.info("Retention: %d leads erased; rows changed %s.", result.leads_erased, result.rows)
    return {"leads_erased": result.leads_erased, "rows": result.rows}
