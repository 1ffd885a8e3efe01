"""Publishing routing work to Celery. The lead row is the source of truth: a publish that fails (broker
down, crash after commit) is repaired by `requeue_stuck_leads`, so a failure here is logged, never raised."""

import logging
from collections.abc import Sequence

from django.conf import settings
from django.db import transaction

logger = logging.getLogger(__name__)


def routing_enqueue(lead_ids: Sequence[int]) -> int:
    """Publish route tasks for these leads now; returns how many leads were published."""
    from routing.tasks import route_leads

    chunk = settings.HANDOFF["ROUTE_CHUNK_SIZE"]
    published = 0
    for start in range(0, len(lead_ids), chunk):
        part = list(lead_ids[start : start + chunk])
        try:
            route_leads.delay(part)
        except Exception as exc:  # kombu OperationalError and friends: the sweeper will re-publish
            logger.warning(
                "Could not queue routing for %d leads (first id %s): %s; the sweeper will retry.",
                len(part),
                part[0],
                exc,
            )
        else:
            published += len(part)
    return published


def routing_enqueue_on_commit(lead_ids: Sequence[int]) -> None:
    if lead_ids:
        ids = list(lead_ids)
        transaction.on_commit(lambda: routing_enqueue(ids), robust=True)
